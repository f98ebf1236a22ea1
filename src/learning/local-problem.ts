import type { LocalObjective } from './objective.ts'

export type Family = 'binomial' | 'poisson'

/** Pooled means and population standard deviations of the design columns (intercept: 0 and 1). */
export interface ColumnScaling {
  mean: Float64Array
  scale: Float64Array
}

/**
 * A peer's part of a federated regression, as the consensus machines see it: aggregates and
 * objectives, never rows. The learning core implements it over the peer's local data.
 */
export interface LocalProblem {
  readonly family: Family
  /** p, the number of coefficients */
  readonly dimension: number
  readonly terms: readonly string[]
  /** column of the intercept, or null for a model without one */
  readonly interceptColumn: number | null
  /**
   * Additive statistics for the pooled scaling and the starting point, laid out as
   * [1 (this peer), rows, sum of each column (p), sum of squares of each column (p), sum of y, sum of exp(offset)].
   */
  statistics(): Float64Array
  /**
   * Additive cross-products from which the pooled value, gradient and Hessian at any point with an
   * intercept and no slope (the starting point) follow in closed form (see intercept-start.ts), laid
   * out as [sum of w x x' (upper triangle, p (p + 1) / 2), sum of y x (p), sum of y offset, sum of
   * log y!, 1 if this peer's rows do not allow the closed form], with w = exp(offset) for Poisson and
   * 1 for binomial (whose rows allow it only without offsets). Optional: a problem without it is fitted
   * without the shortcut.
   */
  crossProducts?(): Float64Array
  /**
   * The peer's objective f_i: its negative log-likelihood on the scaled columns plus
   * (penaltyShare / 2) ||P x||^2, P dropping the intercept.
   */
  objective(scaling: ColumnScaling | null, penaltyShare: number): LocalObjective
  /** this peer's rows' negative log-likelihood at a point on the original scale (for the pooled log-likelihood) */
  negativeLogLikelihood(coefficients: Float64Array): number
  /**
   * Binomial only: this peer's fitted risks at `coefficients` (original scale) as additive histograms
   * over `bins` equal bins of [0, 1]: [negatives per bin, positives per bin, sum of risks per bin,
   * sum of squared risks, sum of risk x outcome]. Summed over the federation they give AUC, the Brier
   * score and a Hosmer-Lemeshow table without any peer's rows.
   */
  riskHistogram(coefficients: Float64Array, bins: number): Float64Array
}

export function crossProductsLength (dimension: number): number {
  return (dimension * (dimension + 1)) / 2 + dimension + 3
}

export function statisticsLength (dimension: number): number {
  return 4 + 2 * dimension
}

export interface PooledStatistics {
  peers: number
  rows: number
  mean: Float64Array
  /** population standard deviation (divide by n) */
  standardDeviation: Float64Array
  outcomeSum: number
  exposureSum: number
}

export function readStatistics (total: Float64Array, dimension: number): PooledStatistics {
  const peers = Math.round(total[0] as number)
  const rows = Math.round(total[1] as number)
  const mean = new Float64Array(dimension)
  const standardDeviation = new Float64Array(dimension)
  for (let column = 0; column < dimension; column++) {
    const sum = total[2 + column] as number
    const sumSquares = total[2 + dimension + column] as number
    const average = sum / rows
    mean[column] = average
    standardDeviation[column] = Math.sqrt(Math.max(0, sumSquares / rows - average * average))
  }
  return {
    peers,
    rows,
    mean,
    standardDeviation,
    outcomeSum: total[2 + 2 * dimension] as number,
    exposureSum: total[3 + 2 * dimension] as number
  }
}
