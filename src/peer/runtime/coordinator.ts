import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobResult, type FitProgress } from '../../consensus/jobs/fit-job.ts'
import { createForecastJobState, forecastJobProtocol, type ForecastJobResult } from '../../consensus/jobs/forecast-job.ts'
import { jobPosition, jobRound, type JobState } from '../../consensus/jobs/job.ts'
import { jointRiskGraph } from '../../consensus/protocols/joint-risk.ts'
import { parseForecastProposal, regionSeries } from './forecast-proposal.ts'
import { diameter, graphFromEdges, type Graph } from '../../consensus/graph.ts'
import type { LogRecord, MachineInput, Protocol } from '../../consensus/machine.ts'
import { buildDesign, INTERCEPT, termNames, type DataBlock, type FeatureSpec, type ModelSpec } from '../../learning/design.ts'
import { EpimeshError } from '../../errors.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import type { Cell } from '../data/dataset.ts'
import type { Federation, ModelSpec as FederationModel } from '../federation.ts'
import { jobAnnouncementSchema, type JobAnnouncement, type JobProposal } from './proposal.ts'
import { JOB_BOUNDS } from '../job-bounds.ts'
import { excerpt } from '../../consensus/ids.ts'
import type { Transport } from '../../consensus/types.ts'
import type { MessageVerifier } from '../../consensus/audit/evidence.ts'
import type { RoundWindows } from '../net/round-window.ts'
import type { PeerNode } from '../net/node.ts'
import { driveRounds, type RoundDriverResult } from './round-driver.ts'
import type { JobJournal } from './journal.ts'
import type { AuditService, JobAudit } from '../audit/service.ts'
import { createSecureRng, newSeed } from './secure-rng.ts'

/**
 * Jobs without a coordinator. Any member proposes a job on the federation's announcement topic; each
 * member checks it against its own disclosure policy and answers accept or decline (with the reason);
 * when every member has accepted, all start round 0 of the same job. Announcements are signed by
 * gossipsub (StrictSign) and repeated until the job starts, since a member that joins late never sees
 * what was published before it subscribed.
 */
export class JobRefusedError extends EpimeshError {
  static override readonly name = 'JobRefusedError'
  constructor (message: string, options?: { cause?: unknown }) { super('JOB_REFUSED', message, options) }
}

/** A job that was proposed and never started (a member left, or a proposal nobody else saw) expires. */
export class JobExpiredError extends EpimeshError {
  static override readonly name = 'JobExpiredError'
  constructor (message: string) { super('JOB_EXPIRED', message) }
}

/** Limits on what one member's proposals can make every other member hold and repeat. */
export const AGREEMENT_LIMITS = Object.freeze({
  /** proposals of one member waiting to start at once; more are ignored (and counted) */
  pendingPerMember: 4,
  /** proposals waiting to start, all members together */
  pending: 32,
  /** ids remembered after a job ends, expires or is refused, so that repeats of it are not answered again */
  remembered: 10_000,
  /** answers and proposals are repeated with this first interval, doubling up to the cap, until the job starts or expires */
  repeatFirstMs: 1_000,
  repeatMaxMs: 8_000
})

export interface AgreementStats {
  proposalsSeen: number
  /** proposals ignored: over a member's or the federation's pending limit, or a proposer that is not the author */
  proposalsIgnored: number
  /** announcements that did not match the schema */
  malformed: number
  expired: number
  announcementsPublished: number
}

/** DataSHIELD's default disclosure control: at least 3 cases of each outcome, parameters at most 0.33 x rows. */
export const DISCLOSURE = Object.freeze({ minimumPerOutcome: 3, maximumParameterRatio: 0.33 })

const POSITIVE = new Set(['1', 'yes', 'true', 'y', 't', 'positive'])
const NEGATIVE = new Set(['0', 'no', 'false', 'n', 'f', 'negative'])

export function learningSpec (model: FederationModel): ModelSpec {
  const features: FeatureSpec[] = model.features.map((feature) => {
    if (feature.type !== 'categorical') return { name: feature.name, type: 'numeric' }
    if (feature.levels === undefined || feature.levels.length < 2) throw new JobRefusedError(`feature ${feature.name} is categorical but the job lists no levels; every peer must code it the same way`)
    return { name: feature.name, type: 'categorical', levels: feature.levels }
  })
  return { outcome: model.outcome, features }
}

/** The peer's rows as a design block for the job's model: complete cases, outcome coded 0/1. */
export function localDesign (rows: ReadonlyArray<Record<string, Cell>>, model: FederationModel): { block: DataBlock, terms: string[], dropped: number } {
  const spec = learningSpec(model)
  const used = [model.outcome, ...model.features.map((feature) => feature.name)]
  const complete = rows.filter((row) => used.every((column) => row[column] !== null && row[column] !== undefined && row[column] !== ''))
  const coded = complete.map((row) => {
    const outcome = row[model.outcome]
    if (model.family !== 'binomial' || typeof outcome === 'number') return row
    const lower = String(outcome).toLowerCase()
    return { ...row, [model.outcome]: POSITIVE.has(lower) ? 1 : NEGATIVE.has(lower) ? 0 : Number.NaN }
  })
  const block = buildDesign(coded, spec, { outcome: model.family === 'binomial' ? 'binary' : 'count' })
  return { block, terms: termNames(spec), dropped: rows.length - complete.length }
}

/** A reason to decline, or null to accept. */
export function disclosureCheck (block: DataBlock, model: FederationModel): string | null {
  if (model.family === 'binomial') {
    let positives = 0
    for (let row = 0; row < block.rows; row++) positives += block.y[row] as number
    const negatives = block.rows - positives
    if (positives < DISCLOSURE.minimumPerOutcome || negatives < DISCLOSURE.minimumPerOutcome) {
      return `disclosure control: fewer than ${DISCLOSURE.minimumPerOutcome} cases of one outcome in this region`
    }
  }
  if (block.cols > DISCLOSURE.maximumParameterRatio * block.rows) {
    return `disclosure control: ${block.cols} parameters for ${block.rows} rows (at most ${DISCLOSURE.maximumParameterRatio} x rows)`
  }
  return null
}

/**
 * Deadlines a job waits in one round before it fails (JOB_STALLED): an exact sum cannot skip a peer
 * that left, so rather than wait forever the job ends with where it stood. Consensus-ADMM rounds never
 * stall (they skip silent neighbours); this bounds the sums.
 */
export function stalledDeadlines (dropAfterRounds: number): number {
  return Math.max(30, 3 * dropAfterRounds)
}

/** The federation's graph over peer ids, in member order: the same on every peer. */
export function federationGraph (federation: Federation): Graph {
  const byRegion = new Map(federation.members.map((member) => [member.region, member.peerId]))
  return graphFromEdges(federation.members.map((member) => member.peerId), federation.edges.map(([a, b]) => [byRegion.get(a) as string, byRegion.get(b) as string]))
}

/** Where a running job stands, for status: its phase, its round, and ADMM's residuals while it runs. */
function jobProgress<R> (job: string, state: JobState<R>, fit: FitProgress): JobProgress {
  const position = jobPosition(state)
  const admm = (position.phase === 'admm' || position.phase === 'admm2') ? fit.admmState : null
  return { job, phase: position.phase, round: jobRound(state), ...(admm === null ? {} : { primalResidual: admm.primalResidual, dualResidual: admm.dualResidual }) }
}

export interface JobProgress {
  job: string
  phase: string
  round: number
  primalResidual?: number
  dualResidual?: number
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
  /** every job this peer ran to the end, in the order they finish */
  onResult?: (job: string, result: FitJobResult) => Promise<void>
  signal: AbortSignal
  /** how often proposals and answers are repeated until the job starts */
  repeatMs?: number
  /** write-ahead journal of every job's inputs, for restarts */
  journal?: JobJournal
  /** the signed round log of every job */
  audit?: AuditService
  /** this region agrees to publish its risk score openly when a forecasting job lists it */
  publishRisk?: boolean
  /** every forecasting job this peer ran to the end: its own forecast, h and the joint risk */
  onForecast?: (job: string, result: ForecastJobResult) => Promise<void>
}

interface JobRecord {
  proposal: JobProposal
  answers: Map<string, { accept: boolean, reason?: string }>
  myAnswer: JobAnnouncement | null
  started: boolean
  result: Promise<FitJobResult> | null
  /** this region's data as read from its store when the proposal arrived: what it answered on and runs on */
  data: JobData | null
  firstSeen: number
  nextRepeat: number
  repeatInterval: number
  /** declined here or by another member: repeated a few times so that everyone learns, then forgotten */
  refused: boolean
}

/** A region's records and series, read afresh from its store for every job. */
export interface JobData {
  rows: ReadonlyArray<Record<string, Cell>>
  series: ReadonlyArray<{ date: string, count: number, population?: number }>
}

export class JobCoordinator {
  private readonly jobs = new Map<string, JobRecord>()
  private readonly options: JobCoordinatorOptions
  private unsubscribe: (() => void) | null = null
  private readonly lingering: Array<() => void> = []
  private repeater: NodeJS.Timeout | null = null
  private readonly waiters = new Map<string, Array<{ resolve: (result: FitJobResult) => void, reject: (error: unknown) => void }>>()
  current: JobProgress | null = null
  private readonly auditClosing = new Map<string, Promise<void>>()

  /** Resolves when the audit log of a job that ran here is closed and written (at once without one). */
  async auditClosed (id: string): Promise<void> {
    await this.auditClosing.get(id)
  }

  constructor (options: JobCoordinatorOptions) {
    this.options = options
  }

  start (): void {
    this.unsubscribe = this.options.node.announcements.subscribe((announcement) => {
      let json: unknown
      try {
        json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(announcement.data))
      } catch {
        return
      }
      if (typeof json !== 'object' || json === null || typeof (json as { type?: unknown }).type !== 'string' || !(json as { type: string }).type.startsWith('job.')) return
      const parsed = jobAnnouncementSchema.safeParse(json)
      if (!parsed.success) {
        this.stats.malformed++
        this.options.log('debug', 'job.announcement.malformed', { from: announcement.from, issue: excerpt(parsed.error.issues[0]?.message ?? '') })
        return
      }
      this.receive(announcement.from, parsed.data as JobAnnouncement)
    })
    this.repeater = setInterval(() => { void this.repeat() }, Math.min(this.options.repeatMs ?? 250, 250))
  }

  readonly stats: AgreementStats = { proposalsSeen: 0, proposalsIgnored: 0, malformed: 0, expired: 0, announcementsPublished: 0 }
  /** ids of jobs that ended, expired or were refused: repeats of them are not answered again */
  private readonly forgotten = new Set<string>()

  private forget (id: string): void {
    this.jobs.delete(id)
    this.forgotten.add(id)
    if (this.forgotten.size > AGREEMENT_LIMITS.remembered) {
      const oldest = this.forgotten.values().next().value
      if (oldest !== undefined) this.forgotten.delete(oldest)
    }
  }

  private pendingCount (proposer?: string): number {
    let count = 0
    for (const record of this.jobs.values()) if (!record.started && (proposer === undefined || record.proposal.proposer === proposer)) count++
    return count
  }

  stop (): void {
    for (const release of this.lingering.splice(0)) release()
    this.unsubscribe?.()
    if (this.repeater !== null) clearInterval(this.repeater)
  }

  /** Proposes a job to the federation and resolves with this peer's result when it has run. */
  async propose (proposal: JobProposal): Promise<FitJobResult> {
    const done = this.waitFor(proposal.id)
    this.receive(this.options.node.peerId, proposal)
    await this.publish(proposal)
    return await done
  }

  waitFor (id: string): Promise<FitJobResult> {
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(id) ?? []
      list.push({ resolve, reject })
      this.waiters.set(id, list)
    })
  }

  private async publish (value: JobAnnouncement): Promise<void> {
    try {
      await this.options.node.announcements.publishJson(value)
      this.stats.announcementsPublished++
    } catch (error) {
      // no subscriber yet: the repeater publishes it again
      this.options.log('debug', 'job.publish.deferred', { type: value.type, id: value.id, reason: (error as Error).message })
    }
  }

  /**
   * Proposals and answers of jobs not started yet go out again, at growing intervals (1 s, 2 s, 4 s,
   * then every 8 s), for members that joined late; a job that has not started after
   * JOB_BOUNDS.startTimeoutMs expires, and a refused one is repeated three times and then forgotten.
   * So every member's announcements stay bounded whatever others propose.
   */
  private async repeat (): Promise<void> {
    const now = Date.now()
    for (const record of [...this.jobs.values()]) {
      if (record.started) continue
      if (now - record.firstSeen > JOB_BOUNDS.startTimeoutMs) {
        this.stats.expired++
        this.options.log('warn', 'job.expired', { job: record.proposal.id, afterMs: now - record.firstSeen, waitingFor: this.options.federation.members.filter((member) => record.answers.get(member.peerId) === undefined).map((member) => member.region) })
        this.forget(record.proposal.id)
        this.settle(record.proposal.id, null, new JobExpiredError(`job ${record.proposal.id} did not start within ${JOB_BOUNDS.startTimeoutMs / 1000} s of its proposal; not every member answered`))
        continue
      }
      if (now < record.nextRepeat) continue
      if (record.refused && record.repeatInterval >= 4 * AGREEMENT_LIMITS.repeatFirstMs) {
        this.forget(record.proposal.id)
        continue
      }
      record.nextRepeat = now + record.repeatInterval
      record.repeatInterval = Math.min(AGREEMENT_LIMITS.repeatMaxMs, 2 * record.repeatInterval)
      if (record.proposal.proposer === this.options.node.peerId) await this.publish(record.proposal)
      if (record.myAnswer !== null) await this.publish(record.myAnswer)
    }
  }

  private receive (from: string, announcement: JobAnnouncement): void {
    if (this.forgotten.has(announcement.id)) return
    if (announcement.type === 'job.propose') {
      if (this.jobs.has(announcement.id)) return
      this.stats.proposalsSeen++
      const self = from === this.options.node.peerId
      // A member proposes only in its own name, and cannot make the others hold more than a few of its
      // proposals at once.
      if (announcement.proposer !== from || (!self && (this.pendingCount(from) >= AGREEMENT_LIMITS.pendingPerMember || this.pendingCount() >= AGREEMENT_LIMITS.pending))) {
        this.stats.proposalsIgnored++
        this.options.log('debug', 'job.proposal.ignored', { job: announcement.id, from, reason: announcement.proposer !== from ? 'proposer is not the author' : 'too many pending proposals' })
        return
      }
      const now = Date.now()
      const record: JobRecord = { proposal: announcement, answers: new Map(), myAnswer: null, started: false, result: null, data: null, firstSeen: now, nextRepeat: now + AGREEMENT_LIMITS.repeatFirstMs, repeatInterval: AGREEMENT_LIMITS.repeatFirstMs, refused: false }
      this.jobs.set(announcement.id, record)
      void this.answer(record)
      return
    }
    const record = this.jobs.get(announcement.id)
    if (record === undefined || record.started) return
    if (!this.options.federation.members.some((member) => member.peerId === from)) return
    if (announcement.type === 'job.accept') record.answers.set(from, { accept: true })
    else if (announcement.type === 'job.decline') {
      if (record.answers.get(from)?.accept === false) return
      record.answers.set(from, { accept: false, reason: announcement.reason })
      record.refused = true
      this.options.log('warn', 'job.declined', { job: announcement.id, by: from, reason: excerpt(announcement.reason, 200) })
      this.settle(announcement.id, null, new JobRefusedError(`job ${announcement.id} declined by ${from}: ${excerpt(announcement.reason, 200)}`))
    }
    this.maybeStart(record)
  }

  private async answer (record: JobRecord): Promise<void> {
    const { proposal } = record
    let reason: string | null
    try {
      record.data = await this.options.loadData()
    } catch (error) {
      record.data = null
      reason = `cannot read this region's store: ${(error as Error).message}`
    }
    if (record.data === null) {
      reason ??= 'cannot read this region\'s store'
    } else if (proposal.forecast !== undefined) {
      reason = this.forecastCheck(proposal, record.data)
    } else {
      try {
        const { block } = localDesign(record.data.rows, proposal.model)
        reason = disclosureCheck(block, proposal.model)
      } catch (error) {
        reason = `cannot build the model from this region's data: ${(error as Error).message}`
      }
    }
    if (this.jobs.get(proposal.id) !== record) return
    record.myAnswer = reason === null ? { type: 'job.accept', id: proposal.id } : { type: 'job.decline', id: proposal.id, reason }
    record.answers.set(this.options.node.peerId, reason === null ? { accept: true } : { accept: false, reason })
    if (reason !== null) record.refused = true
    this.options.log(reason === null ? 'info' : 'warn', reason === null ? 'job.accepted' : 'job.declined', { job: proposal.id, ...(reason === null ? {} : { reason }) })
    void this.publish(record.myAnswer)
    if (reason !== null) this.settle(proposal.id, null, new JobRefusedError(`job ${proposal.id} declined here: ${reason}`))
    this.maybeStart(record)
  }

  /** A reason to decline a forecasting job, or null to accept. */
  private forecastCheck (proposal: JobProposal, data: JobData): string | null {
    let plan
    try {
      plan = parseForecastProposal(proposal.forecast)
    } catch (error) {
      return (error as Error).message
    }
    const series = regionSeries(plan, data.series)
    if (typeof series === 'string') return series
    const graph = federationGraph(this.options.federation)
    // The joint risk's masked sum hides a region's h only from a peer that lacks one of its masks: a
    // region with a single neighbour would show its h to that neighbour.
    const augmented = jointRiskGraph(graph)
    const exposed = graph.names.filter((_, node) => (graph.neighbours[node] ?? []).length < 2 || (augmented.neighbours[node] ?? []).length !== (graph.neighbours[node] ?? []).length)
    if (exposed.length > 0) {
      const regions = exposed.map((peer) => this.options.federation.members.find((member) => member.peerId === peer)?.region ?? peer)
      return `the joint risk needs every region to have at least two graph neighbours (${regions.join(', ')} ${regions.length === 1 ? 'has' : 'have'} one): add an edge to the federation's graph, or set graph.maskPartners to true in the federation file`
    }
    const me = this.options.federation.members.find((member) => member.peerId === this.options.node.peerId)?.region
    const known = new Set(this.options.federation.members.map((member) => member.region))
    const unknown = plan.proposal.openRegions.filter((region) => !known.has(region))
    if (unknown.length > 0) return `the job lists regions that are not members as publishing their risk: ${unknown.join(', ')}`
    if (me !== undefined && plan.proposal.openRegions.includes(me) && this.options.publishRisk !== true) return 'the job lists this region as publishing its risk score openly, and this region does not agree to (start --publish-risk)'
    if (plan.proposal.openRegions.length === known.size - 1) return 'the job lists all regions but one as publishing their risk: the joint risk would give away the last one\'s'
    return null
  }

  private maybeStart (record: JobRecord): void {
    if (record.started || record.data === null || record.refused) return
    const members = this.options.federation.members.map((member) => member.peerId)
    if (!members.every((peer) => record.answers.get(peer)?.accept === true)) return
    record.started = true
    // Answers keep going out a little longer for members that have not seen them all yet.
    const lastAnswer = record.myAnswer
    if (lastAnswer !== null) setTimeout(() => { void this.publish(lastAnswer) }, 500)
    record.result = this.run(record.proposal, record.data)
    record.result
      .then(async (result) => { await this.options.onResult?.(record.proposal.id, result); return result })
      .then((result) => { this.settle(record.proposal.id, result, null) }, (error: unknown) => { this.settle(record.proposal.id, null, error) })
  }

  private settle (id: string, result: FitJobResult | null, error: unknown): void {
    const list = this.waiters.get(id) ?? []
    this.waiters.delete(id)
    for (const waiter of list) {
      if (result !== null) waiter.resolve(result)
      else waiter.reject(error)
    }
  }

  /** Resumes a job this peer had begun before it stopped: replays its journal, then goes on live. */
  async resume (id: string): Promise<FitJobResult | null> {
    const saved = await this.options.journal?.load(id)
    if (saved === undefined || saved === null) return null
    const data = await this.options.loadData()
    const now = Date.now()
    const record: JobRecord = { proposal: saved.proposal, answers: new Map(), myAnswer: null, started: true, result: null, data, firstSeen: now, nextRepeat: now, repeatInterval: AGREEMENT_LIMITS.repeatFirstMs, refused: false }
    this.jobs.set(id, record)
    this.options.log('info', 'job.resume', { job: id, inputs: saved.inputs.length })
    record.result = this.run(saved.proposal, data, { seed: saved.seed, inputs: saved.inputs })
    const result = await record.result
    await this.options.onResult?.(id, result)
    return result
  }

  private async run (proposal: JobProposal, data: JobData, resumed?: { seed: Uint8Array, inputs: MachineInput[] }): Promise<FitJobResult> {
    if (proposal.forecast !== undefined) return await this.runForecast(proposal, data, resumed)
    const { federation, node } = this.options
    const seed = resumed?.seed ?? newSeed()
    const journal = this.options.journal
    if (resumed === undefined) await journal?.begin(proposal, seed)
    const model = proposal.model
    const { block, terms } = localDesign(data.rows, model)
    const graph = federationGraph(federation)
    const self = graph.names.indexOf(node.peerId)
    const params = createFitJobParams({
      algorithm: model.algorithm,
      lambda: model.lambda,
      tolerance: model.tolerance,
      maxRounds: model.maxRounds,
      dropAfterRounds: model.dropAfterRounds,
      ...(model.clip === undefined ? {} : { clip: model.clip }),
      recordVectors: this.options.audit !== undefined
    })
    const state = createFitJobState({
      job: proposal.id,
      graph,
      self,
      diameter: diameter(graph),
      problem: createGlmProblem({ family: model.family, block, terms, interceptColumn: terms.indexOf(INTERCEPT) >= 0 ? terms.indexOf(INTERCEPT) : null }),
      params,
      rng: createSecureRng(seed),
      verifier: this.options.verifier ?? null
    })
    this.options.log('info', 'job.start', { job: proposal.id, peers: graph.names.length, rows: block.rows, algorithm: model.algorithm })
    const audit = this.options.audit?.begin(proposal.id, state, params, { ...model })
    const driven = await this.drive(proposal, fitJobProtocol, state, resumed, audit, (current) => jobProgress(proposal.id, current, current.fit))
    if (audit !== undefined) this.auditClosing.set(proposal.id, audit.finish(driven.result, params, model.roundDeadlineMs))
    this.options.log('info', 'job.done', { job: proposal.id, rounds: driven.result.rounds, deadlines: driven.deadlines, converged: driven.result.converged })
    this.linger(proposal.id, fitJobProtocol, driven.state, audit)
    return driven.result
  }

  /**
   * Runs a job's machine over the transport: inputs journalled before each step, a restart replayed
   * from the journal, every step recorded in the audit log, progress reported.
   */
  private async drive<S, R> (proposal: JobProposal, protocol: Protocol<S, R>, state: S, resumed: { inputs: MachineInput[] } | undefined, audit: JobAudit<S> | undefined, progress: (state: S) => JobProgress): Promise<RoundDriverResult<S, R>> {
    const journal = this.options.journal
    return await driveRounds<S, R>({
      protocol,
      state,
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
        this.current = progress(current)
        this.options.onProgress?.(this.current)
      }
    })
  }

  /**
   * A finished job still answers neighbours that have not finished its last sum, for as long as the
   * peer runs; its audit log records those answers until it closes.
   */
  private linger<S, R> (job: string, protocol: Protocol<S, R>, finished: S, audit: JobAudit<S> | undefined): void {
    const { transport } = this.options
    this.lingering.push(transport.onMessage((message) => {
      const stepped = protocol.step(finished, { type: 'message', message })
      if (message.job === job) void audit?.observe(finished, stepped.outbox, stepped.log, { type: 'message', message })
      for (const reply of stepped.outbox) {
        void (reply.to === undefined ? transport.broadcast(reply) : transport.send(reply.to, reply)).catch(() => {})
      }
    }))
  }

  /** A forecasting job: the exchange of incidence, the shared Poisson fit, the forecast and h, the joint risk. */
  private async runForecast (proposal: JobProposal, data: JobData, resumed?: { seed: Uint8Array, inputs: MachineInput[] }): Promise<FitJobResult> {
    const { federation, node } = this.options
    const seed = resumed?.seed ?? newSeed()
    const journal = this.options.journal
    if (resumed === undefined) await journal?.begin(proposal, seed)
    const plan = parseForecastProposal(proposal.forecast)
    const series = regionSeries(plan, data.series)
    if (typeof series === 'string') throw new JobRefusedError(series)
    const graph = federationGraph(federation)
    const self = graph.names.indexOf(node.peerId)
    const params = createFitJobParams({
      algorithm: plan.proposal.algorithm,
      tolerance: plan.proposal.tolerance,
      maxRounds: plan.proposal.maxRounds,
      dropAfterRounds: 0,
      recordVectors: this.options.audit !== undefined
    })
    const peerIdOf = new Map(federation.members.map((member) => [member.region, member.peerId]))
    const state = createForecastJobState({
      job: proposal.id,
      graph,
      self,
      diameter: diameter(graph),
      spec: plan.spec,
      counts: series.counts,
      population: series.population,
      start: plan.start,
      horizon: plan.horizon,
      risk: plan.risk,
      openRegions: plan.proposal.openRegions.map((region) => peerIdOf.get(region) as string),
      params,
      rng: createSecureRng(seed),
      verifier: this.options.verifier ?? null
    })
    this.options.log('info', 'job.start', { job: proposal.id, kind: 'forecast', peers: graph.names.length, periods: plan.proposal.periods, algorithm: params.algorithm })
    const audit = this.options.audit?.begin(proposal.id, state, params, { kind: 'forecast', ...plan.proposal })
    const driven = await this.drive(proposal, forecastJobProtocol, state, resumed, audit, (current) => jobProgress(proposal.id, current, current.forecast.fit))
    const result = driven.result
    if (audit !== undefined) this.auditClosing.set(proposal.id, audit.finish(result.fit, params, proposal.model.roundDeadlineMs))
    this.options.log('info', 'job.done', { job: proposal.id, kind: 'forecast', rounds: forecastJobProtocol.round(driven.state), deadlines: driven.deadlines, jointRiskMean: result.joint.mean })
    await this.options.onForecast?.(proposal.id, result)
    this.linger(proposal.id, forecastJobProtocol, driven.state, audit)
    return result.fit
  }
}
