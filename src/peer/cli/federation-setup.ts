import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { z } from 'zod'
import { EpimeshError } from '../../errors.ts'
import type { CaseSchema } from '../../store/schema.ts'
import { FederationInvalidError, FederationReadError, type FederationIssue } from '../errors.ts'
import { loadFederation, modelSchema, type Federation } from '../federation.ts'
import { loadIdentity } from '../identity.ts'
import { withStore } from './store-commands.ts'

/**
 * `epimesh id` and `epimesh federation check`: setting up a federation without learning its file's
 * format from validation errors. `id` shows what a member's entry needs (peer id, region, addresses);
 * `check` lists every problem of a file, and with `--dir` whether it fits that folder (its peer id,
 * its columns).
 */

/** A federation file or data folder that does not pass `federation check` (every problem printed first). */
export class FederationCheckFailedError extends EpimeshError {
  static override readonly name = 'FederationCheckFailedError'
  readonly exitCode = 2
  constructor (message: string) { super('FEDERATION_INVALID', message) }
}

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

/** Whether a schema's column can be a model's feature or outcome, and as what. */
function columnKind (schema: CaseSchema, column: string): 'number' | 'category' | 'date' | 'dropped' | 'hashed' | 'id' | 'absent' {
  if (column === schema.id) return 'id'
  const rule = schema.columns[column]
  if (rule === undefined) return 'absent'
  if ('action' in rule) return rule.action === 'drop' ? 'dropped' : 'hashed'
  return rule.type
}

const KIND_WORDS: Record<string, string> = {
  id: 'is the record id column (stored only as a salted hash)',
  absent: 'is not a column',
  date: 'is a date column',
  dropped: 'is dropped at import',
  hashed: 'is stored only as a salted hash',
  number: 'is a number column',
  category: 'is a category column'
}

/**
 * The problems of a federation's model for one data folder: its peer id must be a member (of its own
 * region), the outcome and every feature a column of its schema of the matching type (number for a
 * numeric or binary feature, category for a categorical one, whose levels must cover the schema's).
 */
export function folderProblems (federation: Pick<Federation, 'members' | 'model'>, folder: FolderIdentity): FederationIssue[] {
  const issues: FederationIssue[] = []
  const index = federation.members.findIndex((member) => member.peerId === folder.peerId)
  if (index < 0) {
    const byRegion = federation.members.findIndex((member) => member.region === folder.region)
    issues.push({ path: 'members', message: `${folder.dir}'s peer id ${folder.peerId} is not a member${byRegion < 0 ? '' : ` (members[${byRegion}] is ${folder.region} with another peer id: ${federation.members[byRegion]?.peerId ?? ''})`}` })
  } else if (federation.members[index]?.region !== folder.region) {
    issues.push({ path: `members[${index}].region`, message: `${folder.dir} serves ${folder.region}, the file names its peer id ${federation.members[index]?.region ?? ''}` })
  }
  const schema = folder.schema
  if (schema === null) {
    issues.push({ path: 'model', message: `${folder.dir} holds no case records yet (no schema): import them first (epimesh import --dir ${folder.dir} --cases FILE)` })
    return issues
  }
  const columns = Object.keys(schema.columns).filter((column) => columnKind(schema, column) === 'number' || columnKind(schema, column) === 'category')
  const known = `(${folder.dir}'s columns: ${columns.slice(0, 20).join(', ')}${columns.length > 20 ? ', ...' : ''})`
  const outcome = columnKind(schema, federation.model.outcome)
  if (outcome !== 'number' && outcome !== 'category') issues.push({ path: 'model.outcome', message: `"${federation.model.outcome}" ${KIND_WORDS[outcome] ?? ''} in ${folder.dir}'s schema ${known}` })
  federation.model.features.forEach((feature, featureIndex) => {
    const path = `model.features[${featureIndex}]`
    const kind = columnKind(schema, feature.name)
    const wanted = feature.type === 'categorical' ? 'category' : 'number'
    if (kind !== wanted) {
      issues.push({ path, message: `"${feature.name}" ${KIND_WORDS[kind] ?? ''} in ${folder.dir}'s schema; a ${feature.type} feature needs a ${wanted} column${kind === 'absent' ? ` ${known}` : ''}` })
      return
    }
    const rule = schema.columns[feature.name]
    if (feature.type === 'categorical' && rule !== undefined && 'levels' in rule) {
      const missing = rule.levels.filter((level) => !(feature.levels ?? []).includes(level))
      if (missing.length > 0) issues.push({ path: `${path}.levels`, message: `${folder.dir}'s schema allows ${missing.map((level) => `"${level}"`).join(', ')} for "${feature.name}", which the feature's levels lack` })
    }
  })
  return issues
}

/** One line on a valid file: its id, members, graph and model. */
export function federationSummary (federation: Federation): string {
  const graph = 'topology' in federation.graph ? `${federation.graph.topology} graph` : 'graph'
  const model = federation.model
  const terms = model.features.map((feature) => feature.type === 'categorical' ? `${feature.name} (${feature.levels?.length ?? 0} levels)` : feature.name)
  return `federation "${federation.federationId}": ${federation.members.length} members (${federation.members.map((member) => member.region).join(', ')}); ${graph} with ${federation.edges.length} edges; model ${model.kind ?? 'glm'} ${model.family} ${model.outcome} ~ ${terms.join(' + ')} (${model.algorithm}, lambda ${model.lambda})`
}

/**
 * Loads and validates a federation file, every problem as an issue (a file that cannot be read is
 * thrown). For a file that does not validate, `parts` holds its members and model when those parts
 * pass on their own, so that a data folder can still be checked against them.
 */
async function checkedFederation (file: string): Promise<{ federation: Federation | null, parts: Pick<Federation, 'members' | 'model'> | null, issues: FederationIssue[] }> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch (cause) {
    throw new FederationReadError(`cannot read the federation file ${file}`, { cause })
  }
  if (size > MAX_FEDERATION_BYTES) return { federation: null, parts: null, issues: [{ path: '', message: `larger than ${MAX_FEDERATION_BYTES} bytes; not a federation file` }] }
  try {
    const federation = await loadFederation(file)
    return { federation, parts: federation, issues: [] }
  } catch (error) {
    if (!(error instanceof FederationInvalidError)) throw error
    return { federation: null, parts: await validParts(file), issues: [...error.issues] }
  }
}

const memberPart = z.object({ region: z.string(), peerId: z.string(), addresses: z.array(z.string()).optional() })

/** The members and model of a federation file that fails validation elsewhere, when both pass on their own. */
async function validParts (file: string): Promise<Pick<Federation, 'members' | 'model'> | null> {
  try {
    const raw = JSON.parse(await readFile(file, 'utf8')) as { members?: unknown, model?: unknown }
    const members = z.array(memberPart).max(10_000).safeParse(raw.members)
    const model = modelSchema.safeParse(raw.model)
    if (!members.success || !model.success) return null
    return { members: members.data.map((member) => ({ ...member, addresses: member.addresses ?? [] })), model: model.data }
  } catch {
    return null
  }
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

  const federation = program.command('federation').description('check a federation file: every problem, or whether it fits a data folder')

  federation.command('check')
    .description('validate a federation file: every problem with its field, or a one-line summary; with --dir, whether it fits that data folder')
    .argument('<file>', 'the federation file')
    .option('--dir <dir>', 'a member\'s data folder: its peer id must be a member, the model\'s columns in its schema')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (file: string, options: { dir?: string, json: boolean }) => {
      const { federation: checked, parts, issues } = await checkedFederation(file)
      if (parts !== null && options.dir !== undefined) issues.push(...folderProblems(parts, await readFolder(options.dir)))
      if (options.json) out(JSON.stringify({ file, valid: issues.length === 0, problems: issues, ...(checked === null ? {} : { federationId: checked.federationId, members: checked.members.length, edges: checked.edges.length }) }))
      if (issues.length > 0) {
        if (!options.json) for (const issue of issues) out(`${file}: ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`)
        throw new FederationCheckFailedError(`${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}`)
      }
      if (!options.json) out(`${file}: valid; ${federationSummary(checked as Federation)}${options.dir === undefined ? '' : `; fits ${options.dir}`}`)
    })
}
