import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { restrictTree } from '../../store/files.ts'
import { Store, UNENCRYPTED_LAYOUT_VERSION } from '../../store/store.ts'
import { writeAudit, type Checkpoint, type SealedEntry } from '../audit/log.ts'

/**
 * `epimesh store migrate`: moves a store of the earlier, unencrypted layout into the encrypted one,
 * in place. Its key is made as `init` makes one (--store-key, EPIMESH_STORE_PASSPHRASE, or a random
 * key in the keys folder). Every record is copied under the encrypted layout first, then the plain
 * ones are deleted and LevelDB compacts its files, so that none of them stays on disk in the
 * store's files. A migration cut short (a crash, a kill) is run again: copies are idempotent, and
 * the store refuses to open while plain records remain.
 */
const KINDS = ['meta', 'config', 'cases', 'ids', 'series', 'models', 'rounds'] as const
const BATCH = 1000

export async function migrateStore (dir: string): Promise<{ records: number, storeId: string | null }> {
  const store = await Store.openWhenFree(dir, 10_000, { migrating: true })
  let records = 0
  try {
    // copy ...
    for (const kind of KINDS) {
      const plain = store.unencryptedSublevel(kind)
      let batch = store.db.batch()
      let size = 0
      const entries: SealedEntry[] = []
      const checkpoints: Checkpoint[] = []
      const flush = async (): Promise<void> => {
        if (size > 0) await batch.write()
        batch = store.db.batch()
        size = 0
        if (entries.length > 0 || checkpoints.length > 0) await writeAudit(store, entries.splice(0), checkpoints.splice(0))
      }
      for await (const [key, value] of plain.iterator()) {
        if (kind === 'meta' && key === 'layout') continue
        records++
        if (kind === 'rounds') {
          // the round log's keys name the job and peer: written again by the audit log, under their tags
          if (key.startsWith('e!')) entries.push(JSON.parse(value as string) as SealedEntry)
          else if (key.startsWith('c!')) checkpoints.push(value as Checkpoint)
        } else {
          batch.put(key, value, { sublevel: store[kind] })
        }
        if (++size >= BATCH) await flush()
      }
      await flush()
    }
    // ... then delete the plain records, and compact them out of the files
    for (const kind of KINDS) {
      const plain = store.unencryptedSublevel(kind)
      let batch = store.db.batch()
      let size = 0
      for await (const key of plain.keys()) {
        batch.del(key, { sublevel: plain })
        if (++size >= BATCH) {
          await batch.write()
          batch = store.db.batch()
          size = 0
        }
      }
      if (size > 0) await batch.write()
      else await batch.close()
    }
    await store.compact()
  } finally {
    await store.close()
  }
  // LevelDB's own files still name plain keys: its manifest (the key range of every table it ever
  // had) until it is written afresh at the next open, and its info log (where a compaction names the
  // keys it stops at) until that is rotated out
  await (await Store.openWhenFree(dir)).close()
  await rm(join(dir, 'store', 'LOG.old'), { force: true })
  // what an earlier version wrote in the folder under a looser umask becomes the user's alone
  await restrictTree(dir)
  return { records, storeId: store.storeId }
}

export function registerMigrate (program: Command): void {
  const store = program.command('store').description('the local store\'s maintenance')
  store.command('migrate')
    .description(`encrypt a store of the earlier, unencrypted layout (v${UNENCRYPTED_LAYOUT_VERSION}) in place; its key is made as init makes one`)
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .action(async (options: { dir: string }) => {
      const { records, storeId } = await migrateStore(options.dir)
      process.stdout.write(`encrypted ${records} records of ${options.dir} (store id ${storeId ?? '?'}); keep a backup of its key, which is not in the folder\n`)
    })
}
