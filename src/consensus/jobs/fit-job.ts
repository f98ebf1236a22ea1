import { EigenvalueDecomposition, Matrix } from 'ml-matrix'
import { covarianceToOriginalScale, toOriginalScale } from '../../learning/standardize.ts'
import { metricsFromHistogram, type HistogramMetrics } from '../../learning/metrics.ts'
import { choleskyInPlace, choleskySolveInPlace, invertSymmetric } from '../../learning/linalg.ts'
import { EpimeshError, NonFiniteError, NotConvergedError } from '../../learning/errors.ts'
import { MAX_FIXED_MAGNITUDE } from '../protocols/fixed-point.ts'
import { admmProtocol, counterViolation, createAdmmParams, createAdmmState, DEFAULT_ADMM_PARAMS, defaultPenalty, neighbourFinished, rangeViolation, residualViolation, stopFlagViolation, type AdmmResult, type AdmmRules, type AdmmState } from '../protocols/admm.ts'
import { AdmmParamsError, FitJobParamsError, JobAbortedError, MemberMisbehavedError, ModelDisagreementError, SumOutOfRangeError } from '../errors.ts'
import { ByteReader, ByteWriter, decodeEvidence, encodeEvidence, judgeEquivocation, receiptOf, verifyMessage, verifyReceipt, type Evidence, type MessageVerifier, type Receipt } from '../audit/evidence.ts'
import { closingProtocol, createClosing, type ClosingState } from '../protocols/closing.ts'
import { sha256, toHex } from '../sha256.ts'
import { laplacianExtremes, type Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { LocalObjective } from '../../learning/objective.ts'
import { readStatistics, statisticsLength, type ColumnScaling, type LocalProblem, type PooledStatistics } from '../../learning/local-problem.ts'
import { averagingProtocol, createAveraging, roundsForAccuracy, type AveragingState } from '../protocols/averaging.ts'
import { createSecureSum, secureSumProtocol } from '../protocols/secure-sum.ts'
import { createTreeSum, spanningTree, treeSumProtocol, type SpanningTree } from '../protocols/tree-sum.ts'
import type { ConsensusMessage, Rng } from '../types.ts'

/**
 * One federated regression job on one peer, from raw local data to the shared model with standard
 * errors, as a single consensus machine. It runs these phases, each a machine of its own:
 *
 *   stats      exact masked sum of (peers, rows, column sums, sums of squares, outcome and exposure sums):
 *              the pooled mean and population SD for standardising, and the starting point
 *   curvature  (ADMM, unless the penalty is given) masked sum of the local Hessians at the start, for
 *              the default penalty c = sqrt(lmin lmax of the mean Hessian) / sqrt(l2 lmax of the Laplacian)
 *   admm       decentralized consensus ADMM to the shared coefficients
 *   final      masked sum of the local Hessians at each peer's solution: covariance, standard errors
 *   newton.t   (exact Newton instead of ADMM) masked sum of value, gradient and Hessian at the current
 *              point; every peer takes the same Newton step from the same exact totals
 *
 * Every sum is a secure sum: no peer's own statistics, gradient or Hessian leave it unmasked.
 */

/**
 * admm: consensus ADMM; newton: exact Newton with masked sums; gossip: Newton with the sums estimated
 * by Metropolis averaging (m times the average) instead of exact flooding, for research: it scales
 * to any graph with messages of one vector, but neighbours see each other's unmasked local gradient
 * and Hessian in its first round, and the peers' totals agree only to the averaging accuracy.
 */
export type Algorithm = 'admm' | 'newton' | 'gossip'

export interface FitJobParams {
  algorithm: Algorithm
  /** L2 penalty on the (standardised) coefficients, the intercept excluded */
  lambda: number
  standardize: boolean
  /** ADMM: residual tolerance; Newton: tolerance on the relative step */
  tolerance: number
  maxRounds: number
  /** ADMM penalty c; default: from the mean Hessian at the start and the graph's Laplacian */
  penalty: number | null
  /** ADMM: Newton steps of the local subproblem per round */
  newtonSteps: number
  maxNewtonIterations: number
  dropAfterRounds: number
  recordVectors: boolean
  /**
   * ADMM rounds after which the default penalty is estimated again from the Hessians at the current
   * iterates (closer to the solution than the start, where logistic weights are all near 1/4); 0 keeps
   * the first estimate. Ignored when the penalty is given.
   */
  warmupRounds: number
  /** how the exact sums travel: flooding (about diameter rounds), a spanning tree (one vector per link), or flooding up to 64 peers */
  sumMethod: SumMethod
  /**
   * ADMM's bounded influence: a neighbour's iterate is clipped to this distance times max(1, |start|)
   * from the peer's own before it enters the peer's update (see AdmmParams.clipRadius); null: off
   */
  clip: number | null
  /** check every neighbour's consensus-ADMM messages against the protocol, and fail the job naming a member caught breaking it */
  guard: boolean
}

export const DEFAULT_FIT_JOB_PARAMS: Readonly<FitJobParams> = Object.freeze({
  algorithm: 'admm',
  lambda: 0,
  standardize: true,
  tolerance: 1e-8,
  maxRounds: 5000,
  penalty: null,
  newtonSteps: 1,
  maxNewtonIterations: 50,
  dropAfterRounds: 0,
  recordVectors: false,
  warmupRounds: 50,
  sumMethod: 'auto',
  clip: 1,
  guard: true
})

export function createFitJobParams (params: Partial<FitJobParams> = {}): FitJobParams {
  const merged: FitJobParams = { ...DEFAULT_FIT_JOB_PARAMS, ...params }
  if (merged.algorithm !== 'admm' && merged.algorithm !== 'newton' && merged.algorithm !== 'gossip') throw new FitJobParamsError('algorithm', `must be admm, newton or gossip, got ${String(merged.algorithm)}`)
  if (!Number.isFinite(merged.lambda) || merged.lambda < 0) throw new FitJobParamsError('lambda', 'must be a non-negative number')
  if (!Number.isFinite(merged.tolerance) || merged.tolerance <= 0) throw new FitJobParamsError('tolerance', 'must be a positive number')
  if (!Number.isInteger(merged.maxRounds) || merged.maxRounds <= 0) throw new FitJobParamsError('maxRounds', 'must be a positive integer')
  if (merged.penalty !== null && (!Number.isFinite(merged.penalty) || merged.penalty <= 0)) throw new FitJobParamsError('penalty', 'must be a positive number')
  if (!Number.isInteger(merged.maxNewtonIterations) || merged.maxNewtonIterations <= 0) throw new FitJobParamsError('maxNewtonIterations', 'must be a positive integer')
  if (!Number.isInteger(merged.warmupRounds) || merged.warmupRounds < 0) throw new FitJobParamsError('warmupRounds', 'must be a non-negative integer')
  if (!['flood', 'tree', 'auto'].includes(merged.sumMethod)) throw new FitJobParamsError('sumMethod', 'must be flood, tree or auto')
  if (merged.clip !== null && !(Number.isFinite(merged.clip) && merged.clip > 0)) throw new FitJobParamsError('clip', 'must be a positive number or null')
  return merged
}

export interface FitJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  problem: LocalProblem
  params: FitJobParams
  /** randomness for the secure-sum masks: a cryptographic source in a real peer, seeded in simulation */
  rng: Rng
  /**
   * checks other members' signatures on the proof an alarm carries and on relayed closing statements;
   * without one (a simulation without signatures) alarms cannot be checked and are not acted on
   */
  verifier?: MessageVerifier | null
}

/** A running exact masked sum: flooding for small federations, a spanning tree for large ones. */
interface SumHandle {
  readonly kind: string
  readonly protocol: Protocol<any, Float64Array>
  readonly state: any
}

export type SumMethod = 'flood' | 'tree' | 'auto'

type Phase =
  | { name: 'stats', sum: SumHandle }
  | { name: 'curvature', sum: SumHandle }
  | { name: 'admm', admm: AdmmState, stage: 1 | 2 }
  | { name: 'recurvature', sum: SumHandle }
  | { name: 'consensus', sum: SumHandle }
  | { name: 'metrics', sum: SumHandle }
  | { name: 'close', closing: ClosingState }
  | { name: 'newton', iteration: number, sum: SumHandle }
  | { name: 'done' }

export interface FitJobState {
  readonly peer: FitJobPeer
  phase: Phase
  /** rounds completed by earlier phases; the job's round is this plus the current phase's round */
  roundOffset: number
  phaseRounds: Record<string, number>
  pending: ConsensusMessage[]
  pooled: PooledStatistics | null
  scaling: ColumnScaling | null
  objective: LocalObjective | null
  start: Float64Array | null
  penalty: number | null
  admm: AdmmResult | null
  /** the warm-up ADMM machine, kept while the penalty is estimated again */
  warm: AdmmState | null
  tree: SpanningTree | null
  /** finished sums by kind, kept to answer neighbours that lag behind */
  finishedSums: Map<string, SumHandle>
  newton: NewtonProgress | null
  result: FitJobResult | null
  /** the job failed here: a member caught breaking the protocol, or the closing found no agreement */
  failure: EpimeshError | null
  /** receipts of the neighbours' last consensus-ADMM messages, for the closing statement */
  receipts: Receipt[]
  /** the finished closing, kept to answer neighbours that lag behind */
  closed: ClosingState | null
  /** alarms that did not hold up (unverifiable or false proof) */
  alarmsRejected: number
}

interface NewtonProgress {
  point: Float64Array
  /** the last accepted point and its objective, for step-halving */
  accepted: Float64Array | null
  acceptedValue: number
  halvings: number
  iterations: number
}

export interface FitJobResult {
  terms: string[]
  /** original scale */
  coefficients: Float64Array
  standardErrors: Float64Array
  covariance: Float64Array
  /** on the standardised scale (equal to the above when not standardising) */
  standardizedCoefficients: Float64Array
  logLikelihood: number
  /** the federation's penalised objective at the solution, summed over peers */
  objective: number
  rounds: number
  phaseRounds: Record<string, number>
  converged: boolean
  peers: number
  rows: number
  penalty: number | null
  newtonIterations: number | null
  /** peers dropped during the job (gone for good); the model is the pooled fit of the others */
  dropped: string[]
  /** binomial models: computed by the federation from pooled risk histograms */
  metrics: HistogramMetrics | null
  staleMessages: number
  rejectedMessages: number
}

const PHASE_ORDER: Record<string, number> = { stats: 0, curvature: 1, admm: 2, recurvature: 3, admm2: 4, consensus: 5, final: 1_000_000, metrics: 2_000_000, close: 2_500_000 }

/** The kind of the messages that carry a member's proof that another broke the protocol. */
export const ALARM_KIND = 'alarm'

/** The phase a message kind belongs to: 'stats.mask' -> 'stats'. */
export function phaseKey (kind: string): string {
  for (const suffix of ['.mask', '.up', '.down', '.own']) if (kind.endsWith(suffix)) return kind.slice(0, -suffix.length)
  return kind
}

/** The order of the job's phases; NaN for a kind that belongs to none. Newton steps follow ADMM's closing average. */
export function phaseOrdinal (key: string): number {
  if (key.startsWith('newton.')) return 10 + Number(key.slice('newton.'.length))
  return PHASE_ORDER[key] ?? Number.NaN
}

function currentKey (phase: Phase): string {
  if (phase.name === 'newton') return `newton.${phase.iteration}`
  if (phase.name === 'close') return 'close'
  if (phase.name === 'admm') return phase.stage === 1 ? 'admm' : 'admm2'
  return phase.name
}

function upperTriangleLength (p: number): number {
  return (p * (p + 1)) / 2
}

function packUpper (matrix: Float64Array, p: number, out: Float64Array, offset: number): void {
  let index = offset
  for (let row = 0; row < p; row++) {
    for (let column = row; column < p; column++) out[index++] = matrix[row * p + column] as number
  }
}

function unpackUpper (packed: Float64Array, offset: number, p: number): Float64Array {
  const matrix = new Float64Array(p * p)
  let index = offset
  for (let row = 0; row < p; row++) {
    for (let column = row; column < p; column++) {
      const value = packed[index++] as number
      matrix[row * p + column] = value
      matrix[column * p + row] = value
    }
  }
  return matrix
}

function norm (vector: Float64Array): number {
  let sum = 0
  for (const value of vector) sum += value * value
  return Math.sqrt(sum)
}

/** Metropolis averaging wrapped as a sum: m times the average after enough rounds for 1e-12. */
function gossipSum (state: FitJobState, kind: string, value: Float64Array): SumHandle {
  const { peer } = state
  const peers = (state.pooled as PooledStatistics).peers
  const rounds = Math.min(peer.params.maxRounds, roundsForAccuracy(peer.graph, 1e-12))
  const averaging = createAveraging({ graph: peer.graph, self: peer.self, value, job: peer.job, kind, rounds })
  const protocol: Protocol<AveragingState, Float64Array> = {
    ...averagingProtocol,
    result: (current) => averagingProtocol.result(current).map((entry) => entry * peers)
  }
  return { kind, protocol, state: averaging }
}

/** The largest magnitude a peer's value may have in a masked sum of this federation (see fixed-point.ts). */
function sumBound (peer: FitJobPeer): number {
  return MAX_FIXED_MAGNITUDE / (4 * Math.max(1, peer.graph.names.length))
}

/**
 * A contribution with one flag slot per peer after the values: a peer whose values would not fit the
 * fixed-point range (an iterate that diverged) contributes zeros and its flag instead of throwing, so
 * that the sum completes everywhere and every peer fails the job naming it (takeSum).
 */
function flagged (peer: FitJobPeer, value: Float64Array): Float64Array {
  const out = new Float64Array(value.length + peer.graph.names.length)
  const bound = sumBound(peer)
  if (value.every((entry) => Number.isFinite(entry) && Math.abs(entry) < bound)) out.set(value)
  else out[value.length + peer.self] = 1
  return out
}

/** A finished sum's total, without its flags; SUM_OUT_OF_RANGE naming the peers that flagged theirs. */
function takeSum (state: FitJobState, handle: SumHandle): Float64Array {
  const total = handle.protocol.result(handle.state)
  const peers = state.peer.graph.names.length
  const length = total.length - peers
  const flaggedPeers = state.peer.graph.names.filter((_, node) => (total[length + node] as number) > 0.5)
  if (flaggedPeers.length > 0) throw new SumOutOfRangeError(handle.kind, flaggedPeers)
  return total.subarray(0, length)
}

function startSum (state: FitJobState, kind: string, raw: Float64Array): SumHandle {
  const { peer } = state
  if (peer.params.algorithm === 'gossip' && kind.startsWith('newton.')) return gossipSum(state, kind, raw)
  // Newton steps carry their own overflow flag (a trial point out of range is halved back, see newtonContribution)
  const value = kind.startsWith('newton.') ? raw : flagged(peer, raw)
  // Peers dropped during ADMM (gone for good) take no part in the sums that follow.
  const dropped = new Set(state.admm?.dropped ?? [])
  const members = dropped.size === 0 ? undefined : peer.graph.names.flatMap((name, node) => dropped.has(name) ? [] : [node])
  const init = { graph: peer.graph, self: peer.self, value, job: peer.job, kind, rng: peer.rng, ...(members === undefined ? {} : { members }) }
  const method = members !== undefined ? 'flood' : peer.params.sumMethod === 'auto' ? (peer.graph.names.length <= 64 ? 'flood' : 'tree') : peer.params.sumMethod
  if (method === 'flood') return { kind, protocol: secureSumProtocol, state: createSecureSum(init) }
  state.tree ??= spanningTree(peer.graph)
  return { kind, protocol: treeSumProtocol, state: createTreeSum(init, state.tree) }
}

/** Local value, gradient and Hessian at a point, packed for a masked sum: [value, gradient (p), upper Hessian]. */
function localDerivatives (objective: LocalObjective, point: Float64Array): Float64Array {
  const p = objective.dimension
  const gradient = new Float64Array(p)
  const hessian = new Float64Array(p * p)
  const value = objective.evaluate(point, gradient, hessian, true)
  const packed = new Float64Array(1 + p + upperTriangleLength(p))
  packed[0] = value
  packed.set(gradient, 1)
  packUpper(hessian, p, packed, 1 + p)
  return packed
}

/**
 * A Newton step's contribution: the local value, gradient and Hessian, and one more slot that flags
 * an overflow. A trial point far from the solution can make a peer's loss (a Poisson mean of e^45, say)
 * too large for the masked sum's fixed-point range; such a peer contributes zeros and the flag, and
 * every peer, seeing the flag in the total, treats the point's objective as infinite and halves the step.
 */
function newtonContribution (state: FitJobState, point: Float64Array): Float64Array {
  const packed = localDerivatives(state.objective as LocalObjective, point)
  const peers = state.pooled?.peers ?? state.peer.graph.names.length
  const bound = MAX_FIXED_MAGNITUDE / (4 * Math.max(1, peers))
  const contribution = new Float64Array(packed.length + 1)
  if (packed.every((value) => Number.isFinite(value) && Math.abs(value) < bound)) contribution.set(packed)
  else contribution[packed.length] = 1
  return contribution
}

function startingPoint (problem: LocalProblem, pooled: PooledStatistics): Float64Array {
  const start = new Float64Array(problem.dimension)
  if (problem.interceptColumn !== null) {
    if (problem.family === 'binomial') {
      const rate = Math.min(Math.max(pooled.outcomeSum / pooled.rows, 1e-6), 1 - 1e-6)
      start[problem.interceptColumn] = Math.log(rate / (1 - rate))
    } else {
      start[problem.interceptColumn] = Math.log(Math.max(pooled.outcomeSum, 0.5) / pooled.exposureSum)
    }
  }
  return start
}

function scalingFrom (problem: LocalProblem, pooled: PooledStatistics, standardize: boolean): ColumnScaling | null {
  if (!standardize) return null
  const mean = Float64Array.from(pooled.mean)
  const scale = Float64Array.from(pooled.standardDeviation)
  if (problem.interceptColumn !== null) {
    mean[problem.interceptColumn] = 0
    scale[problem.interceptColumn] = 1
  }
  for (let column = 0; column < scale.length; column++) {
    if (!((scale[column] as number) > 0)) {
      throw new FitJobParamsError('standardize', `column ${problem.terms[column] ?? column} is constant across the federation and cannot be standardised`)
    }
  }
  return { mean, scale }
}

function enterPhase (state: FitJobState, phase: Phase, outbox: ConsensusMessage[], log: LogRecord[]): void {
  state.phase = phase
  log.push({ level: 'info', event: 'job.phase', fields: { job: state.peer.job, phase: currentKey(phase), round: jobRound(state) } })
  if (phase.name === 'done') return
  const started = phase.name === 'admm' ? admmProtocol.start(phase.admm) : phase.name === 'close' ? closingProtocol.start(phase.closing) : phase.sum.protocol.start(phase.sum.state)
  outbox.push(...started.outbox)
  log.push(...started.log)
}

function jobRound (state: FitJobState): number {
  const phase = state.phase
  switch (phase.name) {
    case 'admm': return state.roundOffset + admmProtocol.round(phase.admm)
    case 'close': return state.roundOffset + closingProtocol.round(phase.closing)
    case 'done': return state.roundOffset
    default: return state.roundOffset + phase.sum.protocol.round(phase.sum.state)
  }
}

/** Where a job stands: its phase, the phase's own round (the one its messages carry) and the job round. */
export function fitJobPosition (state: FitJobState): { phase: string, round: number, jobRound: number } {
  const phase = state.phase
  const jobRoundNow = jobRound(state)
  return { phase: phase.name === 'done' ? 'done' : currentKey(phase), round: jobRoundNow - state.roundOffset, jobRound: jobRoundNow }
}

function closePhase (state: FitJobState): void {
  const phase = state.phase
  if (phase.name === 'done') return
  const rounds = phase.name === 'admm' ? admmProtocol.round(phase.admm) : phase.name === 'close' ? closingProtocol.round(phase.closing) + 1 : phase.sum.protocol.round(phase.sum.state) + 1
  const key = phase.name
  state.phaseRounds[key] = (state.phaseRounds[key] ?? 0) + rounds
  state.roundOffset += rounds
}

function finish (state: FitJobState, coefficientsScaled: Float64Array, hessianSum: Float64Array, objectiveValue: number, converged: boolean, log: LogRecord[]): void {
  const { problem } = state.peer
  const p = problem.dimension
  const covarianceScaled = invertSymmetric(hessianSum, p)
  const scaling = state.scaling
  const coefficients = scaling === null ? Float64Array.from(coefficientsScaled) : toOriginalScale(coefficientsScaled, scaling, problem.interceptColumn)
  const covariance = scaling === null ? covarianceScaled : covarianceToOriginalScale(covarianceScaled, scaling, problem.interceptColumn)
  const standardErrors = new Float64Array(p)
  for (let index = 0; index < p; index++) standardErrors[index] = Math.sqrt(covariance[index * p + index] as number)
  const pooled = state.pooled as PooledStatistics
  // The summed objective carries the whole penalty (lambda / m on each of m peers): remove it to report
  // the pooled log-likelihood.
  let penaltyValue = 0
  for (let index = 0; index < p; index++) {
    if (index !== problem.interceptColumn) penaltyValue += (coefficientsScaled[index] as number) ** 2
  }
  penaltyValue *= state.peer.params.lambda / 2
  state.result = {
    terms: [...problem.terms],
    coefficients,
    standardErrors,
    covariance,
    standardizedCoefficients: Float64Array.from(coefficientsScaled),
    logLikelihood: -(objectiveValue - penaltyValue),
    objective: objectiveValue,
    rounds: state.roundOffset,
    phaseRounds: { ...state.phaseRounds },
    converged,
    peers: pooled.peers,
    rows: pooled.rows,
    penalty: state.penalty,
    newtonIterations: state.newton?.iterations ?? null,
    dropped: state.admm?.dropped ?? [],
    metrics: null,
    staleMessages: state.admm?.staleMessages ?? 0,
    rejectedMessages: state.admm?.rejectedMessages ?? 0
  }
  log.push({ level: 'info', event: 'job.done', fields: { job: state.peer.job, rounds: state.roundOffset, converged } })
}

/** Called when the current phase's machine is done: derive what it produced and start the next phase. */
function nextPhase (state: FitJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const { peer } = state
  const { problem, params } = peer
  const p = problem.dimension
  const phase = state.phase
  closePhase(state)
  if ('sum' in phase) state.finishedSums.set(phase.sum.kind, phase.sum)
  switch (phase.name) {
    case 'stats': {
      const pooled = readStatistics(takeSum(state, phase.sum), p)
      state.pooled = pooled
      state.scaling = scalingFrom(problem, pooled, params.standardize)
      state.objective = problem.objective(state.scaling, params.lambda / pooled.peers)
      state.start = startingPoint(problem, pooled)
      log.push({ level: 'info', event: 'job.statistics', fields: { peers: pooled.peers, rows: pooled.rows } })
      if (params.algorithm === 'newton' || params.algorithm === 'gossip') {
        state.newton = { point: Float64Array.from(state.start), accepted: null, acceptedValue: Number.POSITIVE_INFINITY, halvings: 0, iterations: 0 }
        enterPhase(state, { name: 'newton', iteration: 0, sum: startSum(state, 'newton.0', newtonContribution(state, state.start)) }, outbox, log)
      } else if (params.penalty === null) {
        const gradient = new Float64Array(p)
        const hessian = new Float64Array(p * p)
        state.objective.evaluate(state.start, gradient, hessian, true)
        const packed = new Float64Array(upperTriangleLength(p))
        packUpper(hessian, p, packed, 0)
        enterPhase(state, { name: 'curvature', sum: startSum(state, 'curvature', packed) }, outbox, log)
      } else {
        state.penalty = params.penalty
        enterAdmm(state, 1, state.start as Float64Array, null, outbox, log)
      }
      return
    }
    case 'curvature': {
      state.penalty = penaltyFromCurvature(state, takeSum(state, phase.sum), log)
      enterAdmm(state, 1, state.start as Float64Array, null, outbox, log)
      return
    }
    case 'recurvature': {
      // A second estimate from Hessians at iterates that went far (a member pulling its neighbours
      // away flattens their logistic curvature to nothing) is no estimate: keep the first.
      try {
        state.penalty = penaltyFromCurvature(state, takeSum(state, phase.sum), log)
      } catch (error) {
        if (!(error instanceof AdmmParamsError)) throw error
        log.push({ level: 'warn', event: 'job.penalty.kept', fields: { penalty: state.penalty, reason: error.message } })
      }
      const warm = state.warm as AdmmState
      enterAdmm(state, 2, warm.x, warm.lambdas, outbox, log)
      return
    }
    case 'admm': {
      const result = admmProtocol.result(phase.admm)
      const earlier = state.admm
      state.admm = earlier === null
        ? result
        : { ...result, staleMessages: result.staleMessages + earlier.staleMessages, rejectedMessages: result.rejectedMessages + earlier.rejectedMessages }
      // Every peer must take the same next phase, whatever it saw of the warm-up's end: the rule
      // depends on the job's parameters only.
      if (phase.stage === 1 && params.penalty === null && params.warmupRounds > 0) {
        state.warm = phase.admm
        const hessian = new Float64Array(p * p)
        ;(state.objective as LocalObjective).evaluate(result.x, new Float64Array(p), hessian, true)
        const packed = new Float64Array(upperTriangleLength(p))
        packUpper(hessian, p, packed, 0)
        enterPhase(state, { name: 'recurvature', sum: startSum(state, 'recurvature', packed) }, outbox, log)
        return
      }
      // The closing of ADMM: every peer's iterate differs from the others' by up to the tolerance, and a
      // member may have bent them (a false stop, equivocation). So the federation averages them by a
      // masked sum and takes exact Newton steps from that one point (as algorithm 'newton' does), each
      // certifying by the exact pooled gradient how far the point is from the pooled optimum: the model
      // is the same on every peer, and whatever happened inside ADMM cannot make it a wrong one.
      state.receipts = [...(state.warm === null ? [] : admmReceipts(state.warm)), ...admmReceipts(phase.admm)]
      const average = new Float64Array(p + 1)
      average.set(result.x)
      average[p] = 1
      enterPhase(state, { name: 'consensus', sum: startSum(state, 'consensus', average) }, outbox, log)
      return
    }
    case 'consensus': {
      const total = takeSum(state, phase.sum)
      const members = total[p] as number
      const point = Float64Array.from(total.subarray(0, p), (value) => value / members)
      log.push({ level: 'info', event: 'admm.average', fields: { members } })
      state.newton = { point, accepted: null, acceptedValue: Number.POSITIVE_INFINITY, halvings: 0, iterations: 0 }
      enterPhase(state, { name: 'newton', iteration: 0, sum: startSum(state, 'newton.0', newtonContribution(state, point)) }, outbox, log)
      return
    }
    case 'metrics': {
      const result = state.result as FitJobResult
      result.metrics = metricsFromHistogram(takeSum(state, phase.sum), METRIC_BINS)
      result.rounds = state.roundOffset
      result.phaseRounds = { ...state.phaseRounds }
      enterClose(state, outbox, log)
      return
    }
    case 'close': {
      state.closed = phase.closing
      judgeClosing(state, closingProtocol.result(phase.closing), log)
      const result = state.result as FitJobResult
      result.rounds = state.roundOffset
      result.phaseRounds = { ...state.phaseRounds }
      if (state.failure === null) enterPhase(state, { name: 'done' }, outbox, log)
      return
    }
    case 'newton': {
      const total = phase.sum.protocol.result(phase.sum.state)
      const newton = state.newton as NewtonProgress
      // some peer's contribution overflowed (see newtonContribution): the point is out of reach
      const overflow = (total[total.length - 1] as number) > 0.5
      const value = overflow ? Number.POSITIVE_INFINITY : total[0] as number
      const point = newton.point
      if (overflow && newton.accepted === null) throw new NonFiniteError('the objective at the starting point is too large for the masked sums; standardise the features or rescale the offset')
      if (overflow) log.push({ level: 'info', event: 'newton.overflow', fields: { iteration: phase.iteration } })
      // Every peer holds the same exact totals, so every peer takes the same step: no disagreement to resolve.
      if (newton.accepted !== null && value > newton.acceptedValue + 1e-12 * Math.abs(newton.acceptedValue) && newton.halvings < 30) {
        newton.halvings++
        for (let index = 0; index < p; index++) point[index] = 0.5 * ((point[index] as number) + (newton.accepted[index] as number))
        enterPhase(state, { name: 'newton', iteration: phase.iteration + 1, sum: startSum(state, `newton.${phase.iteration + 1}`, newtonContribution(state, point)) }, outbox, log)
        return
      }
      newton.halvings = 0
      newton.accepted = Float64Array.from(point)
      newton.acceptedValue = value
      newton.iterations++
      const hessian = unpackUpper(total, 1 + p, p)
      const step = total.slice(1, 1 + p)
      const factor = Float64Array.from(hessian)
      choleskyInPlace(factor, p)
      choleskySolveInPlace(factor, p, step)
      const relativeStep = norm(step) / Math.max(1, norm(point))
      for (let index = 0; index < p; index++) point[index] = (point[index] as number) - (step[index] as number)
      log.push({ level: 'debug', event: 'newton.iteration', fields: { iteration: newton.iterations, objective: value, relativeStep } })
      // the round budget bounds the whole job under exact Newton; after ADMM, the closing steps have their own (maxNewtonIterations)
      const outOfRounds = params.algorithm !== 'admm' && state.roundOffset >= params.maxRounds
      if (relativeStep < params.tolerance || newton.iterations >= params.maxNewtonIterations || outOfRounds) {
        finish(state, point, hessian, value, relativeStep < params.tolerance, log)
        enterMetrics(state, outbox, log)
        return
      }
      enterPhase(state, { name: 'newton', iteration: phase.iteration + 1, sum: startSum(state, `newton.${phase.iteration + 1}`, newtonContribution(state, point)) }, outbox, log)
      return
    }
    case 'done':
      return
  }
}

/** The graph's Laplacian extremes, once per graph: an eigen-decomposition is cubic in the peers. */
const laplacianCache = new WeakMap<Graph, { secondSmallest: number, largest: number }>()
function cachedLaplacianExtremes (graph: Graph): { secondSmallest: number, largest: number } {
  let extremes = laplacianCache.get(graph)
  if (extremes === undefined) {
    extremes = laplacianExtremes(graph)
    laplacianCache.set(graph, extremes)
  }
  return extremes
}

/** Resolution of the pooled risk histograms behind the federation's AUC and Hosmer-Lemeshow. */
export const METRIC_BINS = 1000

/** Binomial models end with a masked sum of risk histograms: AUC, Brier and Hosmer-Lemeshow. */
function enterMetrics (state: FitJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const result = state.result as FitJobResult
  if (state.peer.problem.family !== 'binomial') {
    enterClose(state, outbox, log)
    return
  }
  enterPhase(state, { name: 'metrics', sum: startSum(state, 'metrics', state.peer.problem.riskHistogram(result.coefficients, METRIC_BINS)) }, outbox, log)
}


/** Receipts a closing statement carries of each neighbour's last consensus-ADMM messages. */
const RECEIPTS_PER_NEIGHBOUR = 3

function admmReceipts (admm: AdmmState): Receipt[] {
  const receipts: Receipt[] = []
  for (const history of admm.received) {
    const rounds = [...history.keys()].sort((a, b) => b - a).slice(0, RECEIPTS_PER_NEIGHBOUR)
    for (const round of rounds) {
      const receipt = receiptOf(history.get(round) as ConsensusMessage)
      if (receipt !== null) receipts.push(receipt)
    }
  }
  return receipts
}

/** The digest of everything the federation agreed on: coefficients, covariance, objective, metrics. */
export function modelDigest (result: FitJobResult): Uint8Array {
  const writer = new ByteWriter()
  writer.floats(result.standardizedCoefficients)
  writer.floats(result.coefficients)
  writer.floats(result.covariance)
  writer.floats([result.objective, result.rows, result.peers])
  const metrics = result.metrics
  writer.floats(metrics === null ? [] : [metrics.auc, metrics.brier, metrics.hosmerLemeshow.statistic, metrics.hosmerLemeshow.df])
  return sha256(writer.bytes())
}

function encodeStatement (digest: Uint8Array, receipts: readonly Receipt[]): Uint8Array {
  const writer = new ByteWriter()
  writer.u8(1)
  writer.blob(digest)
  writer.u32(receipts.length)
  for (const receipt of receipts) {
    writer.string(receipt.from)
    writer.string(receipt.kind)
    writer.u32(receipt.round)
    writer.string(receipt.to ?? '')
    writer.blob(receipt.digest)
    writer.blob(receipt.signature)
  }
  return writer.bytes()
}

function decodeStatement (job: string, data: Uint8Array): { digest: Uint8Array, receipts: Receipt[] } | null {
  try {
    const reader = new ByteReader(data)
    if (reader.u8() !== 1) return null
    const digest = reader.blob(32)
    const count = reader.u32()
    if (digest.length !== 32 || count > 4096) return null
    const receipts: Receipt[] = []
    for (let index = 0; index < count; index++) {
      const from = reader.string()
      const kind = reader.string()
      const round = reader.u32()
      const to = reader.string()
      const receiptDigest = reader.blob(32)
      const signature = reader.blob(128)
      receipts.push({ job, kind, round, from, ...(to === '' ? {} : { to }), digest: receiptDigest, signature })
    }
    return reader.atEnd() ? { digest, receipts } : null
  } catch {
    return null
  }
}

/** The job's closing: this peer's statement (its model's digest, its receipts) to every member, and theirs to it. */
function enterClose (state: FitJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const { peer } = state
  const dropped = new Set(state.admm?.dropped ?? [])
  const members = dropped.size === 0 ? undefined : peer.graph.names.flatMap((name, node) => dropped.has(name) ? [] : [node])
  const statement = encodeStatement(modelDigest(state.result as FitJobResult), state.receipts)
  const closing = createClosing({ graph: peer.graph, self: peer.self, job: peer.job, kind: 'close', statement, verifier: peer.verifier ?? null, ...(members === undefined ? {} : { members }) })
  enterPhase(state, { name: 'close', closing }, outbox, log)
}

/**
 * Every member's statement is in: all must name this peer's model, and no two receipts of one member's
 * message may differ. The first proven equivocation fails the job naming its author; otherwise models
 * that differ fail it naming who holds which. (The research-only gossip algorithm sums approximately, so
 * its models differ in the last digits: only the receipts are checked there.)
 */
function judgeClosing (state: FitJobState, statements: Array<ConsensusMessage | null>, log: LogRecord[]): void {
  const { peer } = state
  const names = peer.graph.names
  const mine = toHex(modelDigest(state.result as FitJobResult))
  const groups = new Map<string, string[]>()
  const seen = new Map<string, Receipt>()
  for (const [node, statement] of statements.entries()) {
    if (statement === null) continue
    const author = names[node] as string
    const decoded = decodeStatement(peer.job, statement.data)
    if (decoded === null) {
      state.failure = new MemberMisbehavedError(author, 'statement', closingRound(state), author, 'its signed closing statement cannot be read')
      return
    }
    const digest = toHex(decoded.digest)
    groups.set(digest, [...(groups.get(digest) ?? []), author])
    for (const receipt of decoded.receipts) {
      if (receipt.from === author) continue
      const key = `${receipt.from}\n${receipt.kind}\n${receipt.round}\n${receipt.to ?? ''}`
      const other = seen.get(key)
      if (other === undefined) {
        seen.set(key, receipt)
        continue
      }
      if (toHex(other.digest) === toHex(receipt.digest) || peer.verifier === undefined || peer.verifier === null) continue
      const evidence: Evidence = { rule: 'equivocation', offender: receipt.from, reporter: author, messages: [], receipts: [other, receipt], witnesses: [] }
      if (judgeEquivocation(evidence, peer.verifier) === null) {
        log.push({ level: 'warn', event: 'closing.equivocation', fields: { offender: receipt.from, kind: receipt.kind, round: receipt.round } })
        state.failure = new MemberMisbehavedError(receipt.from, 'equivocation', receipt.round, author, `two neighbours hold its signatures on two different ${receipt.kind} messages for round ${receipt.round}`)
        return
      }
      if (!verifyReceipt(receipt, peer.verifier)) log.push({ level: 'warn', event: 'closing.receipt.invalid', fields: { statement: author, subject: receipt.from } })
    }
  }
  if (peer.params.algorithm !== 'gossip' && (groups.size > 1 || !groups.has(mine))) {
    const ordered = [mine, ...[...groups.keys()].filter((digest) => digest !== mine)]
    state.failure = new ModelDisagreementError(ordered.map((digest) => groups.get(digest) ?? []).filter((group) => group.length > 0))
    return
  }
  log.push({ level: 'info', event: 'closing.agreed', fields: { members: statements.filter((statement) => statement !== null).length, model: mine.slice(0, 16) } })
}

function closingRound (state: FitJobState): number {
  return jobRound(state)
}

/** The rules every member's consensus-ADMM messages are checked against, the same on every peer. */
function jobRules (state: FitJobState): AdmmRules {
  const { peer } = state
  return { graph: peer.graph, dimension: peer.problem.dimension, horizon: peer.diameter + DEFAULT_ADMM_PARAMS.stopMargin, tolerance: peer.params.tolerance, valueLimit: sumBound(peer) }
}

/**
 * Whether an alarm's proof holds: the offender's signatures verify, and the rule it names is broken by
 * what the offender signed (recomputed here, with the same functions that caught it). A string says
 * why not.
 */
function judgeAlarm (state: FitJobState, evidence: Evidence): string | null {
  const { peer } = state
  const verifier = peer.verifier
  if (verifier === undefined || verifier === null) return 'no verifier: signatures cannot be checked here'
  const names = peer.graph.names
  if (!names.includes(evidence.offender) || !names.includes(evidence.reporter) || evidence.offender === evidence.reporter) return 'offender or reporter is not a member'
  if (evidence.rule === 'equivocation') {
    if (evidence.receipts.some((receipt) => receipt.job !== peer.job)) return 'receipts of another job'
    return judgeEquivocation(evidence, verifier)
  }
  const [message, second] = evidence.messages
  if (message === undefined) return 'no message'
  for (const item of evidence.messages) {
    if (item.job !== peer.job || item.from !== evidence.offender || (item.kind !== 'admm' && item.kind !== 'admm2') || item.to !== undefined) return 'a message that is not the offender\'s round message in this job'
    if (!verifyMessage(item, verifier)) return 'a signature does not verify'
  }
  for (const witness of evidence.witnesses) if (witness.job !== peer.job || witness.from !== evidence.reporter || witness.kind !== message.kind) return 'a witness that is not the reporter\'s round message'
  const rules = jobRules(state)
  switch (evidence.rule) {
    case 'range': return rangeViolation(rules, message) === null ? 'the values are in range' : null
    case 'stop-flag': return stopFlagViolation(rules, message) === null ? 'the stop flag has its counter' : null
    case 'stop-counter': {
      const witness = evidence.witnesses[0]
      return witness === undefined || counterViolation(rules, message, witness) === null ? 'the counter is allowed' : null
    }
    case 'residual': {
      const witness = evidence.witnesses[0] ?? null
      const found = witness === null
        ? residualViolation(rules, message, second ?? null, null, null)
        : residualViolation(rules, message, null, second ?? null, witness)
      return found === null ? 'the residuals are consistent' : null
    }
  }
}

function fail (state: FitJobState, evidence: Evidence, log: LogRecord[]): void {
  const round = evidence.messages[0]?.round ?? evidence.receipts[0]?.round ?? 0
  state.failure = new MemberMisbehavedError(evidence.offender, evidence.rule, round, evidence.reporter, evidence.rule === 'equivocation' ? 'two different signed messages for one round' : 'its signed messages contradict the protocol')
  log.push({ level: 'warn', event: 'job.member-misbehaved', fields: { job: state.peer.job, offender: evidence.offender, rule: evidence.rule, round, reporter: evidence.reporter } })
}

/** The alarm that carries a proof to every member: broadcast by whoever caught the offender, and relayed once by everyone. */
function alarm (state: FitJobState, data: Uint8Array): ConsensusMessage {
  const { peer } = state
  return { job: peer.job, kind: ALARM_KIND, round: jobRound(state), from: peer.graph.names[peer.self] as string, values: new Float64Array(0), data }
}

/** A neighbour caught breaking the protocol inside ADMM: tell every member, and stop. */
function raiseAlarms (state: FitJobState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  if (state.failure !== null) return
  const phase = state.phase
  const violation = (phase.name === 'admm' ? phase.admm.violation : null) ?? state.warm?.violation ?? null
  if (violation === null) return
  fail(state, violation, log)
  outbox.push(alarm(state, encodeEvidence(violation)))
}

function receiveAlarm (state: FitJobState, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  if (state.failure !== null) return
  const evidence = decodeEvidence(message.data)
  const reason = typeof evidence === 'string' ? evidence : judgeAlarm(state, evidence)
  if (typeof evidence === 'string' || reason !== null) {
    state.alarmsRejected++
    log.push({ level: 'warn', event: 'job.alarm.rejected', fields: { from: message.from, reason } })
    return
  }
  fail(state, evidence, log)
  outbox.push(alarm(state, message.data))
}

function penaltyFromCurvature (state: FitJobState, total: Float64Array, log: LogRecord[]): number {
  const p = state.peer.problem.dimension
  const pooled = state.pooled as PooledStatistics
  const meanHessian = unpackUpper(total, 0, p).map((value) => value / pooled.peers)
  const eigenvalues = new EigenvalueDecomposition(new Matrix(Array.from({ length: p }, (_, row) => Array.from(meanHessian.subarray(row * p, row * p + p)))), { assumeSymmetric: true }).realEigenvalues
  const smallest = Math.min(...eigenvalues)
  const largest = Math.max(...eigenvalues)
  const penalty = defaultPenalty({ smallest, largest }, cachedLaplacianExtremes(state.peer.graph))
  log.push({ level: 'info', event: 'job.penalty', fields: { penalty, smallestEigenvalue: smallest, largestEigenvalue: largest } })
  return penalty
}

function enterAdmm (state: FitJobState, stage: 1 | 2, start: Float64Array, lambdas: readonly Float64Array[] | null, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const { peer } = state
  const { params } = peer
  const remaining = Math.max(1, params.maxRounds - state.roundOffset)
  const warmup = stage === 1 && params.penalty === null && params.warmupRounds > 0
  const admm = createAdmmState({
    job: peer.job,
    kind: stage === 1 ? 'admm' : 'admm2',
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    objective: state.objective as LocalObjective,
    start,
    params: createAdmmParams({
      penalty: state.penalty as number,
      tolerance: params.tolerance,
      maxRounds: warmup ? Math.min(params.warmupRounds, remaining) : remaining,
      newtonSteps: params.newtonSteps,
      dropAfterRounds: params.dropAfterRounds,
      recordVectors: params.recordVectors,
      damped: peer.problem.family !== 'binomial',
      clipRadius: params.clip === null ? null : params.clip * Math.max(1, norm(state.start as Float64Array)),
      guard: params.guard,
      valueLimit: sumBound(peer)
    })
  })
  // Unscaled per-edge duals stay valid when the penalty changes: carry them over, and the drops.
  if (lambdas !== null) admm.lambdas.forEach((lambda, slot) => lambda.set(lambdas[slot] as Float64Array))
  const warm = state.warm
  if (stage === 2 && warm !== null) {
    admm.knownDropped.set(warm.knownDropped)
    warm.active.forEach((active, slot) => { if (!active) admm.active[slot] = false })
  }
  enterPhase(state, { name: 'admm', admm, stage }, outbox, log)
}

function forward (state: FitJobState, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): boolean {
  const phase = state.phase
  let stepped: StepResult<unknown>
  let finished: boolean
  if (phase.name === 'admm') {
    stepped = admmProtocol.step(phase.admm, input)
    finished = admmProtocol.done(phase.admm)
  } else if (phase.name === 'close') {
    stepped = closingProtocol.step(phase.closing, input)
    finished = closingProtocol.done(phase.closing)
  } else if (phase.name === 'done') {
    return false
  } else {
    stepped = phase.sum.protocol.step(phase.sum.state, input)
    finished = phase.sum.protocol.done(phase.sum.state)
  }
  outbox.push(...stepped.outbox)
  log.push(...stepped.log)
  return finished
}

/** Feeds buffered messages of the phase that just started, and keeps going while phases complete. */
function settle (state: FitJobState, finished: boolean, outbox: ConsensusMessage[], log: LogRecord[]): void {
  raiseAlarms(state, outbox, log)
  while (finished && state.failure === null) {
    nextPhase(state, outbox, log)
    if (state.phase.name === 'done' || state.failure !== null) return
    const key = currentKey(state.phase)
    const ready = state.pending.filter((message) => phaseKey(message.kind) === key)
    state.pending = state.pending.filter((message) => phaseOrdinal(phaseKey(message.kind)) > phaseOrdinal(key))
    finished = false
    for (const message of ready) {
      finished = forward(state, { type: 'message', message }, outbox, log) || finished
      if (finished) {
        // Messages for the phase that just ended are no longer needed; later ones stay pending.
        break
      }
    }
  }
}

const MAX_PENDING = 100_000

export function createFitJobState (peer: FitJobPeer): FitJobState {
  const p = peer.problem.dimension
  const statistics = peer.problem.statistics()
  if (statistics.length !== statisticsLength(p)) throw new RangeError('statistics() has the wrong length')
  const state: FitJobState = {
    peer,
    phase: { name: 'done' },
    roundOffset: 0,
    phaseRounds: {},
    pending: [],
    pooled: null,
    scaling: null,
    objective: null,
    start: null,
    penalty: null,
    admm: null,
    warm: null,
    tree: null,
    finishedSums: new Map(),
    newton: null,
    result: null,
    failure: null,
    receipts: [],
    closed: null,
    alarmsRejected: 0
  }
  state.phase = { name: 'stats', sum: startSum(state, 'stats', statistics) }
  return state
}

export const fitJobProtocol: Protocol<FitJobState, FitJobResult> = {
  start (state) {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    const phase = state.phase
    if (phase.name === 'stats') {
      const started = phase.sum.protocol.start(phase.sum.state)
      outbox.push(...started.outbox)
      log.push(...started.log)
    }
    return { state, outbox, log }
  },

  step (state, input) {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    // A job that failed here (a member caught, no agreement) does nothing more.
    if (state.failure !== null) return { state, outbox, log }
    if (input.type === 'message' && input.message.job === state.peer.job && input.message.kind === ALARM_KIND) {
      receiveAlarm(state, input.message, outbox, log)
      return { state, outbox, log }
    }
    if (input.type === 'message' && input.message.job === state.peer.job && input.message.kind === ABORT_KIND) {
      receiveAbort(state, input.message, outbox, log)
      return { state, outbox, log }
    }
    try {
      return stepJob(state, input, outbox, log)
    } catch (error) {
      // A failure here (a sum that cannot complete, values out of range, an iterate pulled away) ends
      // the job on this peer, and every other member hears why at once instead of waiting for it.
      if (!(error instanceof EpimeshError)) throw error
      state.failure = error
      log.push({ level: 'warn', event: 'job.failed', fields: { job: state.peer.job, code: error.code, reason: error.message } })
      outbox.push(abortMessage(state, state.peer.graph.names[state.peer.self] as string, error.code, error.message))
      return { state, outbox, log }
    }
  },

  round: jobRound,
  done: (state) => state.phase.name === 'done' || state.failure !== null,

  result (state) {
    if (state.failure !== null) throw state.failure
    if (state.result === null) throw new NotConvergedError(`job ${state.peer.job} has not finished`)
    return state.result
  }
}

/** The kind of the message a peer sends when the job fails on it, and every other relays once. */
export const ABORT_KIND = 'abort'

function abortMessage (state: FitJobState, origin: string, code: string, reason: string): ConsensusMessage {
  const { peer } = state
  const text = JSON.stringify({ origin, code: code.slice(0, 40), reason: reason.slice(0, 400) })
  return { job: peer.job, kind: ABORT_KIND, round: jobRound(state), from: peer.graph.names[peer.self] as string, values: new Float64Array(0), data: new TextEncoder().encode(text) }
}

function receiveAbort (state: FitJobState, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  let parsed: { origin?: unknown, code?: unknown, reason?: unknown }
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message.data.subarray(0, 1024))) as typeof parsed
  } catch {
    return
  }
  const names = state.peer.graph.names
  if (typeof parsed.origin !== 'string' || !names.includes(parsed.origin) || typeof parsed.code !== 'string' || typeof parsed.reason !== 'string') return
  state.failure = new JobAbortedError(parsed.origin, parsed.code, parsed.reason)
  log.push({ level: 'warn', event: 'job.aborted', fields: { job: state.peer.job, origin: parsed.origin, code: parsed.code } })
  outbox.push(abortMessage(state, parsed.origin, parsed.code, parsed.reason))
}

function stepJob (state: FitJobState, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): StepResult<FitJobState> {
  if (state.phase.name === 'done') {
    // Still answer neighbours that have not finished the last sum or the closing.
    if (input.type === 'message' && input.message.job === state.peer.job) {
      const key = phaseKey(input.message.kind)
      if (key === 'close' && state.closed !== null) outbox.push(...closingProtocol.step(state.closed, input).outbox)
      const finished = state.finishedSums.get(key)
      if (finished !== undefined) outbox.push(...finished.protocol.step(finished.state, input).outbox)
    }
    return { state, outbox, log }
  }
  if (input.type === 'deadline') {
    if (input.round !== jobRound(state)) return { state, outbox, log }
    const finished = forward(state, { type: 'deadline', round: input.round - state.roundOffset }, outbox, log)
    settle(state, finished, outbox, log)
    return { state, outbox, log }
  }
  const message = input.message
  if (message.job !== state.peer.job) return { state, outbox, log }
  const key = phaseKey(message.kind)
  const messageOrdinal = phaseOrdinal(key)
  const current = phaseOrdinal(currentKey(state.phase))
  if (Number.isNaN(messageOrdinal)) return { state, outbox, log }
  if (messageOrdinal < current) {
    const finished = state.finishedSums.get(key)
    // a finished sum still answers a neighbour that lags behind
    if (finished !== undefined) outbox.push(...finished.protocol.step(finished.state, input).outbox)
    return { state, outbox, log }
  }
  if (messageOrdinal > current) {
    if (state.pending.length < MAX_PENDING) state.pending.push(message)
    if (state.phase.name === 'admm') {
      // The sender has finished ADMM; its last round message may have been lost.
      const stepped = neighbourFinished(state.phase.admm, message.from)
      outbox.push(...stepped.outbox)
      log.push(...stepped.log)
      settle(state, admmProtocol.done(state.phase.admm), outbox, log)
    }
    return { state, outbox, log }
  }
  const finished = forward(state, input, outbox, log)
  settle(state, finished, outbox, log)
  return { state, outbox, log }
}

/** The job's failure on this peer, if it failed (a member caught breaking the protocol, no agreement). */
export function fitJobFailure (state: FitJobState): EpimeshError | null {
  return state.failure
}
