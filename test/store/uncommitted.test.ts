import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { Store } from '../../src/store/store.ts'

/** What an import that never committed left behind goes at the next open; committed records stay. */
let base = ''
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

describe('opening a store after an interrupted import', () => {
  it('removes the rows and record-id hashes of the import that never committed, and only those', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-uncommitted-'))
    const dir = join(base, 'peer')
    const store = await Store.open(dir)
    await store.meta.put('import!done', { id: 'done', kind: 'cases', file: 'a.csv', rows: 1, duplicates: 0, committedAt: '2024-01-01T00:00:00.000Z' })
    const batch = store.db.batch()
    batch.put('done!0000000000', { age: 1 }, { sublevel: store.cases })
    batch.put('hash-done', 'done', { sublevel: store.ids })
    batch.put('cut!0000000000', { age: 2 }, { sublevel: store.cases })
    batch.put('cut!0000000001', { age: 3 }, { sublevel: store.cases })
    batch.put('hash-cut-0', 'cut', { sublevel: store.ids })
    batch.put('hash-cut-1', 'cut', { sublevel: store.ids })
    await batch.write()
    await store.close()
    const reopened = await Store.open(dir)
    expect(await reopened.cases.keys().all()).toEqual(['done!0000000000'])
    expect(await reopened.ids.keys().all()).toEqual(['hash-done'])
    await reopened.close()
  })
})
