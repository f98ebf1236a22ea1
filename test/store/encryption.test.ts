import '../../src/peer/polyfill.ts'
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { Level } from 'level'
import { MemoryLevel } from 'memory-level'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuditTrail, canonicalJson } from '../../src/peer/audit/log.ts'
import { storageFailure } from '../../src/store/errors.ts'
import { importCases, importSeries } from '../../src/store/import.ts'
import { STORE_FILE } from '../../src/store/keys.ts'
import { layoutOf } from '../../src/store/layout.ts'
import { Store } from '../../src/store/store.ts'
import { storedForecast, storedModel } from '../helpers/results.ts'

/**
 * The store encrypted at rest: what was imported (category names, numbers, dates, series, job ids)
 * appears in no file of the data folder, before or after LevelDB compacts; a copy of the folder
 * without its key cannot be opened; a changed value is an error, never garbage.
 */
let base = ''
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-encryption-')) })
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

const DISTRICTS = ['Quillfeather', 'Marrowdale', 'Thistlecombe']
const WEIGHTS = ['48213.75', '90517.125', '61094.375']
const ONSETS = ['1987-03-29', '1991-11-02', '1989-06-17']
const REGION = 'Westmarch-Province'
const JOB = 'zephyr-job-7731'
const AUDIT_JOB = 'quokka-audit-5150'
const SERIES = [['1983-01-03', '271828', '3141592'], ['1983-01-10', '314159', '3141592'], ['1983-01-17', '161803', '3141592']]
const IMPORTED = [...DISTRICTS, ...WEIGHTS, ...ONSETS, REGION, JOB, AUDIT_JOB, ...SERIES.flat(), 'PATIENT-88231']

/** Every run of 6 or more printable bytes in every file under `dir`, as `strings -n 6` prints them. */
async function printableRuns (dir: string): Promise<{ files: string[], runs: string[] }> {
  const files: string[] = []
  const runs: string[] = []
  const walk = async (folder: string): Promise<void> => {
    for (const entry of await readdir(folder, { withFileTypes: true })) {
      const path = join(folder, entry.name)
      if (entry.isDirectory()) await walk(path)
      else {
        files.push(path)
        const bytes = await readFile(path)
        let start = -1
        for (let index = 0; index <= bytes.length; index++) {
          const byte = index < bytes.length ? bytes[index] as number : 0
          const printable = (byte >= 0x20 && byte <= 0x7e) || byte === 0x09
          if (printable && start < 0) start = index
          if (!printable && start >= 0) {
            if (index - start >= 6) runs.push(bytes.subarray(start, index).toString('latin1'))
            start = -1
          }
        }
      }
    }
  }
  await walk(dir)
  return { files, runs }
}

const found = (runs: readonly string[]): string[] => IMPORTED.filter((value) => runs.some((run) => run.includes(value)))

async function fill (dir: string): Promise<void> {
  const cases = join(base, 'cases.csv')
  await writeFile(cases, `case_id,district,weight,onset,severe\n${Array.from({ length: 300 }, (_, row) => `${row === 7 ? 'PATIENT-88231' : `R${row}`},${DISTRICTS[row % 3]},${WEIGHTS[row % 3]},${ONSETS[row % 3]},${row % 5 === 0 ? 1 : 0}`).join('\n')}\n`)
  const series = join(base, 'series.csv')
  // out of order on purpose: the store gives them back by date
  await writeFile(series, `date,count,population\n${[SERIES[2], SERIES[0], SERIES[1]].map((point) => point?.join(',')).join('\n')}\n`)
  const key = await generateKeyPair('Ed25519')
  const peer = peerIdFromPrivateKey(key).toString()
  const trail = new AuditTrail(AUDIT_JOB, peer, key)
  const entries = await trail.append([{ type: 'start', format: 1, job: AUDIT_JOB, peer, algorithm: 'admm', params: {}, model: { outcome: DISTRICTS[0] }, graph: { names: [peer], neighbours: [[]], regions: [REGION] }, diameter: 0 }])
  const checkpoint = await trail.checkpoint()
  const store = await Store.open(dir)
  try {
    await store.configure({ region: REGION })
    await importCases(store, { file: cases })
    await importSeries(store, series)
    await store.putModel(storedModel(JOB, [[DISTRICTS[1] as string, Number(WEIGHTS[0])]]))
    await store.putForecast({ ...storedForecast(JOB, REGION), model: storedModel(JOB, [[DISTRICTS[2] as string, Number(WEIGHTS[1])]]) })
    await store.appendAudit({ entries: entries.map((entry) => canonicalJson(entry)), checkpoints: [checkpoint] })
  } finally {
    await store.close()
  }
  // positive control: the same scan finds the values in the files they came from
  expect(found((await printableRuns(base)).runs.filter((run) => run.includes(',')))).toEqual(expect.arrayContaining([...DISTRICTS, ...WEIGHTS, ...ONSETS, 'PATIENT-88231']))
}

describe('the store encrypted at rest', () => {
  it('keeps no imported value, in any value or key, in any file: in the write-ahead log, and in the tables after a compaction', async () => {
    const dir = join(base, 'peer')
    await fill(dir)
    const before = await printableRuns(dir)
    // the scan reads the store's files: it sees the layout's own names
    expect(before.files.some((file) => file.endsWith('.log'))).toBe(true)
    expect(before.runs.some((run) => run.includes('v2-cases'))).toBe(true)
    expect(found(before.runs)).toEqual([])

    const store = await Store.open(dir)
    await layoutOf(store).compact()
    // everything reads back: records, series in date order, the model, the audit log by job id
    expect(await store.count()).toBe(300)
    expect((await store.allRows()).map((row) => row.district).slice(0, 3)).toEqual(DISTRICTS)
    expect((await store.readSeries()).map((point) => point.date)).toEqual(SERIES.map((point) => point[0]))
    expect((await store.getModel(JOB))?.coefficients[0]).toMatchObject({ term: DISTRICTS[1], estimate: Number(WEIGHTS[0]) })
    expect((await store.getForecast(JOB))?.model.coefficients[0]).toMatchObject({ term: DISTRICTS[2], estimate: Number(WEIGHTS[1]) })
    expect(await store.listAuditJobs()).toEqual([AUDIT_JOB])
    expect(await store.readAuditEntries(AUDIT_JOB)).toHaveLength(1)
    expect(await store.readCheckpoints(AUDIT_JOB)).toHaveLength(1)
    await store.close()
    const after = await printableRuns(dir)
    expect(after.files.filter((file) => file.endsWith('.ldb')).length).toBeGreaterThan(0)
    expect(found(after.runs)).toEqual([])
    console.log(`strings over ${after.files.length} files (${after.runs.length} runs of 6+ printable bytes): 0 of ${IMPORTED.length} imported values found`)

    // the folder and everything in it is the user's alone; the key lies outside it
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    const description = JSON.parse(await readFile(join(dir, STORE_FILE), 'utf8')) as { storeId: string, key: { kind: string } }
    expect(description.key.kind).toBe('file')
    const keyFile = join(process.env.EPIMESH_KEYS_DIR as string, `${description.storeId}.key`)
    expect((await stat(keyFile)).mode & 0o777).toBe(0o600)
    expect((await stat(process.env.EPIMESH_KEYS_DIR as string)).mode & 0o077).toBe(0)
  })

  it('a copy of the folder cannot be opened without its key, nor with another key; with its key it reads the same', async () => {
    const dir = join(base, 'peer')
    const copy = join(base, 'copy')
    await cp(dir, copy, { recursive: true })
    const emptyKeys = join(base, 'no-keys')
    await mkdir(emptyKeys, { mode: 0o700 })
    await expect(Store.open(copy, { key: { keysDir: emptyKeys } })).rejects.toMatchObject({ code: 'STORE_KEY_MISSING' })
    const other = join(base, 'other.key')
    await writeFile(other, randomBytes(32).toString('hex'), { mode: 0o600 })
    await expect(Store.open(copy, { key: { keyFile: other } })).rejects.toMatchObject({ code: 'STORE_KEY_WRONG' })
    const { storeId } = JSON.parse(await readFile(join(dir, STORE_FILE), 'utf8')) as { storeId: string }
    const store = await Store.open(copy, { key: { keyFile: join(process.env.EPIMESH_KEYS_DIR as string, `${storeId}.key`) } })
    expect(await store.count()).toBe(300)
    await store.close()
  })

  it('a value changed on disk, or moved to another kind of record, fails authentication with a coded error', async () => {
    const store = await Store.open(new MemoryLevel() as never)
    await store.configure({ region: REGION })
    const layout = layoutOf(store)
    await layout.cases.put('x!0000000000', { district: DISTRICTS[0] as string })
    const raw = layout.db as unknown as { get: (key: string, options: object) => Promise<Buffer>, put: (key: string, value: Buffer, options: object) => Promise<void> }
    const sealed = await raw.get('!v2-config!region', { valueEncoding: 'buffer' })
    const flipped = Buffer.from(sealed)
    flipped[20] = (flipped[20] as number) ^ 1
    await raw.put('!v2-config!region', flipped, { valueEncoding: 'buffer' })
    const changed = await store.region().catch((error: unknown) => error)
    expect(storageFailure(changed)?.code).toBe('STORE_CORRUPT')
    // a sealed case record put where the region was: authentic, but not a config value
    await raw.put('!v2-config!region', await raw.get('!v2-cases!x!0000000000', { valueEncoding: 'buffer' }), { valueEncoding: 'buffer' })
    expect(storageFailure(await store.region().catch((error: unknown) => error))?.code).toBe('STORE_CORRUPT')
    await store.close()
  })
})

describe('the store key', () => {
  it('from a passphrase: scrypt, its salt in the folder; without it or with another, a coded error', async () => {
    const dir = join(base, 'passphrase')
    const store = await Store.open(dir, { key: { passphrase: 'correct horse battery staple' } })
    await store.configure({ region: REGION })
    await store.close()
    const description = JSON.parse(await readFile(join(dir, STORE_FILE), 'utf8')) as { key: { kind: string, N: number } }
    expect(description.key).toMatchObject({ kind: 'passphrase', N: 2 ** 17 })
    await expect(Store.open(dir, { key: { keysDir: join(base, 'no-keys') } })).rejects.toMatchObject({ code: 'STORE_KEY_MISSING' })
    await expect(Store.open(dir, { key: { passphrase: 'correct horse battery stapler' } })).rejects.toMatchObject({ code: 'STORE_KEY_WRONG' })
    const reopened = await Store.open(dir, { key: { passphrase: 'correct horse battery staple' } })
    expect(await reopened.region()).toBe(REGION)
    await reopened.close()
    expect(found((await printableRuns(dir)).runs)).toEqual([])
  })

  it('from a key file the operator names: outside the folder, 0600, 32 bytes or 64 hex digits', async () => {
    const keys = join(base, 'operator-keys')
    await mkdir(keys, { mode: 0o700 })
    const keyFile = join(keys, 'jiangsu.key')
    await writeFile(keyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 })
    const dir = join(base, 'named')
    const store = await Store.open(dir, { key: { keyFile } })
    await store.close()
    expect(JSON.parse(await readFile(join(dir, STORE_FILE), 'utf8'))).toMatchObject({ key: { kind: 'file' } })
    // the same bytes, raw, are the same key
    const raw = join(keys, 'raw.key')
    await writeFile(raw, Buffer.from((await readFile(keyFile, 'utf8')).trim(), 'hex'), { mode: 0o600 })
    await (await Store.open(dir, { key: { keyFile: raw } })).close()

    await chmod(keyFile, 0o644)
    await expect(Store.open(dir, { key: { keyFile } })).rejects.toMatchObject({ code: 'STORE_KEY_EXPOSED' })
    await chmod(keyFile, 0o600)
    const empty = join(keys, 'empty.key')
    await writeFile(empty, '', { mode: 0o600 })
    await expect(Store.open(dir, { key: { keyFile: empty } })).rejects.toMatchObject({ code: 'STORE_KEY_INVALID' })
    const garbage = join(keys, 'garbage.key')
    await writeFile(garbage, 'not a key at all\n', { mode: 0o600 })
    await expect(Store.open(dir, { key: { keyFile: garbage } })).rejects.toMatchObject({ code: 'STORE_KEY_INVALID' })
    await expect(Store.open(dir, { key: { keyFile: join(keys, 'absent.key') } })).rejects.toMatchObject({ code: 'STORE_KEY_MISSING' })
    await expect(Store.open(join(base, 'inside'), { key: { keyFile: join(base, 'inside', 'store.key') } })).rejects.toMatchObject({ code: 'STORE_KEY_INSIDE_FOLDER' })
  })

  it('a store of the earlier, unencrypted layout is refused with a coded error', async () => {
    const dir = join(base, 'unencrypted')
    await mkdir(dir, { mode: 0o700 })
    const db = new Level<string, unknown>(join(dir, 'store'), { valueEncoding: 'json' })
    await db.sublevel<string, unknown>('v1-config', { valueEncoding: 'json' }).put('region', REGION)
    await db.close()
    await expect(Store.open(dir)).rejects.toMatchObject({ code: 'STORE_UNENCRYPTED' })
    await expect(Store.openWhenFree(dir)).rejects.toMatchObject({ code: 'STORE_UNENCRYPTED' })
  })

  it('commands do not create a store in a folder that has none', async () => {
    await expect(Store.openWhenFree(join(base, 'never-initialised'))).rejects.toMatchObject({ code: 'STORE_NOT_INITIALIZED' })
    await expect(stat(join(base, 'never-initialised'))).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
