import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf'
import type { DataBlock } from './design.ts'
import { DimensionMismatchError, EmptyDataError } from './errors.ts'
import { logistic, type FamilyName } from './family.ts'

/** Fitted probabilities (binomial) or means (Poisson) of a block at beta. */
export function predictMeans (family: FamilyName, block: DataBlock, beta: ArrayLike<number>): Float64Array {
  const p = block.cols
  if (beta.length !== p) throw new DimensionMismatchError(`beta has ${beta.length} entries for ${p} columns`)
  const out = new Float64Array(block.rows)
  for (let row = 0; row < block.rows; row++) {
    let eta = block.offset === undefined ? 0 : (block.offset[row] as number)
    for (let column = 0; column < p; column++) eta += (block.x[row * p + column] as number) * (beta[column] as number)
    out[row] = family === 'binomial' ? logistic(eta) : Math.exp(eta)
  }
  return out
}

export function predictProbabilities (block: DataBlock, beta: ArrayLike<number>): Float64Array {
  return predictMeans('binomial', block, beta)
}

function checkPair (y: ArrayLike<number>, p: ArrayLike<number>): void {
  if (y.length !== p.length) throw new DimensionMismatchError(`${y.length} outcomes and ${p.length} predictions`)
  if (y.length === 0) throw new EmptyDataError('no predictions to score')
}

/** Mean negative log-likelihood per row; probabilities are clipped to [1e-15, 1 - 1e-15]. */
export function logLoss (y: ArrayLike<number>, p: ArrayLike<number>): number {
  checkPair(y, p)
  let sum = 0
  for (let index = 0; index < y.length; index++) {
    const probability = Math.min(Math.max(p[index] as number, 1e-15), 1 - 1e-15)
    sum -= (y[index] as number) === 1 ? Math.log(probability) : Math.log1p(-probability)
  }
  return sum / y.length
}

export function brierScore (y: ArrayLike<number>, p: ArrayLike<number>): number {
  checkPair(y, p)
  let sum = 0
  for (let index = 0; index < y.length; index++) sum += ((p[index] as number) - (y[index] as number)) ** 2
  return sum / y.length
}

/**
 * Area under the ROC curve: the Mann–Whitney probability that a random positive scores above a random
 * negative, ties counting one half, from mid-ranks in O(n log n).
 */
export function auc (y: ArrayLike<number>, p: ArrayLike<number>): number {
  checkPair(y, p)
  const order = Array.from({ length: y.length }, (_, index) => index).sort((a, b) => (p[a] as number) - (p[b] as number))
  let positives = 0
  let rankSum = 0
  for (let start = 0; start < order.length;) {
    let end = start
    while (end + 1 < order.length && p[order[end + 1] as number] === p[order[start] as number]) end++
    const midRank = (start + end) / 2 + 1
    for (let index = start; index <= end; index++) {
      if ((y[order[index] as number] as number) === 1) {
        positives++
        rankSum += midRank
      }
    }
    start = end + 1
  }
  const negatives = y.length - positives
  if (positives === 0 || negatives === 0) return Number.NaN
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives)
}

export interface CalibrationRow {
  group: number
  n: number
  observed: number
  expected: number
  meanPredicted: number
  minPredicted: number
  maxPredicted: number
}

export interface HosmerLemeshow {
  statistic: number
  df: number
  pValue: number
  groups: CalibrationRow[]
}

/**
 * Rows sorted by fitted risk (a stable sort: tied rows keep their data order) and cut into `groups`
 * groups of equal count, the first n mod groups of them one row larger (as numpy's array_split cuts),
 * with observed and expected events per group. With tied risks the statistic depends on this rule;
 * it is stated so that results can be reproduced elsewhere.
 */
export function calibrationTable (y: ArrayLike<number>, p: ArrayLike<number>, groups = 10): CalibrationRow[] {
  checkPair(y, p)
  if (!Number.isInteger(groups) || groups < 2) throw new RangeError('groups must be an integer of at least 2')
  const n = y.length
  const order = Array.from({ length: n }, (_, index) => index).sort((a, b) => (p[a] as number) - (p[b] as number) || a - b)
  const rows: CalibrationRow[] = Array.from({ length: groups }, (_, group) => ({ group: group + 1, n: 0, observed: 0, expected: 0, meanPredicted: 0, minPredicted: Number.POSITIVE_INFINITY, maxPredicted: Number.NEGATIVE_INFINITY }))
  const base = Math.floor(n / groups)
  const larger = n % groups
  const largerRows = (base + 1) * larger
  const groupOf = (rank: number): number => rank < largerRows ? Math.floor(rank / (base + 1)) : larger + Math.floor((rank - largerRows) / Math.max(base, 1))
  order.forEach((index, rank) => {
    const row = rows[groupOf(rank)] as CalibrationRow
    const probability = p[index] as number
    row.n++
    row.observed += y[index] as number
    row.expected += probability
    row.minPredicted = Math.min(row.minPredicted, probability)
    row.maxPredicted = Math.max(row.maxPredicted, probability)
  })
  for (const row of rows) row.meanPredicted = row.n === 0 ? Number.NaN : row.expected / row.n
  return rows.filter((row) => row.n > 0)
}

/** Hosmer–Lemeshow: sum over groups of (O - E)^2 / (E (1 - E / n)), chi-square on groups - 2 df. */
export function hosmerLemeshow (y: ArrayLike<number>, p: ArrayLike<number>, groups = 10): HosmerLemeshow {
  const table = calibrationTable(y, p, groups)
  let statistic = 0
  for (const row of table) {
    const variance = row.expected * (1 - row.expected / row.n)
    if (variance > 0) statistic += (row.observed - row.expected) ** 2 / variance
  }
  const df = table.length - 2
  return { statistic, df, pValue: 1 - chisquareCdf(statistic, df), groups: table }
}

export interface HistogramMetrics {
  auc: number
  brier: number
  hosmerLemeshow: HosmerLemeshow
}

/**
 * One peer's risk histogram, the summand of the federation's metrics: per bin of predicted risk (`bins`
 * equal bins of [0, 1]) the negatives and the positives, per bin the sum of the risks, then the sums of
 * risk^2 and risk * outcome over all rows. Summed over peers it gives metricsFromHistogram.
 */
export function riskHistogram (risks: ArrayLike<number>, y: ArrayLike<number>, bins: number): Float64Array {
  const histogram = new Float64Array(3 * bins + 2)
  for (let row = 0; row < risks.length; row++) {
    const risk = risks[row] as number
    const outcome = y[row] as number
    const bin = Math.min(bins - 1, Math.floor(risk * bins))
    histogram[outcome === 1 ? bins + bin : bin] = (histogram[outcome === 1 ? bins + bin : bin] as number) + 1
    histogram[2 * bins + bin] = (histogram[2 * bins + bin] as number) + risk
    histogram[3 * bins] = (histogram[3 * bins] as number) + risk * risk
    histogram[3 * bins + 1] = (histogram[3 * bins + 1] as number) + risk * outcome
  }
  return histogram
}

/**
 * AUC, Brier score and Hosmer-Lemeshow from pooled risk histograms (see LocalProblem.riskHistogram):
 * what a federation can know without any row. Risks in one bin count as ties for the AUC, and the
 * Hosmer-Lemeshow groups are whole bins closest to equal counts, so both agree with the row-level
 * values to about the bin width.
 */
export function metricsFromHistogram (histogram: Float64Array, bins: number, groups = 10): HistogramMetrics {
  const negatives = histogram.subarray(0, bins)
  const positives = histogram.subarray(bins, 2 * bins)
  const riskSums = histogram.subarray(2 * bins, 3 * bins)
  let totalPositive = 0
  let totalNegative = 0
  for (let bin = 0; bin < bins; bin++) {
    totalPositive += positives[bin] as number
    totalNegative += negatives[bin] as number
  }
  const n = totalPositive + totalNegative
  if (n === 0) throw new EmptyDataError('no predictions to score')
  let pairs = 0
  let negativesBelow = 0
  for (let bin = 0; bin < bins; bin++) {
    pairs += (positives[bin] as number) * (negativesBelow + 0.5 * (negatives[bin] as number))
    negativesBelow += negatives[bin] as number
  }
  const auc = totalPositive === 0 || totalNegative === 0 ? Number.NaN : pairs / (totalPositive * totalNegative)
  const brier = ((histogram[3 * bins] as number) - 2 * (histogram[3 * bins + 1] as number) + totalPositive) / n
  const rows: CalibrationRow[] = []
  let current: CalibrationRow | null = null
  let cumulative = 0
  for (let bin = 0; bin < bins; bin++) {
    const count = (positives[bin] as number) + (negatives[bin] as number)
    if (count === 0) continue
    if (current === null) {
      current = { group: rows.length + 1, n: 0, observed: 0, expected: 0, meanPredicted: 0, minPredicted: bin / bins, maxPredicted: (bin + 1) / bins }
      rows.push(current)
    }
    current.n += count
    current.observed += positives[bin] as number
    current.expected += riskSums[bin] as number
    current.maxPredicted = (bin + 1) / bins
    cumulative += count
    // close the group once the cumulative count reaches its share of the rows
    if (cumulative >= (rows.length * n) / groups && rows.length < groups) current = null
  }
  let statistic = 0
  for (const row of rows) {
    row.meanPredicted = row.expected / row.n
    const variance = row.expected * (1 - row.expected / row.n)
    if (variance > 0) statistic += (row.observed - row.expected) ** 2 / variance
  }
  const df = Math.max(1, rows.length - 2)
  return { auc, brier, hosmerLemeshow: { statistic, df, pValue: 1 - chisquareCdf(statistic, df), groups: rows } }
}
