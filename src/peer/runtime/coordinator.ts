import { createAgreement, nextWake, stepAgreement, type AgreementCounters, type AgreementEffect, type AgreementInput, type AgreementState, type AgreementStep } from '../../consensus/jobs/agreement.ts'
import type { JobState } from '../../consensus/jobs/job.ts'
import type { LogRecord, MachineInput } from '../../consensus/machine.ts'
import type { Transport } from '../../consensus/types.ts'
import type { MessageVerifier } from '../../consensus/audit/evidence.ts'
import { excerpt } from '../../consensus/ids.ts'
import { EpimeshError } from '../../errors.ts'
import { AbortedError } from '../errors.ts'
import { federationGraph, regionOf, type Federation } from '../federation.ts'
import { JOB_BOUNDS } from '../job-bounds.ts'
import type { RoundWindows } from '../net/round-window.ts'
import type { PeerNode } from '../net/node.ts'
import type { AuditService, JobAudit } from '../audit/service.ts'
import { JobRefusedError, type JobData } from './checks.ts'
import { kindOf, type JobKindName, type JobOutput, type JobPlan, type JobProgress } from './job-kinds.ts'
import { jobAnnouncementSchema, type JobAnnouncement, type JobProposal } from './proposal.ts'
import { driveRounds } from './round-driver.ts'
import type { JobJournal } from './journal.ts'
import type { SubscriptionChangeData } from '@libp2p/gossipsub'
import { createSecureRng, newSeed } from './secure-rng.ts'

/**
 * The peer's shell around the agreement machine (src/consensus/jobs/agreement.ts) and the jobs it
 * starts. Announcements off the federation's topic are validated by schema, then stepped through the
 * machine with the time; what the machine asks for is done here: publish its announcements, check a
 * proposal against this region's data (read afresh from the store for each proposal) and disclosure
 * policy, start the job, or tell the callers waiting for it that it was refused or expired. Each job is
 * built by its kind (job-kinds.ts) and driven over the round transport with its journal and audit log.
 *
 * A finished job keeps only its result: its machine answers neighbours still finishing its last phase
 * for a bounded time (LINGER), then everything it held is released.
 */

/** A job that was proposed and never started (a member left, or a proposal nobody else saw) expires. */
export class JobExpiredError extends EpimeshError {
  static override readonly name = 'JobExpiredError'
  constructor (message: string) { super('JOB_EXPIRED', message) }
}

/** How long, and for how many jobs, a finished job's machine still answers its laggards. */
export const LINGER = Object.freeze({
  /** at most this many finished jobs answer at once: an older one is released when a newer one finishes */
  jobs: 2,
  /** a finished job answers for at least this long, and for 20 round deadlines if that is longer */
  minimumMs: 60_000,
  roundDeadlines: 20
})

/**
 * A job that ended here without a result: declined (with each region's reason this peer heard),
 * expired (the regions that never answered) or failed while it ran (this region's error). The peer
 * keeps the last ENDED_KEPT of them in status.json, across restarts, for `epimesh jobs` and
 * `propose --wait`: the only place a decline is recorded, since a declined job stores nothing.
 */
export interface EndedJob {
  job: string
  /** null when this peer never saw the proposal (a decline heard before it) */
  kind: JobKindName | null
  state: 'declined' | 'expired' | 'failed'
  /** when this peer first learnt it, ISO 8601 */
  at: string
  /** one per region, in the order heard; at most one reason per region */
  reasons: Array<{ region: string, reason: string }>
}

/** How many ended jobs a peer keeps (the oldest dropped first), and how long each reason may be. */
export const ENDED_KEPT = Object.freeze({ jobs: 32, reasonChars: 300, regions: 64 })

export interface AgreementStats extends AgreementCounters {
  /** announcements that did not match the schema */
  malformed: number
  /** announcements that could not be published (no subscriber yet: they go out again) */
  publishDeferred: number
  /** jobs this peer holds in the agreement, and jobs running here */
  pending: number
  running: number
  /** finished jobs whose machines still answer laggards */
  lingering: number
}

export interface JobCoordinatorOptions {
  node: PeerNode
  /** signs what this peer sends and passes on only what its authors signed (SigningTransport) */
  transport: Transport
  /** checks the signatures on the proof an alarm carries and on relayed closing statements */
  verifier?: MessageVerifier
  /** the rounds the network layer accepts for each job (the libp2p transport's), kept up to date by the round driver */
  roundWindows?: RoundWindows
  federation: Federation
  /** reads this region's records and series: called for every proposal, so that data imported while the peer runs is used */
  loadData: () => Promise<JobData>
  log: (level: 'debug' | 'info' | 'warn' | 'error', event: string, fields: Record<string, unknown>) => void
  onProgress?: (progress: JobProgress) => void
  /** every job this peer ran to the end, in the order they finish, before the callers waiting for it hear of it */
  onOutput?: (job: string, output: JobOutput) => Promise<void>
  /** ends every running job when aborted (the peer is stopping) */
  signal: AbortSignal
  /** write-ahead journal of every job's inputs, for restarts */
  journal?: JobJournal
  /** the signed round log of every job */
  audit?: AuditService
  /** this region agrees to publish its risk score openly when a forecasting job lists it */
  publishRisk?: boolean
  /** a proposal not started this long after it was first seen expires (default JOB_BOUNDS.startTimeoutMs) */
  startTimeoutMs?: number
  /** the jobs that ended without a result before this start (from the last status.json), oldest first */
  ended?: readonly EndedJob[]
  /** called when a job has ended without a result, or a region's reason was added to one */
  onEnded?: () => void
}

interface Waiter {
  resolve: (output: JobOutput) => void
  reject: (error: unknown) => void
}

interface Lingering {
  job: string
  release: () => void
  timer: NodeJS.Timeout
}

export class JobCoordinator {
  private readonly options: JobCoordinatorOptions
  private readonly agreement: AgreementState<JobProposal>
  /** the data each accepted proposal was checked on, until it starts (what it runs on) or ends */
  private readonly checkedData = new Map<string, JobData>()
  private readonly running = new Map<string, Promise<JobOutput>>()
  private readonly waiters = new Map<string, Set<Waiter>>()
  private readonly lingering: Lingering[] = []
  private readonly auditClosing = new Map<string, Promise<void>>()
  private unsubscribe: (() => void) | null = null
  private timer: NodeJS.Timeout | null = null
  private publishing: Promise<void> = Promise.resolve()
  private stopped = false
  private malformed = 0
  private publishDeferred = 0
  /** jobs that ended without a result, oldest first, at most ENDED_KEPT.jobs */
  private readonly endedJobs = new Map<string, EndedJob>()
  /** the job running here, for status */
  current: JobProgress | null = null

  constructor (options: JobCoordinatorOptions) {
    this.options = options
    this.agreement = createAgreement<JobProposal>({
      self: options.node.peerId,
      members: options.federation.members.map((member) => member.peerId),
      startTimeoutMs: options.startTimeoutMs ?? JOB_BOUNDS.startTimeoutMs
    })
    for (const entry of (options.ended ?? []).slice(-ENDED_KEPT.jobs)) this.endedJobs.set(entry.job, structuredClone(entry))
  }

  /** The jobs that ended here without a result (declined, expired, failed), oldest first. */
  get ended (): EndedJob[] {
    return [...this.endedJobs.values()].map((entry) => structuredClone(entry))
  }

  /** Records why a job ended without a result: one reason per region, bounded in number and length. */
  private noteEnded (job: string, state: EndedJob['state'], region: string, reason: string): void {
    let entry = this.endedJobs.get(job)
    if (entry === undefined) {
      const proposal = this.agreement.jobs.get(job)?.proposal
      entry = { job, kind: proposal === undefined ? null : kindOf(proposal).name, state, at: new Date().toISOString(), reasons: [] }
      this.endedJobs.set(job, entry)
      while (this.endedJobs.size > ENDED_KEPT.jobs) this.endedJobs.delete(this.endedJobs.keys().next().value as string)
    } else if (entry.state !== state && state === 'failed') {
      entry.state = state
    }
    if (entry.reasons.length < ENDED_KEPT.regions && !entry.reasons.some((known) => known.region === region)) {
      entry.reasons.push({ region, reason: excerpt(reason, ENDED_KEPT.reasonChars) })
      this.options.onEnded?.()
    }
  }

  private regionName (peerId: string): string {
    return regionOf(this.options.federation, peerId)
  }

  get stats (): AgreementStats {
    let pending = 0
    for (const job of this.agreement.jobs.values()) if (job.phase !== 'started') pending++
    return { ...this.agreement.counters, malformed: this.malformed, publishDeferred: this.publishDeferred, pending, running: this.running.size, lingering: this.lingering.length }
  }

  start (): void {
    // a member that has just subscribed to the federation's topic hears of the jobs waiting for its
    // answer at once, not at their next repeat (up to 8 s later): peers started together agree sooner
    const { pubsub } = this.options.node
    const topic = this.options.node.announcements.topic
    const onSubscription = (event: CustomEvent<SubscriptionChangeData>): void => {
      if (event.detail.subscriptions.some((entry) => entry.topic === topic && entry.subscribe)) this.input({ type: 'joined', member: event.detail.peerId.toString(), now: Date.now() })
    }
    pubsub.addEventListener('subscription-change', onSubscription)
    const unsubscribeAnnouncements = this.options.node.announcements.subscribe((announcement) => {
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(announcement.data))
      } catch {
        return
      }
      // the topic carries the audit's announcements too: only job announcements are this machine's
      if (typeof json !== 'object' || json === null || typeof (json as { type?: unknown }).type !== 'string' || !(json as { type: string }).type.startsWith('job.')) return
      const parsed = jobAnnouncementSchema.safeParse(json)
      if (!parsed.success) {
        this.malformed++
        this.options.log('debug', 'job.announcement.malformed', { from: announcement.from, issue: excerpt(parsed.error.issues[0]?.message ?? '') })
        return
      }
      // every region's reason is kept, not only the first decline's (which ends the job): an operator
      // learns all that is wrong with a proposal at once
      if (parsed.data.type === 'job.decline' && this.agreement.jobs.get(parsed.data.id)?.phase !== 'started') this.noteEnded(parsed.data.id, 'declined', this.regionName(announcement.from), parsed.data.reason)
      this.input({ type: 'announcement', from: announcement.from, announcement: parsed.data as JobAnnouncement, now: Date.now() })
    })
    this.unsubscribe = () => {
      unsubscribeAnnouncements()
      pubsub.removeEventListener('subscription-change', onSubscription)
    }
  }

  /** Stops answering and releases everything held; callers still waiting for a job get ABORTED. */
  stop (): void {
    if (this.stopped) return
    this.stopped = true
    this.unsubscribe?.()
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    for (const entry of this.lingering.splice(0)) {
      clearTimeout(entry.timer)
      entry.release()
    }
    this.checkedData.clear()
    for (const [job, list] of this.waiters) for (const waiter of list) waiter.reject(new AbortedError(`the peer stopped before job ${job} ended`))
    this.waiters.clear()
  }

  /**
   * Proposes a job to the federation and resolves with this peer's output when it has run. Aborting
   * `signal` stops the wait (ABORTED) and withdraws the proposal if it has not started (the others
   * learn it as a decline); a started job runs on.
   */
  async propose (proposal: JobProposal, { signal }: { signal?: AbortSignal } = {}): Promise<JobOutput> {
    if (this.stopped) throw new AbortedError('the peer has stopped')
    const done = this.waitFor(proposal.id, { signal })
    const onAbort = (): void => { this.withdraw(proposal.id, 'withdrawn by its proposer') }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      this.input({ type: 'propose', proposal, now: Date.now() })
      return await done
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Resolves with this peer's output of a job when it has run here; ABORTED when `signal` is aborted or the peer stops. */
  async waitFor (id: string, { signal }: { signal?: AbortSignal } = {}): Promise<JobOutput> {
    if (this.stopped) throw new AbortedError('the peer has stopped')
    if (signal?.aborted === true) throw new AbortedError(`stopped waiting for job ${id}`, { cause: signal.reason })
    return await new Promise<JobOutput>((resolve, reject) => {
      const list = this.waiters.get(id) ?? new Set<Waiter>()
      const onAbort = (): void => {
        list.delete(waiter)
        if (list.size === 0) this.waiters.delete(id)
        reject(new AbortedError(`stopped waiting for job ${id}`, { cause: signal?.reason }))
      }
      const waiter: Waiter = {
        resolve: (output) => { signal?.removeEventListener('abort', onAbort); resolve(output) },
        reject: (error) => { signal?.removeEventListener('abort', onAbort); reject(error) }
      }
      list.add(waiter)
      this.waiters.set(id, list)
      signal?.addEventListener('abort', onAbort, { once: true })
    })
  }

  /** Gives a job up here: a waiting one is declined with `reason` (the others learn at once), a started one is forgotten by the agreement. */
  withdraw (id: string, reason: string): void {
    if (this.stopped) return
    this.input({ type: 'abort', job: id, reason, now: Date.now() })
  }

  /** Resolves when the audit log of a job that ran here is closed and written (at once without one). */
  async auditClosed (id: string): Promise<void> {
    await this.auditClosing.get(id)
  }

  /** Resumes a job this peer had begun before it stopped: replays its journal, then goes on live. */
  async resume (id: string): Promise<JobOutput | null> {
    const saved = await this.options.journal?.load(id)
    if (saved === undefined || saved === null) return null
    const data = await this.options.loadData()
    this.options.log('info', 'job.resume', { job: id, inputs: saved.inputs.length })
    const output = await this.execute(saved.proposal, data, { seed: saved.seed, inputs: saved.inputs })
    await this.options.onOutput?.(id, output)
    await this.options.journal?.finish(id)
    return output
  }

  // -- the agreement machine's shell --------------------------------------------------------------

  private input (input: AgreementInput<JobProposal>): void {
    if (this.stopped) return
    let step: AgreementStep<JobProposal>
    try {
      step = stepAgreement(this.agreement, input)
    } catch (error) {
      // the only throw is a proposal in another's name, which this peer never makes
      this.options.log('error', 'job.agreement.refused', { reason: excerpt((error as Error).message, 300) })
      if (input.type === 'propose') this.settle(input.proposal.id, new JobRefusedError((error as Error).message))
      return
    }
    for (const record of step.log) this.logRecord(record)
    for (const announcement of step.outbox) this.publish(announcement)
    for (const effect of step.effects) this.effect(effect)
    this.schedule()
  }

  private logRecord (record: LogRecord): void {
    const fields: Record<string, unknown> = { ...record.fields }
    if (typeof fields.by === 'string') fields.by = regionOf(this.options.federation, fields.by)
    if (typeof fields.from === 'string') fields.from = regionOf(this.options.federation, fields.from)
    if (Array.isArray(fields.waitingFor)) fields.waitingFor = (fields.waitingFor as unknown[]).map((peer) => regionOf(this.options.federation, String(peer)))
    this.options.log(record.level, record.event, fields)
  }

  /** The machine's timer: a tick when its next repeat or expiry falls due. */
  private schedule (): void {
    if (this.stopped) return
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    const wake = nextWake(this.agreement)
    if (wake === null) return
    this.timer = setTimeout(() => {
      this.timer = null
      this.input({ type: 'tick', now: Date.now() })
    }, Math.max(0, wake - Date.now()))
  }

  /** Announcements go out one at a time, in the machine's order. */
  private publish (announcement: JobAnnouncement): void {
    this.publishing = this.publishing.then(async () => {
      if (this.stopped) return
      try {
        await this.options.node.announcements.publishJson(announcement)
      } catch (error) {
        // no subscriber yet: the machine repeats it
        this.publishDeferred++
        this.options.log('debug', 'job.publish.deferred', { type: announcement.type, id: announcement.id, reason: excerpt((error as Error).message, 200) })
      }
    })
  }

  private effect (effect: AgreementEffect<JobProposal>): void {
    switch (effect.type) {
      case 'check':
        void this.check(effect.proposal)
        break
      case 'start':
        this.begin(effect.proposal)
        break
      case 'refused': {
        this.checkedData.delete(effect.job)
        const by = effect.by === this.options.node.peerId ? 'here' : `by ${regionOf(this.options.federation, effect.by)}`
        this.noteEnded(effect.job, 'declined', this.regionName(effect.by), effect.reason)
        this.settle(effect.job, new JobRefusedError(`job ${effect.job} declined ${by}: ${excerpt(effect.reason, 300)}`))
        break
      }
      case 'expired': {
        this.checkedData.delete(effect.job)
        const waiting = effect.waitingFor.map((peer) => regionOf(this.options.federation, peer))
        for (const region of waiting) this.noteEnded(effect.job, 'expired', region, `no answer within ${Math.round(effect.afterMs / 1000)} s of the proposal`)
        this.settle(effect.job, new JobExpiredError(`job ${effect.job} did not start within ${Math.round(effect.afterMs / 1000)} s of its proposal; no answer from ${waiting.join(', ')}`))
        break
      }
    }
  }

  /** Checks a proposal against this region's data (read now) and policy; the machine gets the verdict. */
  private async check (proposal: JobProposal): Promise<void> {
    let reason: string | null
    let data: JobData | null = null
    try {
      data = await this.options.loadData()
      reason = kindOf(proposal).check(proposal, data, { federation: this.options.federation, peerId: this.options.node.peerId, publishRisk: this.options.publishRisk === true })
    } catch (error) {
      reason = `cannot read this region's store: ${excerpt((error as Error).message, 300)}`
    }
    if (this.stopped) return
    // this region's own reason is kept even when another's decline ended the job before this check did
    if (reason !== null) this.noteEnded(proposal.id, 'declined', this.regionName(this.options.node.peerId), reason)
    if (reason === null && data !== null) this.checkedData.set(proposal.id, data)
    this.input({ type: 'checked', job: proposal.id, verdict: reason === null ? { accept: true } : { accept: false, reason }, now: Date.now() })
    // given up or expired while the check ran: the machine dropped it, so are its data
    if (this.agreement.jobs.get(proposal.id)?.phase !== 'pending') this.checkedData.delete(proposal.id)
  }

  /** Every member accepted: the job runs on the data this region checked it on. */
  private begin (proposal: JobProposal): void {
    const data = this.checkedData.get(proposal.id)
    this.checkedData.delete(proposal.id)
    if (data === undefined) {
      // cannot happen: the machine starts a job only after this member's accept, which follows its check
      this.options.log('error', 'job.start.nodata', { job: proposal.id })
      this.withdraw(proposal.id, 'this region lost its data for the job')
      return
    }
    const running = this.execute(proposal, data)
    this.running.set(proposal.id, running)
    running
      .then(async (output) => {
        await this.options.onOutput?.(proposal.id, output)
        // kept: the result; the journal's inputs and mask seed are no longer needed
        await this.options.journal?.finish(proposal.id)
        return output
      })
      .then((output) => { this.settle(proposal.id, null, output) }, (error: unknown) => {
        if (!this.stopped) this.noteEnded(proposal.id, 'failed', this.regionName(this.options.node.peerId), error instanceof EpimeshError ? `${error.message} [${error.code}]` : (error as Error).message)
        this.settle(proposal.id, error)
      })
      .finally(() => {
        this.running.delete(proposal.id)
        this.input({ type: 'finished', job: proposal.id, now: Date.now() })
      })
  }

  private settle (id: string, error: unknown, output?: JobOutput): void {
    const list = this.waiters.get(id)
    if (list === undefined) return
    this.waiters.delete(id)
    for (const waiter of list) {
      if (output !== undefined) waiter.resolve(output)
      else waiter.reject(error)
    }
  }

  // -- running a job --------------------------------------------------------------------------------

  private async execute (proposal: JobProposal, data: JobData, resumed?: { seed: Uint8Array, inputs: MachineInput[] }): Promise<JobOutput> {
    const { federation, node, journal } = this.options
    const seed = resumed?.seed ?? newSeed()
    if (resumed === undefined) await journal?.begin(proposal, seed)
    const graph = federationGraph(federation)
    const kind = kindOf(proposal)
    const output = await kind.plan(proposal, data, {
      federation,
      peerId: node.peerId,
      publishRisk: this.options.publishRisk === true,
      graph,
      self: graph.names.indexOf(node.peerId),
      verifier: this.options.verifier ?? null,
      recordVectors: this.options.audit !== undefined,
      rng: createSecureRng(seed)
    }, async (plan) => await this.drive(proposal, plan, resumed))
    return output
  }

  /**
   * Runs a job's machine over the transport: inputs journalled before each step, a restart replayed
   * from the journal, every step recorded in the audit log, progress reported.
   */
  private async drive<R> (proposal: JobProposal, plan: JobPlan<R>, resumed: { inputs: MachineInput[] } | undefined): Promise<JobOutput> {
    const { journal } = this.options
    this.options.log('info', 'job.start', { job: proposal.id, ...plan.startFields })
    const audit = this.options.audit?.begin(proposal.id, plan.state, plan.params, plan.spec)
    // the first round done here, once: how long a job takes to get going (scripts/bench-startup.ts)
    let firstRound = false
    let driving
    try {
      driving = await driveRounds<JobState<R>, R>({
      protocol: plan.protocol,
      state: plan.state,
      transport: this.options.transport,
      ...(this.options.roundWindows === undefined ? {} : { rounds: this.options.roundWindows.track(proposal.id) }),
      roundDeadlineMs: proposal.model.roundDeadlineMs,
      maxStalledDeadlines: stalledDeadlines(proposal.model.dropAfterRounds),
      signal: this.options.signal,
      ...(journal === undefined ? {} : { persist: async (input: MachineInput) => { await journal.append(proposal.id, input) } }),
      ...(resumed === undefined ? {} : { replay: resumed.inputs }),
      onStep: async (current, outbox, log: readonly LogRecord[], input, replaying) => {
        await audit?.observe(current, outbox, log, input)
        if (replaying) return
        for (const record of log) if (record.level !== 'debug') this.options.log(record.level, record.event, record.fields)
        this.current = plan.progress(current)
        if (!firstRound && this.current.jobRound >= 1) {
          firstRound = true
          this.options.log('info', 'job.round.first', { job: proposal.id, phase: this.current.phase })
        }
        this.options.onProgress?.(this.current)
      }
      })
    } catch (error) {
      if (this.current?.job === proposal.id) this.current = { ...this.current, state: 'failed' }
      throw error
    }
    const driven = driving
    const finished = plan.finish(driven.result, driven.state)
    if (audit !== undefined) this.auditClosing.set(proposal.id, audit.finish(finished.final, proposal.model.roundDeadlineMs))
    this.options.log('info', 'job.done', { job: proposal.id, deadlines: driven.deadlines, ...finished.fields })
    if (this.current?.job === proposal.id) this.current = { ...this.current, state: 'finished' }
    this.linger(proposal, plan, driven.state, audit)
    return finished.output
  }

  /**
   * A finished job still answers neighbours that have not finished its last phase, for a bounded
   * time (LINGER) and only for the last few jobs; its audit log records those answers until it
   * closes. Then the machine and the region's data it holds are released.
   */
  private linger<R> (proposal: JobProposal, plan: JobPlan<R>, finished: JobState<R>, audit: JobAudit<JobState<R>> | undefined): void {
    if (this.stopped) return
    const { transport } = this.options
    const job = proposal.id
    const unsubscribe = transport.onMessage((message) => {
      if (message.job !== job) return
      const stepped = plan.protocol.step(finished, { type: 'message', message })
      void audit?.observe(finished, stepped.outbox, stepped.log, { type: 'message', message })
      for (const reply of stepped.outbox) {
        void (reply.to === undefined ? transport.broadcast(reply) : transport.send(reply.to, reply)).catch(() => {})
      }
    })
    const release = (): void => {
      unsubscribe()
      const index = this.lingering.findIndex((entry) => entry.job === job)
      if (index >= 0) this.lingering.splice(index, 1)
      // the audit's entry for the closing has the result; the map keeps nothing else of the job
      void this.auditClosing.get(job)?.finally(() => { this.auditClosing.delete(job) }).catch(() => {})
    }
    const ms = Math.max(LINGER.minimumMs, LINGER.roundDeadlines * proposal.model.roundDeadlineMs)
    const timer = setTimeout(release, ms)
    timer.unref()
    this.lingering.push({ job, release, timer })
    while (this.lingering.length > LINGER.jobs) {
      const oldest = this.lingering[0] as Lingering
      clearTimeout(oldest.timer)
      oldest.release()
    }
  }
}

/**
 * Deadlines a job waits in one round before it fails (JOB_STALLED): an exact sum cannot skip a peer
 * that left, so rather than wait forever the job ends with where it stood. Consensus-ADMM rounds never
 * stall (they skip silent neighbours); this bounds the sums.
 */
export function stalledDeadlines (dropAfterRounds: number): number {
  return Math.max(30, 3 * dropAfterRounds)
}

export { JobRefusedError }
