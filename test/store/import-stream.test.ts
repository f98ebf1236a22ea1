import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IdFilter } from '../../src/store/id-filter.ts'
import { importCases } from '../../src/store/import.ts'
import { hashRecordId, isCaseChunk, layoutOf, StoreLayout } from '../../src/store/layout.ts'
import { Store } from '../../src/store/store.ts'
import { purgeBefore } from '../../src/store/summary.ts'

let dir = ''
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'epimesh-import-stream-')) })
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

let files = 0
async function casesFile (ids: string[], cells: (index: number) => string = (index) => `${20 + (index % 50)},${index % 2 === 0 ? 'F' : 'M'}`): Promise<string> {
  const file = join(dir, `cases-${++files}.csv`)
  await writeFile(file, ['case_id,age,sex', ...ids.map((id, index) => `${id},${cells(index)}`)].join('\n') + '\n')
  return file
}

const schema = { version: 1 as const, id: 'case_id', columns: { age: { type: 'number' as const, min: 0, max: 120 }, sex: { type: 'category' as const, levels: ['F', 'M'] } } }
const ids = (from: number, count: number): string[] => Array.from({ length: count }, (_, index) => `R${from + index}`)

/** Every raw case record (in its chunk) and record-id hash, committed or not: what an import may leave behind. */
async function rawKeys (store: Store): Promise<{ cases: number, ids: number, marks: number }> {
  const layout = layoutOf(store)
  let cases = 0
  let marks = 0
  for await (const [key, value] of layout.cases.iterator()) {
    if (key.includes('~seen!')) marks++
    else cases += isCaseChunk(value) ? value.rows.length : 1
  }
  let idCount = 0
  for await (const _ of layout.idOwners.keys()) idCount++
  for await (const _ of layout.ids.keys()) idCount++
  return { cases, ids: idCount, marks }
}

async function refusal (promise: Promise<unknown>): Promise<{ code: string, problems: Array<{ line: number, column: string, kind: string, reason: string }>, more: number }> {
  const error = await promise.then(() => null, (caught: unknown) => caught)
  expect(error).not.toBeNull()
  return error as never
}

describe('an import in chunks', () => {
  const options = { schema, batchRows: 7 }

  it('finds a record id given twice in the same chunk, the chunk before, and chunks far back, naming both lines', async () => {
    const store = await Store.open(join(dir, `dups-`))
    const list = ids(0, 60)
    list[3] = 'R1' // the same chunk as line 3 (R1)
    list[10] = 'R5' // the chunk before
    list[50] = 'R2' // seven chunks back: found in the store, its line by a second read
    const error = await refusal(importCases(store, { ...options, file: await casesFile(list) }))
    expect(error.code).toBe('IMPORT_INVALID')
    expect(error.problems.map((problem) => [problem.line, problem.kind, problem.reason])).toEqual([
      [5, 'ID_DUPLICATE', 'duplicate record id (also on line 3)'],
      [12, 'ID_DUPLICATE', 'duplicate record id (also on line 7)'],
      [52, 'ID_DUPLICATE', 'duplicate record id (also on line 4)']
    ])
    // nothing of it stays
    expect(await rawKeys(store)).toEqual({ cases: 0, ids: 0, marks: 0 })
    expect(await store.count()).toBe(0)
    await store.close()
  })

  it('keeps the first problems by line, though a duplicate far back is found after the rows that follow it', async () => {
    const store = await Store.open(join(dir, `order-`))
    const list = ids(0, 40)
    list[20] = 'R0'
    // every row after the duplicate has a bad age; the duplicate is found only when its chunk is checked
    const error = await refusal(importCases(store, { ...options, problemLimit: 3, file: await casesFile(list, (index) => `${index > 20 ? 'old' : '30'},F`) }))
    expect(error.problems.map((problem) => [problem.line, problem.kind])).toEqual([[22, 'ID_DUPLICATE'], [23, 'NOT_DECIMAL'], [24, 'NOT_DECIMAL']])
    expect(error.more).toBe(17)
    expect(await rawKeys(store)).toEqual({ cases: 0, ids: 0, marks: 0 })
    await store.close()
  })

  it('counts records already stored, stores the rest once, finds a stored one given twice, and leaves no marks', async () => {
    const store = await Store.open(join(dir, `again-`))
    const first = await importCases(store, { ...options, file: await casesFile(ids(0, 30)) })
    expect(first).toMatchObject({ rows: 30, duplicates: 0 })
    // 20 already stored and 25 new, in chunks that mix them
    const second = await importCases(store, { ...options, file: await casesFile([...ids(10, 20), ...ids(100, 25)]) })
    expect(second).toMatchObject({ rows: 25, duplicates: 20 })
    expect(await store.count()).toBe(55)
    expect(await rawKeys(store)).toEqual({ cases: 55, ids: 55, marks: 0 })
    // an id already stored, given twice four chunks apart, is a duplicate within the file
    const twice = [...ids(0, 5), ...ids(200, 25), 'R3']
    const error = await refusal(importCases(store, { ...options, file: await casesFile(twice) }))
    expect(error.problems.map((problem) => [problem.line, problem.kind, problem.reason])).toEqual([[32, 'ID_DUPLICATE', 'duplicate record id (also on line 5)']])
    expect(await rawKeys(store)).toEqual({ cases: 55, ids: 55, marks: 0 })
    // a file small beside the store: every id looked up in the store, no filter
    expect(await importCases(store, { ...options, file: await casesFile(['R0', 'R300']) })).toMatchObject({ rows: 1, duplicates: 1 })
    const small = await refusal(importCases(store, { ...options, file: await casesFile(['R301', 'R1', 'R301']) }))
    expect(small.problems.map((problem) => [problem.line, problem.kind, problem.reason])).toEqual([[4, 'ID_DUPLICATE', 'duplicate record id (also on line 2)']])
    expect(await rawKeys(store)).toEqual({ cases: 56, ids: 56, marks: 0 })
    await store.close()
  })

  it('stores the same records, read back, as an import of the whole file in one chunk', async () => {
    const streamed = await Store.open(join(dir, `same-`))
    const whole = await Store.open(join(dir, `whole-`))
    const file = await casesFile(ids(0, 101))
    const progress: number[] = []
    await importCases(streamed, { ...options, file, onProgress: (rows) => { progress.push(rows) } })
    await importCases(whole, { schema, batchRows: 1000, file })
    // the record-id hashes differ (each store has its salt); everything else is the same, in order
    const strip = (rows: Array<Record<string, unknown>>): unknown[] => rows.map(({ __id: _, ...row }) => row)
    expect(strip(await streamed.allRows())).toEqual(strip(await whole.allRows()))
    expect(await streamed.count()).toBe(101)
    expect(progress.at(-1)).toBe(101)
    expect(progress.length).toBe(Math.ceil(101 / 7))
    await streamed.close()
    await whole.close()
  })
})

describe('a store written before chunks (one sealed value a record, sealed import ids)', () => {
  it('is read, extended, purged and cleaned with the chunks written since', async () => {
    const path = join(dir, 'legacy-')
    const store = await Store.open(path)
    const layout = layoutOf(store)
    const salt = await layout.salt()
    // what an import wrote before chunks: a row a key, its record-id hash under ids with the import's id
    // (an id that sorts before those of imports made now, as it would have)
    await layout.meta.put(StoreLayout.schemaKey, { ...schema, date: 'onset', columns: { ...schema.columns, onset: { type: 'date' } } })
    await layout.meta.put(layout.importKey('0old'), { id: '0old', kind: 'cases', file: 'a.csv', rows: 10, duplicates: 0, committedAt: '2024-01-01T00:00:00.000Z' })
    const batch = layout.db.batch()
    for (const [index, id] of ids(0, 10).entries()) {
      const idHash = hashRecordId(salt, id)
      batch.put(layout.caseKey('0old', index), { age: index, sex: 'F', onset: index < 5 ? '2020-01-01' : '2024-06-01', __id: idHash }, { sublevel: layout.cases })
      batch.put(idHash, '0old', { sublevel: layout.ids })
    }
    await batch.write()
    expect(await store.count()).toBe(10)
    // five of them again and 12 new, in chunks of 7: the five found in the old ids
    const file = join(dir, 'legacy.csv')
    await writeFile(file, ['case_id,age,sex,onset', ...[...ids(5, 5), ...ids(50, 12)].map((id, index) => `${id},${index},M,${index % 2 === 0 ? '2020-02-01' : '2024-07-01'}`)].join('\n') + '\n')
    expect(await importCases(store, { batchRows: 7, file })).toMatchObject({ rows: 12, duplicates: 5 })
    expect(await store.count()).toBe(22)
    expect((await store.allRows()).map((row) => row.age)).toEqual([...Array.from({ length: 10 }, (_, index) => index), ...Array.from({ length: 12 }, (_, index) => index + 5)])
    // a record stored either way, given twice, is refused as a duplicate
    await writeFile(file, 'case_id,age,sex,onset\nR1,1,F,2024-01-01\nR51,1,F,2024-01-01\n')
    expect(await importCases(store, { batchRows: 7, file })).toMatchObject({ rows: 0, duplicates: 2 })
    // records before 2021 go: five single rows, and 6 of the 12 rows of the new chunks, which keep the others
    expect(await purgeBefore(store, '2021-01-01')).toEqual({ removed: 11, kept: 11, undated: 0 })
    expect(await store.count()).toBe(11)
    expect((await store.allRows()).every((row) => (row.onset as string) >= '2021-01-01')).toBe(true)
    expect(await rawKeys(store)).toEqual({ cases: 11, ids: 11, marks: 0 })
    // an import cut short (never committed) leaves a chunk and tagged hashes: both go at the next open
    const cut = layout.db.batch()
    cut.put(layout.caseKey('cut', 0), { columns: ['age', '__id'], rows: [[1, 'h-cut']] }, { sublevel: layout.cases })
    cut.put('h-cut', layout.importTag('cut'), { sublevel: layout.idOwners })
    await cut.write()
    expect(await rawKeys(store)).toEqual({ cases: 12, ids: 12, marks: 0 })
    await store.close()
    const reopened = await Store.open(path)
    expect(await rawKeys(reopened)).toEqual({ cases: 11, ids: 11, marks: 0 })
    expect(await reopened.count()).toBe(11)
    await reopened.close()
  })
})

describe('the filter of record ids', () => {
  it('never forgets an id it was given, and mistakes about 1% of the others when sized for them', () => {
    const count = 20_000
    const filter = new IdFilter(count)
    for (let index = 0; index < count; index++) filter.add(hashRecordId('salt', `in-${index}`))
    let forgotten = 0
    for (let index = 0; index < count; index++) if (!filter.has(hashRecordId('salt', `in-${index}`))) forgotten++
    expect(forgotten).toBe(0)
    let mistaken = 0
    for (let index = 0; index < count; index++) if (filter.has(hashRecordId('salt', `out-${index}`))) mistaken++
    expect(mistaken / count).toBeGreaterThan(0.001)
    expect(mistaken / count).toBeLessThan(0.02)
    expect(filter.bytes).toBe(count * 10 / 8)
  })

  it('refuses what is not a record-id hash', () => {
    expect(() => { new IdFilter(10).add('short') }).toThrow(RangeError)
    expect(() => new IdFilter(10).has('not base64url!!')).toThrow(RangeError)
  })
})
