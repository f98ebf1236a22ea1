import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { confirmOnTerminal } from '../../src/peer/cli/store-commands.ts'
import { DatasetError, readDataset } from '../../src/peer/data/dataset.ts'
import { importCases, importSeries } from '../../src/store/import.ts'
import { parseSchema, type CaseSchema } from '../../src/store/schema.ts'
import { layoutOf, StoreLayout } from '../../src/store/layout.ts'
import { Store } from '../../src/store/store.ts'
import { cutoffDate, purgeBefore, summarize } from '../../src/store/summary.ts'
import { fixture } from '../helpers/data.ts'

/** Takes a store back to before its first import (its schema and the record of every import): the rows stay, unseen. */
async function forgetImports (store: Store): Promise<void> {
  const layout = layoutOf(store)
  await layout.meta.del(StoreLayout.schemaKey)
  for (const record of await store.imports()) await layout.meta.del(layout.importKey(record.id))
}

let dir = ''
let store: Store
let schema: CaseSchema
let before = ''
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'epimesh-import-'))
  schema = parseSchema(JSON.parse(await readFile(fixture('schemas/wnv.schema.json'), 'utf8')), 'wnv.schema.json')
  store = await Store.open(join(dir, 'peer'))
  await importCases(store, { file: fixture('wnv.csv'), schema })
  await writeFile(join(dir, 'series.csv'), 'date,count,population\n2004-05-03,3,100000\n2004-05-10,5,100000\n')
  await importSeries(store, join(dir, 'series.csv'))
  before = JSON.stringify(await summarize(store))
})
afterAll(async () => {
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

let files = 0
async function csv (text: string | Uint8Array): Promise<string> {
  const file = join(dir, `file-${++files}.csv`)
  await writeFile(file, text)
  return file
}

/** A West Nile virus record with the given cells (id, county, age, sex, syndrome, onset, tested, death). */
const wnvLine = (id: string, cells: Partial<Record<'county' | 'age' | 'sex' | 'syndrome' | 'onset' | 'tested' | 'death', string>> = {}): string =>
  [id, cells.county ?? 'Riverside', cells.age ?? '40', cells.sex ?? 'F', cells.syndrome ?? 'WNF', cells.onset ?? '2004-06-01', cells.tested ?? '2004-06-10', cells.death ?? 'No'].join(',')
const WNV_HEADER = 'id,county,age,sex,syndrome,date.onset,date.tested,death'

/** Imports `file` into the store with data, expects it refused with `code`, and the store unchanged. */
async function refused (file: string, code: string, kind: 'cases' | 'series' = 'cases'): Promise<Array<{ line?: number, column?: string, kind: string }>> {
  const error = await (kind === 'cases' ? importCases(store, { file, now: new Date('2026-06-01T12:00:00Z') }) : importSeries(store, file, { now: new Date('2026-06-01T12:00:00Z') })).then(() => null, (caught: unknown) => caught) as { code: string, problems?: Array<{ line: number, column: string, kind: string }>, findings?: Array<{ column: string, kind: string, line?: number }> } | null
  expect(error, file).not.toBeNull()
  expect(error?.code).toBe(code)
  expect(JSON.stringify(await summarize(store))).toBe(before)
  return (error?.problems ?? error?.findings ?? []).map((problem) => ({ ...('line' in problem ? { line: problem.line } : {}), column: problem.column, kind: problem.kind }))
}

describe('case records: every bad value refused with its line, column and kind, the store unchanged', () => {
  it('numbers written any way but in decimal', async () => {
    const forms = ['0x1F', '0b11', '0o7', '1e1', 'Infinity', '1,234', '1 234', '4\u00a02', '.5', '5.', '１２', '=40', '1234567890123456']
    const file = await csv(`${WNV_HEADER}\n${forms.map((age, index) => wnvLine(`h${index}`, { age: age.includes(',') ? `"${age}"` : age })).join('\n')}\n`)
    const problems = await refused(file, 'IMPORT_INVALID')
    expect(problems).toEqual(forms.map((age, index) => ({ line: index + 2, column: 'age', kind: age === '1234567890123456' ? 'NUMBER_TOO_LARGE' : 'NOT_DECIMAL' })))
  })

  it('impossible, early, late and future dates; unknown levels; formulas; odd characters; too long values', async () => {
    const file = await csv(`${WNV_HEADER}\n${[
      wnvLine('d1', { onset: '2004-02-30' }),
      wnvLine('d2', { onset: '1899-12-31' }),
      wnvLine('d3', { tested: '2004-6-1' }),
      wnvLine('d4', { onset: '2026-06-03' }), // the record date, after tomorrow
      wnvLine('d5', { sex: 'X' }),
      wnvLine('d6', { county: '=cmd|\' /C calc\'!A0' }),
      wnvLine('d7', { county: '@SUM(A1)' }),
      wnvLine('d8', { county: 'River\u200bside' }),
      wnvLine('d9', { county: 'x'.repeat(1001) }),
      wnvLine('', {}),
      wnvLine('d11', { age: '' }),
      '12,Riverside,40'
    ].join('\n')}\n`)
    expect(await refused(file, 'IMPORT_INVALID')).toEqual([
      { line: 2, column: 'date.onset', kind: 'NOT_A_DATE' },
      { line: 3, column: 'date.onset', kind: 'DATE_OUT_OF_RANGE' },
      { line: 4, column: 'date.tested', kind: 'NOT_A_DATE' },
      { line: 5, column: 'date.onset', kind: 'DATE_OUT_OF_RANGE' },
      { line: 6, column: 'sex', kind: 'NOT_A_LEVEL' },
      { line: 7, column: 'county', kind: 'FORMULA' },
      { line: 8, column: 'county', kind: 'FORMULA' },
      { line: 9, column: 'county', kind: 'ODD_CHARACTER' },
      { line: 10, column: 'county', kind: 'VALUE_TOO_LONG' },
      { line: 11, column: 'id', kind: 'ID_MISSING' },
      // line 12: age may be missing under this schema
      { line: 13, column: '(row)', kind: 'FIELD_COUNT' }
    ])
  })

  it('a record id repeated in the file, and ids that differ only in bytes that are not UTF-8', async () => {
    await expect(refused(await csv(`${WNV_HEADER}\n${wnvLine('r1')}\n${wnvLine('r1')}\n`), 'IMPORT_INVALID')).resolves.toEqual([{ line: 3, column: 'id', kind: 'ID_DUPLICATE' }])
    // before, both ids decoded to "P\uFFFD" and the second record was dropped as already stored
    const bytes = Buffer.concat([Buffer.from(`${WNV_HEADER}\nP`), Buffer.from([0xe9]), Buffer.from(',Riverside,40,F,WNF,2004-06-01,2004-06-10,No\nP'), Buffer.from([0xfc]), Buffer.from(',Riverside,41,M,WNF,2004-06-01,2004-06-10,No\n')])
    await expect(refused(await csv(bytes), 'IMPORT_ENCODING')).resolves.toEqual([{ line: 2, column: '(line)', kind: 'INVALID_UTF8' }])
  })

  it('headers: duplicate and empty names, columns the schema does not know, an empty file, a header alone', async () => {
    await expect(refused(await csv(`${WNV_HEADER},age\n${wnvLine('x1')},40\n`), 'IMPORT_INVALID')).resolves.toEqual([{ line: 1, column: 'age', kind: 'HEADER_DUPLICATE' }])
    await expect(refused(await csv(`${WNV_HEADER},\n${wnvLine('x1')},1\n`), 'IMPORT_INVALID')).resolves.toEqual([{ line: 1, column: '(column 9)', kind: 'HEADER_EMPTY' }])
    await expect(refused(await csv(`${WNV_HEADER},ward\n${wnvLine('x1')},3\n`), 'IMPORT_INVALID')).resolves.toEqual([{ line: 1, column: 'ward', kind: 'COLUMN_UNKNOWN' }])
    await expect(refused(await csv(`${WNV_HEADER}\n`), 'IMPORT_INVALID')).resolves.toEqual([{ line: 2, column: '(row)', kind: 'NO_RECORDS' }])
    await expect(refused(await csv(''), 'IMPORT_INVALID')).resolves.toEqual([{ line: 1, column: '(header)', kind: 'NO_RECORDS' }])
  })

  it('a value of 900,000 characters, refused without being echoed whole, and too many columns', async () => {
    const file = await csv(`${WNV_HEADER}\n${wnvLine('v1', { county: 'z'.repeat(900_000) })}\n`)
    const error = await importCases(store, { file }).catch((caught: unknown) => caught) as { code: string, message: string, problems: Array<{ kind: string }> }
    expect(error).toMatchObject({ code: 'IMPORT_INVALID', problems: [{ kind: 'VALUE_TOO_LONG' }] })
    expect(error.message.length).toBeLessThan(500)
    const wide = await csv(`${Array.from({ length: 1001 }, (_, index) => `c${index}`).join(',')}\n${Array.from({ length: 1001 }, () => '1').join(',')}\n`)
    await expect(refused(wide, 'IMPORT_INVALID')).resolves.toEqual([{ line: 1, column: '(header)', kind: 'TOO_MANY_COLUMNS' }])
  })

  it('identifiers in the values of a column the schema types, past the first thousand rows too', async () => {
    const rows = Array.from({ length: 1500 }, (_, index) => wnvLine(`i${index}`, { age: String(20 + (index % 60)) }))
    rows[1200] = wnvLine('i1200', { age: '13812345678' })
    expect(await refused(await csv(`${WNV_HEADER}\n${rows.join('\n')}\n`), 'IMPORT_DIRECT_IDENTIFIER')).toEqual([{ line: 1202, column: 'age', kind: 'MOBILE' }])
  })
})

describe('a first import', () => {
  let fresh: Store
  beforeAll(async () => { fresh = await Store.open(join(dir, 'fresh')) })
  afterAll(async () => { await fresh.close() })
  const firstImport = async (file: string, given?: CaseSchema): Promise<{ code?: string, findings?: Array<{ column: string, kind: string, line?: number }> }> => {
    const result = await importCases(fresh, { file, ...(given === undefined ? {} : { schema: given }) }).then(() => ({}), (error: unknown) => error as { code: string })
    expect(await fresh.schema()).toBeNull()
    expect(await fresh.count()).toBe(0)
    return result
  }

  it('refuses identifiers by content and by Chinese and English names, unless the schema drops or hashes them', async () => {
    const header = 'id,age,身份证号,contact,mail,联系电话,姓名'
    const lines = Array.from({ length: 30 }, (_, index) => `${index + 1},${30 + index},1101011990030712${String(index % 10)}${index % 2},138 1234 ${String(5600 + index)},p${index}@example.com,010-6512${String(3400 + index)},张${index}`)
    const file = await csv(`${header}\n${lines.join('\n')}\n`)
    const byName = await firstImport(file)
    expect(byName.code).toBe('IMPORT_DIRECT_IDENTIFIER')
    expect(byName.findings?.map(({ column, kind }) => [column, kind])).toEqual([['身份证号', 'COLUMN_NAME'], ['mail', 'COLUMN_NAME'], ['联系电话', 'COLUMN_NAME'], ['姓名', 'COLUMN_NAME']])
    // the same values under innocent names are found by what they hold
    const renamed = await csv(`id,age,a,b,c,d,e\n${lines.join('\n')}\n`)
    const byContent = await firstImport(renamed)
    expect(byContent.code).toBe('IMPORT_DIRECT_IDENTIFIER')
    expect(byContent.findings).toEqual([{ column: 'a', kind: 'RESIDENT_ID', line: 2 }, { column: 'b', kind: 'MOBILE', line: 2 }, { column: 'c', kind: 'EMAIL', line: 2 }, { column: 'd', kind: 'PHONE', line: 2 }])
    // a schema that types them is refused too; one that drops or hashes them is accepted
    const typed: CaseSchema = { version: 1, id: 'id', columns: { age: { type: 'number' }, a: { type: 'number' }, b: { action: 'drop' }, c: { action: 'drop' }, d: { action: 'drop' }, e: { action: 'drop' } } }
    expect((await firstImport(renamed, typed)).findings).toEqual([{ column: 'a', kind: 'RESIDENT_ID', line: 2 }])
    const safe: CaseSchema = { ...typed, columns: { ...typed.columns, a: { action: 'hash' } } }
    const report = await importCases(fresh, { file: renamed, schema: safe })
    expect(report).toMatchObject({ rows: 30, droppedColumns: ['b', 'c', 'd', 'e'], hashedColumns: ['a'] })
    const stored = JSON.stringify(await fresh.allRows())
    for (const raw of ['110101199003', '138 1234', '@example.com', '010-6512', '张']) expect(stored.includes(raw), raw).toBe(false)
    await forgetImports(fresh)
  })

  it('refuses an inferred free-text column, and never makes its values category levels', async () => {
    const names = Array.from({ length: 40 }, (_, index) => `Patient Number${index} Surname${index * 7}`)
    const unique = await csv(`id,age,patient\n${names.map((name, index) => `${index + 1},${20 + index},${name}`).join('\n')}\n`)
    const refusedUnique = await firstImport(unique)
    expect(refusedUnique).toMatchObject({ code: 'IMPORT_FREE_TEXT', findings: [{ column: 'patient', kind: 'UNIQUE_TEXT', values: 40, distinct: 40 }] })
    expect(JSON.stringify(refusedUnique)).not.toContain('Surname7')
    const few = await csv(`id,age,patient\n${names.slice(0, 8).map((name, index) => `${index + 1},${20 + index},${name}`).join('\n')}\n`)
    expect(await firstImport(few)).toMatchObject({ code: 'IMPORT_FREE_TEXT', findings: [{ column: 'patient', kind: 'TOO_FEW_VALUES' }] })
    const notes = await csv(`id,age,note\n${Array.from({ length: 40 }, (_, index) => `${index + 1},${20 + index},${index % 2 === 0 ? 'seen at the district clinic on arrival and sent home with advice to rest' : 'short'}`).join('\n')}\n`)
    expect(await firstImport(notes)).toMatchObject({ code: 'IMPORT_FREE_TEXT', findings: [{ column: 'note', kind: 'LONG_TEXT' }] })
    // declared by a schema, it is the operator's choice
    const report = await importCases(fresh, { file: unique, schema: { version: 1, id: 'id', columns: { age: { type: 'number' }, patient: { action: 'hash' } } } })
    expect(report.rows).toBe(40)
    expect(JSON.stringify(await summarize(fresh))).not.toContain('Surname')
    await forgetImports(fresh)
  })

  it('stores the record id only as its salted hash, even when the schema lists it among its columns', async () => {
    const other = await Store.open(join(dir, 'ids'))
    const file = await csv('case_no,age,sick\n900001,30,1\n900002,40,0\n900003,50,1\n')
    await importCases(other, { file, schema: { version: 1, id: 'case_no', outcome: 'sick', columns: { case_no: { type: 'number' }, age: { type: 'number' }, sick: { type: 'number' } } } })
    const rows = await other.allRows()
    expect(rows).toHaveLength(3)
    for (const row of rows) expect(Object.keys(row).sort()).toEqual(['__id', 'age', 'sick'])
    expect(JSON.stringify(rows)).not.toContain('90000')
    await other.close()
    expect(() => parseSchema({ version: 1, id: 'case_no', outcome: 'case_no', columns: { case_no: { type: 'number' } } }, 'test')).toThrow(expect.objectContaining({ code: 'SCHEMA_INVALID' }) as Error)
  })

  it('infers numbers even among cells written otherwise, and refuses those cells', async () => {
    const file = await csv(`id,age\n${Array.from({ length: 30 }, (_, index) => `${index + 1},${index === 7 ? '0x1F' : index === 9 ? '1e1' : String(20 + index)}`).join('\n')}\n`)
    const error = await importCases(fresh, { file }).catch((caught: unknown) => caught) as { code: string, problems: Array<{ line: number, kind: string }> }
    expect(error.code).toBe('IMPORT_INVALID')
    expect(error.problems.map(({ line, kind }) => [line, kind])).toEqual([[9, 'NOT_DECIMAL'], [11, 'NOT_DECIMAL']])
    expect(await fresh.schema()).toBeNull()
  })
})

describe('case counts', () => {
  it('refuses empty and negative counts, repeated and impossible dates, future dates and unknown columns', async () => {
    const file = await csv([
      'date,count,population',
      '2024-01-01,,100000', // an empty count is not 0
      '2024-01-02,-1,100000',
      '2024-01-03,2.5,100000',
      '2024-01-04,1e1,100000',
      '2024-01-05,3,100000',
      '2024-01-05,4,100000',
      '2024-02-30,1,100000',
      '2026-06-05,1,100000',
      '2024-01-09,1,0',
      ',1,100000'
    ].join('\n') + '\n')
    expect(await refused(file, 'IMPORT_INVALID', 'series')).toEqual([
      { line: 2, column: 'count', kind: 'VALUE_REQUIRED' },
      { line: 3, column: 'count', kind: 'NOT_A_COUNT' },
      { line: 4, column: 'count', kind: 'NOT_A_COUNT' },
      { line: 5, column: 'count', kind: 'NOT_DECIMAL' },
      { line: 7, column: 'date', kind: 'DATE_DUPLICATE' },
      { line: 8, column: 'date', kind: 'NOT_A_DATE' },
      { line: 9, column: 'date', kind: 'DATE_OUT_OF_RANGE' },
      { line: 10, column: 'population', kind: 'NOT_POSITIVE' },
      { line: 11, column: 'date', kind: 'VALUE_REQUIRED' }
    ])
    await expect(refused(await csv('date,count,cases\n2024-01-01,1,1\n'), 'IMPORT_INVALID', 'series')).resolves.toEqual([{ line: 1, column: 'cases', kind: 'COLUMN_UNKNOWN' }])
    await expect(refused(await csv('date,count,count\n2024-01-01,1,1\n'), 'IMPORT_INVALID', 'series')).resolves.toEqual([{ line: 1, column: 'count', kind: 'HEADER_DUPLICATE' }])
    await expect(refused(await csv('date,count\n'), 'IMPORT_INVALID', 'series')).resolves.toEqual([{ line: 2, column: '(row)', kind: 'NO_RECORDS' }])
  })

  it('says how many stored dates a later import replaces', async () => {
    const other = await Store.open(join(dir, 'series'))
    expect(await importSeries(other, await csv('date,count\n2024-01-01,1\n2024-01-08,2\n'))).toEqual({ points: 2, replaced: 0 })
    expect(await importSeries(other, await csv('date,count\n2024-01-08,3\n2024-01-15,4\n'))).toEqual({ points: 2, replaced: 1 })
    expect(await other.readSeries()).toEqual([{ date: '2024-01-01', count: 1 }, { date: '2024-01-08', count: 3 }, { date: '2024-01-15', count: 4 }])
    await other.close()
  })
})

describe('purge', () => {
  it('counts without removing on a dry run, and takes only a period with its unit', async () => {
    const count = await store.count()
    const planned = await purgeBefore(store, '2004-08-01', { dryRun: true })
    expect(planned.removed).toBeGreaterThan(0)
    expect(planned.removed + planned.kept + planned.undated).toBe(count)
    expect(await store.count()).toBe(count)
    expect(JSON.stringify(await summarize(store))).toBe(before)
    for (const period of ['12', '12 m', '0m', '-1y', '1.5y', '12w', 'm', '', '101y', '99999999d']) {
      expect(() => cutoffDate(period, new Date('2025-01-01T00:00:00Z')), period).toThrow(expect.objectContaining({ code: 'OPTION_INVALID' }) as Error)
    }
    expect(cutoffDate('90d', new Date('2025-01-01T00:00:00Z'))).toBe('2024-10-03')
  })

  it('asks on a terminal, takes only y or yes, and does not ask where there is no terminal', async () => {
    const ask = async (answer: string, isTTY: boolean): Promise<boolean | null> => {
      const input = Object.assign(new PassThrough(), { isTTY })
      const output = new PassThrough()
      const asked = confirmOnTerminal('remove them all? ', input, output)
      input.end(`${answer}\n`)
      return await asked
    }
    expect(await ask('y', true)).toBe(true)
    expect(await ask('YES', true)).toBe(true)
    expect(await ask('n', true)).toBe(false)
    expect(await ask('', true)).toBe(false)
    expect(await ask('yes please', true)).toBe(false)
    expect(await ask('y', false)).toBeNull()
  })
})

describe('data sets read for the researcher\'s commands', () => {
  it('refuse numbers that are not decimal, invalid UTF-8, and unnamed or repeated columns, naming the line', async () => {
    const cases: Array<[string | Uint8Array, number]> = [
      ['a,b\n1,2\n0x1F,3\n', 3],
      ['a,b\n1,2\n1e1,3\n', 3],
      ['a,b\n1,2\n"1,234",3\n', 3],
      [Buffer.concat([Buffer.from('a,b\n1,'), Buffer.from([0xff]), Buffer.from('\n')]), 2],
      ['a,b\r\n1,2\n', 2],
      ['a,,b\n1,2,3\n', 1],
      ['a,a\n1,2\n', 1]
    ]
    for (const [text, line] of cases) {
      const error = await readDataset(await csv(text)).catch((caught: unknown) => caught)
      expect(error).toBeInstanceOf(DatasetError)
      expect((error as DatasetError).code).toBe('DATASET_INVALID')
      expect((error as DatasetError).line).toBe(line)
    }
    const read = await readDataset(await csv('a,b\n-1.5,x\n+2,y\n'))
    expect(read.rows).toEqual([{ a: -1.5, b: 'x' }, { a: 2, b: 'y' }])
  })
})
