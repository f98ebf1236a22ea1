import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { layoutOf } from '../../src/store/layout.ts'
import { Store } from '../../src/store/store.ts'

/** What an import that never committed left behind goes at the next open; committed records stay. */
let base = ''
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

describe('opening a store after an interrupted import', () => {
  it('removes the rows and record-id hashes of the import that never committed, and only those', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-uncommitted-'))
    const dir = join(base, 'peer')
    const store = await Store.open(dir)
    // what an import killed before its commit leaves: rows and hashes under an import id never marked committed
    const layout = layoutOf(store)
    await layout.meta.put(layout.importKey('done'), { id: 'done', kind: 'cases', file: 'a.csv', rows: 1, duplicates: 0, committedAt: '2024-01-01T00:00:00.000Z' })
    const batch = layout.db.batch()
    batch.put(layout.caseKey('done', 0), { age: 1 }, { sublevel: layout.cases })
    batch.put('hash-done', 'done', { sublevel: layout.ids })
    batch.put(layout.caseKey('cut', 0), { age: 2 }, { sublevel: layout.cases })
    batch.put(layout.caseKey('cut', 1), { age: 3 }, { sublevel: layout.cases })
    batch.put('hash-cut-0', 'cut', { sublevel: layout.ids })
    batch.put('hash-cut-1', 'cut', { sublevel: layout.ids })
    await batch.write()
    expect(await store.count()).toBe(1)
    await store.close()
    const reopened = await Store.open(dir)
    const after = layoutOf(reopened)
    expect(await after.cases.keys().all()).toEqual([after.caseKey('done', 0)])
    expect(await after.ids.keys().all()).toEqual(['hash-done'])
    expect(await reopened.allRows()).toEqual([{ age: 1 }])
    await reopened.close()
  })
})
