import { buildForecastDesign, forecastRegion, incidencePer100k, neighbourMeanIncidence, type ForecastModelSpec, type PeriodForecast, type RegionHistory } from '../../learning/forecast.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import { riskScore, riskHorizon, type RegionRisk, type RiskParams } from '../../learning/risk.ts'
import { NotConvergedError } from '../../learning/errors.ts'
import { createFitJobState, fitJobFailure, fitJobPosition, fitJobProtocol, phaseKey, phaseOrdinal, type FitJobParams, type FitJobResult, type FitJobState } from './fit-job.ts'
import type { MessageVerifier } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import { createJointRisk, jointRiskProtocol, type JointRiskResult, type JointRiskState } from '../protocols/joint-risk.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage, Rng } from '../types.ts'

/**
 * A regional forecasting job on one peer, from its own case-count series to the federation's joint
 * risk, as one machine the real peer and the simulator both run:
 *
 *   1. incidence  each region sends its graph neighbours its incidence per 100,000 over the job's
 *                 periods (the aggregate the neighbour term needs) and waits for theirs;
 *   2. fit        the shared Poisson model of learning/forecast.ts, fitted by the fit job (federated
 *                 standardisation, ADMM or exact Newton, standard errors), each region's rows its own;
 *   3. forecast   each region forecasts its next periods and computes its risk score h, locally;
 *   4. joint risk the sum and mean of h by one exact masked sum (joint-risk.ts): no message carries a
 *                 region's h, and no other region learns it.
 *
 * Its round is 0 during the exchange, then 1 + the fit job's round, then the joint risk's rounds.
 */
export interface ForecastJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  spec: ForecastModelSpec
  /** this region's counts over the job's periods */
  counts: ArrayLike<number>
  population: number
  /** the federation's period index of counts[0] (the season's phase) */
  start: number
  /** periods forecast (at least the risk score's horizon) */
  horizon: number
  risk: RiskParams
  /** regions (graph names) that publish their h openly */
  openRegions: readonly string[]
  params: FitJobParams
  rng: Rng
  /** checks other members' signatures on alarms and closing statements (see FitJobPeer) */
  verifier?: MessageVerifier | null
}

export interface ForecastJobResult {
  fit: FitJobResult
  forecast: PeriodForecast[]
  risk: RegionRisk
  joint: JointRiskResult
  /** periods of this region's series used by the fit */
  rows: number
}

export const INCIDENCE_KIND = 'incidence'
export const JOINT_RISK_KIND = 'joint-risk'

type Phase =
  | { name: 'incidence' }
  | { name: 'fit' }
  | { name: 'risk', risk: JointRiskState }
  | { name: 'done', risk: JointRiskState | null }

export interface ForecastJobState {
  readonly peer: ForecastJobPeer
  phase: Phase
  readonly incidence: Float64Array
  /** neighbours' incidence series, by neighbour slot */
  readonly heard: Array<Float64Array | null>
  /** neighbours whose copy was answered during the exchange */
  readonly answered: boolean[]
  history: RegionHistory | null
  fit: FitJobState | null
  fitRounds: number
  forecast: PeriodForecast[] | null
  risk: RegionRisk | null
  joint: JointRiskResult | null
  pending: ConsensusMessage[]
  rejected: number
}

function kindPhase (kind: string): 'incidence' | 'risk' | 'fit' {
  if (kind === INCIDENCE_KIND) return 'incidence'
  if (kind === JOINT_RISK_KIND || kind.startsWith(`${JOINT_RISK_KIND}.`)) return 'risk'
  return 'fit'
}

/** The phase a message kind belongs to, for the audit log. */
export function forecastPhaseOf (kind: string): string {
  const phase = kindPhase(kind)
  return phase === 'incidence' ? INCIDENCE_KIND : phase === 'risk' ? JOINT_RISK_KIND : phaseKey(kind)
}

/** The order of the phases, for the audit log: the exchange first, the joint risk last. */
export function forecastPhaseOrdinal (phase: string): number {
  if (phase === INCIDENCE_KIND) return -1
  if (phase === JOINT_RISK_KIND) return 3_000_000
  return phaseOrdinal(phase)
}

export function createForecastJobState (peer: ForecastJobPeer): ForecastJobState {
  if (peer.horizon < riskHorizon(peer.risk)) throw new RangeError(`the forecast horizon ${peer.horizon} is shorter than the risk score's ${riskHorizon(peer.risk)} periods`)
  const slots = peer.graph.neighbours[peer.self] ?? []
  return {
    peer,
    phase: { name: 'incidence' },
    incidence: incidencePer100k(peer.counts, peer.population),
    heard: slots.map(() => null),
    answered: slots.map(() => false),
    history: null,
    fit: null,
    fitRounds: 0,
    forecast: null,
    risk: null,
    joint: null,
    pending: [],
    rejected: 0
  }
}

/**
 * This region's series for its neighbours. Its one byte of data says whether the sender is still
 * waiting for series (1: its own first copy, or a resend at a deadline) or answers one that is (0).
 * Only a waiting sender is answered, so two peers past the exchange never echo each other.
 */
function incidenceMessage (state: ForecastJobState, waiting: boolean): ConsensusMessage {
  const { peer } = state
  return { job: peer.job, kind: INCIDENCE_KIND, round: 0, from: peer.graph.names[peer.self] as string, values: Float64Array.from(state.incidence), data: Uint8Array.of(waiting ? 1 : 0) }
}

function slotOf (state: ForecastJobState, from: string): number {
  const slots = state.peer.graph.neighbours[state.peer.self] ?? []
  return slots.findIndex((node) => state.peer.graph.names[node] === from)
}

/** The fit job's log records, with its job rounds moved by the exchange round before them. */
function shifted (log: readonly LogRecord[]): LogRecord[] {
  return log
    .filter((record) => !(record.event === 'job.phase' && record.fields.phase === 'done'))
    .map((record) => record.event === 'job.phase' ? { ...record, fields: { ...record.fields, round: Number(record.fields.round) + 1 } } : record)
}

function startFit (state: ForecastJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const { peer } = state
  const slots = peer.graph.neighbours[peer.self] ?? []
  const neighbourIncidence = neighbourMeanIncidence(state.heard.map((series) => series as Float64Array), state.incidence.length)
  state.history = { counts: peer.counts, population: peer.population, neighbourIncidence, start: peer.start }
  const design = buildForecastDesign(peer.spec, state.history)
  state.fit = createFitJobState({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    problem: createGlmProblem({ family: 'poisson', block: design.block, terms: design.terms, interceptColumn: 0 }),
    params: peer.params,
    rng: peer.rng,
    verifier: peer.verifier ?? null
  })
  state.phase = { name: 'fit' }
  log.push({ level: 'info', event: 'job.phase', fields: { job: peer.job, phase: 'stats', round: 1, neighbours: slots.length, rows: design.block.rows } })
  const started = fitJobProtocol.start(state.fit)
  outbox.push(...started.outbox)
  log.push(...shifted(started.log))
  const ready = state.pending.filter((message) => kindPhase(message.kind) === 'fit')
  state.pending = state.pending.filter((message) => kindPhase(message.kind) !== 'fit')
  for (const message of ready) {
    if (state.phase.name !== 'fit') {
      state.pending.push(message)
      continue
    }
    stepFit(state, { type: 'message', message }, outbox, log)
  }
}

function stepFit (state: ForecastJobState, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const fit = state.fit as FitJobState
  const stepped = fitJobProtocol.step(fit, input)
  outbox.push(...stepped.outbox)
  log.push(...shifted(stepped.log))
  // a fit that failed (a member caught, no agreement) ends the whole job: done, with the fit's error as its result
  if (state.phase.name === 'fit' && fitJobProtocol.done(fit) && fitJobFailure(fit) === null) startRisk(state, outbox, log)
}

function startRisk (state: ForecastJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const { peer } = state
  const fit = fitJobProtocol.result(state.fit as FitJobState)
  state.fitRounds = fitJobProtocol.round(state.fit as FitJobState)
  state.forecast = forecastRegion(peer.spec, fit.coefficients, state.history as RegionHistory, { horizon: peer.horizon })
  state.risk = riskScore(state.forecast.map((period) => period.mean), peer.population, peer.risk)
  const risk = createJointRisk({ graph: peer.graph, self: peer.self, h: state.risk.h, job: peer.job, rng: peer.rng, openRegions: peer.openRegions, kind: JOINT_RISK_KIND })
  state.phase = { name: 'risk', risk }
  log.push({ level: 'info', event: 'job.phase', fields: { job: peer.job, phase: JOINT_RISK_KIND, round: 1 + state.fitRounds } })
  const started = jointRiskProtocol.start(risk)
  outbox.push(...started.outbox)
  log.push(...started.log)
  const ready = state.pending.filter((message) => kindPhase(message.kind) === 'risk')
  state.pending = state.pending.filter((message) => kindPhase(message.kind) !== 'risk')
  for (const message of ready) stepRisk(state, { type: 'message', message }, outbox, log)
}

function stepRisk (state: ForecastJobState, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const phase = state.phase
  if (phase.name !== 'risk') return
  const stepped = jointRiskProtocol.step(phase.risk, input)
  outbox.push(...stepped.outbox)
  log.push(...stepped.log)
  if (jointRiskProtocol.done(phase.risk)) {
    state.joint = jointRiskProtocol.result(phase.risk)
    state.phase = { name: 'done', risk: phase.risk }
    log.push({ level: 'info', event: 'job.phase', fields: { job: state.peer.job, phase: 'done', round: 1 + state.fitRounds + jointRiskProtocol.round(phase.risk) } })
    log.push({ level: 'info', event: 'job.joint-risk', fields: { job: state.peer.job, regions: state.joint.regions, sum: state.joint.sum, mean: state.joint.mean } })
  }
}

/** Where the job stands, for the audit log: its phase, the phase's own round and the job round. */
export function forecastJobPosition (state: ForecastJobState): { phase: string, round: number, jobRound: number } {
  const phase = state.phase
  if (phase.name === 'incidence') return { phase: INCIDENCE_KIND, round: 0, jobRound: 0 }
  if (phase.name === 'fit') {
    const position = fitJobPosition(state.fit as FitJobState)
    return { ...position, jobRound: position.jobRound + 1 }
  }
  if (phase.name === 'risk') {
    const round = jointRiskProtocol.round(phase.risk)
    return { phase: JOINT_RISK_KIND, round, jobRound: 1 + state.fitRounds + round }
  }
  return { phase: 'done', round: 0, jobRound: forecastJobProtocol.round(state) }
}

export const forecastJobProtocol: Protocol<ForecastJobState, ForecastJobResult> = {
  start (state) {
    const outbox: ConsensusMessage[] = [incidenceMessage(state, true)]
    const log: LogRecord[] = [{ level: 'info', event: 'job.phase', fields: { job: state.peer.job, phase: INCIDENCE_KIND, round: 0 } }]
    if (state.heard.length === 0) startFit(state, outbox, log)
    return { state, outbox, log }
  },

  step (state, input): StepResult<ForecastJobState> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    const phase = state.phase
    if (input.type === 'deadline') {
      if (input.round !== forecastJobProtocol.round(state)) return { state, outbox, log }
      // The exchange waits for every neighbour (the model needs their series): say it again.
      if (phase.name === 'incidence') outbox.push(incidenceMessage(state, true))
      else if (phase.name === 'fit') stepFit(state, { type: 'deadline', round: input.round - 1 }, outbox, log)
      else if (phase.name === 'risk') stepRisk(state, { type: 'deadline', round: input.round - 1 - state.fitRounds }, outbox, log)
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.peer.job) return { state, outbox, log }
    const kind = kindPhase(message.kind)
    if (kind === 'incidence') {
      const slot = slotOf(state, message.from)
      const expected = state.incidence.length
      if (slot < 0 || message.values.length !== expected || message.data.length !== 1 || !message.values.every((value) => Number.isFinite(value) && value >= 0)) {
        state.rejected++
        log.push({ level: 'warn', event: 'forecast.incidence.rejected', fields: { from: message.from, values: message.values.length, expected } })
        return { state, outbox, log }
      }
      if (phase.name !== 'incidence') {
        // a neighbour still waiting for this region's series (it began after this one's first copy)
        if (message.data[0] === 1) outbox.push(incidenceMessage(state, false))
        return { state, outbox, log }
      }
      // The first copy from a neighbour that began after this peer's own copy went out is answered
      // once, so that it need not wait for a deadline to get this region's series.
      if (message.data[0] === 1 && !(state.answered[slot] ?? false)) {
        state.answered[slot] = true
        outbox.push(incidenceMessage(state, true))
      }
      state.heard[slot] = Float64Array.from(message.values)
      if (state.heard.every((series) => series !== null)) startFit(state, outbox, log)
      return { state, outbox, log }
    }
    if (kind === 'fit') {
      if (state.fit === null) state.pending.push(message)
      else stepFit(state, input, outbox, log)
      return { state, outbox, log }
    }
    if (phase.name === 'risk') stepRisk(state, input, outbox, log)
    else if (phase.name === 'done') {
      // a finished sum still answers a neighbour that lags behind
      if (phase.risk !== null) outbox.push(...jointRiskProtocol.step(phase.risk, input).outbox)
    } else state.pending.push(message)
    return { state, outbox, log }
  },

  round (state) {
    const phase = state.phase
    if (phase.name === 'incidence') return 0
    if (phase.name === 'fit') return 1 + fitJobProtocol.round(state.fit as FitJobState)
    if (phase.name === 'risk') return 1 + state.fitRounds + jointRiskProtocol.round(phase.risk)
    return 1 + state.fitRounds + 1_000_000
  },

  done: (state) => state.phase.name === 'done' || (state.fit !== null && fitJobFailure(state.fit) !== null),

  result (state) {
    const failure = state.fit === null ? null : fitJobFailure(state.fit)
    if (failure !== null) throw failure
    if (state.joint === null || state.fit === null || state.forecast === null || state.risk === null) throw new NotConvergedError(`forecast job ${state.peer.job} has not finished`)
    return { fit: fitJobProtocol.result(state.fit), forecast: state.forecast, risk: state.risk, joint: state.joint, rows: state.fit.peer.problem.statistics()[1] as number }
  }
}
