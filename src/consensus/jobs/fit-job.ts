import type { MaskSeeds } from '../protocols/mask-seeds.ts'
import { EigenvalueDecomposition, Matrix } from 'ml-matrix'
import { covarianceToOriginalScale, toOriginalScale } from '../../learning/standardize.ts'
import { interceptStartDerivatives } from '../../learning/intercept-start.ts'
import { metricsFromHistogram, type HistogramMetrics } from '../../learning/metrics.ts'
import { choleskyInPlace, choleskySolveInPlace, invertSymmetric } from '../../learning/linalg.ts'
import { NonFiniteError } from '../../learning/errors.ts'
import { thirdOrderStep, tensorLength } from '../../learning/third-order.ts'
import type { LocalObjective } from '../../learning/objective.ts'
import { crossProductsLength, readStatistics, statisticsLength, type ColumnScaling, type LocalProblem, type PooledStatistics } from '../../learning/local-problem.ts'
import { admmProtocol, counterViolation, markPeerDropped, createAdmmParams, createAdmmState, DEFAULT_ADMM_PARAMS, defaultPenalty, rangeViolation, residualViolation, stopFlagViolation, type AdmmResult, type AdmmRules, type AdmmState } from '../protocols/admm.ts'
import { averagingProtocol, createAveraging, roundsForAccuracy, type AveragingState } from '../protocols/averaging.ts'
import { verifyMessage, type Evidence, type MessageVerifier } from '../audit/evidence.ts'
import { AdmmParamsError, FitJobParamsError } from '../errors.ts'
import { laplacianExtremes, type Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { ByteWriter } from '../audit/evidence.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { createJob, jobProtocol, phase, run, type JobContext, type JobScript, type JobState, type Phase } from './job.ts'
import { maskedSum, maskedSumBound, sumTotal, withMaskSeeds, type MaskedSumOptions } from './phases.ts'

/**
 * One federated regression job on one peer, from raw local data to the shared model with standard
 * errors: a script of phases (see job.ts), each a machine of its own:
 *
 *   stats        exact masked sum of (peers, rows, column sums, sums of squares, outcome and exposure
 *                sums): the pooled mean and population SD for standardising, and the starting point
 *   refit-newton.t  (a re-fit by ADMM) exact Newton steps from the previous model, each a masked sum of
 *                value, gradient and Hessian (and the carried-over dual sums), until the step is below
 *                sqrt(tolerance): ADMM then starts at its fixed point for the new data (refitStart), and the
 *                last step's Hessian sum gives its penalty in place of `curvature`
 *   curvature    (ADMM, unless the penalty is given) masked sum of the local Hessians at the start, for
 *                the default penalty c = sqrt(lmin lmax of the mean Hessian) / sqrt(l2 lmax of the Laplacian)
 *   admm         decentralized consensus ADMM (a warm-up of warmupRounds, then `recurvature`, the penalty
 *                estimated again, and `admm2`)
 *   consensus    ADMM's closing: a masked sum of the peers' iterates, whose average every peer then
 *                polishes with exact Newton steps
 *   newton.t     masked sum of value, gradient and Hessian at the current point (under algorithm
 *                'newton' with third-order steps, also the third-derivative tensor); every peer takes the
 *                same Newton (or Chebyshev) step from the same exact totals (the whole fit under
 *                algorithm 'newton')
 *   metrics      (binomial) masked sum of risk histograms: AUC, Brier, Hosmer-Lemeshow
 *
 * and the job's closing (every member's signed statement of the model's digest, see job.ts). Every sum
 * is a secure sum: no peer's own statistics, gradient or Hessian leave it unmasked.
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
  /**
   * Algorithm 'newton': 2 takes Newton steps; 3 also sums each peer's third-derivative tensor with its
   * value, gradient and Hessian and takes the third-order (Chebyshev) step from the totals, which
   * reaches 1e-6 one sum earlier at a cost in p^3 (p (p + 1) (p + 2) / 6 more entries per sum);
   * 'auto': 3 up to AUTO_THIRD_ORDER_COLUMNS columns (the intercept included), 2 beyond.
   */
  newtonOrder: 'auto' | 2 | 3
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
  newtonOrder: 'auto',
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
  if (merged.newtonOrder !== 'auto' && merged.newtonOrder !== 2 && merged.newtonOrder !== 3) throw new FitJobParamsError('newtonOrder', `must be auto, 2 or 3, got ${String(merged.newtonOrder)}`)
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
  /** the job's per-edge mask seeds, shared by its masked sums (see mask-seeds.ts); created at the job's start */
  maskSeeds?: MaskSeeds
  /**
   * checks other members' signatures on the proof an alarm carries and on relayed closing statements;
   * without one (a simulation without signatures) alarms cannot be checked and are not acted on
   */
  verifier?: MessageVerifier | null
  /** a re-fit's start: the previous shared model and this peer's last duals (see FitWarmStart) */
  warmStart?: FitWarmStart | null
}

/**
 * A re-fit's start from the previous shared model of the same terms: its coefficients (original
 * scale), which every peer holds alike, and this peer's own per-edge ADMM duals at the end of that fit,
 * by neighbour, in the units of a gradient on the original scale (so that they carry over to the new
 * job's standardisation: lambda_s = T' mu for the map b = T s of standardize.ts). When the data moved
 * little, the new optimum and its duals are near the old ones and ADMM starts close to both. A dual
 * whose neighbour is not in the new graph starts at 0, as in a cold start; both ends of an edge hold the
 * same dual (the owner's, adopted every round), so they stay consistent.
 */
export interface FitWarmStart {
  coefficients: ArrayLike<number>
  duals: ReadonlyArray<{ neighbour: string, values: ArrayLike<number> }>
}

export type SumMethod = 'flood' | 'tree' | 'auto'

/**
 * What the fit has learnt so far, as its script goes: read by simulations and progress reports (the
 * machines' own states stay the machines').
 */
export interface FitProgress {
  /** the problem's intercept column (for reading the iterates on the original scale) */
  interceptColumn: number | null
  pooled: PooledStatistics | null
  scaling: ColumnScaling | null
  penalty: number | null
  /** the ADMM machine running or last run */
  admmState: AdmmState | null
  /** ADMM's result, once it ended */
  admm: AdmmResult | null
  /** the point the exact Newton steps are at */
  newtonPoint: Float64Array | null
  newtonIterations: number
  result: FitJobResult | null
}

export type FitJobState = JobState<FitJobResult> & { readonly fit: FitProgress }

export interface FitJobResult {
  terms: string[]
  /** original scale */
  coefficients: Float64Array
  standardErrors: Float64Array
  covariance: Float64Array
  /** on the standardised scale (equal to the above when not standardising) */
  standardizedCoefficients: Float64Array
  /** the pooled means and population standard deviations the columns were standardised with (intercept: 0 and 1), or null */
  scaling: { mean: Float64Array, scale: Float64Array } | null
  /** ADMM: this peer's per-edge duals at the end, by neighbour, on the original scale (a re-fit's warm start); empty otherwise */
  duals: Array<{ neighbour: string, values: number[] }>
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


/** The largest magnitude a peer's value may have in a masked sum of this federation (see fixed-point.ts). */
function sumBound (peer: FitJobPeer): number {
  return maskedSumBound(peer.graph)
}



/** Metropolis averaging wrapped as a sum: m times the average after enough rounds for 1e-12. */
function gossipSum (peer: FitJobPeer, name: string, value: Float64Array, peers: number): Phase<AveragingState, Float64Array> {
  const rounds = Math.min(peer.params.maxRounds, roundsForAccuracy(peer.graph, 1e-12))
  const averaging = createAveraging({ graph: peer.graph, self: peer.self, value, job: peer.job, kind: name, rounds })
  const protocol: Protocol<AveragingState, Float64Array> = {
    ...averagingProtocol,
    result: (current) => averagingProtocol.result(current).map((entry) => entry * peers)
  }
  return phase(name, protocol, averaging)
}

/**
 * A Newton step's contribution: the local value, gradient and Hessian, and one more slot that flags
 * an overflow. A trial point far from the solution can make a peer's loss (a Poisson mean of e^45, say)
 * too large for the masked sum's fixed-point range; such a peer contributes zeros and the flag, and
 * every peer, seeing the flag in the total, treats the point's objective as infinite and halves the step.
 */
function newtonContribution (peer: FitJobPeer, objective: LocalObjective, point: Float64Array, peers: number, thirdOrder: boolean): Float64Array {
  const derivatives = localDerivatives(objective, point)
  let packed = derivatives
  if (thirdOrder && objective.thirdDerivatives !== undefined) {
    // [value, gradient, upper Hessian, third-derivative tensor (i <= j <= k)]
    packed = new Float64Array(derivatives.length + tensorLength(objective.dimension))
    packed.set(derivatives)
    const tensor = packed.subarray(derivatives.length)
    objective.thirdDerivatives(point, tensor)
  }
  const bound = maskedSumBound(peer.graph, peers)
  const contribution = new Float64Array(packed.length + 1)
  if (packed.every((value) => Number.isFinite(value) && Math.abs(value) < bound)) contribution.set(packed)
  else contribution[packed.length] = 1
  return contribution
}

function penaltyFrom (peer: FitJobPeer, pooled: PooledStatistics, total: Float64Array, ctx: JobContext): number {
  const p = peer.problem.dimension
  const meanHessian = unpackUpper(total, 0, p).map((value) => value / pooled.peers)
  const eigenvalues = new EigenvalueDecomposition(new Matrix(Array.from({ length: p }, (_, row) => Array.from(meanHessian.subarray(row * p, row * p + p)))), { assumeSymmetric: true }).realEigenvalues
  const smallest = Math.min(...eigenvalues)
  const largest = Math.max(...eigenvalues)
  const penalty = defaultPenalty({ smallest, largest }, cachedLaplacianExtremes(peer.graph))
  ctx.log('info', 'job.penalty', { penalty, smallestEigenvalue: smallest, largestEigenvalue: largest })
  return penalty
}

function hessianAt (objective: LocalObjective, point: Float64Array, p: number): Float64Array {
  const hessian = new Float64Array(p * p)
  objective.evaluate(point, new Float64Array(p), hessian, true)
  const packed = new Float64Array(upperTriangleLength(p))
  packUpper(hessian, p, packed, 0)
  return packed
}

interface FitSetup {
  peer: FitJobPeer
  progress: FitProgress
  pooled: PooledStatistics
  scaling: ColumnScaling | null
  objective: LocalObjective
  /** what ADMM minimises locally: the objective, tilted for a re-fit (see refitStart) */
  admmObjective: LocalObjective
  /** a re-fit's summed Hessian at its start (packed upper), for ADMM's penalty; null: ADMM sums its own */
  curvature: Float64Array | null
  start: Float64Array
  /** the sums' members: everyone, or those left after ADMM dropped some */
  sums: MaskedSumOptions
}

/** One ADMM phase: `admm` (the warm-up, or the whole run) or `admm2` (after the penalty is estimated again). */
function admmPhase (setup: FitSetup, ctx: JobContext, name: 'admm' | 'admm2', start: Float64Array, penalty: number, warm: AdmmState | null): Phase<AdmmState, AdmmResult> {
  const { peer } = setup
  const { params } = peer
  const remaining = Math.max(1, params.maxRounds - ctx.round())
  const warmup = name === 'admm' && rewarms(peer)
  const state = createAdmmState({
    job: peer.job,
    kind: name,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    objective: setup.admmObjective,
    start,
    params: createAdmmParams({
      penalty,
      tolerance: params.tolerance,
      maxRounds: warmup ? Math.min(params.warmupRounds, remaining) : remaining,
      newtonSteps: params.newtonSteps,
      dropAfterRounds: params.dropAfterRounds,
      recordVectors: params.recordVectors,
      damped: peer.problem.family !== 'binomial',
      clipRadius: params.clip === null ? null : params.clip * Math.max(1, norm(setup.start)),
      guard: params.guard,
      valueLimit: sumBound(peer)
    })
  })
  if (warm === null && name === 'admm' && peer.warmStart !== undefined && peer.warmStart !== null) {
    // a re-fit: this peer's duals of the previous fit, by neighbour, on this job's scale
    warmDuals(peer, setup.scaling).forEach((lambda, slot) => { (state.lambdas[slot] as Float64Array).set(lambda) })
  }
  if (warm !== null) {
    // Unscaled per-edge duals stay valid when the penalty changes: carry them over, and the drops.
    state.lambdas.forEach((lambda, slot) => lambda.set(warm.lambdas[slot] as Float64Array))
    warm.knownDropped.forEach((dropped, node) => { if (dropped === 1) markPeerDropped(state, node) })
    warm.active.forEach((active, slot) => { if (!active) state.active[slot] = false })
  }
  setup.progress.admmState = state
  return phase(name, admmProtocol, state)
}

/** Peers dropped during ADMM (gone for good) take no part in the sums that follow. */
function leaveOutDropped (setup: FitSetup, admm: AdmmResult): void {
  if (admm.dropped.length === 0) return
  const dropped = new Set(admm.dropped)
  setup.sums = { ...setup.sums, members: setup.peer.graph.names.flatMap((name, node) => dropped.has(name) ? [] : [node]) }
}

/**
 * Whether ADMM runs a warm-up and estimates its penalty again from the Hessians at the iterates it
 * reached. A re-fit starts near the optimum, so the first estimate is already taken there: no warm-up.
 * (The same on every peer: a re-fit is a property of the job, which every member runs warm.)
 */
function rewarms (peer: FitJobPeer): boolean {
  return peer.params.penalty === null && peer.params.warmupRounds > 0 && (peer.warmStart === undefined || peer.warmStart === null)
}

/** Consensus ADMM to a point near the pooled optimum, then the average of the peers' iterates (a masked sum). */
function * admmScript (setup: FitSetup, ctx: JobContext): Generator<Phase, Float64Array, unknown> {
  const { peer, progress } = setup
  const { params } = peer
  const p = peer.problem.dimension
  let penalty = params.penalty ?? penaltyFrom(peer, setup.pooled, setup.curvature ?? sumTotal(yield * run(maskedSum(peer, 'curvature', hessianAt(setup.objective, setup.start, p), setup.sums)), peer.graph, 'curvature'), ctx)
  progress.penalty = penalty
  let admm = yield * run(admmPhase(setup, ctx, 'admm', setup.start, penalty, null))
  leaveOutDropped(setup, admm)
  // Every peer must take the same next phase, whatever it saw of the warm-up's end: the rule depends
  // on the job's parameters only.
  if (rewarms(peer)) {
    const warm = progress.admmState as AdmmState
    const recurvature = sumTotal(yield * run(maskedSum(peer, 'recurvature', hessianAt(setup.objective, admm.x, p), setup.sums)), peer.graph, 'recurvature')
    // A second estimate from Hessians at iterates that went far (a member pulling its neighbours away
    // flattens their logistic curvature to nothing) is no estimate: keep the first.
    try {
      penalty = penaltyFrom(peer, setup.pooled, recurvature, ctx)
    } catch (error) {
      if (!(error instanceof AdmmParamsError)) throw error
      ctx.log('warn', 'job.penalty.kept', { penalty, reason: error.message })
    }
    progress.penalty = penalty
    const first = admm
    admm = yield * run(admmPhase(setup, ctx, 'admm2', admm.x, penalty, warm))
    admm = { ...admm, staleMessages: admm.staleMessages + first.staleMessages, rejectedMessages: admm.rejectedMessages + first.rejectedMessages }
  }
  progress.admm = admm
  leaveOutDropped(setup, admm)
  // The closing of ADMM: every peer's iterate differs from the others' by up to the tolerance, and a
  // member may have bent them (a false stop, equivocation). So the federation averages them by a
  // masked sum and takes exact Newton steps from that one point (as algorithm 'newton' does), each
  // certifying by the exact pooled gradient how far the point is from the pooled optimum: the model is
  // the same on every peer, and whatever happened inside ADMM cannot make it a wrong one.
  const average = new Float64Array(p + 1)
  average.set(admm.x)
  average[p] = 1
  const total = sumTotal(yield * run(maskedSum(peer, 'consensus', average, setup.sums)), peer.graph, 'consensus')
  const members = total[p] as number
  ctx.log('info', 'admm.average', { members })
  return Float64Array.from(total.subarray(0, p), (value) => value / members)
}

/**
 * Columns up to which newtonOrder 'auto' takes third-order steps: the tensor then has at most
 * 10 x 11 x 12 / 6 = 220 entries (about 300 is where its sum starts to cost more than it saves), so a
 * 16-feature model stays with Newton steps.
 */
export const AUTO_THIRD_ORDER_COLUMNS = 10

/** Whether a job's exact Newton steps are third-order: algorithm 'newton' only, with an objective that has third derivatives. */
export function usesThirdOrder (params: FitJobParams, objective: LocalObjective): boolean {
  if (params.algorithm !== 'newton' || objective.thirdDerivatives === undefined) return false
  return params.newtonOrder === 3 || (params.newtonOrder === 'auto' && objective.dimension <= AUTO_THIRD_ORDER_COLUMNS)
}

/**
 * Exact Newton from `point`, each step one masked sum of value, gradient and Hessian (and, third
 * order, the third-derivative tensor: then the step is the Chebyshev step, see third-order.ts); a step
 * that makes the objective worse is halved. Ends with the model and its covariance.
 */
function * newtonScript (setup: FitSetup, ctx: JobContext, first: Float64Array, firstIteration: number, firstTotal: Float64Array | null = null): Generator<Phase, { point: Float64Array, hessian: Float64Array, value: number, converged: boolean }, unknown> {
  const { peer, progress } = setup
  const { params } = peer
  const p = peer.problem.dimension
  const point = Float64Array.from(first)
  let accepted: Float64Array | null = null
  let acceptedValue = Number.POSITIVE_INFINITY
  let halvings = 0
  const thirdOrder = usesThirdOrder(params, setup.objective)
  const tensorOffset = 1 + p + (p * (p + 1)) / 2
  for (let iteration = firstIteration; ; iteration++) {
    progress.newtonPoint = point
    const contribution = newtonContribution(peer, setup.objective, point, setup.pooled.peers, thirdOrder)
    const name = `newton.${iteration}`
    // the first step's totals may be known already, in closed form from the statistics' sum (then it has no phase of its own)
    const known = iteration === firstIteration && firstTotal !== null ? Float64Array.from([...firstTotal, 0]) : null
    const total = known ?? (params.algorithm === 'gossip' ? yield * run(gossipSum(peer, name, contribution, setup.pooled.peers)) : yield * run(maskedSum(peer, name, contribution, { ...setup.sums, flags: false })))
    // some peer's contribution overflowed (see newtonContribution): the point is out of reach
    const overflow = (total[total.length - 1] as number) > 0.5
    const value = overflow ? Number.POSITIVE_INFINITY : total[0] as number
    if (overflow && accepted === null) throw new NonFiniteError('the objective at the starting point is too large for the masked sums; standardise the features or rescale the offset')
    if (overflow) ctx.log('info', 'newton.overflow', { iteration })
    // Every peer holds the same exact totals, so every peer takes the same step: no disagreement to resolve.
    if (accepted !== null && value > acceptedValue + 1e-12 * Math.abs(acceptedValue) && halvings < 30) {
      halvings++
      for (let index = 0; index < p; index++) point[index] = 0.5 * ((point[index] as number) + (accepted[index] as number))
      continue
    }
    halvings = 0
    accepted = Float64Array.from(point)
    acceptedValue = value
    progress.newtonIterations++
    const hessian = unpackUpper(total, 1 + p, p)
    // (the closed-form first totals carry no tensor: that step is a Newton step)
    const tensor = thirdOrder && known === null ? total : null
    const { direction, thirdOrder: corrected } = thirdOrderStep(total.subarray(1, 1 + p), hessian, p, tensor, tensorOffset)
    const relativeStep = norm(direction) / Math.max(1, norm(point))
    for (let index = 0; index < p; index++) point[index] = (point[index] as number) + (direction[index] as number)
    ctx.log('debug', 'newton.iteration', { iteration: progress.newtonIterations, objective: value, relativeStep, thirdOrder: corrected })
    // the round budget bounds the whole job under exact Newton; after ADMM, the closing steps have their own (maxNewtonIterations)
    const outOfRounds = params.algorithm !== 'admm' && ctx.round() >= params.maxRounds
    if (relativeStep < params.tolerance || progress.newtonIterations >= params.maxNewtonIterations || outOfRounds) {
      return { point, hessian, value, converged: relativeStep < params.tolerance }
    }
  }
}

/** The fit job's script: statistics, ADMM or not, exact Newton steps, the model, and (binomial) its metrics. */
export function * fitJobScript (peer: FitJobPeer, progress: FitProgress, ctx: JobContext): JobScript<FitJobResult> {
  const { problem, params } = peer
  const p = problem.dimension
  const statistics = problem.statistics()
  if (statistics.length !== statisticsLength(p)) throw new RangeError('statistics() has the wrong length')
  progress.interceptColumn = problem.interceptColumn
  const everyone: MaskedSumOptions = { method: params.sumMethod }
  const cold = peer.warmStart === undefined || peer.warmStart === null
  // exact Newton from a cold start: the statistics' sum also carries the cross-products that give its
  // first step in closed form (see intercept-start.ts), one sum fewer
  const shortcut = params.algorithm === 'newton' && cold && problem.interceptColumn !== null && problem.crossProducts !== undefined
  const cross = shortcut ? (problem.crossProducts as () => Float64Array)() : null
  if (cross !== null && cross.length !== crossProductsLength(p)) throw new RangeError('crossProducts() has the wrong length')
  const local = cross === null ? statistics : Float64Array.from([...statistics, ...cross])
  const totals = sumTotal(yield * run(maskedSum(peer, 'stats', local, everyone)), peer.graph, 'stats')
  const pooled = readStatistics(totals.subarray(0, statistics.length), p)
  progress.pooled = pooled
  const scaling = scalingFrom(problem, pooled, params.standardize)
  progress.scaling = scaling
  const objective = problem.objective(scaling, params.lambda / pooled.peers)
  const start = cold ? startingPoint(problem, pooled) : warmPoint(peer.warmStart as FitWarmStart, scaling, problem)
  const pooledCross = cross === null ? null : totals.subarray(statistics.length)
  // (a peer whose rows do not allow the closed form says so in the last slot: then every peer sums the first step too)
  const first = pooledCross === null || (pooledCross[pooledCross.length - 1] as number) > 0.5
    ? null
    : interceptStartDerivatives({
      family: problem.family,
      dimension: p,
      interceptColumn: problem.interceptColumn as number,
      intercept: start[problem.interceptColumn as number] as number,
      rows: pooled.rows,
      outcomeSum: pooled.outcomeSum,
      exposureSum: pooled.exposureSum,
      crossProducts: pooledCross,
      scaling,
      lambda: params.lambda
    })
  ctx.log('info', 'job.statistics', { peers: pooled.peers, rows: pooled.rows, warm: peer.warmStart !== undefined && peer.warmStart !== null })
  const setup: FitSetup = { peer, progress, pooled, scaling, objective, admmObjective: objective, curvature: null, start, sums: everyone }
  if (params.algorithm === 'admm' && peer.warmStart !== undefined && peer.warmStart !== null) {
    const refit = yield * refitStart(setup, ctx)
    setup.start = refit.start
    setup.admmObjective = refit.objective
    setup.curvature = refit.curvature
  }
  const from = params.algorithm === 'admm' ? yield * admmScript(setup, ctx) : start
  const fitted = yield * newtonScript(setup, ctx, from, 0, first)
  const result = finish(setup, fitted.point, fitted.hessian, fitted.value, fitted.converged, ctx)
  if (problem.family === 'binomial') result.metrics = metricsFromHistogram(sumTotal(yield * run(maskedSum(peer, 'metrics', problem.riskHistogram(result.coefficients, METRIC_BINS), setup.sums)), peer.graph, 'metrics'), METRIC_BINS)
  progress.result = result
  return result
}

function finish (setup: FitSetup, coefficientsScaled: Float64Array, hessianSum: Float64Array, objectiveValue: number, converged: boolean, ctx: JobContext): FitJobResult {
  const { peer, scaling, pooled, progress } = setup
  const { problem } = peer
  const p = problem.dimension
  const covarianceScaled = invertSymmetric(hessianSum, p)
  const coefficients = scaling === null ? Float64Array.from(coefficientsScaled) : toOriginalScale(coefficientsScaled, scaling, problem.interceptColumn)
  const covariance = scaling === null ? covarianceScaled : covarianceToOriginalScale(covarianceScaled, scaling, problem.interceptColumn)
  const standardErrors = new Float64Array(p)
  for (let index = 0; index < p; index++) standardErrors[index] = Math.sqrt(covariance[index * p + index] as number)
  // The summed objective carries the whole penalty (lambda / m on each of m peers): remove it to report
  // the pooled log-likelihood.
  let penaltyValue = 0
  for (let index = 0; index < p; index++) {
    if (index !== problem.interceptColumn) penaltyValue += (coefficientsScaled[index] as number) ** 2
  }
  penaltyValue *= peer.params.lambda / 2
  ctx.log('info', 'job.done', { job: peer.job, rounds: ctx.round(), converged })
  const admm = progress.admm
  return {
    terms: [...problem.terms],
    coefficients,
    standardErrors,
    covariance,
    standardizedCoefficients: Float64Array.from(coefficientsScaled),
    scaling: scaling === null ? null : { mean: Float64Array.from(scaling.mean), scale: Float64Array.from(scaling.scale) },
    duals: finalDuals(setup),
    logLikelihood: -(objectiveValue - penaltyValue),
    objective: objectiveValue,
    rounds: ctx.round(),
    phaseRounds: ctx.phaseRounds(),
    converged,
    peers: pooled.peers,
    rows: pooled.rows,
    penalty: progress.penalty,
    newtonIterations: progress.newtonIterations,
    dropped: admm?.dropped ?? [],
    metrics: null,
    staleMessages: admm?.staleMessages ?? 0,
    rejectedMessages: admm?.rejectedMessages ?? 0
  }
}

/** This peer's duals of the previous fit on this job's scale, per slot of its graph neighbours (zero where it has none). */
function warmDuals (peer: FitJobPeer, scaling: ColumnScaling | null): Float64Array[] {
  const p = peer.problem.dimension
  return (peer.graph.neighbours[peer.self] ?? []).map((neighbour) => {
    const previous = peer.warmStart?.duals.find((entry) => entry.neighbour === peer.graph.names[neighbour])
    return previous !== undefined && previous.values.length === p ? dualsToScaled(previous.values, scaling, peer.problem.interceptColumn) : new Float64Array(p)
  })
}

/** Exact Newton steps a re-fit takes from the previous model before ADMM, at most. */
export const REFIT_NEWTON_STEPS = 5

/**
 * A re-fit's start for ADMM: ADMM started at its own fixed point for the new data.
 *
 * First exact Newton steps from the previous model x0, each one masked sum of value, gradient and
 * Hessian (as algorithm 'newton' takes them), a step that makes the objective worse halved, until the
 * relative step is below sqrt(tolerance) (at most REFIT_NEWTON_STEPS sums). The data moved little, so
 * x0 is close to the new optimum x* and two or three steps reach it: the last step Delta, from x_k, ends
 * at x_s = x_k + Delta, whose distance from x* is of the order of |Delta|^2, that is of the tolerance.
 *
 * Then ADMM's duals are set at that point. ADMM's fixed point is x_i = x* on every peer and
 * grad f_i(x*) + alpha_i = 0 for each peer's dual sum alpha_i; but the duals live on edges, and edge
 * duals with given sums need the whole graph. So the local objective is tilted by a linear term
 * instead, f_i(x) + <beta_i, x>, with
 *   beta_i = -(grad f_i(x_k) + H_i(x_k) Delta + alpha_i) + the mean over the peers of the same,
 * alpha_i the sum of this peer's carried-over edge duals. The first bracket is this peer's own
 * gradient at x_s to second order, and its sum over the peers is exactly g + H Delta + sum alpha =
 * sum alpha (g and H the totals at x_k, Delta = -H^-1 g), which the same masked sum gives: so the
 * betas sum to 0 and the pooled objective, and its optimum, are unchanged, while every peer's
 * stationarity residual at x_s, grad f_i(x_s) + beta_i + alpha_i, is the Taylor remainder of its own
 * gradient, O(|Delta|^2). No sum beyond the Newton steps' is needed, and the last step's Hessian
 * total, taken near x*, gives ADMM's penalty as a cold fit's warm-up re-estimates it.
 */
function * refitStart (setup: FitSetup, ctx: JobContext): Generator<Phase, { start: Float64Array, objective: LocalObjective, curvature: Float64Array }, unknown> {
  const { peer, objective, progress } = setup
  const p = peer.problem.dimension
  const triangle = upperTriangleLength(p)
  const alpha = new Float64Array(p)
  for (const lambda of warmDuals(peer, setup.scaling)) for (let index = 0; index < p; index++) alpha[index] = (alpha[index] as number) + (lambda[index] as number)
  const members = setup.pooled.peers
  const bound = maskedSumBound(peer.graph, members)
  const point = Float64Array.from(setup.start)
  let accepted: { point: Float64Array, value: number, local: Float64Array, total: Float64Array } | null = null
  let halvings = 0
  for (let iteration = 0; ; iteration++) {
    progress.newtonPoint = point
    // [value, gradient, upper Hessian, dual sum, overflow flag], as newtonContribution
    const local = localDerivatives(objective, point)
    const contribution = new Float64Array(local.length + p + 1)
    if (local.every((value) => Number.isFinite(value) && Math.abs(value) < bound)) {
      contribution.set(local)
      contribution.set(alpha, local.length)
    } else {
      contribution[contribution.length - 1] = 1
    }
    const total = yield * run(maskedSum(peer, `refit-newton.${iteration}`, contribution, { ...setup.sums, flags: false }))
    const overflow = (total[total.length - 1] as number) > 0.5
    const value = overflow ? Number.POSITIVE_INFINITY : total[0] as number
    const last = iteration + 1 >= REFIT_NEWTON_STEPS
    if (accepted === null && overflow) throw new NonFiniteError('the objective at the previous model is too large for the masked sums; standardise the features or rescale the offset')
    // every peer holds the same totals, so every peer takes the same decisions
    if (accepted !== null && !(value <= accepted.value + 1e-12 * Math.abs(accepted.value)) && halvings < 30 && !last) {
      halvings++
      for (let index = 0; index < p; index++) point[index] = 0.5 * ((point[index] as number) + (accepted.point[index] as number))
      continue
    }
    let worse = false
    if (accepted === null || value <= accepted.value + 1e-12 * Math.abs(accepted.value)) {
      accepted = { point: Float64Array.from(point), value, local, total }
      halvings = 0
    } else {
      worse = true
    }
    const step = accepted.total.slice(1, 1 + p)
    const factor = unpackUpper(accepted.total, 1 + p, p)
    choleskyInPlace(factor, p)
    choleskySolveInPlace(factor, p, step)
    const relativeStep = norm(step) / Math.max(1, norm(accepted.point))
    ctx.log('debug', 'refit.newton', { iteration, objective: value, relativeStep })
    if (relativeStep < Math.sqrt(peer.params.tolerance) || last) {
      // the last step's end (none if the last sum found the objective worse), and the tilt there
      const size = worse ? 0 : 1
      const delta = Float64Array.from(step, (entry) => -size * entry)
      const start = Float64Array.from(accepted.point, (entry, index) => entry + (delta[index] as number))
      const localHessian = unpackUpper(accepted.local, 1 + p, p)
      const totalHessian = unpackUpper(accepted.total, 1 + p, p)
      const own = new Float64Array(p)
      const mean = new Float64Array(p)
      for (let row = 0; row < p; row++) {
        let ownValue = (accepted.local[1 + row] as number) + (alpha[row] as number)
        let totalValue = (accepted.total[1 + row] as number) + (accepted.total[1 + p + triangle + row] as number)
        for (let column = 0; column < p; column++) {
          ownValue += (localHessian[row * p + column] as number) * (delta[column] as number)
          totalValue += (totalHessian[row * p + column] as number) * (delta[column] as number)
        }
        own[row] = ownValue
        mean[row] = totalValue / members
      }
      const tilt = Float64Array.from(own, (value, index) => (mean[index] as number) - value)
      progress.newtonPoint = null
      return {
        start,
        curvature: accepted.total.slice(1 + p, 1 + p + triangle),
        objective: {
          dimension: p,
          evaluate (at, out, hessian, wantHessian) {
            let value = objective.evaluate(at, out, hessian, wantHessian)
            for (let index = 0; index < p; index++) {
              value += (tilt[index] as number) * (at[index] as number)
              out[index] = (out[index] as number) + (tilt[index] as number)
            }
            return value
          }
        }
      }
    }
    for (let index = 0; index < p; index++) point[index] = (accepted.point[index] as number) - (step[index] as number)
  }
}

/** The previous model's coefficients on this job's standardised scale: s = T^-1 b (s_j = b_j sd_j, s_0 = b_0 + sum_j b_j m_j). */
function warmPoint (warm: FitWarmStart, scaling: ColumnScaling | null, problem: LocalProblem): Float64Array {
  const p = problem.dimension
  if (warm.coefficients.length !== p) throw new FitJobParamsError('warmStart', `${warm.coefficients.length} coefficients for ${p} terms`)
  const point = Float64Array.from(warm.coefficients)
  for (const value of point) if (!Number.isFinite(value)) throw new FitJobParamsError('warmStart', 'a coefficient that is not finite')
  if (scaling === null) return point
  const intercept = problem.interceptColumn
  let shift = 0
  for (let column = 0; column < p; column++) {
    if (column === intercept) continue
    shift += (point[column] as number) * (scaling.mean[column] as number)
    point[column] = (point[column] as number) * (scaling.scale[column] as number)
  }
  if (intercept !== null) point[intercept] = (point[intercept] as number) + shift
  return point
}

/** Duals in original-scale gradient units mu to this job's scale: lambda = T' mu (lambda_0 = mu_0, lambda_j = (mu_j - m_j mu_0) / sd_j). */
function dualsToScaled (values: ArrayLike<number>, scaling: ColumnScaling | null, intercept: number | null): Float64Array {
  const lambda = Float64Array.from(values, (value) => Number.isFinite(value) ? value : 0)
  if (scaling === null) return lambda
  const mu0 = intercept === null ? 0 : lambda[intercept] as number
  for (let column = 0; column < lambda.length; column++) {
    if (column === intercept) continue
    lambda[column] = ((lambda[column] as number) - (scaling.mean[column] as number) * mu0) / (scaling.scale[column] as number)
  }
  return lambda
}

/** This peer's per-edge duals at the end of ADMM in original-scale units: mu = T'^-1 lambda (mu_j = sd_j lambda_j + m_j lambda_0). */
function finalDuals (setup: FitSetup): Array<{ neighbour: string, values: number[] }> {
  const state = setup.progress.admmState
  if (state === null) return []
  const { graph, self, problem } = setup.peer
  const intercept = problem.interceptColumn
  const scaling = setup.scaling
  return (graph.neighbours[self] ?? []).flatMap((neighbour, slot) => {
    if (!(state.active[slot] ?? false)) return []
    const lambda = state.lambdas[slot] as Float64Array
    const values = Array.from(lambda)
    if (scaling !== null) {
      const lambda0 = intercept === null ? 0 : lambda[intercept] as number
      for (let column = 0; column < values.length; column++) {
        if (column !== intercept) values[column] = (scaling.scale[column] as number) * (lambda[column] as number) + (scaling.mean[column] as number) * lambda0
      }
    }
    return [{ neighbour: graph.names[neighbour] as string, values }]
  })
}

/** The rules every member's consensus-ADMM messages are checked against, the same on every peer. */
export function fitJobRules (peer: Pick<FitJobPeer, 'graph' | 'diameter' | 'params'> & { problem: { dimension: number } }): AdmmRules {
  return { graph: peer.graph, dimension: peer.problem.dimension, horizon: peer.diameter + DEFAULT_ADMM_PARAMS.stopMargin, tolerance: peer.params.tolerance, valueLimit: maskedSumBound(peer.graph) }
}

/**
 * Whether an alarm's proof of a broken consensus-ADMM rule holds: the offender's signatures verify,
 * and the rule it names is broken by what it signed (recomputed here with the same functions that
 * caught it). A string says why not.
 */
export function judgeAdmmEvidence (rules: AdmmRules, job: string, verifier: MessageVerifier, evidence: Evidence): string | null {
  const [message, second] = evidence.messages
  if (message === undefined) return 'no message'
  for (const item of evidence.messages) {
    if (item.job !== job || item.from !== evidence.offender || (item.kind !== 'admm' && item.kind !== 'admm2') || item.to !== undefined) return 'a message that is not the offender\'s round message in this job'
    if (!verifyMessage(item, verifier)) return 'a signature does not verify'
  }
  for (const witness of evidence.witnesses) if (witness.job !== job || witness.from !== evidence.reporter || witness.kind !== message.kind) return 'a witness that is not the reporter\'s round message'
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
    case 'equivocation': return 'not a round-message rule'
  }
}

export function newFitProgress (): FitProgress {
  return { interceptColumn: null, pooled: null, scaling: null, penalty: null, admmState: null, admm: null, newtonPoint: null, newtonIterations: 0, result: null }
}

export function createFitJobState (peer: FitJobPeer): FitJobState {
  const progress = newFitProgress()
  const verifier = peer.verifier ?? null
  const rules = fitJobRules(peer)
  const state = createJob<FitJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => fitJobScript(withMaskSeeds(peer), progress, ctx),
    verifier,
    judge: (evidence) => verifier === null ? 'no verifier' : judgeAdmmEvidence(rules, peer.job, verifier, evidence),
    closing: {
      digest: modelDigest,
      members: (result) => result.dropped.length === 0 ? undefined : peer.graph.names.flatMap((name, node) => result.dropped.includes(name) ? [] : [node]),
      // the research algorithm sums approximately: its models differ in the last digits
      exact: peer.params.algorithm !== 'gossip'
    }
  })
  return Object.assign(state, { fit: progress })
}

export const fitJobProtocol = jobProtocol as unknown as Protocol<FitJobState, FitJobResult>

/** Where the fit's iterate stands (standardised scale): ADMM's own, the point of the Newton steps, or the model. */
export function fitIterate (state: FitJobState | { readonly fit: FitProgress, readonly current: { name: string } | null }): Float64Array | null {
  const progress = state.fit
  if (progress.result !== null) return progress.result.standardizedCoefficients
  const name = state.current?.name
  if ((name === 'admm' || name === 'admm2') && progress.admmState !== null) return progress.admmState.x
  if (progress.newtonPoint !== null) return progress.newtonPoint
  return progress.admm?.x ?? null
}
