import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { importCases, importSeries } from '../../src/store/import.ts'
import { parseSchema } from '../../src/store/schema.ts'
import { Store } from '../../src/store/store.ts'
import { summarize } from '../../src/store/summary.ts'
import { fixture } from '../helpers/data.ts'

/**
 * Hostile import files through the real command line: each is refused with exit code 2, its coded
 * error and the kind of every problem, with no stack trace and no value echoed whole, and `data
 * summary` of the store prints the same bytes before and after all of them.
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const hostile = (name: string): string => fixture(`hostile/${name}`)

interface Run { status: number | null, stdout: string, stderr: string }

async function cli (args: string[]): Promise<Run> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('close', (status) => { resolve({ status, stdout, stderr }) })
  })
}

/** The code at the end of the message, and each problem's or finding's [KIND], with its line when it has one. */
function parse (stderr: string): { code: string | undefined, kinds: string[] } {
  const code = /\[([A-Z_]+)\]\s*$/.exec(stderr)?.[1]
  const body = stderr.replace(/ \[[A-Z_]+\]\s*$/, '')
  const kinds: string[] = []
  for (const line of body.split('\n').filter((text) => text.startsWith('  '))) {
    const kind = / \[([A-Z0-9_]+)\]$/.exec(line)?.[1]
    if (kind === undefined) continue
    const at = /, line (\d+), column /.exec(line)?.[1] ?? /\(line (\d+)\) \[[A-Z0-9_]+\]$/.exec(line)?.[1]
    kinds.push(at === undefined ? kind : `${at}:${kind}`)
  }
  return { code, kinds }
}

let base = ''
let data = ''
let fresh = ''
const generated: Record<string, string> = {}

async function writeLines (path: string, header: string, body: (write: (text: string) => void) => void): Promise<void> {
  const out = createWriteStream(path)
  out.write(`${header}\n`)
  body((text) => out.write(text))
  await new Promise<void>((resolve) => { out.end(() => { resolve() }) })
}

interface Case {
  name: string
  store: 'data' | 'fresh'
  args: (file: string) => string[]
  file: () => string
  code: string
  kinds: string[]
  /** text that must not appear on stderr (values that would be echoed whole, identifiers) */
  absent?: string[]
}

const cases = (): Case[] => {
  const records = (file: string): string[] => ['--cases', file]
  const series = (file: string): string[] => ['--series', file]
  return [
    {
      name: 'numbers, dates, formulas, odd characters, levels, a short row, a repeated id',
      store: 'data',
      args: records,
      file: () => hostile('values.csv'),
      code: 'IMPORT_INVALID',
      kinds: [
        '2:NOT_DECIMAL', '3:NOT_DECIMAL', '4:NOT_DECIMAL', '5:NOT_DECIMAL', '6:NOT_DECIMAL', '7:NOT_DECIMAL', '8:NOT_DECIMAL',
        '9:NOT_DECIMAL', '10:NOT_DECIMAL', '11:OUT_OF_RANGE', '12:NOT_A_DATE', '13:DATE_OUT_OF_RANGE', '14:DATE_OUT_OF_RANGE',
        '15:FORMULA', '16:FORMULA', '17:FORMULA', '18:ODD_CHARACTER', '19:ODD_CHARACTER', '20:NOT_A_LEVEL', '21:FIELD_COUNT',
        '23:ID_DUPLICATE'
      ]
    },
    { name: 'invalid UTF-8 in record ids', store: 'data', args: records, file: () => hostile('invalid-utf8.csv'), code: 'IMPORT_ENCODING', kinds: ['2:INVALID_UTF8'] },
    { name: 'a NUL byte', store: 'data', args: records, file: () => hostile('nul-byte.csv'), code: 'IMPORT_ENCODING', kinds: ['3:CONTROL_CHARACTER'] },
    { name: 'a byte-order mark in the middle', store: 'data', args: records, file: () => hostile('bom-inside.csv'), code: 'IMPORT_ENCODING', kinds: ['3:BOM_INSIDE'] },
    { name: 'CRLF and LF lines mixed', store: 'data', args: records, file: () => hostile('mixed-line-endings.csv'), code: 'IMPORT_CSV_SYNTAX', kinds: ['3:MIXED_LINE_ENDINGS'] },
    { name: 'an unbalanced quote', store: 'data', args: records, file: () => hostile('unbalanced-quote.csv'), code: 'IMPORT_CSV_SYNTAX', kinds: ['3:QUOTE_NOT_CLOSED'] },
    { name: 'a duplicate header', store: 'data', args: records, file: () => hostile('duplicate-header.csv'), code: 'IMPORT_INVALID', kinds: ['1:HEADER_DUPLICATE'] },
    { name: 'a column the schema does not know', store: 'data', args: records, file: () => hostile('unknown-column.csv'), code: 'IMPORT_INVALID', kinds: ['1:COLUMN_UNKNOWN'] },
    { name: 'a header only', store: 'data', args: records, file: () => hostile('header-only.csv'), code: 'IMPORT_INVALID', kinds: ['2:NO_RECORDS'] },
    {
      name: 'a 10 MB cell on one line',
      store: 'data',
      args: records,
      file: () => generated.tenMegabyteCell as string,
      code: 'IMPORT_CSV_SYNTAX',
      kinds: ['3:LINE_TOO_LONG'],
      absent: ['x'.repeat(100)]
    },
    {
      name: 'bad case counts',
      store: 'data',
      args: series,
      file: () => hostile('series-bad.csv'),
      code: 'IMPORT_INVALID',
      kinds: ['2:VALUE_REQUIRED', '3:NOT_A_COUNT', '4:NOT_DECIMAL', '6:DATE_DUPLICATE', '7:NOT_A_DATE', '8:DATE_OUT_OF_RANGE', '9:NOT_DECIMAL']
    },
    {
      name: 'identifier columns named in Chinese and English',
      store: 'fresh',
      args: records,
      file: () => hostile('identifier-names.csv'),
      code: 'IMPORT_DIRECT_IDENTIFIER',
      kinds: Array.from({ length: 13 }, () => 'COLUMN_NAME')
    },
    {
      name: 'identifiers under innocent column names',
      store: 'fresh',
      args: records,
      file: () => hostile('identifier-content.csv'),
      code: 'IMPORT_DIRECT_IDENTIFIER',
      kinds: ['2:RESIDENT_ID', '2:RESIDENT_ID', '2:RESIDENT_ID', '2:RESIDENT_ID', '2:MOBILE', '2:MOBILE', '2:MOBILE', '2:EMAIL', '2:PHONE'],
      absent: ['110101', '1234 56', '8765', '@example.com', '7946']
    },
    {
      name: 'a free-text column of names',
      store: 'fresh',
      args: records,
      file: () => hostile('free-text.csv'),
      code: 'IMPORT_FREE_TEXT',
      kinds: ['UNIQUE_TEXT'],
      absent: ['Wang', 'Xiaoming', 'Tang Rui']
    }
  ]
}

const summaries: Record<'data' | 'fresh', string> = { data: '', fresh: '' }
const results = new Map<string, Run>()

async function freshSummary (): Promise<string> {
  return await Store.use(fresh, async (store) => `${JSON.stringify(await summarize(store))}|schema ${JSON.stringify(await store.schema())}`)
}

async function summary (dir: string): Promise<string> {
  const run = await cli(['data', 'summary', '--dir', dir])
  expect(run.status, run.stderr).toBe(0)
  return run.stdout
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-hostile-'))
  data = join(base, 'data')
  fresh = join(base, 'fresh')
  // a store with records and counts, and a new one without a schema
  const store = await Store.open(data)
  await store.configure({ region: 'hostile-test' })
  const schema = parseSchema(JSON.parse(await readFile(fixture('schemas/wnv.schema.json'), 'utf8')), 'wnv.schema.json')
  await importCases(store, { file: fixture('wnv.csv'), schema })
  const seriesFile = join(base, 'series.csv')
  await writeLines(seriesFile, 'date,count,population', (write) => {
    for (let week = 0; week < 20; week++) write(`${new Date(Date.UTC(2004, 4, 3 + 7 * week)).toISOString().slice(0, 10)},${(week * 7) % 11},1000000\n`)
  })
  await importSeries(store, seriesFile)
  await store.close()
  const empty = await Store.open(fresh)
  await empty.configure({ region: 'hostile-test' })
  await empty.close()
  const header = 'id,county,age,sex,syndrome,date.onset,date.tested,death'
  generated.tenMegabyteCell = join(base, 'ten-megabyte-cell.csv')
  await writeLines(generated.tenMegabyteCell, header, (write) => {
    write('c1,Riverside,40,F,WNF,2004-06-01,2004-06-10,No\nc2,')
    for (let chunk = 0; chunk < 10; chunk++) write('x'.repeat(1 << 20))
    write(',40,F,WNF,2004-06-01,2004-06-10,No\n')
  })
  summaries.data = await summary(data)
  summaries.fresh = await freshSummary()
  // four at a time: each is a process of its own, which spends much of its start waiting
  const queue = cases()
  const work = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
      results.set(next.name, await cli(['import', '--dir', next.store === 'data' ? data : fresh, ...next.args(next.file())]))
    }
  }
  await Promise.all([work(), work(), work(), work()])
}, 180_000)

afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

describe('hostile import files through the command line', () => {
  it.each(cases().map((entry) => [entry.name, entry] as const))('%s: exit 2, its coded error, every problem', (_, entry) => {
    const run = results.get(entry.name) as Run
    expect(run.status, run.stderr.slice(0, 2000)).toBe(2)
    const { code, kinds } = parse(run.stderr)
    expect(code).toBe(entry.code)
    expect(kinds).toEqual(entry.kinds)
    expect(run.stderr).not.toMatch(/^\s+at /m) // no stack trace
    expect(run.stderr.length).toBeLessThan(8000)
    for (const text of entry.absent ?? []) expect(run.stderr).not.toContain(text)
    expect(run.stdout).toBe('')
  })

  it('leave data summary byte-identical, of a store with records and of a new one', async () => {
    expect(summaries.data).toContain('766 records')
    expect(summaries.data).toContain('series: 20 dates')
    expect(await summary(data)).toBe(summaries.data)
    // the new store, read in this process (what `data summary --json` prints): still no schema, no import
    expect(await freshSummary()).toBe(summaries.fresh)
    expect(summaries.fresh).toContain('"records":0,"imports":0')
  }, 60_000)
})
