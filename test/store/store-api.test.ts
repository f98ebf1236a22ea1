import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { MemoryLevel } from 'memory-level'
import { afterAll, describe, expect, it } from 'vitest'
import { deriveStoreKeys } from '../../src/store/crypto.ts'
import { layoutOf } from '../../src/store/layout.ts'
import { Store, type AuditCheckpoint } from '../../src/store/store.ts'
import { storedForecast, storedModel } from '../helpers/results.ts'

/**
 * The store's typed methods: what goes in is checked (a refused value writes nothing), what comes out
 * is what went in, across a reopening. The same suite against LevelDB on disk and memory-level.
 */
const folders: string[] = []
afterAll(async () => { await Promise.all(folders.map(async (folder) => { await rm(folder, { recursive: true, force: true }) })) })

interface Backend {
  /** a new, empty store */
  open: () => Promise<Store>
  /** the last store opened, opened again after it was closed */
  reopen: () => Promise<Store>
}

function levelOnDisk (): Backend {
  let dir = ''
  return {
    open: async () => {
      dir = await mkdtemp(join(tmpdir(), 'epimesh-store-api-'))
      folders.push(dir)
      return await Store.open(dir)
    },
    reopen: async () => await Store.open(dir, { create: false })
  }
}

function memory (): Backend {
  let db = new MemoryLevel()
  let keys = deriveStoreKeys(randomBytes(32), 'memory')
  return {
    open: async () => {
      db = new MemoryLevel()
      keys = deriveStoreKeys(randomBytes(32), 'memory')
      return await Store.open(db as never, { keys })
    },
    reopen: async () => await Store.open(db as never, { keys })
  }
}

const codeOf = async (promise: Promise<unknown>): Promise<unknown> => await promise.then(() => 'resolved', (error: unknown) => (error as { code?: unknown }).code)

const HASH = 'ab'.repeat(32)
function checkpoint (job: string, peer: string, length: number, countersignatures: Array<{ by: string, sig: string }> = []): AuditCheckpoint {
  return { type: 'checkpoint', job, peer, length, hash: HASH, sig: `sig-of-${peer}-${length}`, countersignatures }
}
const entry = (job: string, seq: number): string => JSON.stringify({ type: 'round', job, seq, round: seq })

describe.each([['level on disk', levelOnDisk], ['memory-level', memory]] as const)('the store API (%s)', (_, backend) => {
  it('settings: none before init; region and peer id as configured, kept across a reopening; a bad one refused', async () => {
    const { open, reopen } = backend()
    const store = await open()
    expect(await store.region()).toBeNull()
    expect(await store.peerId()).toBeNull()
    await store.configure({ region: '江苏', peerId: '12D3KooWExample' })
    expect(await codeOf(store.configure({ region: 'x\u0000y' }))).toBe('STORE_VALUE_INVALID')
    expect(await codeOf(store.configure({ region: 'x'.repeat(257) }))).toBe('STORE_VALUE_INVALID')
    const salt = await store.salt()
    expect(salt).toMatch(/^[0-9a-f]{64}$/)
    await store.close()
    const again = await reopen()
    expect([await again.region(), await again.peerId(), await again.salt()]).toEqual(['江苏', '12D3KooWExample', salt])
    await again.close()
  })

  it('models: exactly what went in comes out; listed oldest first, the latest last; replaced by job', async () => {
    const { open, reopen } = backend()
    const store = await open()
    expect(await store.getModel('fit-1')).toBeNull()
    expect(await store.latestModel()).toBeNull()
    const first = storedModel('fit-1', [['(Intercept)', -2.25], ['age', 0.0521]], '2024-03-01T10:00:00.000Z')
    const second = storedModel('fit-2', [['(Intercept)', 1.5]], '2024-03-02T10:00:00.000Z')
    const third = storedModel('fit-0', [['(Intercept)', 3]], '2024-03-03T10:00:00.000Z')
    for (const model of [second, third, first]) await store.putModel(model)
    expect(await store.getModel('fit-1')).toEqual(first)
    expect((await store.listModels()).map((model) => model.job)).toEqual(['fit-1', 'fit-2', 'fit-0'])
    expect(await store.latestModel()).toEqual(third)
    // a job stored again (a resumed job) replaces its model
    const replaced = { ...first, rounds: 99, createdAt: '2024-03-04T10:00:00.000Z' }
    await store.putModel(replaced)
    expect((await store.listModels()).map((model) => model.job)).toEqual(['fit-2', 'fit-0', 'fit-1'])
    await store.close()
    const again = await reopen()
    expect(await again.getModel('fit-1')).toEqual(replaced)
    expect(await again.latestModel()).toEqual(replaced)
    await again.close()
  })

  it('models: a model that does not pass is refused with the field named, and nothing is written', async () => {
    const { open } = backend()
    const store = await open()
    const good = storedModel('fit-1')
    const refused = [
      { ...good, job: '' },
      { ...good, job: 'a!forecast' },
      { ...good, rows: -1 },
      { ...good, createdAt: 'yesterday' },
      { ...good, coefficients: [{ ...good.coefficients[0], estimate: Number.NaN }] },
      { ...good, extra: 1 }
    ]
    for (const model of refused) {
      const error = await store.putModel(model as never).catch((caught: unknown) => caught) as { code: string, message: string }
      expect(error.code).toBe('STORE_VALUE_INVALID')
    }
    expect((await store.putModel({ ...good, rows: -1 }).catch((caught: unknown) => caught) as Error).message).toContain('rows')
    expect(await store.listModels()).toEqual([])
    // a statistic the fit could not give (an infinite standard error) is kept as null, as JSON would keep it
    await store.putModel({ ...good, coefficients: [{ ...good.coefficients[0]!, standardError: Number.POSITIVE_INFINITY, z: Number.NaN }] })
    expect((await store.getModel('fit-1'))?.coefficients[0]).toMatchObject({ standardError: null, z: null })
    await store.close()
  })

  it('a stored value of another shape comes out as STORE_CORRUPT, never as a wrong type', async () => {
    const { open } = backend()
    const store = await open()
    const layout = layoutOf(store)
    await layout.models.put(layout.modelKey('fit-1'), { job: 'fit-1', coefficients: 'none' })
    expect(await codeOf(store.getModel('fit-1'))).toBe('STORE_CORRUPT')
    expect(await codeOf(store.listModels())).toBe('STORE_CORRUPT')
    await store.close()
  })

  it('forecasts: kept beside the models, each listed with its own kind; a job is finished when either is kept', async () => {
    const { open, reopen } = backend()
    const store = await open()
    const forecast = storedForecast('risk-1', 'Jiangsu', '2024-03-05T10:00:00.000Z')
    await store.putModel(storedModel('fit-1', undefined, '2024-03-01T10:00:00.000Z'))
    await store.putForecast(forecast)
    await store.putForecast(storedForecast('risk-0', 'Jiangsu', '2024-03-02T10:00:00.000Z'))
    expect(await store.getForecast('risk-1')).toEqual(forecast)
    expect(await store.getForecast('fit-1')).toBeNull()
    expect(await store.getModel('risk-1')).toBeNull()
    expect((await store.listModels()).map((model) => model.job)).toEqual(['fit-1'])
    expect((await store.listForecasts()).map((entry) => entry.job)).toEqual(['risk-0', 'risk-1'])
    expect(await store.latestForecast()).toEqual(forecast)
    expect(await codeOf(store.putForecast({ ...forecast, model: storedModel('other-job') }))).toBe('STORE_VALUE_INVALID')
    expect(await codeOf(store.putForecast({ ...forecast, forecast: [] }))).toBe('STORE_VALUE_INVALID')
    expect([await store.hasResult('fit-1'), await store.hasResult('risk-1'), await store.hasResult('never')]).toEqual([true, true, false])
    await store.close()
    const again = await reopen()
    expect(await again.latestForecast()).toEqual(forecast)
    await again.close()
  })

  it('round logs: entries by job in sequence order, exactly as given; jobs listed; a bad entry refused and nothing of its write kept', async () => {
    const { open, reopen } = backend()
    const store = await open()
    // sequence 10 after 9 and 2 (the keys hold them as 10 digits), two jobs in one write
    await store.appendAudit({ entries: [entry('job-b', 10), entry('job-a', 0), entry('job-b', 2)] })
    await store.appendAudit({ entries: [entry('job-b', 9)] })
    expect(await store.readAuditEntries('job-b')).toEqual([entry('job-b', 2), entry('job-b', 9), entry('job-b', 10)])
    expect(await store.readAuditEntries('job-a')).toEqual([entry('job-a', 0)])
    expect(await store.readAuditEntries('job-c')).toEqual([])
    expect(await store.listAuditJobs()).toEqual(['job-a', 'job-b'])
    for (const bad of ['not json', JSON.stringify({ job: 'job-c' }), JSON.stringify({ job: 'job-c', seq: -1 }), JSON.stringify({ seq: 1 })]) {
      expect(await codeOf(store.appendAudit({ entries: [entry('job-c', 0), bad] }))).toBe('STORE_VALUE_INVALID')
    }
    expect(await store.readAuditEntries('job-c')).toEqual([])
    expect(await store.listAuditJobs()).toEqual(['job-a', 'job-b'])
    await store.close()
    const again = await reopen()
    expect(await again.readAuditEntries('job-b')).toHaveLength(3)
    await again.close()
  })

  it('checkpoints: by peer and length; stored again, their countersignatures merge; another signature replaces', async () => {
    const { open } = backend()
    const store = await open()
    await store.appendAudit({ checkpoints: [checkpoint('job-a', 'peer-2', 100), checkpoint('job-a', 'peer-1', 200, [{ by: 'peer-3', sig: 's3' }]), checkpoint('job-a', 'peer-1', 100)] })
    await store.appendAudit({ checkpoints: [checkpoint('job-a', 'peer-1', 200, [{ by: 'peer-2', sig: 's2' }, { by: 'peer-3', sig: 'other' }])] })
    const held = await store.readCheckpoints('job-a')
    expect(held.map((entry) => [entry.peer, entry.length])).toEqual([['peer-1', 100], ['peer-1', 200], ['peer-2', 100]])
    expect(held[1]?.countersignatures).toEqual([{ by: 'peer-2', sig: 's2' }, { by: 'peer-3', sig: 's3' }])
    await store.appendAudit({ checkpoints: [{ ...checkpoint('job-a', 'peer-1', 200), sig: 'a different head' }] })
    expect((await store.readCheckpoints('job-a'))[1]).toMatchObject({ sig: 'a different head', countersignatures: [] })
    expect(await codeOf(store.appendAudit({ checkpoints: [{ ...checkpoint('job-a', 'peer-1', 300), hash: 'not a hash' }] }))).toBe('STORE_VALUE_INVALID')
    expect(await store.readCheckpoints('job-b')).toEqual([])
    await store.close()
  })

  it('the schema is replaced only when every stored record passes the new one', async () => {
    const { open } = backend()
    const store = await open()
    const layout = layoutOf(store)
    const schema = { version: 1 as const, id: 'id', columns: { age: { type: 'number' as const, min: 0, max: 120 } } }
    await layout.meta.put('import!one', { id: 'one', kind: 'cases', file: 'a.csv', rows: 2, duplicates: 0, committedAt: '2024-01-01T00:00:00.000Z' })
    await layout.cases.put(layout.caseKey('one', 0), { age: 40, __id: 'h0' })
    await layout.cases.put(layout.caseKey('one', 1), { age: 90, __id: 'h1' })
    expect(await store.replaceSchema(schema)).toBe(2)
    expect(await store.schema()).toEqual(schema)
    const narrower = { ...schema, columns: { age: { type: 'number' as const, min: 0, max: 65 } } }
    expect(await codeOf(store.replaceSchema(narrower))).toBe('SCHEMA_INVALID')
    expect(await store.schema()).toEqual(schema)
    await store.close()
  })
})
