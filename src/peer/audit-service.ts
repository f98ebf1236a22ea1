import type { PrivateKey } from '@libp2p/interface'
import { AuditRecorder, finalRecord, graphRecord } from '../consensus/audit.ts'
import type { FitJobParams, FitJobResult, FitJobState } from '../consensus/fit-job.ts'
import { fitJobPosition, phaseKey, phaseOrdinal } from '../consensus/fit-job.ts'
import type { Graph } from '../consensus/graph.ts'
import type { LogRecord, MachineInput } from '../consensus/machine.ts'
import type { ConsensusMessage } from '../consensus/types.ts'
import { Store } from '../store/store.ts'
import {
  AuditTrail, checkpointAnnouncement, countersignAnnouncement, countersignStatement, checkpointStatement, messageDigest,
  publicKeyOf, signBytes, verifyBytes, writeAudit, type Checkpoint, type SealedEntry
} from './audit-log.ts'
import type { Federation } from './federation.ts'
import type { PeerNode } from './node.ts'

/**
 * The audit log of a running peer: for every job, the signed round entries (kept in the store), the
 * checkpoints it publishes on the federation topic every `checkpointEvery` entries and at the end,
 * and the countersignatures it gives its graph neighbours' checkpoints and receives on its own.
 *
 * Entries are sealed as the job goes and written to the store in batches, at each checkpoint: the
 * store is opened only for the write, so that the operator's commands can read it while the peer
 * runs. Nothing is lost by batching: after a crash the job's write-ahead journal replays every input
 * through the same deterministic machine and recorder, which seal the same entries again.
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
}

export const DEFAULT_CHECKPOINT_EVERY = 100

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

  constructor (init: AuditServiceInit) {
    this.init = init
    const self = init.graph.names.indexOf(init.peerId)
    this.neighbours = new Set((init.graph.neighbours[self] ?? []).map((node) => init.graph.names[node] as string))
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
      await Store.use(this.init.dir, async (store) => { await writeAudit(store, entries, checkpoints) })
    }).catch((error: unknown) => {
      this.init.log('error', 'audit.write.failed', { reason: (error as Error).message })
    })
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
    if (announced.length < 1 || announced.length > trail.entries.length + 10 * every) return false
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

  /** The audit of one fit job run here: feed it every step of the job's machine, then its result. */
  begin (job: string, state: FitJobState, model: Record<string, unknown>): JobAudit<FitJobState> {
    return this.beginWith(job, { graph: state.peer.graph, diameter: state.peer.diameter, params: state.peer.params, model, phaseOf: phaseKey, phaseOrdinal, position: fitJobPosition })
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
    this.audited.set(job, trail)
    return new JobAudit<S>(this, trail, recorder, this.init.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY, view.position)
  }
}

/** What the audit needs to know of a job's machine. */
export interface AuditedJob<S> {
  graph: Graph
  diameter: number
  params: FitJobParams
  model: Record<string, unknown>
  phaseOf: (kind: string) => string
  phaseOrdinal: (phase: string) => number
  position: (state: S) => { phase: string, round: number }
}

function paramsRecord (params: FitJobParams): Record<string, unknown> {
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
  private closing: { result: FitJobResult, params: FitJobParams, timer: NodeJS.Timeout | null, done: Promise<void>, resolve: () => void } | null = null
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
   * A failure to log never stops the job (the model is the federation's, not this log's), but it is
   * reported, and this job's log ends there: what follows would not chain.
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

  async observe (state: S, outbox: readonly ConsensusMessage[], log: readonly LogRecord[], input: MachineInput | null): Promise<void> {
    if (this.closed) return
    await this.guarded(async () => {
      this.recorder.observe(input, outbox, log, this.position(state))
      const bodies = this.recorder.take()
      if (bodies.length === 0) return
      const before = this.trail.entries.length
      this.unwritten.push(...await this.trail.append(bodies))
      if (Math.floor(this.trail.entries.length / this.every) > Math.floor(before / this.every)) await this.checkpoint()
    })
  }

  private async checkpoint (): Promise<void> {
    const entries = this.unwritten
    this.unwritten = []
    await this.service.checkpoint(this.trail, entries)
  }

  /** The job's result is in: the log closes after `lingerMs`. Resolves when it is closed and written. */
  async finish (result: FitJobResult, params: FitJobParams, lingerMs = 0): Promise<void> {
    if (this.closing === null) {
      let resolve: () => void = () => {}
      const done = new Promise<void>((resolveDone) => { resolve = resolveDone })
      this.closing = { result, params, timer: null, done, resolve }
      this.service.opened(this)
      if (lingerMs > 0) this.closing.timer = setTimeout(() => { void this.closeNow() }, lingerMs)
      else void this.closeNow()
    }
    await this.closing.done
  }

  /** Seals the final entry now (the peer is stopping, or the linger time is over). */
  async closeNow (): Promise<void> {
    const closing = this.closing
    if (closing === null || this.closed) return await closing?.done
    this.closed = true
    if (closing.timer !== null) clearTimeout(closing.timer)
    const { result, params } = closing
    await this.guarded(async () => {
      this.recorder.finish(finalRecord(result, params.tolerance))
      this.unwritten.push(...await this.trail.append(this.recorder.take()))
      await this.checkpoint()
    })
    await this.service.flushed()
    this.service.closed(this)
    closing.resolve()
  }
}
