import type { MaskSeeds } from '../protocols/mask-seeds.ts'
import {
  advanceNewton, contributionLength, DEFAULT_NEWTON_TOLERANCE, createNewtonIteration, localStandardError, neighbourCountSum, regionExposure, regionNewtonTerms,
  sharedCovariance, sharedTerms, startingLocal, startingShared, type EndemicEpidemicRegion, type EndemicEpidemicSpec, type NewtonIteration,
  type RegionNewtonTerms
} from '../../learning/endemic-epidemic.ts'
import { NonFiniteError, NotConvergedError } from '../../learning/errors.ts'
import { ByteWriter, type MessageVerifier } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { createExchange, exchangeProtocol } from '../protocols/exchange.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { createJob, jobProtocol, phase, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { maskedSum, maskedSumBound, sumTotal, withMaskSeeds } from './phases.ts'

/**
 * The endemic-epidemic model (learning/endemic-epidemic.ts) fitted by the federation, exactly: the
 * pooled maximum-likelihood fit that R's hhh4 finds on everyone's series, with every series kept in its
 * region.
 *
 *   ee-counts     each region sends its graph neighbours its counts over the job's periods (the
 *                 neighbour term needs the sum of the neighbours' counts) and waits for theirs;
 *   ee-stats      one masked sum of the regions' populations, counts and exposures: each region's
 *                 offset is its population share, and the starting point is everyone's;
 *   ee-newton.i   exact Newton: one masked sum per step of each region's negative log-likelihood, and
 *                 its gradient and Hessian in the shared parameters. A region with its own endemic
 *                 intercept first eliminates it from its terms (a Schur complement of the block-arrow
 *                 Hessian): the sum carries the shared block only, every region takes the same shared
 *                 step from the same totals, and then its own intercept's step, alone. A step that makes
 *                 the likelihood worse is halved, on every region alike.
 *
 * The closing compares the shared model only. A region's own intercept, its standard error and its
 * local terms are in no message and no log record: each region knows its own and nobody else's.
 */
export const COUNTS_KIND = 'ee-counts'
export const STATS_KIND = 'ee-stats'
export const NEWTON_KIND = 'ee-newton'

export interface EndemicEpidemicJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  spec: EndemicEpidemicSpec
  /** this region's counts over the job's periods */
  counts: ArrayLike<number>
  population: number
  /** the federation's period index of counts[0] (the season's phase) */
  start: number
  /** fit on periods before this one (federation index); default all */
  to?: number
  /** Newton stops when the decrement g' H^-1 g is below this times max(1, |loss|) (default 1e-15) */
  tolerance?: number
  maxIterations?: number
  rng: Rng
  /** the job's per-edge mask seeds, shared by its masked sums (see mask-seeds.ts); created at the job's start */
  maskSeeds?: MaskSeeds
  verifier?: MessageVerifier | null
  /** put before the phases' names, so that one job can fit several designs one after the other (default none) */
  phasePrefix?: string
  /**
   * a refresh's start: the shared parameters of the forecast it refreshes (the same on every region),
   * in place of the default starting point; ignored unless one per shared term, all finite
   */
  warmShared?: ArrayLike<number> | null
}

export interface EndemicEpidemicJobResult {
  terms: string[]
  shared: Float64Array
  standardErrors: Float64Array
  /** the shared parameters' covariance (row-major), the inverse of the reduced observed information */
  covariance: Float64Array
  logLikelihood: number
  iterations: number
  converged: boolean
  /** the federation's modelled periods over all regions */
  rows: number
  /** this region's own intercept and its standard error (held by this region only), or null */
  local: { estimate: number, standardError: number } | null
  /** this region's offset (its population share) and the sum of its neighbours' counts, for its forecasts */
  region: EndemicEpidemicRegion
}

export interface EndemicEpidemicProgress {
  iteration: NewtonIteration | null
}

export type EndemicEpidemicJobState = JobState<EndemicEpidemicJobResult> & { readonly endemicEpidemic: EndemicEpidemicProgress }

function isCountSeries (values: Float64Array, length: number): boolean {
  return values.length === length && values.every((value) => Number.isInteger(value) && value >= 0)
}

/** The region's terms at the current point, packed with one flag slot: 1 when they are out of the masked sums' reach. */
function contributionAt (peer: EndemicEpidemicJobPeer, region: EndemicEpidemicRegion, iteration: NewtonIteration, range: { to?: number }): { contribution: Float64Array, local: RegionNewtonTerms['local'] } {
  const length = contributionLength(peer.spec)
  const contribution = new Float64Array(length + 1)
  try {
    const terms = regionNewtonTerms(peer.spec, region, iteration.shared, iteration.local[0] ?? null, range)
    const bound = maskedSumBound(peer.graph)
    if (terms.contribution.every((value) => Number.isFinite(value) && Math.abs(value) < bound)) {
      contribution.set(terms.contribution)
      return { contribution, local: terms.local }
    }
  } catch (error) {
    if (!(error instanceof NonFiniteError)) throw error
  }
  contribution[length] = 1
  return { contribution, local: null }
}

export function * endemicEpidemicScript (peer: EndemicEpidemicJobPeer, progress: EndemicEpidemicProgress, ctx: JobContext): JobScript<EndemicEpidemicJobResult> {
  const { spec, graph } = peer
  const prefix = peer.phasePrefix ?? ''
  const own = Float64Array.from(peer.counts)
  const heard = yield * run(phase(`${prefix}${COUNTS_KIND}`, exchangeProtocol, createExchange({ graph, self: peer.self, job: peer.job, kind: `${prefix}${COUNTS_KIND}`, value: own, accept: (values) => isCountSeries(values, own.length) })))
  const neighbourCounts = neighbourCountSum(heard.map((series) => series as Float64Array), own.length)
  const range = peer.to === undefined ? {} : { to: peer.to }
  const unscaled: EndemicEpidemicRegion = { counts: own, neighbourCounts, offset: 1, start: peer.start }
  const exposure = regionExposure(unscaled, range)
  // populations, counts and population-weighted periods: shares and the starting point, for everyone alike
  const stats = sumTotal(yield * run(maskedSum(peer, `${prefix}${STATS_KIND}`, Float64Array.of(peer.population, exposure.counts, peer.population * exposure.exposure, exposure.exposure))), graph, `${prefix}${STATS_KIND}`)
  const totalPopulation = stats[0] as number
  const region: EndemicEpidemicRegion = { ...unscaled, offset: peer.population / totalPopulation }
  const warm = peer.warmShared ?? null
  const warmed = warm !== null && warm.length === sharedTerms(spec).length && Array.from(warm).every(Number.isFinite)
  const shared = warmed ? Float64Array.from(warm) : startingShared(spec, stats[1] as number, (stats[2] as number) / totalPopulation)
  const iteration = createNewtonIteration(spec, shared, [startingLocal(spec, region, range)], {
    tolerance: peer.tolerance ?? DEFAULT_NEWTON_TOLERANCE,
    maxIterations: peer.maxIterations ?? 100
  })
  progress.iteration = iteration
  ctx.log('info', 'ee.design', { neighbours: heard.length, rows: exposure.exposure, regions: graph.names.length, warm: warmed })
  for (let step = 0; ; step++) {
    const { contribution, local } = contributionAt(peer, region, iteration, range)
    const total = yield * run(maskedSum(peer, `${prefix}${NEWTON_KIND}.${step}`, contribution, { flags: false }))
    const outOfReach = (total[total.length - 1] as number) > 0.5
    const totals = total.slice(0, total.length - 1)
    if (outOfReach) totals[0] = Number.POSITIVE_INFINITY
    const outcome = advanceNewton(iteration, spec, totals, [local])
    ctx.log('debug', 'ee.newton', { step, loss: totals[0] as number, halvings: iteration.halvings })
    if (outcome === 'done') break
  }
  const totals = iteration.acceptedTotals
  if (totals === null) throw new NotConvergedError('no point of the iteration had a finite likelihood')
  const covariance = sharedCovariance(totals)
  const s = totals.gradient.length
  const ownTerms = iteration.acceptedLocalTerms[0] ?? null
  const ownEstimate = iteration.accepted.local[0] ?? null
  const result: EndemicEpidemicJobResult = {
    terms: sharedTerms(spec),
    shared: Float64Array.from(iteration.accepted.shared),
    standardErrors: Float64Array.from({ length: s }, (_, index) => Math.sqrt(covariance[index * s + index] as number)),
    covariance,
    logLikelihood: -totals.loss,
    iterations: iteration.iterations,
    converged: iteration.converged,
    rows: stats[3] as number,
    local: ownEstimate === null || ownTerms === null ? null : { estimate: ownEstimate, standardError: localStandardError(ownTerms, covariance) },
    region
  }
  ctx.log('info', 'ee.fit', { iterations: result.iterations, converged: result.converged, logLikelihood: result.logLikelihood })
  return result
}

/** What every region must agree on: the shared model (never a region's own intercept). */
export function endemicEpidemicDigest (result: EndemicEpidemicJobResult): Uint8Array {
  const writer = new ByteWriter()
  for (const term of result.terms) writer.string(term)
  writer.floats([...result.shared, ...result.standardErrors, result.logLikelihood, result.iterations, result.converged ? 1 : 0, result.rows])
  return sha256(writer.bytes())
}

export function createEndemicEpidemicJobState (peer: EndemicEpidemicJobPeer): EndemicEpidemicJobState {
  const progress: EndemicEpidemicProgress = { iteration: null }
  const state = createJob<EndemicEpidemicJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => endemicEpidemicScript(withMaskSeeds(peer), progress, ctx),
    verifier: peer.verifier ?? null,
    judge: () => 'this job has no round-message rules',
    closing: { digest: endemicEpidemicDigest, exact: true }
  })
  return Object.assign(state, { endemicEpidemic: progress })
}

export const endemicEpidemicJobProtocol = jobProtocol as unknown as Protocol<EndemicEpidemicJobState, EndemicEpidemicJobResult>
