import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { appendAudit } from './audit.ts'
import { restrictTree } from './files.ts'
import { layoutOf, RECORD_KINDS, StoreLayout } from './layout.ts'
import type { AuditCheckpoint } from './records.ts'
import { Store } from './store.ts'

/**
 * Moves a store of the earlier, unencrypted layout into the encrypted one, in place (`epimesh store
 * migrate`). Its key is made as `init` makes one (--store-key, EPIMESH_STORE_PASSPHRASE, or a random
 * key in the keys folder). Every record is copied under the encrypted layout first, then the plain
 * ones are deleted and LevelDB compacts its files, so that none of them stays on disk in the store's
 * files. A migration cut short (a crash, a kill) is run again: copies are idempotent, and the store
 * refuses to open while plain records remain.
 */
const BATCH = 1000

export async function migrateStore (dir: string): Promise<{ records: number, storeId: string | null }> {
  const store = await Store.openWhenFree(dir, 10_000, { migrating: true })
  const layout = layoutOf(store)
  let records = 0
  try {
    // copy ...
    for (const kind of RECORD_KINDS) {
      const plain = layout.unencrypted(kind)
      let batch = layout.db.batch()
      let size = 0
      const entries: string[] = []
      const checkpoints: AuditCheckpoint[] = []
      const flush = async (): Promise<void> => {
        if (size > 0) await batch.write()
        batch = layout.db.batch()
        size = 0
        await appendAudit(layout, { entries: entries.splice(0), checkpoints: checkpoints.splice(0) })
      }
      for await (const [key, value] of plain.iterator()) {
        if (kind === 'meta' && key === StoreLayout.layoutKey) continue
        records++
        if (kind === 'rounds') {
          // the round log's keys named the job and peer: written again by the audit log, under their tags
          if (key.startsWith('e!')) entries.push(value as string)
          else if (key.startsWith('c!')) checkpoints.push(value as AuditCheckpoint)
        } else {
          batch.put(key, value, { sublevel: layout[kind] as typeof layout.meta })
        }
        if (++size >= BATCH) await flush()
      }
      await flush()
      await batch.close()
    }
    // ... then delete the plain records, and compact them out of the files
    for (const kind of RECORD_KINDS) {
      const plain = layout.unencrypted(kind)
      let batch = layout.db.batch()
      let size = 0
      for await (const key of plain.keys()) {
        batch.del(key, { sublevel: plain })
        if (++size >= BATCH) {
          await batch.write()
          batch = layout.db.batch()
          size = 0
        }
      }
      if (size > 0) await batch.write()
      else await batch.close()
    }
    await layout.compact()
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
