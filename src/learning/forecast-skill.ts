import { ForecastInputError } from './forecast.ts'
import { logPoissonProbability } from './poisson.ts'

/**
 * Scores of probabilistic count forecasts, each a Poisson distribution given by its mean: the mean log
 * score (the mean of log P(Y = y_observed), higher is better; 0 is a perfect, certain forecast) and the
 * mean absolute error of the mean as a point forecast.
 */
export interface Skill {
  logScore: number
  mae: number
  /** forecasts scored */
  count: number
}

/** Running sums of a score, so that many regions' forecasts add up to one figure. */
export interface SkillAccumulator {
  logScore: number
  absoluteError: number
  count: number
}

export function createSkillAccumulator (): SkillAccumulator {
  return { logScore: 0, absoluteError: 0, count: 0 }
}

export function addForecast (accumulator: SkillAccumulator, observed: number, mean: number): void {
  accumulator.logScore += logPoissonProbability(observed, mean)
  accumulator.absoluteError += Math.abs(observed - mean)
  accumulator.count++
}

export function skillOf (accumulator: SkillAccumulator): Skill {
  if (accumulator.count === 0) throw new ForecastInputError('skill', 'no forecasts to score')
  return { logScore: accumulator.logScore / accumulator.count, mae: accumulator.absoluteError / accumulator.count, count: accumulator.count }
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
