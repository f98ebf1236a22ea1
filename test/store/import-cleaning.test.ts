import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'
import { dateFromFormat } from '../../src/store/import.ts'
import { parseSchema } from '../../src/store/schema.ts'
import { Store } from '../../src/store/store.ts'

/** Cleaning at import: a schema's level aliases and date format, and the report of what was normalised. */
let base = ''

async function run (args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    return { status: await main(args), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

const SCHEMA = {
  version: 1,
  id: 'id',
  outcome: 'sick',
  date: 'onset',
  columns: {
    sex: { type: 'category', levels: { F: ['f', 'female', '女'], M: ['m', 'male', '男'] } },
    onset: { type: 'date', format: 'YYYY/MM/DD' },
    sick: { type: 'number' }
  }
}

beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-cleaning-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

describe('cleaning at import', () => {
  it('stores the level of every alias and ISO dates, and reports what it normalised', async () => {
    const dir = join(base, 'peer')
    expect((await run(['init', '--dir', dir, '--region', 'test'])).status).toBe(0)
    const schemaFile = join(base, 'schema.json')
    await writeFile(schemaFile, JSON.stringify(SCHEMA))
    const file = join(base, 'cases.csv')
    await writeFile(file, 'id,sex,onset,sick\n1,F,2024/03/05,1\n2,female,2024/03/06,0\n3,女,2024/12/31,0\n4,Male,2024/01/02,1\n5,男,2024/02/29,0\n6,M,2024/02/01,1\n7,,2024/02/02,0\n')
    const imported = await run(['import', '--dir', dir, '--cases', file, '--schema', schemaFile, '--json'])
    expect(imported.status, imported.stderr).toBe(0)
    const report = JSON.parse(imported.stdout) as { rows: number, normalised: Array<{ column: string, kind: string, count: number, changes: Array<{ from: string, to: string, count: number }>, format?: string }> }
    expect(report.rows).toBe(7)
    const sex = report.normalised.find((entry) => entry.column === 'sex')
    expect(sex?.count).toBe(4)
    expect(sex?.changes.map((change) => `${change.from}>${change.to}`).sort()).toEqual(['Male>M', 'female>F', '女>F', '男>M'].sort())
    expect(report.normalised.find((entry) => entry.column === 'onset')).toMatchObject({ kind: 'date', count: 7, format: 'YYYY/MM/DD' })
    const rows = await Store.use(dir, async (store) => await store.allRows())
    expect(rows.map((row) => row.sex).sort()).toEqual([null, 'F', 'F', 'F', 'M', 'M', 'M'].sort())
    expect(rows.map((row) => row.onset).sort()).toEqual(['2024-01-02', '2024-02-01', '2024-02-02', '2024-02-29', '2024-03-05', '2024-03-06', '2024-12-31'])
    const text = await run(['import', '--dir', dir, '--cases', file, '--schema', schemaFile])
    expect(text.status, text.stderr).toBe(0)
  })

  it('refuses a date that does not fit its format or the calendar, and a value that is neither a level nor an alias, naming line and column', async () => {
    const dir = join(base, 'other')
    expect((await run(['init', '--dir', dir, '--region', 'test'])).status).toBe(0)
    const schemaFile = join(base, 'schema-other.json')
    await writeFile(schemaFile, JSON.stringify(SCHEMA))
    const file = join(base, 'bad.csv')
    await writeFile(file, 'id,sex,onset,sick\n1,F,2024-03-05,1\n2,x,2024/03/06,0\n3,F,2023/02/29,0\n')
    const refused = await run(['import', '--dir', dir, '--cases', file, '--schema', schemaFile])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/line 2.*onset.*not a date written YYYY\/MM\/DD/s)
    expect(refused.stderr).toMatch(/line 3.*sex.*nor an alias/s)
    expect(refused.stderr).toMatch(/line 4.*onset/s)
    expect(await Store.use(dir, async (store) => await store.count())).toBe(0)
  })

  it('reads date formats and refuses schemas whose aliases contradict themselves', () => {
    expect(dateFromFormat('05.03.2024', 'DD.MM.YYYY')).toBe('2024-03-05')
    expect(dateFromFormat('3/5/2024', 'M/D/YYYY')).toBe('2024-03-05')
    expect(dateFromFormat('2024-3-5', 'YYYY/MM/DD')).toBeNull()
    expect(() => parseSchema({ ...SCHEMA, columns: { ...SCHEMA.columns, sex: { type: 'category', levels: { F: ['x'], M: ['X'] } } } }, 'test')).toThrow(/both "F" and "M"/)
    expect(() => parseSchema({ ...SCHEMA, columns: { ...SCHEMA.columns, onset: { type: 'date', format: 'YYYY/DD' } } }, 'test')).toThrow(/date format/)
    expect(() => parseSchema({ ...SCHEMA, columns: { ...SCHEMA.columns, onset: { type: 'date', format: 'YYYY/MM/DD/DD' } } }, 'test')).toThrow(/once each/)
  })
})
