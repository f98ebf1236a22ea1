import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { CaseSchema } from '../../store/schema.ts'
import { loadIdentity } from '../identity.ts'
import { withStore } from './store-commands.ts'

/**
 * `epimesh id`: what a member's entry in the federation file needs (peer id, region, addresses), read
 * from its data folder.
 */

/** Federation files of 10,000 members are a few megabytes; a larger file is not one. */
const MAX_FEDERATION_BYTES = 16 << 20
const out = (line: string): void => { process.stdout.write(`${line}\n`) }

/** What a data folder says of itself: its identity's peer id, its region, its schema, its last known addresses. */
export interface FolderIdentity {
  dir: string
  peerId: string
  region: string
  schema: CaseSchema | null
  /** the multiaddrs the peer listened on when it last wrote status.json; empty when unknown */
  addresses: string[]
  /** when status.json was written (null: no status file) */
  addressesUpdatedAt: string | null
}

/** The listen addresses a peer recorded in DIR/status.json, if it has run (only well-formed strings). */
async function knownAddresses (dir: string): Promise<{ addresses: string[], updatedAt: string | null }> {
  let status: unknown
  try {
    const path = join(dir, 'status.json')
    if ((await stat(path)).size > MAX_FEDERATION_BYTES) return { addresses: [], updatedAt: null }
    status = JSON.parse(await readFile(path, 'utf8'))
  } catch {
    return { addresses: [], updatedAt: null }
  }
  const record = typeof status === 'object' && status !== null ? status as Record<string, unknown> : {}
  const addresses = Array.isArray(record.addresses) ? record.addresses.filter((value): value is string => typeof value === 'string' && value.length > 0 && value.length <= 1000).slice(0, 16) : []
  return { addresses, updatedAt: typeof record.updatedAt === 'string' ? record.updatedAt.slice(0, 40) : null }
}

/** Reads a data folder's identity (IDENTITY_MISSING, exit 2, for a folder init did not make), region and schema. */
export async function readFolder (dir: string): Promise<FolderIdentity> {
  const { peerId } = await loadIdentity(dir)
  const { region, schema } = await withStore(dir, async (store) => ({ region: await store.region() as string, schema: await store.schema() }))
  const { addresses, updatedAt } = await knownAddresses(dir)
  return { dir, peerId, region, schema, addresses, addressesUpdatedAt: updatedAt }
}

export function registerFederationSetup (program: Command): void {
  program.command('id')
    .description('a data folder\'s peer id, region and last known listen addresses: what its entry in the federation file needs')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, json: boolean }) => {
      const folder = await readFolder(options.dir)
      if (options.json) {
        out(JSON.stringify({ peerId: folder.peerId, region: folder.region, addresses: folder.addresses, addressesUpdatedAt: folder.addressesUpdatedAt }))
        return
      }
      out(`peer id    ${folder.peerId}`)
      out(`region     ${folder.region}`)
      out(`addresses  ${folder.addresses.length === 0 ? `none known (${folder.addressesUpdatedAt === null ? 'the peer has not run yet' : 'the peer recorded none'}; start --listen sets them)` : `${folder.addresses.join(' ')} (as of ${folder.addressesUpdatedAt ?? '?'})`}`)
    })
}
