import { choleskyInPlace, choleskySolveInPlace, invertSymmetric } from './linalg.ts'
import { InvalidOutcomeError, NonFiniteError, NotConvergedError, SingularHessianError } from './errors.ts'
import { logFactorial } from './family.ts'
import { ForecastInputError } from './forecast.ts'
import { logGammaRatio } from './special.ts'

/**
 * The endemic-epidemic model of case counts (Held, Hoehle and Hofmann 2005; Paul, Held and Toschke
 * 2008; R's surveillance::hhh4), for one region r and period t:
 *
 *   mu_rt = exp(nu_rt) e_r + lambda y_r,t-1 + phi sum_j w_jr y_j,t-1,    y_rt ~ NegBin(mu_rt, psi) or Poisson(mu_rt)
 *
 *   nu_rt = b0 (or the region's own intercept g_r) + sum_{s=1..S} (c_s sin(2 pi s t / P) + d_s cos(2 pi s t / P))
 *   lambda = exp(a),  phi = exp(f)
 *
 * with e_r the region's offset (its population or population share), w_jr = 1 when regions j and r share
 * a border (R's `neighbourhood(sts) == 1`), t the federation's period index (R's default `t = epoch - 1`)
 * and the variance of the negative binomial mu (1 + psi mu). The parameters are R's, one to one and in
 * R's order: ar.1 = a, ne.1 = f, end.1 = b0, end.sin(2 * pi * t/52) = c_1, end.cos(2 * pi * t/52) = d_1,
 * ..., and -log(overdisp) = -log(psi), the log of the negative binomial's size; a region's own endemic
 * intercept (R's `fe(1, unitSpecific = TRUE)`) is end.1.<region>.
 *
 * The log-likelihood is a sum over regions, and each region's term needs only its own counts and the sum
 * of its neighbours' counts: so a region computes its term's value, gradient and Hessian alone, and a
 * federation adds them up. Its own intercept (when the design has one) enters only its own term: the
 * Hessian is block-arrow shaped, and the region eliminates its intercept from its term before the sum
 * (`regionNewtonTerms`, a Schur complement), so that what is summed involves only the shared parameters.
 */
export type CountFamily = 'negbin1' | 'poisson'

export interface EndemicEpidemicSpec {
  family: CountFamily
  /** S: pairs of sine and cosine terms in the endemic predictor */
  harmonics: number
  /** the season's length in periods (52 for weekly data) */
  period: number
  /** each region its own endemic intercept instead of one shared intercept */
  unitIntercepts: boolean
}

export const DEFAULT_ENDEMIC_EPIDEMIC: Readonly<EndemicEpidemicSpec> = Object.freeze({
  family: 'negbin1',
  harmonics: 1,
  period: 52,
  unitIntercepts: false
})

export function createEndemicEpidemicSpec (partial: Partial<EndemicEpidemicSpec> = {}): EndemicEpidemicSpec {
  const spec: EndemicEpidemicSpec = { ...DEFAULT_ENDEMIC_EPIDEMIC, ...partial }
  if (spec.family !== 'negbin1' && spec.family !== 'poisson') throw new ForecastInputError('family', `must be negbin1 or poisson, got ${String(spec.family)}`)
  if (!(Number.isInteger(spec.harmonics) && spec.harmonics >= 0 && spec.harmonics <= 6)) throw new ForecastInputError('harmonics', `must be an integer from 0 to 6, got ${spec.harmonics}`)
  if (!(Number.isFinite(spec.period) && spec.period >= 2)) throw new ForecastInputError('period', `must be a number of periods of at least 2, got ${spec.period}`)
  if (typeof spec.unitIntercepts !== 'boolean') throw new ForecastInputError('unitIntercepts', 'must be true or false')
  return spec
}

/**
 * What one region holds for the model: its counts, the sum over its neighbours of their counts on the
 * same periods (sum_j w_jr y_j,t), and its offset e_r. `start` is the federation's period index of
 * counts[0] (default 0): it sets the season's phase.
 */
export interface EndemicEpidemicRegion {
  counts: ArrayLike<number>
  neighbourCounts: ArrayLike<number>
  offset: number
  start?: number
}

function formatPeriod (period: number): string {
  return Number.isInteger(period) ? String(period) : String(period)
}

/** The seasonal terms' names as R's addSeason2formula writes them: sin(2 * pi * t/52), cos(4 * pi * t/52), ... */
export function seasonTerms (spec: EndemicEpidemicSpec): string[] {
  const terms: string[] = []
  for (let harmonic = 1; harmonic <= spec.harmonics; harmonic++) {
    const angle = `${2 * harmonic} * pi * t/${formatPeriod(spec.period)}`
    terms.push(`end.sin(${angle})`, `end.cos(${angle})`)
  }
  return terms
}

export const OVERDISPERSION_TERM = '-log(overdisp)'

/** The shared parameters' names, in R's order. */
export function sharedTerms (spec: EndemicEpidemicSpec): string[] {
  return ['ar.1', 'ne.1', ...(spec.unitIntercepts ? [] : ['end.1']), ...seasonTerms(spec), ...(spec.family === 'negbin1' ? [OVERDISPERSION_TERM] : [])]
}

/** Parameters that each region holds alone: its own endemic intercept, or none. */
export function localDimension (spec: EndemicEpidemicSpec): number {
  return spec.unitIntercepts ? 1 : 0
}

/** Positions in the shared vector. */
interface Layout {
  shared: number
  local: number
  /** first endemic coefficient (the shared intercept or the first season term) */
  endemic: number
  /** endemic covariates in the shared vector (intercept and season terms) */
  endemicShared: number
  /** index of -log(overdisp), or -1 */
  overdispersion: number
  /** all parameters: shared then local */
  full: number
}

function layout (spec: EndemicEpidemicSpec): Layout {
  const endemicShared = (spec.unitIntercepts ? 0 : 1) + 2 * spec.harmonics
  const shared = 2 + endemicShared + (spec.family === 'negbin1' ? 1 : 0)
  const local = localDimension(spec)
  return { shared, local, endemic: 2, endemicShared, overdispersion: spec.family === 'negbin1' ? shared - 1 : -1, full: shared + local }
}

function checkRegion (region: EndemicEpidemicRegion): void {
  if (!(Number.isFinite(region.offset) && region.offset > 0)) throw new ForecastInputError('offset', `must be a positive number, got ${region.offset}`)
  const { counts, neighbourCounts } = region
  if (neighbourCounts.length !== counts.length) throw new ForecastInputError('neighbourCounts', `${neighbourCounts.length} periods for ${counts.length} counts`)
  for (let index = 0; index < counts.length; index++) {
    const value = counts[index] as number
    if (!(Number.isInteger(value) && value >= 0)) throw new InvalidOutcomeError(`period ${index}: the count ${value} is not a non-negative integer`)
    const neighbours = neighbourCounts[index] as number
    if (!(Number.isFinite(neighbours) && neighbours >= 0)) throw new ForecastInputError('neighbourCounts', `period ${index}: ${neighbours} is not a non-negative number`)
  }
}

/** The periods [first, end) of a region that are modelled: every period whose previous one is in the series. */
export function modelledPeriods (region: EndemicEpidemicRegion, range: { from?: number, to?: number } = {}): { first: number, end: number } {
  const start = region.start ?? 0
  const first = Math.max(start + 1, range.from ?? Number.NEGATIVE_INFINITY)
  const end = Math.min(start + region.counts.length, range.to ?? Number.POSITIVE_INFINITY)
  return { first, end: Math.max(first, end) }
}

/** The endemic covariates of period t (the intercept when shared, then the season terms) into out[0..). */
function endemicCovariates (spec: EndemicEpidemicSpec, time: number, out: Float64Array): void {
  let column = 0
  if (!spec.unitIntercepts) out[column++] = 1
  for (let harmonic = 1; harmonic <= spec.harmonics; harmonic++) {
    const angle = 2 * Math.PI * harmonic * time / spec.period
    out[column++] = Math.sin(angle)
    out[column++] = Math.cos(angle)
  }
}

/** The three parts of the mean at one period. */
export interface MeanComponents {
  endemic: number
  epidemicOwn: number
  epidemicNeighbours: number
  mean: number
}

/**
 * The mean of period `time` given the previous period's own count and neighbours' count sum.
 * `local` is the region's own intercept (when the design has one).
 */
export function meanAt (spec: EndemicEpidemicSpec, shared: ArrayLike<number>, local: number | null, offset: number, time: number, previousOwn: number, previousNeighbours: number): MeanComponents {
  const shape = layout(spec)
  const covariates = new Float64Array(shape.endemicShared)
  endemicCovariates(spec, time, covariates)
  let predictor = spec.unitIntercepts ? (local as number) : 0
  for (let column = 0; column < shape.endemicShared; column++) predictor += (covariates[column] as number) * (shared[shape.endemic + column] as number)
  const endemic = Math.exp(predictor) * offset
  const epidemicOwn = Math.exp(shared[0] as number) * previousOwn
  const epidemicNeighbours = Math.exp(shared[1] as number) * previousNeighbours
  return { endemic, epidemicOwn, epidemicNeighbours, mean: endemic + epidemicOwn + epidemicNeighbours }
}

/** The negative binomial's size exp(-log(overdisp)), or Infinity for the Poisson. */
export function sizeOf (spec: EndemicEpidemicSpec, shared: ArrayLike<number>): number {
  return spec.family === 'negbin1' ? Math.exp(shared[layout(spec).overdispersion] as number) : Number.POSITIVE_INFINITY
}

/**
 * The negative log-likelihood of a region's periods in [from, to) and, with `derivatives`, its gradient
 * and Hessian over all parameters (shared then local), the Hessian row-major. Exact: the observed
 * information, not its expectation, as hhh4's standard errors use.
 */
export function regionLoss (spec: EndemicEpidemicSpec, region: EndemicEpidemicRegion, shared: ArrayLike<number>, local: number | null, range: { from?: number, to?: number } = {}, derivatives: { gradient: Float64Array, hessian: Float64Array } | null = null): number {
  const shape = layout(spec)
  if (shared.length !== shape.shared) throw new RangeError(`${shared.length} shared parameters, the design has ${shape.shared}`)
  if (spec.unitIntercepts !== (local !== null)) throw new RangeError(spec.unitIntercepts ? 'the design needs the region\'s own intercept' : 'the design has no region intercept')
  const p = shape.full
  const gradient = derivatives?.gradient ?? null
  const hessian = derivatives?.hessian ?? null
  gradient?.fill(0)
  hessian?.fill(0)
  const { first, end } = modelledPeriods(region, range)
  const start = region.start ?? 0
  const covariates = new Float64Array(shape.endemicShared)
  // dMu: d mu / d theta over the mean's parameters (every parameter but -log(overdisp))
  const dMu = new Float64Array(p)
  const lambda = Math.exp(shared[0] as number)
  const phi = Math.exp(shared[1] as number)
  const negbin = spec.family === 'negbin1'
  const size = negbin ? Math.exp(shared[shape.overdispersion] as number) : Number.POSITIVE_INFINITY
  const eta = shape.overdispersion
  const localIndex = shape.shared
  // the endemic parameters' positions and, per period, their covariates (the local intercept's is 1)
  const endemicIndices: number[] = []
  for (let column = 0; column < shape.endemicShared; column++) endemicIndices.push(shape.endemic + column)
  if (local !== null) endemicIndices.push(localIndex)
  const endemicCovariate = new Float64Array(endemicIndices.length).fill(1)
  let loss = 0
  for (let time = first; time < end; time++) {
    const index = time - start
    const y = region.counts[index] as number
    const previousOwn = region.counts[index - 1] as number
    const previousNeighbours = region.neighbourCounts[index - 1] as number
    endemicCovariates(spec, time, covariates)
    let predictor = local ?? 0
    for (let column = 0; column < shape.endemicShared; column++) predictor += (covariates[column] as number) * (shared[shape.endemic + column] as number)
    const endemic = Math.exp(predictor) * region.offset
    const own = lambda * previousOwn
    const neighbours = phi * previousNeighbours
    const mu = endemic + own + neighbours
    if (!(mu > 0) || !Number.isFinite(mu)) throw new NonFiniteError(`period ${time}: the mean ${mu} is not a positive number`)
    let logLikelihood: number
    let dMean: number
    let dMean2: number
    let dSize = 0
    let dSize2 = 0
    let dMeanSize = 0
    if (negbin) {
      const gammaRatio = logGammaRatio(y, size)
      const logShare = -Math.log1p(mu / size)
      const sum = size + mu
      logLikelihood = gammaRatio.value - logFactorial(y) + size * logShare + y * (Math.log(mu) + logShare - Math.log(size))
      dMean = y / mu - (y + size) / sum
      dMean2 = -y / (mu * mu) + (y + size) / (sum * sum)
      if (derivatives !== null) {
        // in eta = log(size): d/d eta = size d/d size
        const dByK = gammaRatio.first + logShare + (mu - y) / sum
        const dByK2 = gammaRatio.second + mu / (size * sum) + (y - mu) / (sum * sum)
        dSize = size * dByK
        dSize2 = size * size * dByK2 + dSize
        dMeanSize = size * (y - mu) / (sum * sum)
      }
    } else {
      logLikelihood = y * Math.log(mu) - mu - logFactorial(y)
      dMean = y / mu - 1
      dMean2 = -y / (mu * mu)
    }
    loss -= logLikelihood
    if (gradient === null || hessian === null) continue
    dMu.fill(0)
    dMu[0] = own
    dMu[1] = neighbours
    endemicCovariate.set(covariates)
    for (let column = 0; column < endemicIndices.length; column++) dMu[endemicIndices[column] as number] = endemic * (endemicCovariate[column] as number)
    for (let row = 0; row < p; row++) {
      const dRow = dMu[row] as number
      if (row === eta) continue
      gradient[row] = (gradient[row] as number) - dMean * dRow
      for (let column = 0; column < p; column++) {
        if (column === eta) continue
        hessian[row * p + column] = (hessian[row * p + column] as number) - dMean2 * dRow * (dMu[column] as number)
      }
    }
    // the second derivatives of mu itself: each component is log-linear in its own parameters
    hessian[0] = (hessian[0] as number) - dMean * own
    hessian[p + 1] = (hessian[p + 1] as number) - dMean * neighbours
    for (let row = 0; row < endemicIndices.length; row++) {
      const rowIndex = endemicIndices[row] as number
      const rowCovariate = endemicCovariate[row] as number
      for (let column = 0; column < endemicIndices.length; column++) {
        const columnIndex = endemicIndices[column] as number
        hessian[rowIndex * p + columnIndex] = (hessian[rowIndex * p + columnIndex] as number) - dMean * endemic * rowCovariate * (endemicCovariate[column] as number)
      }
    }
    if (negbin) {
      gradient[eta] = (gradient[eta] as number) - dSize
      hessian[eta * p + eta] = (hessian[eta * p + eta] as number) - dSize2
      for (let column = 0; column < p; column++) {
        if (column === eta) continue
        const cross = dMeanSize * (dMu[column] as number)
        hessian[eta * p + column] = (hessian[eta * p + column] as number) - cross
        hessian[column * p + eta] = (hessian[column * p + eta] as number) - cross
      }
    }
  }
  return loss
}

/** Entries of the upper triangle of a p x p matrix, diagonal included. */
export function upperLength (p: number): number {
  return p * (p + 1) / 2
}

function packUpper (matrix: Float64Array, p: number, out: Float64Array, offset: number): void {
  let slot = offset
  for (let row = 0; row < p; row++) for (let column = row; column < p; column++) out[slot++] = matrix[row * p + column] as number
}

export function unpackUpper (packed: ArrayLike<number>, offset: number, p: number): Float64Array {
  const matrix = new Float64Array(p * p)
  let slot = offset
  for (let row = 0; row < p; row++) {
    for (let column = row; column < p; column++) {
      const value = packed[slot++] as number
      matrix[row * p + column] = value
      matrix[column * p + row] = value
    }
  }
  return matrix
}

/**
 * A region's part of one Newton step. `contribution` is what it adds to the federation's sum, laid out
 * as [loss, reduced gradient (shared), reduced Hessian (shared, upper triangle), local decrement]: with
 * its Hessian [[A, B], [B', D]] and gradient [g, h] split into shared and local parts, the reduced
 * gradient is g - B D^-1 h, the reduced Hessian A - B D^-1 B' and the local decrement h' D^-1 h. Their
 * sums over regions give the shared part of the full Newton step exactly (the Hessian of the whole
 * likelihood is block-arrow: no region's intercept meets another's), and the Newton decrement. The
 * rest (`local`) never leaves the region: from the shared step s, its own step is D^-1 (h - B' s).
 */
export interface RegionNewtonTerms {
  contribution: Float64Array
  local: { gradient: number, curvature: number, cross: Float64Array } | null
}

export function contributionLength (spec: EndemicEpidemicSpec): number {
  const p = layout(spec).shared
  return 1 + p + upperLength(p) + 1
}

export function regionNewtonTerms (spec: EndemicEpidemicSpec, region: EndemicEpidemicRegion, shared: ArrayLike<number>, local: number | null, range: { from?: number, to?: number } = {}): RegionNewtonTerms {
  const shape = layout(spec)
  const p = shape.full
  const s = shape.shared
  const gradient = new Float64Array(p)
  const hessian = new Float64Array(p * p)
  const loss = regionLoss(spec, region, shared, local, range, { gradient, hessian })
  const contribution = new Float64Array(contributionLength(spec))
  contribution[0] = loss
  if (local === null) {
    contribution.set(gradient, 1)
    packUpper(hessian, s, contribution, 1 + s)
    return { contribution, local: null }
  }
  const h = gradient[s] as number
  const rawCurvature = hessian[s * p + s] as number
  // Away from the optimum a region's own curvature may not be positive; a positive stand-in keeps the
  // step a descent direction, and at the optimum (where it is positive) the step is Newton's own.
  const curvature = rawCurvature > 0 ? rawCurvature : Math.max(Math.abs(rawCurvature), Number.MIN_VALUE)
  const cross = new Float64Array(s)
  for (let row = 0; row < s; row++) cross[row] = hessian[row * p + s] as number
  const reducedGradient = new Float64Array(s)
  const reducedHessian = new Float64Array(s * s)
  for (let row = 0; row < s; row++) {
    reducedGradient[row] = (gradient[row] as number) - (cross[row] as number) * h / curvature
    for (let column = 0; column < s; column++) reducedHessian[row * s + column] = (hessian[row * p + column] as number) - (cross[row] as number) * (cross[column] as number) / curvature
  }
  contribution.set(reducedGradient, 1)
  packUpper(reducedHessian, s, contribution, 1 + s)
  contribution[contribution.length - 1] = h * h / curvature
  return { contribution, local: { gradient: h, curvature, cross } }
}

/** The federation's totals of one Newton step, unpacked. */
export interface NewtonTotals {
  loss: number
  gradient: Float64Array
  hessian: Float64Array
  localDecrement: number
}

export function readNewtonTotals (spec: EndemicEpidemicSpec, total: ArrayLike<number>): NewtonTotals {
  const s = layout(spec).shared
  if (total.length < contributionLength(spec)) throw new RangeError(`a Newton total of ${total.length} values, expected ${contributionLength(spec)}`)
  return {
    loss: total[0] as number,
    gradient: Float64Array.from({ length: s }, (_, index) => total[1 + index] as number),
    hessian: unpackUpper(total, 1 + s, s),
    localDecrement: total[contributionLength(spec) - 1] as number
  }
}

/**
 * The shared step H^-1 g from the totals (the reduced Hessian, with a ridge that grows tenfold from
 * 1e-8 of its mean diagonal while it is not positive definite, as far from the optimum it may not be),
 * and the Newton decrement g' H^-1 g of the whole system, local parts included.
 */
export function sharedNewtonStep (totals: NewtonTotals): { step: Float64Array, decrement: number, ridge: number } {
  const s = totals.gradient.length
  let meanDiagonal = 0
  for (let index = 0; index < s; index++) meanDiagonal += Math.abs(totals.hessian[index * s + index] as number) / s
  let ridge = 0
  for (let attempt = 0; attempt < 40; attempt++) {
    const factor = Float64Array.from(totals.hessian)
    for (let index = 0; index < s; index++) factor[index * s + index] = (factor[index * s + index] as number) + ridge
    try {
      choleskyInPlace(factor, s)
    } catch (error) {
      if (!(error instanceof SingularHessianError)) throw error
      ridge = ridge === 0 ? 1e-8 * Math.max(meanDiagonal, 1e-300) : ridge * 10
      continue
    }
    const step = Float64Array.from(totals.gradient)
    choleskySolveInPlace(factor, s, step)
    let decrement = totals.localDecrement
    for (let index = 0; index < s; index++) decrement += (totals.gradient[index] as number) * (step[index] as number)
    return { step, decrement, ridge }
  }
  throw new SingularHessianError('the reduced Hessian stays singular with every ridge tried')
}

/** A region's own step from the shared one: D^-1 (h - B' s). */
export function localNewtonStep (local: NonNullable<RegionNewtonTerms['local']>, sharedStep: ArrayLike<number>): number {
  let crossStep = 0
  for (let index = 0; index < local.cross.length; index++) crossStep += (local.cross[index] as number) * (sharedStep[index] as number)
  return (local.gradient - crossStep) / local.curvature
}

/**
 * Standard errors from the totals at the optimum: the shared parameters' from the inverse of the
 * reduced Hessian (the shared block of the full inverse), and a region's own intercept's from
 * D^-1 + D^-1 B' S^-1 B D^-1, which the region computes alone.
 */
export function sharedCovariance (totals: NewtonTotals): Float64Array {
  return invertSymmetric(totals.hessian, totals.gradient.length)
}

export function localStandardError (local: NonNullable<RegionNewtonTerms['local']>, covariance: Float64Array): number {
  const s = local.cross.length
  let quadratic = 0
  for (let row = 0; row < s; row++) for (let column = 0; column < s; column++) quadratic += (local.cross[row] as number) * (covariance[row * s + column] as number) * (local.cross[column] as number)
  const inverse = 1 / local.curvature
  return Math.sqrt(inverse + inverse * inverse * quadratic)
}

/**
 * Starting values every region can agree on without seeing anyone's data: lambda 0.5, phi 0.1, size 1,
 * and the endemic intercept at log(mean count / offset) (shared: from totals of counts and offsets;
 * a region's own: from its own counts). The season terms start at 0.
 */
export function startingShared (spec: EndemicEpidemicSpec, pooledCounts: number, pooledExposure: number): Float64Array {
  const shape = layout(spec)
  const start = new Float64Array(shape.shared)
  start[0] = Math.log(0.5)
  start[1] = Math.log(0.1)
  if (!spec.unitIntercepts) start[shape.endemic] = Math.log(Math.max(pooledCounts, 0.5) / Math.max(pooledExposure, Number.MIN_VALUE) / 2)
  if (shape.overdispersion >= 0) start[shape.overdispersion] = 0
  return start
}

/** A region's totals for the starting values: its counts and its offset times its modelled periods. */
export function regionExposure (region: EndemicEpidemicRegion, range: { from?: number, to?: number } = {}): { counts: number, exposure: number } {
  const { first, end } = modelledPeriods(region, range)
  const start = region.start ?? 0
  let counts = 0
  for (let time = first; time < end; time++) counts += region.counts[time - start] as number
  return { counts, exposure: region.offset * (end - first) }
}

export function startingLocal (spec: EndemicEpidemicSpec, region: EndemicEpidemicRegion, range: { from?: number, to?: number } = {}): number | null {
  if (!spec.unitIntercepts) return null
  const { counts, exposure } = regionExposure(region, range)
  return Math.log(Math.max(counts, 0.5) / exposure / 2)
}

export interface EndemicEpidemicFit {
  spec: EndemicEpidemicSpec
  terms: string[]
  shared: Float64Array
  sharedStandardErrors: Float64Array
  /** each region's own intercept and its standard error (unit intercepts), else empty */
  local: Array<{ estimate: number, standardError: number }>
  logLikelihood: number
  iterations: number
  converged: boolean
}

export interface EndemicEpidemicFitOptions {
  range?: { from?: number, to?: number }
  /**
   * stop when the Newton decrement g' H^-1 g (twice the gain the next step promises) is below this
   * times max(1, |loss|): by default 1e-15, where the gain is at the last digits of the loss
   */
  tolerance?: number
  maxIterations?: number
}

/**
 * The pooled fit: what one analyst holding every region's series would get, by the very steps a
 * federation takes (each region's terms computed apart, then summed).
 */
export function fitEndemicEpidemic (spec: EndemicEpidemicSpec, regions: readonly EndemicEpidemicRegion[], options: EndemicEpidemicFitOptions = {}): EndemicEpidemicFit {
  regions.forEach(checkRegion)
  const range = options.range ?? {}
  const tolerance = options.tolerance ?? DEFAULT_NEWTON_TOLERANCE
  const maxIterations = options.maxIterations ?? 100
  let pooledCounts = 0
  let pooledExposure = 0
  for (const region of regions) {
    const totals = regionExposure(region, range)
    pooledCounts += totals.counts
    pooledExposure += totals.exposure
  }
  const iteration = createNewtonIteration(spec, startingShared(spec, pooledCounts, pooledExposure), regions.map((region) => startingLocal(spec, region, range)), { tolerance, maxIterations })
  for (;;) {
    const total = new Float64Array(contributionLength(spec))
    const terms: RegionNewtonTerms[] = []
    let outOfReach = false
    regions.forEach((region, index) => {
      try {
        const part = regionNewtonTerms(spec, region, iteration.shared, iteration.local[index] ?? null, range)
        terms.push(part)
        for (let slot = 0; slot < total.length; slot++) total[slot] = (total[slot] as number) + (part.contribution[slot] as number)
      } catch (error) {
        if (!(error instanceof NonFiniteError)) throw error
        outOfReach = true
        terms.push({ contribution: new Float64Array(0), local: null })
      }
    })
    if (outOfReach || !total.every(Number.isFinite)) total[0] = Number.POSITIVE_INFINITY
    const outcome = advanceNewton(iteration, spec, total, terms.map((part) => part.local))
    if (outcome === 'done') break
  }
  const totals = iteration.acceptedTotals
  if (totals === null) throw new NotConvergedError('no point of the iteration had a finite likelihood')
  const covariance = sharedCovariance(totals)
  const local = iteration.acceptedLocalTerms.map((terms, index) => terms === null ? null : { estimate: iteration.accepted.local[index] as number, standardError: localStandardError(terms, covariance) }).filter((entry) => entry !== null)
  return {
    spec,
    terms: sharedTerms(spec),
    shared: Float64Array.from(iteration.accepted.shared),
    sharedStandardErrors: Float64Array.from({ length: totals.gradient.length }, (_, index) => Math.sqrt(covariance[index * totals.gradient.length + index] as number)),
    local,
    logLikelihood: -totals.loss,
    iterations: iteration.iterations,
    converged: iteration.converged
  }
}

/**
 * The state of a Newton iteration over the shared parameters and every region's own intercept, as the
 * pooled fit holds it; a federated region holds the same for the shared part and only its own entry of
 * `local`. Each step: evaluate the totals at the current point, then `advanceNewton`.
 */
export interface NewtonIteration {
  shared: Float64Array
  /** the current point's local intercepts (null where the design has none) */
  local: Array<number | null>
  accepted: { shared: Float64Array, local: Array<number | null> }
  acceptedLoss: number
  acceptedTotals: NewtonTotals | null
  acceptedLocalTerms: Array<RegionNewtonTerms['local']>
  halvings: number
  iterations: number
  converged: boolean
  tolerance: number
  maxIterations: number
}

export function createNewtonIteration (spec: EndemicEpidemicSpec, shared: Float64Array, local: Array<number | null>, options: { tolerance: number, maxIterations: number }): NewtonIteration {
  if (shared.length !== layout(spec).shared) throw new RangeError(`${shared.length} shared starting values, the design has ${layout(spec).shared}`)
  return {
    shared: Float64Array.from(shared),
    local: [...local],
    accepted: { shared: Float64Array.from(shared), local: [...local] },
    acceptedLoss: Number.POSITIVE_INFINITY,
    acceptedTotals: null,
    acceptedLocalTerms: local.map(() => null),
    halvings: 0,
    iterations: 0,
    converged: false,
    tolerance: options.tolerance,
    maxIterations: options.maxIterations
  }
}

const MAX_HALVINGS = 40

/** The Newton decrement's stopping point relative to the loss (see EndemicEpidemicFitOptions). */
export const DEFAULT_NEWTON_TOLERANCE = 1e-15

/**
 * One decision of the Newton iteration from the totals at the current point (`total`, Infinity loss
 * when some region's term was out of reach) and the regions' local terms (those this holder has;
 * null elsewhere): halve back towards the accepted point, take a Newton step, or stop. Every holder of
 * the same totals makes the same decision and the same shared move.
 */
export function advanceNewton (iteration: NewtonIteration, spec: EndemicEpidemicSpec, total: ArrayLike<number>, localTerms: ReadonlyArray<RegionNewtonTerms['local']>): 'continue' | 'done' {
  const loss = total[0] as number
  const finite = Number.isFinite(loss)
  if (!finite && iteration.acceptedTotals === null) throw new NonFiniteError('the likelihood at the starting point is not finite')
  const worse = !finite || loss > iteration.acceptedLoss + 1e-12 * Math.abs(iteration.acceptedLoss)
  if (iteration.acceptedTotals !== null && worse) {
    if (iteration.halvings >= MAX_HALVINGS) {
      iteration.shared.set(iteration.accepted.shared)
      iteration.local = [...iteration.accepted.local]
      return 'done'
    }
    iteration.halvings++
    for (let index = 0; index < iteration.shared.length; index++) iteration.shared[index] = 0.5 * ((iteration.shared[index] as number) + (iteration.accepted.shared[index] as number))
    iteration.local = iteration.local.map((value, index) => value === null ? null : 0.5 * (value + (iteration.accepted.local[index] as number)))
    return 'continue'
  }
  iteration.halvings = 0
  const totals = readNewtonTotals(spec, total)
  iteration.accepted = { shared: Float64Array.from(iteration.shared), local: [...iteration.local] }
  iteration.acceptedLoss = loss
  iteration.acceptedTotals = totals
  iteration.acceptedLocalTerms = [...localTerms]
  const { step, decrement } = sharedNewtonStep(totals)
  if (decrement < iteration.tolerance * Math.max(1, Math.abs(loss))) {
    iteration.converged = true
    return 'done'
  }
  if (iteration.iterations >= iteration.maxIterations) return 'done'
  iteration.iterations++
  for (let index = 0; index < step.length; index++) iteration.shared[index] = (iteration.shared[index] as number) - (step[index] as number)
  iteration.local = iteration.local.map((value, index) => {
    const terms = localTerms[index]
    return value === null || terms === null || terms === undefined ? value : value - localNewtonStep(terms, step)
  })
  return 'continue'
}

/** Each region's sum of its neighbours' counts, period by period: sum_j w_jr y_j,t with w_jr = 1 for a shared border. */
export function neighbourCountSum (neighbours: ReadonlyArray<ArrayLike<number>>, length: number): Float64Array {
  const sum = new Float64Array(length)
  for (const series of neighbours) {
    if (series.length !== length) throw new ForecastInputError('neighbourCounts', `a neighbour's series has ${series.length} periods, expected ${length}`)
    for (let index = 0; index < length; index++) {
      const value = series[index] as number
      if (!(Number.isInteger(value) && value >= 0)) throw new ForecastInputError('neighbourCounts', `period ${index}: ${value} is not a count`)
      sum[index] = (sum[index] as number) + value
    }
  }
  return sum
}

/**
 * Every region's data as its own peer would assemble it, from a simulator's panel (counts by region,
 * aligned with `neighbours`, an adjacency list by region index): its counts over the first `periods`
 * periods, its neighbours' count sums, and its offset, its share of the federation's population (as
 * R's population(sts) for fluBYBW and measlesDE).
 */
export function panelRegions (panel: { counts: readonly Float64Array[], populations: readonly number[] }, neighbours: ReadonlyArray<ReadonlyArray<number>>, periods?: number): EndemicEpidemicRegion[] {
  if (panel.counts.length !== neighbours.length || panel.populations.length !== neighbours.length) throw new ForecastInputError('panel', `${panel.counts.length} series, ${panel.populations.length} populations, ${neighbours.length} adjacency lists`)
  const total = panel.populations.reduce((sum, value) => sum + value, 0)
  return panel.counts.map((series, region) => {
    const used = periods ?? series.length
    const counts = series.subarray(0, used)
    return {
      counts,
      neighbourCounts: neighbourCountSum((neighbours[region] ?? []).map((other) => (panel.counts[other] as Float64Array).subarray(0, used)), used),
      offset: (panel.populations[region] as number) / total
    }
  })
}
