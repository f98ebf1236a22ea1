import type { PrivateKey } from '@libp2p/interface'
import { AuditRecorder, graphRecord, type FinalRecord } from '../../consensus/audit/recorder.ts'
import { jobPosition, phaseIndex, phaseOf, type JobState } from '../../consensus/jobs/job.ts'
import type { Graph } from '../../consensus/graph.ts'
import type { LogRecord, MachineInput } from '../../consensus/machine.ts'
import type { ConsensusMessage } from '../../consensus/types.ts'
import { EpimeshError } from '../../errors.ts'
import { storageFailure } from '../../store/errors.ts'
import { Store } from '../../store/store.ts'
import {
  AuditTrail, checkpointAnnouncement, countersignAnnouncement, countersignStatement, checkpointStatement, messageDigest,
  canonicalJson, publicKeyOf, signBytes, verifyBytes, type Checkpoint, type SealedEntry
} from './log.ts'
import type { Federation } from '../federation.ts'
import type { PeerNode } from '../net/node.ts'

/**
 * The audit log of a running peer: for every job, the signed round entries (kept in the store), the
 * checkpoints it publishes on the federation topic every `checkpointEvery` entries and at the end,
 * and the countersignatures it gives its graph neighbours' checkpoints and receives on its own.
 *
 * Entries are sealed as the job goes and written to the store in batches, at each checkpoint: the
 * store is opened only for the write, so that the operator's commands can read it while the peer
 * runs. Nothing is lost by batching: after a crash the job's write-ahead journal replays every input
 * through the same deterministic machine and recorder, which seal the same entries again.
 *
 * Nor is anything lost when the store is busy (a long import holds it) or the disk fails for a while:
 * a write that fails is retried with exponential backoff for up to `writeRetryMs`. If it still fails,
 * the service has failed for good: `failed` resolves with AUDIT_WRITE_FAILED, `onWriteFailure` is
 * called, and every job whose log is still being written stops with that error at its next step (a
 * job that ran without its log could not be audited).
 */
export interface AuditServiceInit {
  dir: string
  node: PeerNode
  federation: Federation
  graph: Graph
  privateKey: PrivateKey
  peerId: string
  log: (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void
  checkpointEvery?: number
  /** how long a failing write is retried before the audit fails (default DEFAULT_WRITE_RETRY_MS) */
  writeRetryMs?: number
  /** called once when a write has failed for good */
  onWriteFailure?: (error: AuditWriteError) => void
  /** runs a write with the store open, waiting up to `waitMs` for another process (default: Store.use on `dir`) */
  useStore?: (task: (store: Store) => Promise<void>, waitMs: number) => Promise<void>
}

export const DEFAULT_CHECKPOINT_EVERY = 100
/** jobs whose checkpoints the service still countersigns and holds */
export const AUDIT_RETENTION_JOBS = 8
/** five minutes: longer than an import of a million records on a small machine holds the store */
export const DEFAULT_WRITE_RETRY_MS = 300_000
/** the first retry's delay, doubled after each failure up to WRITE_RETRY_MAX_DELAY_MS */
export const WRITE_RETRY_FIRST_DELAY_MS = 100
export const WRITE_RETRY_MAX_DELAY_MS = 5_000
/** the longest one attempt waits for a store held by another process */
const WRITE_ATTEMPT_WAIT_MS = 10_000

/** The round log could not be written to the store, even after retrying: the job stops. */
export class AuditWriteError extends EpimeshError {
  static override readonly name = 'AuditWriteError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('AUDIT_WRITE_FAILED', message, options) }
}

export class AuditService {
  private readonly init: AuditServiceInit
  private readonly neighbours: Set<string>
  private queue: Promise<void> = Promise.resolve()
  private unsubscribe: (() => void) | null = null
  /** this peer's published checkpoints, by job and length, to gather countersignatures on */
  private readonly mine = new Map<string, Checkpoint>()
  private readonly countersigned = new Set<string>()
  private readonly timers = new Set<NodeJS.Timeout>()
  /** jobs this peer keeps a log of: only their checkpoints are countersigned, with their trails' lengths */
  private readonly audited = new Map<string, AuditTrail>()
  /** per neighbour and job: the final (not a multiple of checkpointEvery) length already countersigned */
  private readonly finalLengths = new Map<string, number>()
  readonly checkpointStats = { countersigned: 0, ignored: 0, invalid: 0 }
  private readonly stopping = new AbortController()
  /** the write that failed for good, if one has */
  failure: AuditWriteError | null = null
  /** resolves with the error when a write has failed for good (never, while writes succeed) */
  readonly failed: Promise<AuditWriteError>
  private resolveFailed: (error: AuditWriteError) => void = () => {}

  constructor (init: AuditServiceInit) {
    this.init = init
    const self = init.graph.names.indexOf(init.peerId)
    this.neighbours = new Set((init.graph.neighbours[self] ?? []).map((node) => init.graph.names[node] as string))
    this.failed = new Promise((resolve) => { this.resolveFailed = resolve })
  }

  start (): void {
    this.unsubscribe = this.init.node.announcements.subscribe((announcement) => {
      let json: { type?: unknown }
      try {
        json = JSON.parse(new TextDecoder().decode(announcement.data)) as { type?: unknown }
      } catch {
        return
      }
      if (json?.type === 'audit.checkpoint') {
        const parsed = checkpointAnnouncement.safeParse(json)
        if (parsed.success) void this.onCheckpoint(parsed.data, announcement.from)
        else this.init.log('warn', 'audit.checkpoint.malformed', { from: announcement.from })
      } else if (json?.type === 'audit.countersign') {
        const parsed = countersignAnnouncement.safeParse(json)
        if (parsed.success) void this.onCountersign(parsed.data, announcement.from)
        else this.init.log('warn', 'audit.countersign.malformed', { from: announcement.from })
      }
    })
  }

  private readonly closingJobs = new Set<JobAudit<any>>()
  opened (audit: JobAudit<any>): void { this.closingJobs.add(audit) }
  closed (audit: JobAudit<any>): void { this.closingJobs.delete(audit) }

  /** Closes the logs of finished jobs that are still lingering, and stops once every pending write is done. */
  async stop (): Promise<void> {
    // writes still failing get one last attempt each, without waiting out the whole retry time
    this.stopping.abort()
    await Promise.all([...this.closingJobs].map(async (audit) => { await audit.closeNow() }))
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.unsubscribe?.()
    await this.queue
  }

  report (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>): void {
    this.init.log(level, event, fields)
  }

  /** Resolves when everything handed to the store so far is written. */
  async flushed (): Promise<void> {
    await this.queue
  }

  private enqueue (entries: readonly SealedEntry[], checkpoints: readonly Checkpoint[]): void {
    this.queue = this.queue.then(async () => {
      // after a write failed for good the log has a hole: what follows would not chain
      if (this.failure !== null) return
      const lines = entries.map((entry) => canonicalJson(entry))
      await this.writeWithRetry(async (store) => { await store.appendAudit({ entries: lines, checkpoints }) }, entries.length)
    })
  }

  private async writeWithRetry (write: (store: Store) => Promise<void>, entries: number): Promise<void> {
    const started = Date.now()
    const deadline = started + (this.init.writeRetryMs ?? DEFAULT_WRITE_RETRY_MS)
    let delay = WRITE_RETRY_FIRST_DELAY_MS
    for (let attempt = 1; ; attempt++) {
      try {
        const waitMs = Math.max(0, Math.min(WRITE_ATTEMPT_WAIT_MS, deadline - Date.now()))
        await (this.init.useStore ?? (async (task, wait) => { await Store.use(this.init.dir, task, wait) }))(write, waitMs)
        if (attempt > 1) this.init.log('info', 'audit.write.recovered', { attempts: attempt, ms: Date.now() - started })
        return
      } catch (caught) {
        const error = storageFailure(caught) ?? caught
        const reason = (error as Error).message
        const code = (error as { code?: unknown }).code
        // a value the store refuses is refused again: no retry
        if (Date.now() >= deadline || this.stopping.signal.aborted || code === 'STORE_VALUE_INVALID') {
          this.fail(new AuditWriteError(`the round log could not be written to the store in ${this.init.dir} (${attempt} attempt${attempt === 1 ? '' : 's'} in ${Math.round((Date.now() - started) / 1000)} s, ${entries} entries): ${reason}`, { cause: error }))
          return
        }
        this.init.log('warn', 'audit.write.retry', { attempt, code, reason, retryInMs: delay })
        await sleep(Math.min(delay, Math.max(0, deadline - Date.now())), this.stopping.signal)
        delay = Math.min(2 * delay, WRITE_RETRY_MAX_DELAY_MS)
      }
    }
  }

  private fail (error: AuditWriteError): void {
    if (this.failure !== null) return
    this.failure = error
    this.init.log('error', 'audit.write.failed', { code: error.code, reason: error.message })
    this.resolveFailed(error)
    this.init.onWriteFailure?.(error)
  }

  private async publish (value: unknown): Promise<void> {
    try {
      await this.init.node.announcements.publishJson(value)
    } catch (error) {
      this.init.log('debug', 'audit.publish.deferred', { reason: (error as Error).message })
    }
  }

  /** Writes the entries, then publishes the head, again a few times until every neighbour has countersigned. */
  async checkpoint (trail: AuditTrail, entries: readonly SealedEntry[]): Promise<Checkpoint> {
    const checkpoint = await trail.checkpoint()
    this.mine.set(`${checkpoint.job}\n${checkpoint.length}`, checkpoint)
    this.enqueue(entries, [checkpoint])
    const announce = async (attempt: number): Promise<void> => {
      if (checkpoint.countersignatures.length >= this.neighbours.size) return
      await this.publish({ type: 'audit.checkpoint', job: checkpoint.job, peer: checkpoint.peer, length: checkpoint.length, hash: checkpoint.hash, sig: checkpoint.sig })
      if (attempt < 4) {
        const timer = setTimeout(() => { this.timers.delete(timer); void announce(attempt + 1) }, 250 * 2 ** attempt)
        this.timers.add(timer)
      }
    }
    await announce(0)
    this.init.log('info', 'audit.checkpoint', { job: checkpoint.job, length: checkpoint.length, hash: checkpoint.hash })
    return checkpoint
  }

  /**
   * Whether a neighbour's checkpoint is worth a countersignature and a place in the store: only for a
   * job this peer ran too, at a length its own log makes plausible (a neighbour's log of the same job is
   * never much longer than this one's), on the checkpoint grid or, once per neighbour and job, the final
   * length. A member publishing forged checkpoints therefore makes each peer store at most a few per job.
   */
  private plausibleCheckpoint (announced: { job: string, peer: string, length: number }): boolean {
    const trail = this.audited.get(announced.job)
    if (trail === undefined) return false
    const every = this.init.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY
    if (announced.length < 1 || announced.length > trail.length + 10 * every) return false
    if (announced.length % every === 0) return true
    const key = `${announced.job}\n${announced.peer}`
    const final = this.finalLengths.get(key)
    if (final !== undefined && final !== announced.length) return false
    this.finalLengths.set(key, announced.length)
    return true
  }

  private async onCheckpoint (announced: { job: string, peer: string, length: number, hash: string, sig: string }, from: string): Promise<void> {
    // Only the author publishes its checkpoint, and only its graph neighbours countersign it.
    if (from !== announced.peer || !this.neighbours.has(from)) return
    const key = `${announced.job}\n${announced.peer}\n${announced.length}\n${announced.hash}`
    if (!this.countersigned.has(key) && !this.plausibleCheckpoint(announced)) {
      this.checkpointStats.ignored++
      this.init.log('debug', 'audit.checkpoint.ignored', { from, job: announced.job, length: announced.length })
      return
    }
    let valid = false
    try {
      valid = await verifyBytes(publicKeyOf(announced.peer), checkpointStatement(announced), announced.sig)
    } catch {
      valid = false
    }
    if (!valid) {
      this.checkpointStats.invalid++
      this.init.log('warn', 'audit.checkpoint.invalid', { from, job: announced.job, length: announced.length })
      return
    }
    const sig = await signBytes(this.init.privateKey, countersignStatement(announced, this.init.peerId))
    if (!this.countersigned.has(key)) {
      this.countersigned.add(key)
      this.checkpointStats.countersigned++
      this.enqueue([], [{ type: 'checkpoint', job: announced.job, peer: announced.peer, length: announced.length, hash: announced.hash, sig: announced.sig, countersignatures: [{ by: this.init.peerId, sig }] }])
      this.init.log('debug', 'audit.countersigned', { job: announced.job, peer: announced.peer, length: announced.length })
    }
    await this.publish({ type: 'audit.countersign', job: announced.job, peer: announced.peer, length: announced.length, hash: announced.hash, by: this.init.peerId, sig })
  }

  private async onCountersign (announced: { job: string, peer: string, length: number, hash: string, by: string, sig: string }, from: string): Promise<void> {
    if (from !== announced.by || announced.peer !== this.init.peerId || !this.neighbours.has(from)) return
    const checkpoint = this.mine.get(`${announced.job}\n${announced.length}`)
    if (checkpoint === undefined || checkpoint.hash !== announced.hash) return
    if (checkpoint.countersignatures.some((signature) => signature.by === from)) return
    if (!await verifyBytes(publicKeyOf(from), countersignStatement(checkpoint, from), announced.sig)) {
      this.init.log('warn', 'audit.countersign.invalid', { from, job: announced.job, length: announced.length })
      return
    }
    checkpoint.countersignatures.push({ by: from, sig: announced.sig })
    this.enqueue([], [{ ...checkpoint, countersignatures: [...checkpoint.countersignatures] }])
  }

  /**
   * What the service holds per job (the trail's head, its checkpoints and the countersignatures given)
   * is kept for the most recent AUDIT_RETENTION_JOBS jobs: a checkpoint of an older job is ignored.
   */
  private retain (): void {
    while (this.audited.size > AUDIT_RETENTION_JOBS) {
      const oldest = this.audited.keys().next().value
      if (oldest === undefined) break
      this.audited.delete(oldest)
      const prefix = `${oldest}\n`
      for (const key of this.mine.keys()) if (key.startsWith(prefix)) this.mine.delete(key)
      for (const key of this.countersigned) if (key.startsWith(prefix)) this.countersigned.delete(key)
      for (const key of this.finalLengths.keys()) if (key.startsWith(prefix)) this.finalLengths.delete(key)
    }
  }

  /** The audit of one job run here (any kind): feed it every step of the job's machine, then its result. */
  begin<R> (job: string, state: JobState<R>, params: AuditParams, model: Record<string, unknown>): JobAudit<JobState<R>> {
    const { graph, diameter } = state.definition
    return this.beginWith(job, { graph, diameter, params, model, phaseOf, phaseOrdinal: (phase) => phaseIndex(state, phase), position: jobPosition })
  }

  /** The audit of any job machine, given how to read its phases and its position. */
  beginWith<S> (job: string, view: AuditedJob<S>): JobAudit<S> {
    const { graph } = view
    const regions = graph.names.map((peerId) => this.init.federation.members.find((member) => member.peerId === peerId)?.region ?? peerId)
    const recorder = new AuditRecorder(
      { job, self: this.init.peerId, digest: messageDigest, phaseOf: view.phaseOf, phaseOrdinal: view.phaseOrdinal },
      {
        algorithm: view.params.algorithm,
        params: paramsRecord(view.params),
        model: view.model,
        graph: { ...graphRecord(graph), regions },
        diameter: view.diameter
      }
    )
    const trail = new AuditTrail(job, this.init.peerId, this.init.privateKey)
    this.audited.delete(job)
    this.audited.set(job, trail)
    this.retain()
    return new JobAudit<S>(this, trail, recorder, this.init.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY, view.position)
  }
}

/** What the audit needs to know of a job's machine. */
export interface AuditedJob<S> {
  graph: Graph
  diameter: number
  params: AuditParams
  model: Record<string, unknown>
  phaseOf: (kind: string) => string
  phaseOrdinal: (phase: string) => number
  position: (state: S) => { phase: string, round: number }
}

/** A job's parameters as its log's first entry records them (a fit job's FitJobParams, a tree job's settings). */
export interface AuditParams {
  algorithm: string
}

export type { FinalRecord }

function paramsRecord (params: AuditParams): Record<string, unknown> {
  return { ...params }
}

/**
 * The log of one job on this peer. Steps are recorded in order (a serial chain, whatever the caller
 * awaits). When the job ends the log stays open a little longer (`lingerMs`, one round deadline by
 * default) to record the answers this peer still gives neighbours that lag behind in the last phase;
 * then the final entry is sealed and the last checkpoint published.
 */
export class JobAudit<S> {
  private readonly service: AuditService
  readonly trail: AuditTrail
  private readonly recorder: AuditRecorder
  private readonly every: number
  private unwritten: SealedEntry[] = []
  private chain: Promise<void> = Promise.resolve()
  private broken = false
  private closing: { final: FinalRecord, timer: NodeJS.Timeout | null, done: Promise<void>, settle: (error: AuditWriteError | null) => void } | null = null
  private closed = false

  private readonly position: (state: S) => { phase: string, round: number }

  constructor (service: AuditService, trail: AuditTrail, recorder: AuditRecorder, every: number, position: (state: S) => { phase: string, round: number }) {
    this.service = service
    this.trail = trail
    this.recorder = recorder
    this.every = every
    this.position = position
  }

  /**
   * A failure to seal an entry does not stop the job, but it is reported, and this job's log ends
   * there: what follows would not chain. A failure to write the log does stop it (see observe).
   */
  private async guarded (work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(async () => {
      if (this.broken) return
      try {
        await work()
      } catch (error) {
        this.broken = true
        this.service.report('error', 'audit.failed', { job: this.trail.job, reason: (error as Error).message })
      }
    })
    this.chain = run
    await run
  }

  /**
   * Records one step. Throws AUDIT_WRITE_FAILED once the service could not write the log, so that the
   * job's driver stops the job there; after the job's end (the log lingering) it no longer throws.
   */
  async observe (state: S, outbox: readonly ConsensusMessage[], log: readonly LogRecord[], input: MachineInput | null): Promise<void> {
    if (this.closed) return
    const failure = this.service.failure
    if (failure !== null && this.closing === null) throw failure
    await this.guarded(async () => {
      this.recorder.observe(input, outbox, log, this.position(state))
      const bodies = this.recorder.take()
      if (bodies.length === 0) return
      const before = this.trail.length
      this.unwritten.push(...await this.trail.append(bodies))
      if (Math.floor(this.trail.length / this.every) > Math.floor(before / this.every)) await this.checkpoint()
    })
  }

  private async checkpoint (): Promise<void> {
    const entries = this.unwritten
    this.unwritten = []
    await this.service.checkpoint(this.trail, entries)
  }

  /**
   * The job's result is in: the log closes after `lingerMs`. Resolves when it is closed and written;
   * rejects with AUDIT_WRITE_FAILED when it could not be written. (The promise is marked handled:
   * one nobody awaits does not end the process; the failure is also the service's `failed`.)
   */
  finish (final: FinalRecord, lingerMs = 0): Promise<void> {
    if (this.closing === null) {
      let settle: (error: AuditWriteError | null) => void = () => {}
      const done = new Promise<void>((resolve, reject) => { settle = (error) => { if (error === null) resolve(); else reject(error) } })
      done.catch(() => {})
      this.closing = { final, timer: null, done, settle }
      this.service.opened(this)
      if (lingerMs > 0) this.closing.timer = setTimeout(() => { void this.closeNow() }, lingerMs)
      else void this.closeNow()
    }
    return this.closing.done
  }

  /** Seals the final entry now (the peer is stopping, or the linger time is over). Never throws. */
  async closeNow (): Promise<void> {
    const closing = this.closing
    if (closing === null || this.closed) return await closing?.done.catch(() => {})
    this.closed = true
    if (closing.timer !== null) clearTimeout(closing.timer)
    const { final } = closing
    await this.guarded(async () => {
      this.recorder.finish(final)
      this.unwritten.push(...await this.trail.append(this.recorder.take()))
      await this.checkpoint()
    })
    await this.service.flushed()
    this.service.closed(this)
    closing.settle(this.service.failure)
  }
}

async function sleep (ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted || ms <= 0) return
  await new Promise<void>((resolve) => {
    const done = (): void => { clearTimeout(timer); signal.removeEventListener('abort', done); resolve() }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}
