import '../../src/peer/polyfill.ts'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { finalRecord } from '../../src/consensus/audit/recorder.ts'
import { graphFromEdges } from '../../src/consensus/graph.ts'
import { AuditService, type AuditServiceInit, type JobAudit } from '../../src/peer/audit/service.ts'
import type { Federation } from '../../src/peer/federation.ts'
import type { PeerNode } from '../../src/peer/net/node.ts'
import { DiskFullError } from '../../src/store/errors.ts'
import { Store } from '../../src/store/store.ts'

/**
 * Audit writes cannot be lost: a store another process holds (a long import) is waited for, a write
 * that fails is retried with backoff, and a write that still fails after the retry time stops the job
 * with AUDIT_WRITE_FAILED instead of being dropped with a log line.
 */
let base = ''
let key: PrivateKey
let peerId: string
let neighbour: string
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-audit-write-'))
  key = await generateKeyPair('Ed25519')
  peerId = peerIdFromPrivateKey(key).toString()
  neighbour = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()
})
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

/** The announcements a service publishes go nowhere: these tests are about its writes. */
const quietNode = { announcements: { subscribe: () => () => {}, publishJson: async () => {} } } as unknown as PeerNode

function service (dir: string, events: string[], init: Partial<AuditServiceInit> = {}): AuditService {
  const graph = graphFromEdges([peerId, neighbour], [[peerId, neighbour]])
  const federation = { members: [{ region: 'alpha', peerId }, { region: 'beta', peerId: neighbour }] } as unknown as Federation
  return new AuditService({ dir, node: quietNode, federation, graph, privateKey: key, peerId, checkpointEvery: 1, log: (_, event) => { events.push(event) }, ...init })
}

function begin (audit: AuditService, job: string): JobAudit<null> {
  return audit.beginWith<null>(job, {
    graph: graphFromEdges([peerId, neighbour], [[peerId, neighbour]]),
    diameter: 1,
    params: createFitJobParams({}),
    model: { outcome: 'severe' },
    phaseOf: () => 'stats',
    phaseOrdinal: () => 0,
    position: () => ({ phase: 'stats', round: 0 })
  })
}

const RESULT = { terms: ['(Intercept)'], coefficients: [0.5], standardErrors: [0.1], standardizedCoefficients: [0.5], logLikelihood: -10, rounds: 3, converged: true, peers: 2, rows: 40, penalty: null, dropped: [] } as never

async function initialised (name: string): Promise<string> {
  const dir = join(base, name)
  await (await Store.open(dir)).close()
  return dir
}

describe('audit writes', () => {
  it('wait for a store another process holds, and lose nothing', async () => {
    const dir = await initialised('held')
    const events: string[] = []
    const audit = service(dir, events)
    const held = await Store.open(dir, { create: false })
    const job = begin(audit, 'held-job')
    await job.observe(null, [], [], null)
    setTimeout(() => { void held.close() }, 600)
    await job.finish(finalRecord(RESULT, createFitJobParams({}).tolerance))
    await audit.stop()
    expect(audit.failure).toBeNull()
    const store = await Store.open(dir, { create: false })
    expect((await store.readAuditEntries('held-job')).map((line) => (JSON.parse(line) as { type: string }).type)).toEqual(['start', 'final'])
    expect((await store.readCheckpoints('held-job')).map((checkpoint) => checkpoint.length)).toEqual([1, 2])
    await store.close()
  })

  it('retry a failing write with backoff until it succeeds', async () => {
    const dir = await initialised('flaky')
    const events: string[] = []
    let failures = 3
    const audit = service(dir, events, {
      useStore: async (task, waitMs) => {
        if (failures-- > 0) throw new DiskFullError('the disk is full (injected)')
        await Store.use(dir, task, waitMs)
      }
    })
    const job = begin(audit, 'flaky-job')
    await job.observe(null, [], [], null)
    await job.finish(finalRecord(RESULT, createFitJobParams({}).tolerance))
    await audit.stop()
    expect(events.filter((event) => event === 'audit.write.retry')).toHaveLength(3)
    expect(events).toContain('audit.write.recovered')
    expect(events).not.toContain('audit.write.failed')
    const store = await Store.open(dir, { create: false })
    expect(await store.readAuditEntries('flaky-job')).toHaveLength(2)
    await store.close()
  })

  it('still failing after the retry time: AUDIT_WRITE_FAILED stops the job, for whoever awaits it', async () => {
    const dir = await initialised('locked')
    const events: string[] = []
    const failures: unknown[] = []
    const audit = service(dir, events, { writeRetryMs: 800, onWriteFailure: (error) => { failures.push(error) } })
    // held by "a long import" for longer than the retry time
    const held = await Store.open(dir, { create: false })
    const job = begin(audit, 'locked-job')
    const started = Date.now()
    await job.observe(null, [], [], null)
    const failure = await audit.failed
    expect(Date.now() - started).toBeGreaterThanOrEqual(800)
    expect(failure).toMatchObject({ code: 'AUDIT_WRITE_FAILED', exitCode: 1, cause: { code: 'STORE_LOCKED' } })
    expect(failures).toEqual([failure])
    expect(events).toContain('audit.write.failed')
    // the job's next step fails with it (the round driver stops the job there) ...
    await expect(job.observe(null, [], [], null)).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' })
    // ... and so does a log that closes after it
    await expect(begin(audit, 'later-job').finish(finalRecord(RESULT, createFitJobParams({}).tolerance))).rejects.toMatchObject({ code: 'AUDIT_WRITE_FAILED' })
    await held.close()
    await audit.stop()
  })
})
