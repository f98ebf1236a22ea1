import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobResult } from '../consensus/fit-job.ts'
import { createForecastJobState, forecastJobPosition, forecastJobProtocol, forecastPhaseOf, forecastPhaseOrdinal, type ForecastJobResult, type ForecastJobState } from '../consensus/forecast-job.ts'
import { jointRiskGraph } from '../consensus/joint-risk.ts'
import { parseForecastProposal, regionSeries, type ForecastProposal } from './forecast-proposal.ts'
import { diameter, graphFromEdges, type Graph } from '../consensus/graph.ts'
import type { LogRecord, MachineInput, Protocol } from '../consensus/machine.ts'
import { buildDesign, INTERCEPT, termNames, type DataBlock, type FeatureSpec, type ModelSpec } from '../learning/design.ts'
import { EpimeshError } from '../learning/errors.ts'
import { createGlmProblem } from '../learning/problem.ts'
import type { Cell } from './dataset.ts'
import type { Federation, ModelSpec as FederationModel } from './federation.ts'
import type { Libp2pTransport } from './libp2p-transport.ts'
import type { PeerNode } from './node.ts'
import { driveRounds, type RoundDriverResult } from './round-driver.ts'
import type { JobJournal } from './journal.ts'
import type { AuditService, JobAudit } from './audit-service.ts'
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

export interface JobProposal {
  type: 'job.propose'
  id: string
  proposer: string
  /** the federation's model, with the proposer's options: the regression a classifier job fits */
  model: FederationModel
  /** present for a regional forecasting job: the periods, model and risk mapping (model gives the round deadline) */
  forecast?: ForecastProposal
}

type JobAnnouncement =
  | JobProposal
  | { type: 'job.accept', id: string }
  | { type: 'job.decline', id: string, reason: string }

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

export interface JobProgress {
  job: string
  phase: string
  round: number
  primalResidual?: number
  dualResidual?: number
}

export interface JobCoordinatorOptions {
  node: PeerNode
  transport: Libp2pTransport
  federation: Federation
  rows: ReadonlyArray<Record<string, Cell>>
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
  /** this region's case-count series, for forecasting jobs */
  series?: ReadonlyArray<{ date: string, count: number, population?: number }>
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
      let parsed: JobAnnouncement
      try {
        parsed = JSON.parse(new TextDecoder().decode(announcement.data)) as JobAnnouncement
      } catch {
        return
      }
      this.receive(announcement.from, parsed)
    })
    this.repeater = setInterval(() => { void this.repeat() }, this.options.repeatMs ?? 1000)
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
    } catch (error) {
      // no subscriber yet: the repeater publishes it again
      this.options.log('debug', 'job.publish.deferred', { type: value.type, id: value.id, reason: (error as Error).message })
    }
  }

  private async repeat (): Promise<void> {
    for (const record of this.jobs.values()) {
      if (record.started) continue
      if (record.proposal.proposer === this.options.node.peerId) await this.publish(record.proposal)
      if (record.myAnswer !== null) await this.publish(record.myAnswer)
    }
  }

  private receive (from: string, announcement: JobAnnouncement): void {
    if (typeof announcement !== 'object' || announcement === null || typeof announcement.id !== 'string') return
    if (announcement.type === 'job.propose') {
      if (this.jobs.has(announcement.id)) return
      const record: JobRecord = { proposal: announcement, answers: new Map(), myAnswer: null, started: false, result: null }
      this.jobs.set(announcement.id, record)
      this.answer(record)
      return
    }
    const record = this.jobs.get(announcement.id)
    if (record === undefined || record.started) return
    if (announcement.type === 'job.accept') record.answers.set(from, { accept: true })
    else if (announcement.type === 'job.decline') {
      record.answers.set(from, { accept: false, reason: String(announcement.reason) })
      this.options.log('warn', 'job.declined', { job: announcement.id, by: from, reason: announcement.reason })
      this.settle(announcement.id, null, new JobRefusedError(`job ${announcement.id} declined by ${from}: ${announcement.reason}`))
    }
    this.maybeStart(record)
  }

  private answer (record: JobRecord): void {
    const { proposal } = record
    let reason: string | null
    if (proposal.forecast !== undefined) {
      reason = this.forecastCheck(proposal)
    } else {
      try {
        const { block } = localDesign(this.options.rows, proposal.model)
        reason = disclosureCheck(block, proposal.model)
      } catch (error) {
        reason = `cannot build the model from this region's data: ${(error as Error).message}`
      }
    }
    record.myAnswer = reason === null ? { type: 'job.accept', id: proposal.id } : { type: 'job.decline', id: proposal.id, reason }
    record.answers.set(this.options.node.peerId, reason === null ? { accept: true } : { accept: false, reason })
    this.options.log(reason === null ? 'info' : 'warn', reason === null ? 'job.accepted' : 'job.declined', { job: proposal.id, ...(reason === null ? {} : { reason }) })
    void this.publish(record.myAnswer)
    if (reason !== null) this.settle(proposal.id, null, new JobRefusedError(`job ${proposal.id} declined here: ${reason}`))
    this.maybeStart(record)
  }

  /** A reason to decline a forecasting job, or null to accept. */
  private forecastCheck (proposal: JobProposal): string | null {
    let plan
    try {
      plan = parseForecastProposal(proposal.forecast)
    } catch (error) {
      return (error as Error).message
    }
    const series = regionSeries(plan, this.options.series ?? [])
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
    if (record.started) return
    const members = this.options.federation.members.map((member) => member.peerId)
    if (!members.every((peer) => record.answers.get(peer)?.accept === true)) return
    record.started = true
    // Answers keep going out a little longer for members that have not seen them all yet.
    const lastAnswer = record.myAnswer
    if (lastAnswer !== null) setTimeout(() => { void this.publish(lastAnswer) }, 500)
    record.result = this.run(record.proposal)
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
    const record: JobRecord = { proposal: saved.proposal, answers: new Map(), myAnswer: null, started: true, result: null }
    this.jobs.set(id, record)
    this.options.log('info', 'job.resume', { job: id, inputs: saved.inputs.length })
    record.result = this.run(saved.proposal, { seed: saved.seed, inputs: saved.inputs })
    const result = await record.result
    await this.options.onResult?.(id, result)
    return result
  }

  private async run (proposal: JobProposal, resumed?: { seed: Uint8Array, inputs: MachineInput[] }): Promise<FitJobResult> {
    if (proposal.forecast !== undefined) return await this.runForecast(proposal, resumed)
    const { federation, node } = this.options
    const seed = resumed?.seed ?? newSeed()
    const journal = this.options.journal
    if (resumed === undefined) await journal?.begin(proposal, seed)
    const model = proposal.model
    const { block, terms } = localDesign(this.options.rows, model)
    const graph = federationGraph(federation)
    const self = graph.names.indexOf(node.peerId)
    const state = createFitJobState({
      job: proposal.id,
      graph,
      self,
      diameter: diameter(graph),
      problem: createGlmProblem({ family: model.family, block, terms, interceptColumn: terms.indexOf(INTERCEPT) >= 0 ? terms.indexOf(INTERCEPT) : null }),
      params: createFitJobParams({
        algorithm: model.algorithm,
        lambda: model.lambda,
        tolerance: model.tolerance,
        maxRounds: model.maxRounds,
        dropAfterRounds: model.dropAfterRounds,
        recordVectors: this.options.audit !== undefined
      }),
      rng: createSecureRng(seed)
    })
    this.options.log('info', 'job.start', { job: proposal.id, peers: graph.names.length, rows: block.rows, algorithm: model.algorithm })
    const audit = this.options.audit?.begin(proposal.id, state, { ...model })
    const driven = await this.drive(proposal, fitJobProtocol, state, resumed, audit, (current) => {
      const phase = current.phase
      return {
        job: proposal.id,
        phase: phase.name === 'admm' ? (phase.stage === 1 ? 'admm' : 'admm2') : phase.name,
        round: fitJobProtocol.round(current),
        ...(phase.name === 'admm' ? { primalResidual: phase.admm.primalResidual, dualResidual: phase.admm.dualResidual } : {})
      }
    })
    if (audit !== undefined) this.auditClosing.set(proposal.id, audit.finish(driven.result, state.peer.params, model.roundDeadlineMs))
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
      rounds: this.options.transport.rounds.track(proposal.id),
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
  private async runForecast (proposal: JobProposal, resumed?: { seed: Uint8Array, inputs: MachineInput[] }): Promise<FitJobResult> {
    const { federation, node } = this.options
    const seed = resumed?.seed ?? newSeed()
    const journal = this.options.journal
    if (resumed === undefined) await journal?.begin(proposal, seed)
    const plan = parseForecastProposal(proposal.forecast)
    const series = regionSeries(plan, this.options.series ?? [])
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
      rng: createSecureRng(seed)
    })
    this.options.log('info', 'job.start', { job: proposal.id, kind: 'forecast', peers: graph.names.length, periods: plan.proposal.periods, algorithm: params.algorithm })
    const audit = this.options.audit?.beginWith<ForecastJobState>(proposal.id, {
      graph, diameter: diameter(graph), params, model: { kind: 'forecast', ...plan.proposal }, phaseOf: forecastPhaseOf, phaseOrdinal: forecastPhaseOrdinal, position: forecastJobPosition
    })
    const driven = await this.drive(proposal, forecastJobProtocol, state, resumed, audit, (current) => {
      const admm = current.phase.name === 'fit' && current.fit?.phase.name === 'admm' ? current.fit.phase.admm : null
      return { job: proposal.id, phase: forecastJobPosition(current).phase, round: forecastJobProtocol.round(current), ...(admm === null ? {} : { primalResidual: admm.primalResidual, dualResidual: admm.dualResidual }) }
    })
    const result = driven.result
    if (audit !== undefined) this.auditClosing.set(proposal.id, audit.finish(result.fit, params, proposal.model.roundDeadlineMs))
    this.options.log('info', 'job.done', { job: proposal.id, kind: 'forecast', rounds: forecastJobProtocol.round(driven.state), deadlines: driven.deadlines, jointRiskMean: result.joint.mean })
    await this.options.onForecast?.(proposal.id, result)
    this.linger(proposal.id, forecastJobProtocol, driven.state, audit)
    return result.fit
  }
}
