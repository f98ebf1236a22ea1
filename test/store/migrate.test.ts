import '../../src/peer/polyfill.ts'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Level } from 'level'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AuditTrail, canonicalJson } from '../../src/peer/audit/log.ts'
import { createIdentity } from '../../src/peer/identity.ts'
import { Store } from '../../src/store/store.ts'
import { summarize } from '../../src/store/summary.ts'
import { migrateStore } from '../../src/store/migrate.ts'
import { notPrivate } from '../helpers/files.ts'
import { storedModel } from '../helpers/results.ts'

/**
 * A store of the earlier, unencrypted layout: refused by every command, then encrypted in place by
 * `epimesh store migrate`, after which no file of the store holds a value that was in it, and
 * everything reads back (records, series by date, models, the round log by job).
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const REGION = 'Eastfold-Lowlands'
const LEVELS = ['Brackenholt', 'Cindermoor']
const JOB = 'ptarmigan-job-4471'
const DATES = ['1979-04-02', '1979-03-26']
let base = ''
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-migrate-')) })
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

const cli = (args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

/** What the unencrypted layout wrote: JSON values, natural keys. */
async function writeUnencrypted (dir: string): Promise<void> {
  const { privateKey, peerId } = await createIdentity(dir)
  const trail = new AuditTrail(JOB, peerId, privateKey)
  const [entry] = await trail.append([{ type: 'start', format: 1, job: JOB, peer: peerId, algorithm: 'admm', params: {}, model: { outcome: 'severe' }, graph: { names: [peerId], neighbours: [[]], regions: [REGION] }, diameter: 0 }])
  const checkpoint = await trail.checkpoint()
  const db = new Level<string, unknown>(join(dir, 'store'), { valueEncoding: 'json' })
  const level = (kind: string): ReturnType<typeof db.sublevel<string, unknown>> => db.sublevel<string, unknown>(`v1-${kind}`, { valueEncoding: 'json' })
  await level('meta').put('layout', 1)
  await level('meta').put('import!imp1', { id: 'imp1', kind: 'cases', file: 'cases.csv', rows: 2, duplicates: 0, committedAt: '2024-01-01T00:00:00.000Z' })
  await level('meta').put('schema', { id: 'case_id', outcome: 'severe', columns: { district: { type: 'category', levels: LEVELS }, severe: { type: 'number' } } })
  await level('config').put('region', REGION)
  await level('config').put('salt', 'aa'.repeat(32))
  await level('cases').put('imp1!0000000000', { district: LEVELS[0], severe: 1 })
  await level('cases').put('imp1!0000000001', { district: LEVELS[1], severe: 0 })
  await level('ids').put('hash-of-record-1', 'imp1')
  await level('ids').put('hash-of-record-2', 'imp1')
  for (const date of DATES) await level('series').put(date, { date, count: 4242, population: 777_777 })
  await level('models').put(JOB, storedModel(JOB, [[LEVELS[0] as string, 0.5]]))
  await level('rounds').put(`e!${encodeURIComponent(JOB)}!0000000000`, canonicalJson(entry))
  await level('rounds').put(`c!${encodeURIComponent(JOB)}!${peerId}!0000000001`, checkpoint)
  await db.close()
}

const VALUES = [REGION, ...LEVELS, JOB, ...DATES, '777777']

async function filesHold (dir: string, values: readonly string[]): Promise<string[]> {
  const held = new Set<string>()
  for (const name of await readdir(join(dir, 'store'))) {
    const text = (await readFile(join(dir, 'store', name))).toString('latin1')
    for (const value of values) if (text.includes(value)) held.add(value)
  }
  return [...held].sort()
}

describe('a store of the unencrypted layout', () => {
  it('is refused until `epimesh store migrate` encrypts it in place; then no file holds its values and all reads back', async () => {
    const dir = join(base, 'old')
    await writeUnencrypted(dir)
    expect(await filesHold(dir, VALUES)).toEqual([...VALUES].sort())
    await expect(Store.openWhenFree(dir)).rejects.toMatchObject({ code: 'STORE_UNENCRYPTED', exitCode: 2 })

    const migrated = cli(['store', 'migrate', '--dir', dir])
    expect(migrated.status, migrated.stderr).toBe(0)
    expect(await filesHold(dir, VALUES)).toEqual([])
    // and the folder the earlier version wrote with looser modes is the user's alone
    expect(await notPrivate(dir)).toEqual([])

    const store = await Store.open(dir, { create: false })
    expect(await summarize(store)).toMatchObject({ records: 2, series: { points: 2, first: DATES[1], last: DATES[0] } })
    expect(await store.region()).toBe(REGION)
    expect((await store.allRows()).map((row) => row.district)).toEqual(LEVELS)
    expect(await store.getModel(JOB)).toEqual(storedModel(JOB, [[LEVELS[0] as string, 0.5]]))
    expect(await store.latestModel()).toMatchObject({ job: JOB })
    expect(await store.listAuditJobs()).toEqual([JOB])
    expect((await store.readAuditEntries(JOB)).map((line) => (JSON.parse(line) as { type: string, job: string }))).toEqual([expect.objectContaining({ type: 'start', job: JOB })])
    expect(await store.readCheckpoints(JOB)).toHaveLength(1)
    await store.close()
    // run again, it finds nothing left to move
    expect(await migrateStore(dir)).toMatchObject({ records: 0 })
  })
})
