import { spawn } from 'node:child_process'
import { access, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'
import { storeError } from '../../src/peer/cli/store-commands.ts'
import { importCases } from '../../src/store/import.ts'
import { Store } from '../../src/store/store.ts'

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))

/** The command line as a process, with no terminal on its standard input. */
async function cli (args: string[]): Promise<{ status: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    child.on('close', (status) => { resolve({ status, stdout, stderr }) })
  })
}

/** The command line's own entry point in this process: its exit code, what it printed, and the code of its error. */
async function run (args: string[]): Promise<{ status: number, stdout: string, code: string | undefined }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    const status = await main(args)
    return { status, stdout, code: /\[([A-Z_]+)\]\s*$/.exec(stderr)?.[1] }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

const codeOf = (stderr: string): string | undefined => /\[([A-Z_]+)\]\s*$/.exec(stderr)?.[1]

let base = ''
let dir = ''
const count = async (): Promise<number> => await Store.use(dir, async (store) => await store.count())

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-data-commands-'))
  dir = join(base, 'peer')
  const store = await Store.open(dir)
  await store.configure({ region: 'test' })
  const file = join(base, 'cases.csv')
  await writeFile(file, `id,onset,sick\n${Array.from({ length: 30 }, (_, index) => `${index + 1},2004-0${1 + (index % 9)}-1${index % 10},${index % 2}`).join('\n')}\n`)
  await importCases(store, { file, schema: { version: 1, id: 'id', outcome: 'sick', date: 'onset', columns: { onset: { type: 'date' }, sick: { type: 'number' } } } })
  await store.close()
})
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

describe('the data commands on unusable input', () => {
  it('exit 2 with a coded error and no stack trace, as processes; create no folder; remove nothing unconfirmed', async () => {
    const missing = join(base, 'no-such-folder')
    const [period, unconfirmed, absent] = await Promise.all([
      cli(['purge', '--dir', dir, '--older-than', '12']),
      cli(['purge', '--dir', dir, '--older-than', '1m', '--now', '2005-01-01']),
      cli(['data', 'summary', '--dir', missing])
    ])
    expect([period.status, codeOf(period.stderr)]).toEqual([2, 'OPTION_INVALID'])
    expect([unconfirmed.status, codeOf(unconfirmed.stderr)]).toEqual([2, 'PURGE_NOT_CONFIRMED'])
    expect([absent.status, codeOf(absent.stderr)]).toEqual([2, 'STORE_NOT_INITIALIZED'])
    for (const { stderr } of [period, unconfirmed, absent]) expect(stderr).not.toMatch(/^\s+at /m)
    await expect(access(missing)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(await count()).toBe(30)
  }, 60_000)

  it('refuse bad options, files and folders with their codes', async () => {
    const notJson = join(base, 'schema.json')
    await writeFile(notJson, '{"version": 1,')
    const aFile = join(base, 'a-file')
    await writeFile(aFile, '')
    await mkdir(join(base, 'a-folder'), { recursive: true })
    const cases: Array<[string[], string]> = [
      [['data', 'summary', '--dir', dir, '--threshold', 'abc'], 'OPTION_INVALID'],
      [['data', 'summary', '--dir', dir, '--threshold', '0'], 'OPTION_INVALID'],
      [['data', 'summary', '--dir', dir, '--threshold', '2.5'], 'OPTION_INVALID'],
      [['import', '--dir', dir], 'OPTION_INVALID'],
      [['import', '--dir', dir, '--series', join(base, 'missing.csv'), '--schema', notJson], 'OPTION_INVALID'],
      [['import', '--dir', dir, '--cases', join(base, 'missing.csv')], 'IMPORT_UNREADABLE'],
      [['import', '--dir', dir, '--cases', join(base, 'a-folder')], 'IMPORT_UNREADABLE'],
      [['import', '--dir', dir, '--cases', join(base, 'cases.csv'), '--schema', notJson], 'SCHEMA_INVALID'],
      [['import', '--dir', dir, '--cases', join(base, 'cases.csv'), '--schema', join(base, 'missing.json')], 'SCHEMA_INVALID'],
      [['import', '--dir', aFile, '--cases', join(base, 'cases.csv')], 'DATA_FOLDER_UNUSABLE'],
      [['import', '--dir', join(base, 'a-folder'), '--cases', join(base, 'cases.csv')], 'STORE_NOT_INITIALIZED'],
      [['schema', '--dir', dir, '--set', notJson], 'SCHEMA_INVALID'],
      [['purge', '--dir', dir, '--older-than', '12 months'], 'OPTION_INVALID'],
      [['purge', '--dir', dir, '--older-than', '0d'], 'OPTION_INVALID'],
      [['purge', '--dir', dir, '--now', '2024-02-30'], 'OPTION_INVALID'],
      [['init', '--dir', join(base, 'new'), '--region', '  '], 'OPTION_INVALID'],
      [['init', '--dir', aFile, '--region', 'X'], 'DATA_FOLDER_UNUSABLE']
    ]
    for (const [args, code] of cases) expect(await run(args), args.join(' ')).toMatchObject({ status: 2, code })
    expect(await count()).toBe(30)
  }, 60_000)

  it('name a store held by another process', async () => {
    const held = new Level(join(dir, 'store'))
    await held.open()
    const error = await new Level(join(dir, 'store')).open().catch((caught: unknown) => caught)
    await held.close()
    expect(storeError(dir, error)).toMatchObject({ code: 'STORE_LOCKED', exitCode: 2 })
  })
})

describe('data summary', () => {
  it('counts a number outcome\'s values, and shows a number column\'s observed range without its extremes', async () => {
    const { status, stdout } = await run(['data', 'summary', '--dir', dir, '--json'])
    expect(status).toBe(0)
    const summary = JSON.parse(stdout) as { outcome: { column: string, counts: Record<string, number> }, columns: Record<string, { min?: number, max?: number }> }
    expect(summary.outcome).toEqual({ column: 'sick', counts: { 0: 15, 1: 15 } })
    // the 3rd lowest and 3rd highest of fifteen 0s and fifteen 1s
    expect(summary.columns.sick).toMatchObject({ min: 0, max: 1 })
    const text = await run(['data', 'summary', '--dir', dir])
    expect(text.stdout).toMatch(/outcome sick: 0 15, 1 15/)
    expect(text.stdout).toMatch(/observed 0 to 1 \(the 3rd lowest to highest value\)/)
  })

  it('says that a range is suppressed, and why, when too few values give one', async () => {
    const text = await run(['data', 'summary', '--dir', dir, '--threshold', '100'])
    expect(text.status).toBe(0)
    expect(text.stdout).toMatch(/sick +number +missing 0, range suppressed \(fewer than 100 values\)/)
    expect(text.stdout).not.toMatch(/suppressed to suppressed|observed/)
  })
})

describe('purge', () => {
  it('reports what would go on a dry run, and removes everything only with --yes', async () => {
    const dry = await run(['purge', '--dir', dir, '--older-than', '1m', '--now', '2005-01-01', '--dry-run', '--json'])
    expect(dry.status).toBe(0)
    expect(JSON.parse(dry.stdout)).toEqual({ cutoff: '2004-12-01', dryRun: true, removed: 30, kept: 0, undated: 0 })
    expect(await count()).toBe(30)
    const some = await run(['purge', '--dir', dir, '--older-than', '1m', '--now', '2004-06-01', '--json'])
    expect(some.status).toBe(0)
    const partial = JSON.parse(some.stdout) as { removed: number, kept: number }
    expect(partial.removed).toBeGreaterThan(0)
    expect(partial.kept).toBeGreaterThan(0)
    expect(await count()).toBe(partial.kept)
    const all = await run(['purge', '--dir', dir, '--older-than', '1m', '--now', '2005-01-01', '--yes', '--json'])
    expect(all.status).toBe(0)
    expect(JSON.parse(all.stdout)).toMatchObject({ dryRun: false, removed: partial.kept, kept: 0 })
    expect(await count()).toBe(0)
  }, 60_000)
})
