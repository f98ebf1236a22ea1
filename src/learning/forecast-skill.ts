import { ForecastInputError } from './forecast.ts'
import { scoreCount, type CountDistribution } from './negbin.ts'

/**
 * Scores of probabilistic count forecasts, as the forecasting literature and R's surveillance::scores
 * compute them, each averaged over the forecasts: the log score (the mean of log P(Y = y_observed),
 * higher is better; 0 is a perfect, certain forecast), the ranked probability score and the
 * Dawid-Sebastiani score (lower is better), the mean absolute error of the mean as a point forecast,
 * and the randomised-PIT coverage of the central 90% interval (calibrated: 0.90; see negbin.ts).
 * A forecast is a count distribution, or a number: a Poisson distribution with that mean.
 */
export interface Skill {
  logScore: number
  mae: number
  rps: number
  dss: number
  coverage: number
  /** forecasts scored */
  count: number
}

/** Running sums of the scores, so that many regions' forecasts add up to one figure. */
export interface SkillAccumulator {
  logScore: number
  absoluteError: number
  rps: number
  dss: number
  coverage: number
  count: number
}

export function createSkillAccumulator (): SkillAccumulator {
  return { logScore: 0, absoluteError: 0, rps: 0, dss: 0, coverage: 0, count: 0 }
}

export function addForecast (accumulator: SkillAccumulator, observed: number, forecast: number | CountDistribution): void {
  const distribution = typeof forecast === 'number' ? { mean: forecast, size: Number.POSITIVE_INFINITY } : forecast
  const scores = scoreCount(observed, distribution)
  accumulator.logScore += scores.logScore
  accumulator.absoluteError += scores.absoluteError
  accumulator.rps += scores.rps
  accumulator.dss += scores.dss
  accumulator.coverage += scores.coverage
  accumulator.count++
}

export function skillOf (accumulator: SkillAccumulator): Skill {
  const count = accumulator.count
  if (count === 0) throw new ForecastInputError('skill', 'no forecasts to score')
  return { logScore: accumulator.logScore / count, mae: accumulator.absoluteError / count, rps: accumulator.rps / count, dss: accumulator.dss / count, coverage: accumulator.coverage / count, count }
}

/** A baseline's mean is its point value floored here, so that an observed 0 never gets a Poisson mean of 0. */
export const BASELINE_FLOOR = 0.5

/** Last value: next period as this one. */
export function lastValueMean (counts: ArrayLike<number>, index: number): number {
  if (index < 1) throw new RangeError(`the last-value forecast of period ${index} needs the period before it`)
  return Math.max(counts[index - 1] as number, BASELINE_FLOOR)
}

/** Seasonal naive: the same period one season earlier (52 weeks for weekly data). */
export function seasonalNaiveMean (counts: ArrayLike<number>, index: number, season: number): number {
  if (index < season) throw new RangeError(`the seasonal-naive forecast of period ${index} needs the period ${season} before it`)
  return Math.max(counts[index - season] as number, BASELINE_FLOOR)
}
