import { meanAt, modelledPeriods, sizeOf, type EndemicEpidemicRegion, type EndemicEpidemicSpec } from './endemic-epidemic.ts'
import { ForecastInputError, type PeriodForecast } from './forecast.ts'
import { countQuantile, type CountDistribution } from './negbin.ts'

/**
 * Forecasts of the endemic-epidemic model from its predictive distribution: the negative binomial (or
 * Poisson) with the model's mean, whose quantiles give the intervals.
 *
 * One step ahead the distribution is exact given the parameters: the mean needs only the last observed
 * counts. Further ahead the mean follows the model's recursion, mu_t+1 = endemic + lambda mu_t + phi
 * (neighbours' mean sum), which is the exact expectation because the epidemic part is linear in the
 * lagged counts; the interval there is the negative binomial's around that mean, too narrow because it
 * ignores the spread of the lags (as forecast.ts says of the Poisson model). Parameters are treated as
 * known.
 */
export interface EndemicEpidemicParameters {
  spec: EndemicEpidemicSpec
  shared: ArrayLike<number>
  /** the region's own intercept, when the design has one */
  local: number | null
}

/** The one-step-ahead distribution of every modelled period t in [from, to) of a region, from the counts at t - 1. */
export function oneStepDistributions (parameters: EndemicEpidemicParameters, region: EndemicEpidemicRegion, range: { from?: number, to?: number } = {}): Array<{ time: number, observed: number, distribution: CountDistribution }> {
  const { spec, shared, local } = parameters
  const size = sizeOf(spec, shared)
  const start = region.start ?? 0
  const { first, end } = modelledPeriods(region, range)
  const out: Array<{ time: number, observed: number, distribution: CountDistribution }> = []
  for (let time = first; time < end; time++) {
    const index = time - start
    const mean = meanAt(spec, shared, local, region.offset, time, region.counts[index - 1] as number, region.neighbourCounts[index - 1] as number).mean
    out.push({ time, observed: region.counts[index] as number, distribution: { mean, size } })
  }
  return out
}

function checkLevel (level: number): void {
  if (!(level > 0 && level < 1)) throw new ForecastInputError('level', `must be in (0, 1), got ${level}`)
}

function periodForecast (time: number, step: number, distribution: CountDistribution, level: number): PeriodForecast {
  return { time, step, mean: distribution.mean, lower: countQuantile((1 - level) / 2, distribution), upper: countQuantile((1 + level) / 2, distribution) }
}

/**
 * One region's forecast for the periods after its series, alone: the neighbours' count sum of the
 * periods ahead is `neighbourFuture` (index 0: the next period), for instance from the neighbours'
 * own forecasts, or else the last observed sum.
 */
export function forecastEndemicEpidemicRegion (parameters: EndemicEpidemicParameters, region: EndemicEpidemicRegion, options: { horizon: number, level?: number, neighbourFuture?: ArrayLike<number> }): PeriodForecast[] {
  if (!(Number.isInteger(options.horizon) && options.horizon >= 1)) throw new ForecastInputError('horizon', `must be a positive integer, got ${options.horizon}`)
  const level = options.level ?? 0.9
  checkLevel(level)
  const length = region.counts.length
  if (length < 1) throw new ForecastInputError('counts', 'no period to forecast from')
  const { spec, shared, local } = parameters
  const size = sizeOf(spec, shared)
  const start = region.start ?? 0
  let previousOwn = region.counts[length - 1] as number
  const lastNeighbours = region.neighbourCounts[length - 1] as number
  let previousNeighbours = lastNeighbours
  const forecasts: PeriodForecast[] = []
  for (let step = 1; step <= options.horizon; step++) {
    const time = start + length - 1 + step
    const mean = meanAt(spec, shared, local, region.offset, time, previousOwn, previousNeighbours).mean
    forecasts.push(periodForecast(time, step, { mean, size }, level))
    previousOwn = mean
    previousNeighbours = (options.neighbourFuture?.[step - 1] as number | undefined) ?? lastNeighbours
  }
  return forecasts
}

/**
 * Every region's forecast for the periods after the series, iterated jointly: after each step, the
 * regions' forecast means give each region the sum of its neighbours' (`neighbours`: an adjacency list
 * by region index), as peers sharing their forecasts with their neighbours would.
 */
export function forecastEndemicEpidemicPanel (spec: EndemicEpidemicSpec, shared: ArrayLike<number>, locals: ReadonlyArray<number | null>, regions: readonly EndemicEpidemicRegion[], neighbours: ReadonlyArray<ReadonlyArray<number>>, options: { horizon: number, level?: number }): PeriodForecast[][] {
  if (regions.length !== neighbours.length || locals.length !== regions.length) throw new ForecastInputError('panel', `${regions.length} regions, ${locals.length} intercepts, ${neighbours.length} adjacency lists`)
  const futures: number[][] = regions.map(() => [])
  let forecasts: PeriodForecast[][] = []
  for (let step = 1; step <= options.horizon; step++) {
    forecasts = regions.map((region, index) => forecastEndemicEpidemicRegion({ spec, shared, local: locals[index] ?? null }, region, { horizon: step, neighbourFuture: futures[index] as number[], ...(options.level === undefined ? {} : { level: options.level }) }))
    if (step === options.horizon) break
    const means = forecasts.map((list) => (list[step - 1] as PeriodForecast).mean)
    neighbours.forEach((list, index) => { (futures[index] as number[]).push(list.reduce((sum, other) => sum + (means[other] as number), 0)) })
  }
  return forecasts
}
