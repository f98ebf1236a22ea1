import { INTERCEPT, type DataBlock } from './design.ts'
import { EpimeshError, InvalidOutcomeError, NonFiniteError } from './errors.ts'
import { poissonQuantile, samplePoisson } from './poisson.ts'

/**
 * A shared forecasting model for case counts, in the spirit of the endemic-epidemic model (`hhh4` of
 * R's `surveillance`), written as one Poisson regression with a log link:
 *
 *   y_rt ~ Poisson(mu_rt),
 *   log mu_rt = log(population_r) + b0
 *             + sum_{k=1..ownLags} b_k log(1 + own_r,t-k)                  own recent incidence
 *             + sum_{k=1..neighbourLags} c_k log(1 + nbr_r,t-k)           neighbours' recent incidence
 *             + sum_{j=1..harmonics} (s_j sin(2 pi j t / P) + d_j cos(2 pi j t / P))   season, period P
 *
 * where own_r,t is the region's count (ownScale 'count') or its incidence per 100,000 residents
 * (ownScale 'incidence'), and nbr_r,t is the mean, over the region's graph neighbours, of their
 * incidence per 100,000 at t (0 for a region without neighbours). t counts periods from an origin the
 * federation shares (the first row of a simulator's counts file). Unlike hhh4, whose epidemic
 * components add to the endemic one, everything here sits in one log-linear predictor, so the model is
 * a plain Poisson GLM with an offset: every region's rows form a `DataBlock`, the federation fits it
 * with the same machines as any GLM, and the pooled fit is R's `glm(..., family = poisson)`.
 *
 * A row exists for every period with all its lags inside the series (t >= the largest lag).
 */
export type OwnScale = 'count' | 'incidence'

export interface ForecastModelSpec {
  ownLags: number
  neighbourLags: number
  ownScale: OwnScale
  /** season period in periods (52 for weekly data, 365.25 for daily), or null for no season terms */
  seasonPeriod: number | null
  harmonics: number
}

export const DEFAULT_FORECAST_MODEL: Readonly<ForecastModelSpec> = Object.freeze({
  ownLags: 2,
  neighbourLags: 1,
  // Own lags as counts: as incidence per 100,000 they forecast fluBYBW's held-out year better (mean log
  // score -0.858 against -0.919) but measlesDE's worse (-1.061 against -0.756) (docs/forecast.md).
  ownScale: 'count',
  seasonPeriod: 52,
  harmonics: 1
})

/** A forecast input that cannot be used: a bad count, population or model setting. `field` names it. */
export class ForecastInputError extends EpimeshError {
  static override readonly name = 'ForecastInputError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super('FORECAST_INPUT_INVALID', `${field}: ${message}`, options)
    this.field = field
  }
}

const nonNegativeInteger = (value: number): boolean => Number.isInteger(value) && value >= 0

export function createForecastModelSpec (partial: Partial<ForecastModelSpec> = {}): ForecastModelSpec {
  const spec: ForecastModelSpec = { ...DEFAULT_FORECAST_MODEL, ...partial }
  if (!nonNegativeInteger(spec.ownLags) || spec.ownLags > 52) throw new ForecastInputError('ownLags', `must be an integer from 0 to 52, got ${spec.ownLags}`)
  if (!nonNegativeInteger(spec.neighbourLags) || spec.neighbourLags > 52) throw new ForecastInputError('neighbourLags', `must be an integer from 0 to 52, got ${spec.neighbourLags}`)
  if (spec.ownScale !== 'count' && spec.ownScale !== 'incidence') throw new ForecastInputError('ownScale', `must be count or incidence, got ${String(spec.ownScale)}`)
  if (spec.seasonPeriod !== null && !(Number.isFinite(spec.seasonPeriod) && spec.seasonPeriod >= 2)) throw new ForecastInputError('seasonPeriod', `must be a number of periods of at least 2, or null, got ${spec.seasonPeriod}`)
  if (!nonNegativeInteger(spec.harmonics) || spec.harmonics > 6) throw new ForecastInputError('harmonics', `must be an integer from 0 to 6, got ${spec.harmonics}`)
  return spec
}

/** The largest lag: the first row of a series that gets a design row. */
export function maxLag (spec: ForecastModelSpec): number {
  return Math.max(spec.ownLags, spec.neighbourLags)
}

function seasonPeriodLabel (period: number): string {
  return Number.isInteger(period) ? String(period) : period.toFixed(2)
}

/** Coefficient names, in column order. */
export function forecastTerms (spec: ForecastModelSpec): string[] {
  const own = spec.ownScale === 'count' ? 'y' : 'inc'
  const terms = [INTERCEPT]
  for (let lag = 1; lag <= spec.ownLags; lag++) terms.push(`log1p(${own}[t-${lag}])`)
  for (let lag = 1; lag <= spec.neighbourLags; lag++) terms.push(`log1p(nbr[t-${lag}])`)
  if (spec.seasonPeriod !== null) {
    const period = seasonPeriodLabel(spec.seasonPeriod)
    for (let harmonic = 1; harmonic <= spec.harmonics; harmonic++) {
      const angle = harmonic === 1 ? `2*pi*t/${period}` : `2*pi*${harmonic}*t/${period}`
      terms.push(`sin(${angle})`, `cos(${angle})`)
    }
  }
  return terms
}

export const PER_100K = 100_000

/**
 * A region's incidence per 100,000 residents, period by period: what it shares with each graph
 * neighbour for the neighbour term (see docs/forecast.md for what that reveals).
 */
export function incidencePer100k (counts: ArrayLike<number>, population: number): Float64Array {
  checkPopulation(population, 'population')
  const incidence = new Float64Array(counts.length)
  const factor = PER_100K / population
  for (let index = 0; index < counts.length; index++) incidence[index] = (counts[index] as number) * factor
  return incidence
}

/**
 * The neighbour aggregate of one region: period by period, the mean of its neighbours' shared incidence
 * series (all aligned on the same periods). No neighbours: zeros of `length`.
 */
export function neighbourMeanIncidence (neighbours: ReadonlyArray<ArrayLike<number>>, length: number): Float64Array {
  const mean = new Float64Array(length)
  if (neighbours.length === 0) return mean
  for (const series of neighbours) {
    if (series.length !== length) throw new ForecastInputError('neighbourIncidence', `a neighbour's series has ${series.length} periods, expected ${length}`)
    for (let index = 0; index < length; index++) {
      const value = series[index] as number
      if (!(Number.isFinite(value) && value >= 0)) throw new ForecastInputError('neighbourIncidence', `period ${index}: ${value} is not a non-negative number`)
      mean[index] = (mean[index] as number) + value
    }
  }
  for (let index = 0; index < length; index++) mean[index] = (mean[index] as number) / neighbours.length
  return mean
}

/**
 * What one region holds for the model: its own counts, its population and the neighbour aggregate on
 * the same periods. `start` is the federation's period index of counts[0] (default 0); it sets the
 * season's phase.
 */
export interface RegionHistory {
  counts: ArrayLike<number>
  population: number
  neighbourIncidence: ArrayLike<number>
  start?: number
}

function checkPopulation (population: number, field: string): void {
  if (!(Number.isFinite(population) && population > 0)) throw new ForecastInputError(field, `must be a positive number, got ${population}`)
}

function checkHistory (history: RegionHistory): void {
  checkPopulation(history.population, 'population')
  const { counts, neighbourIncidence } = history
  for (let index = 0; index < counts.length; index++) {
    const value = counts[index] as number
    if (!nonNegativeInteger(value)) throw new InvalidOutcomeError(`period ${index}: the count ${value} is not a non-negative integer`)
  }
  if (neighbourIncidence.length !== counts.length) throw new ForecastInputError('neighbourIncidence', `${neighbourIncidence.length} periods for ${counts.length} counts`)
  for (let index = 0; index < neighbourIncidence.length; index++) {
    const value = neighbourIncidence[index] as number
    if (!(Number.isFinite(value) && value >= 0)) throw new NonFiniteError(`period ${index}: the neighbour incidence ${value} is not a non-negative number`)
  }
}

/**
 * Writes one row of covariates for period `time` into out[base..base+p). `own(lag)` and
 * `neighbour(lag)` give the series `lag` periods before `time`.
 */
function fillCovariates (spec: ForecastModelSpec, out: Float64Array, base: number, time: number, population: number, own: (lag: number) => number, neighbour: (lag: number) => number): void {
  let column = base
  out[column++] = 1
  const ownFactor = spec.ownScale === 'count' ? 1 : PER_100K / population
  for (let lag = 1; lag <= spec.ownLags; lag++) out[column++] = Math.log1p(own(lag) * ownFactor)
  for (let lag = 1; lag <= spec.neighbourLags; lag++) out[column++] = Math.log1p(neighbour(lag))
  if (spec.seasonPeriod !== null) {
    for (let harmonic = 1; harmonic <= spec.harmonics; harmonic++) {
      const angle = 2 * Math.PI * harmonic * time / spec.seasonPeriod
      out[column++] = Math.sin(angle)
      out[column++] = Math.cos(angle)
    }
  }
}

export interface ForecastDesign {
  block: DataBlock
  terms: string[]
  /** the federation's period index of each row */
  times: number[]
}

/**
 * A region's rows of the model: one per period t (federation index) with from <= t < to whose lags lie
 * inside the series; y is the count, the offset log(population). Defaults: the whole series.
 */
export function buildForecastDesign (spec: ForecastModelSpec, history: RegionHistory, range: { from?: number, to?: number } = {}): ForecastDesign {
  checkHistory(history)
  const start = history.start ?? 0
  const first = Math.max(start + maxLag(spec), range.from ?? Number.NEGATIVE_INFINITY)
  const end = Math.min(start + history.counts.length, range.to ?? Number.POSITIVE_INFINITY)
  const rows = Math.max(0, end - first)
  const terms = forecastTerms(spec)
  const p = terms.length
  const x = new Float64Array(rows * p)
  const y = new Float64Array(rows)
  const offset = new Float64Array(rows).fill(Math.log(history.population))
  const times: number[] = []
  const { counts, neighbourIncidence } = history
  for (let row = 0; row < rows; row++) {
    const time = first + row
    const index = time - start
    fillCovariates(spec, x, row * p, time, history.population, (lag) => counts[index - lag] as number, (lag) => neighbourIncidence[index - lag] as number)
    y[row] = counts[index] as number
    times.push(time)
  }
  return { block: { x, y, offset, rows, cols: p }, terms, times }
}

/** exp(x' beta + offset) for every row of a block: the one-step-ahead means of a design's rows. */
export function forecastMeans (block: DataBlock, coefficients: ArrayLike<number>): Float64Array {
  const p = block.cols
  if (coefficients.length !== p) throw new RangeError(`${coefficients.length} coefficients for ${p} columns`)
  const means = new Float64Array(block.rows)
  for (let row = 0; row < block.rows; row++) {
    let eta = block.offset?.[row] ?? 0
    for (let column = 0; column < p; column++) eta += (block.x[row * p + column] as number) * (coefficients[column] as number)
    means[row] = Math.exp(eta)
  }
  return means
}

/** One forecast period: the mean and a central prediction interval of probability `level`. */
export interface PeriodForecast {
  /** federation period index */
  time: number
  /** periods ahead of the last observed one (1 = next) */
  step: number
  mean: number
  lower: number
  upper: number
}

export interface ForecastOptions {
  /** periods ahead, at least 1 */
  horizon: number
  /** central prediction interval probability (default 0.9: the 5% and 95% quantiles) */
  level?: number
  /**
   * The neighbour aggregate for the periods after the last observed one (index 0 = the next period),
   * for instance from the neighbours' own forecasts. Missing periods hold the last observed value.
   */
  neighbourFuture?: ArrayLike<number>
}

function checkForecastOptions (options: ForecastOptions): number {
  if (!(Number.isInteger(options.horizon) && options.horizon >= 1)) throw new ForecastInputError('horizon', `must be a positive integer, got ${options.horizon}`)
  const level = options.level ?? 0.9
  if (!(level > 0 && level < 1)) throw new ForecastInputError('level', `must be in (0, 1), got ${level}`)
  return level
}

/** The linear predictor without the offset for period `time`, with the lags taken from the callbacks. */
function predictorAt (spec: ForecastModelSpec, coefficients: ArrayLike<number>, scratch: Float64Array, time: number, population: number, own: (lag: number) => number, neighbour: (lag: number) => number): number {
  fillCovariates(spec, scratch, 0, time, population, own, neighbour)
  let eta = Math.log(population)
  for (let column = 0; column < scratch.length; column++) eta += (scratch[column] as number) * (coefficients[column] as number)
  return eta
}

/** A series extended by values after its end: value(i) for i beyond the observed part reads `future`. */
function extended (observed: ArrayLike<number>, future: ArrayLike<number>, fallback: number): (index: number) => number {
  return (index) => index < observed.length ? observed[index] as number : ((future[index - observed.length] as number | undefined) ?? fallback)
}

function lastOr (series: ArrayLike<number>, fallback: number): number {
  return series.length === 0 ? fallback : series[series.length - 1] as number
}

/**
 * A region's forecast for the next `horizon` periods by iterating the mean forward: step k uses the
 * observed counts where its lags reach into the past and the forecast means where they reach into
 * the forecast (a plug-in: the mean of a log-linear model at the mean of its lags, not the exact mean
 * of the nonlinear recursion). The interval of each step is the central `level` interval of a Poisson
 * distribution with that mean: exact for step 1, too narrow beyond it because it ignores the
 * uncertainty of the lags; `simulateRegionForecast` accounts for that. Coefficients are treated as
 * known in both.
 */
export function forecastRegion (spec: ForecastModelSpec, coefficients: ArrayLike<number>, history: RegionHistory, options: ForecastOptions): PeriodForecast[] {
  const level = checkForecastOptions(options)
  checkHistory(history)
  const p = forecastTerms(spec).length
  if (coefficients.length !== p) throw new RangeError(`${coefficients.length} coefficients for ${p} terms`)
  const start = history.start ?? 0
  const length = history.counts.length
  if (length < maxLag(spec)) throw new ForecastInputError('counts', `${length} periods, fewer than the model's largest lag ${maxLag(spec)}`)
  const futureMeans = new Float64Array(options.horizon)
  const own = extended(history.counts, futureMeans, 0)
  const neighbourFuture = options.neighbourFuture ?? []
  const neighbour = extended(history.neighbourIncidence, neighbourFuture, lastOr(history.neighbourIncidence, 0))
  const scratch = new Float64Array(p)
  const forecasts: PeriodForecast[] = []
  for (let step = 1; step <= options.horizon; step++) {
    const index = length + step - 1
    const mean = Math.exp(predictorAt(spec, coefficients, scratch, start + index, history.population, (lag) => own(index - lag), (lag) => neighbour(index - lag)))
    futureMeans[step - 1] = mean
    forecasts.push({ time: start + index, step, mean, lower: poissonQuantile((1 - level) / 2, mean), upper: poissonQuantile((1 + level) / 2, mean) })
  }
  return forecasts
}

/**
 * The same forecast by simulation: `draws` sample paths, each drawing y_t ~ Poisson(mu_t) and feeding
 * the draw into the next step's lags; the mean is the paths' average and the interval the empirical
 * quantiles (type 1: the smallest value with at least that share of paths at or below it). The
 * neighbour aggregate follows `neighbourFuture` (or holds its last value) on every path. Uniform numbers
 * come from the injected `uniform` source, so a seed fixes the result.
 */
export function simulateRegionForecast (spec: ForecastModelSpec, coefficients: ArrayLike<number>, history: RegionHistory, options: ForecastOptions & { draws: number, uniform: () => number }): PeriodForecast[] {
  const level = checkForecastOptions(options)
  checkHistory(history)
  if (!(Number.isInteger(options.draws) && options.draws >= 1)) throw new ForecastInputError('draws', `must be a positive integer, got ${options.draws}`)
  const p = forecastTerms(spec).length
  if (coefficients.length !== p) throw new RangeError(`${coefficients.length} coefficients for ${p} terms`)
  const start = history.start ?? 0
  const length = history.counts.length
  if (length < maxLag(spec)) throw new ForecastInputError('counts', `${length} periods, fewer than the model's largest lag ${maxLag(spec)}`)
  const horizon = options.horizon
  const neighbour = extended(history.neighbourIncidence, options.neighbourFuture ?? [], lastOr(history.neighbourIncidence, 0))
  const scratch = new Float64Array(p)
  const paths = Array.from({ length: horizon }, () => new Float64Array(options.draws))
  const path = new Float64Array(horizon)
  for (let draw = 0; draw < options.draws; draw++) {
    const own = extended(history.counts, path, 0)
    for (let step = 1; step <= horizon; step++) {
      const index = length + step - 1
      const mean = Math.exp(predictorAt(spec, coefficients, scratch, start + index, history.population, (lag) => own(index - lag), (lag) => neighbour(index - lag)))
      const value = samplePoisson(mean, options.uniform)
      path[step - 1] = value
      ;(paths[step - 1] as Float64Array)[draw] = value
    }
  }
  return paths.map((values, offset) => {
    const sorted = Float64Array.from(values).sort()
    let sum = 0
    for (const value of sorted) sum += value
    const quantile = (probability: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(probability * sorted.length) - 1))] as number
    return { time: start + length + offset, step: offset + 1, mean: sum / sorted.length, lower: quantile((1 - level) / 2), upper: quantile((1 + level) / 2) }
  })
}
