import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryLevel } from 'memory-level'
import { afterAll, describe, expect, it } from 'vitest'
import { importCases, importSeries } from '../../src/store/import.ts'
import { parseSchema, type CaseSchema } from '../../src/store/schema.ts'
import { Store } from '../../src/store/store.ts'
import { cutoffDate, purgeBefore, summarize } from '../../src/store/summary.ts'
import { fixture } from '../helpers/data.ts'

const folders: string[] = []
afterAll(async () => { await Promise.all(folders.map(async (folder) => { await rm(folder, { recursive: true, force: true }) })) })
async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'epimesh-store-'))
  folders.push(dir)
  return dir
}

const wnvSchema = async (): Promise<CaseSchema> => parseSchema(JSON.parse(await readFile(fixture('schemas/wnv.schema.json'), 'utf8')), 'wnv.schema.json')

// The same suite against LevelDB on disk and against memory-level.
const backends: Array<[string, () => Promise<Store>]> = [
  ['level on disk', async () => await Store.open(await tempDir())],
  ['memory-level', async () => await Store.open(new MemoryLevel() as never)]
]

describe.each(backends)('the store (%s)', (_, open) => {
  it('imports the West Nile virus records with a schema, and re-importing stores nothing twice', async () => {
    const store = await open()
    const first = await importCases(store, { file: fixture('wnv.csv'), schema: await wnvSchema() })
    expect(first.rows).toBe(766)
    expect(await store.count()).toBe(766)
    const again = await importCases(store, { file: fixture('wnv.csv') })
    expect(again).toMatchObject({ rows: 0, duplicates: 766 })
    expect(await store.count()).toBe(766)
    const row = (await store.allRows())[0] as Record<string, unknown>
    expect(row).toMatchObject({ county: 'San Bernardino', age: 40, sex: 'F', death: 'No' })
    expect(Object.values(row)).not.toContain('1') // the record id itself is not stored
    expect(typeof row.__id).toBe('string')
    await store.close()
  })

  it('refuses a file with bad rows, naming each line and column, and writes nothing', async () => {
    const store = await open()
    const schema = await wnvSchema()
    const required: CaseSchema = { ...schema, columns: { ...schema.columns, death: { type: 'category', levels: ['No', 'Yes'], required: true } } }
    const dir = await tempDir()
    const good = (await readFile(fixture('wnv.csv'), 'utf8')).trim().split('\n').filter((line) => !line.endsWith(',NA'))
    const lines = [...good]
    lines[3] = (lines[3] as string).replace(/^(\d+,"[^"]*",)\d+/, '$1"forty"')
    lines[5] = (lines[5] as string).replace(/,"F",|,"M",/, ',"X",')
    lines[7] = (lines[7] as string).replace(/,"(Yes|No)"$/, ',')
    const file = join(dir, 'wnv-bad.csv')
    await writeFile(file, `${lines.join('\n')}\n`)
    const before = await summarize(store)
    const error = await importCases(store, { file, schema: required }).catch((caught: unknown) => caught) as { code: string, problems: Array<{ file: string, line: number, column: string }> }
    expect(error.code).toBe('IMPORT_INVALID')
    expect(error.problems.map(({ line, column }) => [line, column])).toEqual([[4, 'age'], [6, 'sex'], [8, 'death']])
    expect(error.problems.every((problem) => problem.file === file)).toBe(true)
    expect(await summarize(store)).toEqual(before)
    expect(await store.count()).toBe(0)
    expect(await store.schema()).toBeNull()
    await store.close()
  })

  it('refuses direct identifiers unless the schema drops or hashes them', async () => {
    const store = await open()
    const dir = await tempDir()
    const file = join(dir, 'with-ids.csv')
    await writeFile(file, 'id,id_card,phone,age,sick\n1,110101199003071234,13800138000,30,1\n2,110101199003075678,13900139000,40,0\n')
    await expect(importCases(store, { file })).rejects.toMatchObject({ code: 'IMPORT_DIRECT_IDENTIFIER' })
    const schema: CaseSchema = { version: 1, id: 'id', outcome: 'sick', columns: { id_card: { action: 'drop' }, phone: { action: 'hash' }, age: { type: 'number' }, sick: { type: 'number' } } }
    await expect(importCases(store, { file, schema: { ...schema, columns: { ...schema.columns, id_card: { type: 'number' } } } })).rejects.toMatchObject({ code: 'IMPORT_DIRECT_IDENTIFIER' })
    const report = await importCases(store, { file, schema })
    expect(report).toMatchObject({ rows: 2, droppedColumns: ['id_card'], hashedColumns: ['phone'] })
    const rows = await store.allRows()
    expect(rows.map((row) => row.id_card)).toEqual([undefined, undefined])
    expect(rows.every((row) => typeof row.phone === 'string' && !String(row.phone).includes('138'))).toBe(true)
    await store.close()
  })

  it('checks later imports against the stored schema: text in a numeric column fails', async () => {
    const store = await open()
    const dir = await tempDir()
    const places = ['north', 'south', 'east']
    await writeFile(join(dir, 'a.csv'), `id,age,place\n${Array.from({ length: 30 }, (_, row) => `${row + 1},${30 + row},${places[row % 3]}`).join('\n')}\n`)
    const first = await importCases(store, { file: join(dir, 'a.csv') })
    expect(first.inferred).toBe(true)
    expect(first.schema.columns.age).toEqual({ type: 'number' })
    expect(first.schema.columns.place).toEqual({ type: 'category', levels: ['east', 'north', 'south'] })
    await writeFile(join(dir, 'b.csv'), 'id,age,place\n40,unknown,north\n')
    await expect(importCases(store, { file: join(dir, 'b.csv') })).rejects.toMatchObject({ code: 'IMPORT_INVALID' })
    await writeFile(join(dir, 'c.csv'), 'id,age,place,extra\n50,30,north,1\n')
    await expect(importCases(store, { file: join(dir, 'c.csv') })).rejects.toMatchObject({ code: 'IMPORT_INVALID' })
    expect(await store.count()).toBe(30)
    await store.close()
  })

  it('summarises with small cells suppressed, and purges old records', async () => {
    const store = await open()
    await importCases(store, { file: fixture('wnv.csv'), schema: await wnvSchema() })
    const summary = await summarize(store)
    expect(summary.records).toBe(766)
    expect(summary.outcome?.counts).toEqual({ No: 545, Yes: 23 })
    expect(summary.columns.county?.levels?.Lassen).toBe('<3')
    const cells = Object.values(summary.columns).flatMap((column) => [column.missing, ...Object.values(column.levels ?? {})])
    expect(cells.length).toBeGreaterThan(20)
    for (const cell of cells) expect(cell === '<3' || cell === 0 || (typeof cell === 'number' && cell >= 3)).toBe(true)
    expect(cutoffDate('12m', new Date('2005-08-01T00:00:00Z'))).toBe('2004-08-01')
    const purged = await purgeBefore(store, '2004-08-01', { batchSize: 50 })
    expect(purged.removed + purged.kept).toBe(766)
    expect(purged.removed).toBeGreaterThan(0)
    expect(await store.count()).toBe(purged.kept)
    for (const row of await store.allRows()) expect(String(row['date.onset']) >= '2004-08-01').toBe(true)
    await store.close()
  })

  it('imports case counts by date', async () => {
    const store = await open()
    const dir = await tempDir()
    await writeFile(join(dir, 'series.csv'), 'date,count,population\n2024-01-01,3,100000\n2024-01-02,5,100000\n')
    expect(await importSeries(store, join(dir, 'series.csv'))).toEqual({ points: 2, replaced: 0 })
    await writeFile(join(dir, 'bad.csv'), 'date,count\n2024-01-03,-1\nyesterday,2\n')
    await expect(importSeries(store, join(dir, 'bad.csv'))).rejects.toMatchObject({ code: 'IMPORT_INVALID' })
    expect(await store.readSeries()).toHaveLength(2)
    await store.close()
  })
})
