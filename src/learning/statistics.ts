import chisquareCdf from '@stdlib/stats-base-dists-chisquare-cdf'
import { EpimeshError } from '../errors.ts'

/**
 * Descriptive statistics a federation can compute from sums alone (learning's part of the statistics
 * job, consensus/jobs/stats-job.ts). Two sums, each a vector every member fills from its own rows:
 *
 *   first   rows; the outcome's count and positives; per numeric feature its count, sum and sum of
 *           squares; per factor its table of counts (level or missing, by outcome 0, 1 or missing)
 *   second  per numeric feature the sum of squares about the pooled mean and fine histograms on edges
 *           every member derives from the first totals (the schema's bounds when it declares them,
 *           otherwise the pooled mean +- 5 SD rounded outward to a step of 1, 2 or 5 x 10^k); per pair
 *           of numeric columns (the binary outcome among them) the sums of deviations about the two
 *           columns' pooled means, their squares and products over the rows where both are present
 *
 * Every member then reads the same statistics from the same totals (`statsFromTotals`). Deviations
 * about the pooled means rather than raw sums of squares: the SDs and correlations then lose no digits
 * to cancellation, and equal a two-pass computation on the pooled rows to about 1e-15.
 *
 * Conventions: the SD is the sample SD (n - 1); correlations are pairwise-complete (each pair over the
 * rows where both are present, as R's cor(use = "pairwise.complete.obs")), the point-biserial being the
 * Pearson correlation with the 0/1 outcome; quantiles are read from the pooled fine histogram, linear
 * within a bin; the weights of evidence leave rows with a missing feature or outcome out, WOE =
 * ln(share of non-events / share of events), IV = sum (share of non-events - share of events) x WOE.
 *
 * Disclosure: a count from 1 to minimum - 1 is a small cell. No small cell is published, nor may one be
 * derived from what is published: each factor's table (with its margins: the level counts, the outcome's
 * counts, the total, and the merged groups of its weights of evidence) is protected by hiding further
 * cells until no small cell is determined by the published figures (`protectCells`, exact linear
 * algebra over the table's sums); the count and missing count of a numeric feature likewise. Means, SDs,
 * quantiles and correlations are published only over at least `minimum` rows; WOE bins are merged with
 * their neighbours until each holds at least `minimum` events and `minimum` non-events. The fine
 * histograms themselves are an intermediate: every member sees their totals (not any one region's), but
 * they are not part of the published result.
 */
export type StatsFeature =
  | { name: string, type: 'numeric', low?: number, high?: number }
  | { name: string, type: 'categorical', levels: string[] }

export interface StatsRequest {
  features: StatsFeature[]
  /** a binary outcome (0/1) for the point-biserial correlations, the weights of evidence and the cross-tables */
  outcome: string | null
  /** bins of the weights of evidence before merging (the fine histograms have FINE_PER_BIN times as many) */
  bins: number
  /** the disclosure minimum: no published count from 1 to minimum - 1 */
  minimum: number
}

/** Bounds of a request, so that a proposal cannot ask for a vector no member can sum. */
export const STATS_LIMITS = { features: 64, levels: 50, bins: { min: 2, max: 50 }, minimum: { min: 1, max: 1000 } } as const

/** Fine histogram bins per WOE bin: the resolution of the quantiles. */
export const FINE_PER_BIN = 20

/** The quantiles published, as DataSHIELD's quantileMean publishes them (never the minimum or maximum). */
export const QUANTILES = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95] as const

export class StatsRequestError extends EpimeshError {
  static override readonly name = 'StatsRequestError'
  readonly exitCode = 2
  constructor (message: string) { super('STATS_REQUEST_INVALID', message) }
}

/** Checks a request's shape and bounds; throws STATS_REQUEST_INVALID naming the field. */
export function validateStatsRequest (request: StatsRequest): StatsRequest {
  const { features, outcome, bins, minimum } = request
  if (!Array.isArray(features) || features.length === 0 || features.length > STATS_LIMITS.features) throw new StatsRequestError(`features: from 1 to ${STATS_LIMITS.features} features, got ${Array.isArray(features) ? features.length : typeof features}`)
  const names = new Set<string>()
  for (const feature of features) {
    if (typeof feature.name !== 'string' || feature.name.length === 0 || feature.name.length > 200) throw new StatsRequestError('features: every feature needs a name of 1 to 200 characters')
    if (names.has(feature.name)) throw new StatsRequestError(`features: "${feature.name}" appears twice`)
    names.add(feature.name)
    if (feature.type === 'numeric') {
      const { low, high } = feature
      if ((low === undefined) !== (high === undefined)) throw new StatsRequestError(`features.${feature.name}: give both bounds or neither`)
      if (low !== undefined && high !== undefined && !(Number.isFinite(low) && Number.isFinite(high) && low < high)) throw new StatsRequestError(`features.${feature.name}: the bounds must be finite with low < high`)
    } else if (feature.type === 'categorical') {
      if (!Array.isArray(feature.levels) || feature.levels.length === 0 || feature.levels.length > STATS_LIMITS.levels) throw new StatsRequestError(`features.${feature.name}: from 1 to ${STATS_LIMITS.levels} levels`)
      if (new Set(feature.levels).size !== feature.levels.length) throw new StatsRequestError(`features.${feature.name}: a level appears twice`)
    } else {
      throw new StatsRequestError(`features.${String((feature as { name: unknown }).name)}: type must be numeric or categorical`)
    }
  }
  if (outcome !== null && (typeof outcome !== 'string' || outcome.length === 0)) throw new StatsRequestError('outcome: a column name or null')
  if (outcome !== null && names.has(outcome)) throw new StatsRequestError(`outcome: "${outcome}" is also a feature`)
  if (!Number.isInteger(bins) || bins < STATS_LIMITS.bins.min || bins > STATS_LIMITS.bins.max) throw new StatsRequestError(`bins: an integer from ${STATS_LIMITS.bins.min} to ${STATS_LIMITS.bins.max}, got ${bins}`)
  if (!Number.isInteger(minimum) || minimum < STATS_LIMITS.minimum.min || minimum > STATS_LIMITS.minimum.max) throw new StatsRequestError(`minimum: an integer from ${STATS_LIMITS.minimum.min} to ${STATS_LIMITS.minimum.max}, got ${minimum}`)
  return request
}

/** Rows as columns: a numeric value or a level's index per feature (NaN when missing), and the 0/1 outcome. */
export interface StatsData {
  rows: number
  columns: Float64Array[]
  outcome: Float64Array | null
}

const POSITIVE = new Set(['1', 'yes', 'true', 'y', 't', 'positive'])
const NEGATIVE = new Set(['0', 'no', 'false', 'n', 'f', 'negative'])

const isMissing = (cell: unknown): boolean => cell === null || cell === undefined || cell === '' || (typeof cell === 'number' && Number.isNaN(cell))

/**
 * A member's rows as the job reads them: numeric cells as numbers, factor cells as their level's index,
 * the outcome as 0 or 1 (numbers 0/1, or yes/no, true/false, positive/negative in any case). A value
 * that is none of these (a level not declared, a number that is not one, an outcome that is not binary)
 * is an error naming its row and column, not a silent missing value.
 */
export function buildStatsData (rows: ReadonlyArray<Record<string, unknown>>, request: StatsRequest): StatsData {
  const columns = request.features.map((feature) => Float64Array.from(rows, (row, index) => {
    const cell = row[feature.name]
    if (isMissing(cell)) return Number.NaN
    if (feature.type === 'numeric') {
      const value = typeof cell === 'number' ? cell : typeof cell === 'string' ? Number(cell) : Number.NaN
      if (!Number.isFinite(value)) throw new StatsRequestError(`row ${index + 1}, column "${feature.name}": ${JSON.stringify(String(cell).slice(0, 40))} is not a number`)
      return value
    }
    const level = feature.levels.indexOf(String(cell))
    if (level < 0) throw new StatsRequestError(`row ${index + 1}, column "${feature.name}": level ${JSON.stringify(String(cell).slice(0, 40))} is not among the declared levels (${feature.levels.join(', ')})`)
    return level
  }))
  const name = request.outcome
  const outcome = name === null
    ? null
    : Float64Array.from(rows, (row, index) => {
      const cell = row[name]
      if (isMissing(cell)) return Number.NaN
      if (cell === 0 || cell === 1) return cell
      const text = String(cell).trim().toLowerCase()
      if (POSITIVE.has(text)) return 1
      if (NEGATIVE.has(text)) return 0
      throw new StatsRequestError(`row ${index + 1}, column "${name}": ${JSON.stringify(String(cell).slice(0, 40))} is not a binary outcome (0/1, yes/no, true/false)`)
    })
  return { rows: rows.length, columns, outcome }
}

// ---------------------------------------------------------------------------------------------------
// The vectors' layouts

function numericIndices (request: StatsRequest): number[] {
  return request.features.flatMap((feature, index) => feature.type === 'numeric' ? [index] : [])
}

/** Outcome classes of a factor's table: 0, 1 and missing with an outcome; one class without. */
function outcomeClasses (request: StatsRequest): number {
  return request.outcome === null ? 1 : 3
}

/** Length of the first vector: see the file's comment. */
export function firstLength (request: StatsRequest): number {
  let length = 1 + (request.outcome === null ? 0 : 2)
  for (const feature of request.features) length += feature.type === 'numeric' ? 3 : (feature.levels.length + 1) * outcomeClasses(request)
  return length
}

function outcomeClass (outcome: Float64Array | null, row: number): number {
  if (outcome === null) return 0
  const value = outcome[row] as number
  return Number.isNaN(value) ? 2 : value
}

export function localFirst (request: StatsRequest, data: StatsData): Float64Array {
  const out = new Float64Array(firstLength(request))
  out[0] = data.rows
  let at = 1
  if (data.outcome !== null) {
    for (const value of data.outcome) {
      if (Number.isNaN(value)) continue
      out[at] = (out[at] as number) + 1
      out[at + 1] = (out[at + 1] as number) + value
    }
    at += 2
  }
  request.features.forEach((feature, index) => {
    const column = data.columns[index] as Float64Array
    if (feature.type === 'numeric') {
      for (const value of column) {
        if (Number.isNaN(value)) continue
        out[at] = (out[at] as number) + 1
        out[at + 1] = (out[at + 1] as number) + value
        out[at + 2] = (out[at + 2] as number) + value * value
      }
      at += 3
      return
    }
    const classes = outcomeClasses(request)
    const levels = feature.levels.length
    column.forEach((value, row) => {
      const cell = at + (Number.isNaN(value) ? levels : value) * classes + outcomeClass(data.outcome, row)
      out[cell] = (out[cell] as number) + 1
    })
    at += (levels + 1) * classes
  })
  return out
}

/** The fine histogram of a numeric feature: `fine` bins of `width` from `low`, and one below and one above. */
export interface HistogramEdges { low: number, width: number, fine: number }

export interface FirstTotals {
  rows: number
  outcome: { count: number, positives: number } | null
  /** per numeric feature (by name): count, mean, and its histogram's edges */
  numeric: Record<string, { count: number, mean: number, edges: HistogramEdges }>
  /** per factor: its counts, [level or missing][outcome class] flattened */
  tables: Record<string, number[]>
}

/** The smallest step of 1, 2 or 5 x 10^k at least `width`. */
export function niceStep (width: number): number {
  const power = 10 ** Math.floor(Math.log10(width))
  for (const factor of [1, 2, 5, 10]) if (factor * power >= width) return factor * power
  return 10 * power
}

/**
 * A numeric feature's fine histogram edges: the schema's bounds split evenly, or else the pooled mean
 * +- 5 SD rounded outward to a nice step, so that every member (and one analyst with the pooled rows)
 * derives the same edges from the same totals, and a difference of the last bit in a total does not
 * move them. Beyond 5 SD lie at most 1/26 of the values on either side (Cantelli), so the 5th and 95th
 * percentiles always fall inside.
 */
export function histogramEdges (feature: Extract<StatsFeature, { type: 'numeric' }>, count: number, sum: number, squares: number, fine: number): HistogramEdges {
  if (feature.low !== undefined && feature.high !== undefined) return { low: feature.low, width: (feature.high - feature.low) / fine, fine }
  const mean = count > 0 ? sum / count : 0
  const sd = count > 1 ? Math.sqrt(Math.max(0, (squares - sum * mean) / (count - 1))) : 0
  const span = Math.max(10 * sd, 1e-6 * Math.max(1, Math.abs(mean)))
  const width = niceStep(span / (fine - 1))
  return { low: Math.floor((mean - span / 2) / width) * width, width, fine }
}

export function readFirst (request: StatsRequest, totals: ArrayLike<number>): FirstTotals {
  const fine = FINE_PER_BIN * request.bins
  let at = 1
  let outcome: FirstTotals['outcome'] = null
  if (request.outcome !== null) {
    outcome = { count: totals[1] as number, positives: totals[2] as number }
    at += 2
  }
  const numeric: FirstTotals['numeric'] = {}
  const tables: FirstTotals['tables'] = {}
  for (const feature of request.features) {
    if (feature.type === 'numeric') {
      const count = totals[at] as number
      const sum = totals[at + 1] as number
      numeric[feature.name] = { count, mean: count > 0 ? sum / count : 0, edges: histogramEdges(feature, count, sum, totals[at + 2] as number, fine) }
      at += 3
      continue
    }
    const length = (feature.levels.length + 1) * outcomeClasses(request)
    tables[feature.name] = Array.from({ length }, (_, index) => Math.round(totals[at + index] as number))
    at += length
  }
  return { rows: Math.round(totals[0] as number), outcome, numeric, tables }
}

/** The columns the correlations are of: the numeric features, then the outcome if there is one. */
function correlationNames (request: StatsRequest): string[] {
  return [...numericIndices(request).map((index) => (request.features[index] as StatsFeature).name), ...(request.outcome === null ? [] : [request.outcome])]
}

/**
 * A numeric feature's block of the second vector: the sum of squares about the mean, the histogram of
 * all values, and with an outcome the histograms of the positives and of the negatives and the
 * positives and negatives among the rows where it is missing.
 */
function numericBlock (request: StatsRequest): number {
  const width = FINE_PER_BIN * request.bins + 2
  return request.outcome === null ? 1 + width : 3 + 3 * width
}

export function secondLength (request: StatsRequest): number {
  const numeric = numericIndices(request).length
  const k = correlationNames(request).length
  return numeric * numericBlock(request) + 6 * (k * (k - 1)) / 2
}

/** The edge `index` (0..fine) of a fine histogram: what its bins are compared with and what is published. */
export function edgeAt (edges: HistogramEdges, index: number): number {
  return edges.low + index * edges.width
}

/**
 * The bin of a value: 0 below the edges, 1..fine inside, fine + 1 above; bin b holds the values from
 * edge b - 1 up to (not including) edge b, compared with the edges as published, so that a value on an
 * edge lands where the published bounds say it does.
 */
export function binOf (value: number, edges: HistogramEdges): number {
  let position = Math.floor((value - edges.low) / edges.width)
  if (position >= 0 && position <= edges.fine && value < edgeAt(edges, position)) position--
  else if (position + 1 >= 0 && position + 1 <= edges.fine && value >= edgeAt(edges, position + 1)) position++
  return position < 0 ? 0 : position >= edges.fine ? edges.fine + 1 : position + 1
}

export function localSecond (request: StatsRequest, data: StatsData, first: FirstTotals): Float64Array {
  const out = new Float64Array(secondLength(request))
  const numeric = numericIndices(request)
  const block = numericBlock(request)
  let at = 0
  for (const index of numeric) {
    const feature = request.features[index] as StatsFeature
    const { mean, edges } = first.numeric[feature.name] as FirstTotals['numeric'][string]
    const column = data.columns[index] as Float64Array
    const width = edges.fine + 2
    column.forEach((value, row) => {
      if (Number.isNaN(value)) {
        const outcome = data.outcome?.[row]
        if (outcome === undefined || Number.isNaN(outcome)) return
        const cell = at + 1 + 3 * width + (outcome === 1 ? 0 : 1)
        out[cell] = (out[cell] as number) + 1
        return
      }
      out[at] = (out[at] as number) + (value - mean) ** 2
      const bin = at + 1 + binOf(value, edges)
      out[bin] = (out[bin] as number) + 1
      if (data.outcome === null) return
      const outcome = data.outcome[row] as number
      if (Number.isNaN(outcome)) return
      const cell = bin + (outcome === 1 ? width : 2 * width)
      out[cell] = (out[cell] as number) + 1
    })
    at += block
  }
  const columns = numeric.map((index) => data.columns[index] as Float64Array)
  const means = numeric.map((index) => (first.numeric[(request.features[index] as StatsFeature).name] as { mean: number }).mean)
  if (data.outcome !== null && first.outcome !== null) {
    columns.push(data.outcome)
    means.push(first.outcome.count > 0 ? first.outcome.positives / first.outcome.count : 0)
  }
  for (let i = 0; i < columns.length; i++) {
    for (let j = i + 1; j < columns.length; j++) {
      const a = columns[i] as Float64Array
      const b = columns[j] as Float64Array
      const ma = means[i] as number
      const mb = means[j] as number
      for (let row = 0; row < data.rows; row++) {
        const x = (a[row] as number) - ma
        const y = (b[row] as number) - mb
        if (Number.isNaN(x) || Number.isNaN(y)) continue
        out[at] = (out[at] as number) + 1
        out[at + 1] = (out[at + 1] as number) + x
        out[at + 2] = (out[at + 2] as number) + y
        out[at + 3] = (out[at + 3] as number) + x * x
        out[at + 4] = (out[at + 4] as number) + y * y
        out[at + 5] = (out[at + 5] as number) + x * y
      }
      at += 6
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------------------
// Reading the statistics from the totals

export type Quantiles = Record<string, number | null>

export interface NumericSummary {
  type: 'numeric'
  /** rows where it is present, and where it is missing (both null if the missing count is a small cell) */
  count: number | null
  missing: number | null
  mean: number | null
  /** the sample standard deviation (n - 1) */
  sd: number | null
  /** p5, p10, p25, p50, p75, p90, p95 from the pooled histogram */
  quantiles: Quantiles | null
  /** the fine histogram's edges (not its counts): low, bin width, bins */
  histogram: HistogramEdges
}

export interface CategoricalSummary {
  type: 'categorical'
  count: number | null
  missing: number | null
  mean: null
  sd: null
  quantiles: null
  /** rows per level, null where suppressed */
  levels: Record<string, number | null>
}

export interface WoeBin {
  /** the bin's range [lower, upper) (numeric; null for an open end), or its levels (factor) */
  lower: number | null
  upper: number | null
  levels: string[] | null
  /** whether the rows where the feature is missing are in this bin */
  missing: boolean
  events: number
  nonEvents: number
  woe: number
}

/** A 2 x k table of a factor against the outcome, with Pearson's chi-square (no continuity correction). */
export interface CrossTable {
  levels: string[]
  negatives: Array<number | null>
  positives: Array<number | null>
  /** null when a cell is suppressed or fewer than two levels occur */
  chiSquare: number | null
  df: number
  pValue: number | null
}

export interface StatsResult {
  rows: number
  peers: number
  minimum: number
  features: Record<string, NumericSummary | CategoricalSummary>
  correlation: { names: string[], matrix: Array<Array<number | null>> }
  /** with an outcome: each numeric feature's (pairwise-complete) correlation with it */
  pointBiserial: Record<string, number | null> | null
  outcome: { name: string, count: number | null, missing: number | null, positives: number | null, negatives: number | null } | null
  /** binary outcome only: information value per feature (null where fewer than two bins reach the minimum) */
  iv: Record<string, number | null> | null
  woe: Record<string, WoeBin[] | null> | null
  crossTables: Record<string, CrossTable> | null
}

/** Quantiles of a histogram ([below, fine bins..., above]), linear within a bin; null in an end bin. */
export function quantilesFromHistogram (counts: ArrayLike<number>, edges: HistogramEdges): Quantiles {
  let total = 0
  for (let bin = 0; bin < edges.fine + 2; bin++) total += counts[bin] as number
  const out: Quantiles = {}
  for (const q of QUANTILES) {
    const target = q * total
    let cumulative = 0
    let value: number | null = null
    for (let bin = 0; bin < edges.fine + 2; bin++) {
      const count = counts[bin] as number
      if (count > 0 && cumulative + count >= target) {
        value = bin === 0 || bin === edges.fine + 1 ? null : edgeAt(edges, bin - 1) + ((target - cumulative) / count) * edges.width
        break
      }
      cumulative += count
    }
    out[`p${Math.round(q * 100)}`] = value
  }
  return out
}

/** Indices of the fine bins (1..fine) after which an equal-frequency WOE bin ends, without repeats. */
export function equalFrequencyCuts (counts: ArrayLike<number>, fine: number, bins: number): number[] {
  let total = 0
  for (let bin = 0; bin < fine + 2; bin++) total += counts[bin] as number
  const cuts: number[] = []
  let cumulative = counts[0] as number
  let next = 1
  for (let bin = 1; bin <= fine && next < bins; bin++) {
    cumulative += counts[bin] as number
    let reached = false
    while (next < bins && cumulative >= (next * total) / bins) { next++; reached = true }
    if (reached) cuts.push(bin)
  }
  return cuts
}

/** A bin of the weights of evidence before merging; `members` are the raw bins it holds (the missing bin last). */
export interface RawBin { lower: number | null, upper: number | null, levels: string[] | null, missing: boolean, members: number[], events: number, nonEvents: number }

function join (first: RawBin, second: RawBin): RawBin {
  return {
    lower: first.lower,
    upper: second.upper,
    levels: first.levels === null ? second.levels : [...first.levels, ...(second.levels ?? [])],
    missing: first.missing || second.missing,
    members: [...first.members, ...second.members],
    events: first.events + second.events,
    nonEvents: first.nonEvents + second.nonEvents
  }
}

/**
 * Merges adjacent bins (for a factor: levels in their declared order) until each holds at least
 * `minimum` events and `minimum` non-events: a small bin joins its right neighbour (the last its left).
 * Empty bins are dropped first. The missing bin (given as `missing`) stays a bin of its own if it
 * reaches the minimum, and otherwise joins the last bin of values.
 */
export function mergeBins (bins: readonly RawBin[], missing: RawBin | null, minimum: number): RawBin[] {
  const merged = bins.filter((bin) => bin.events + bin.nonEvents > 0).map((bin) => ({ ...bin }))
  const small = (bin: RawBin): boolean => bin.events < minimum || bin.nonEvents < minimum
  for (let index = 0; index < merged.length && merged.length > 1;) {
    const bin = merged[index] as RawBin
    if (!small(bin)) { index++; continue }
    const other = index + 1 < merged.length ? index + 1 : index - 1
    merged.splice(Math.min(index, other), 2, other > index ? join(bin, merged[other] as RawBin) : join(merged[other] as RawBin, bin))
    index = Math.min(index, other)
  }
  if (missing === null || missing.events + missing.nonEvents === 0) return merged
  if (!small(missing) || merged.length === 0) return [...merged, missing]
  return [...merged.slice(0, -1), join(merged[merged.length - 1] as RawBin, missing)]
}

/** WOE per merged bin and the IV; null when fewer than two bins, or a bin below the minimum. */
export function woeTable (merged: readonly RawBin[], minimum: number): { bins: WoeBin[], iv: number } | null {
  if (merged.length < 2 || merged.some((bin) => bin.events < Math.max(1, minimum) || bin.nonEvents < Math.max(1, minimum))) return null
  const events = merged.reduce((sum, bin) => sum + bin.events, 0)
  const nonEvents = merged.reduce((sum, bin) => sum + bin.nonEvents, 0)
  let iv = 0
  const bins = merged.map(({ lower, upper, levels, missing, events: binEvents, nonEvents: binNonEvents }) => {
    const share = binNonEvents / nonEvents
    const eventShare = binEvents / events
    const woe = Math.log(share / eventShare)
    iv += (share - eventShare) * woe
    return { lower, upper, levels, missing, events: binEvents, nonEvents: binNonEvents, woe }
  })
  return { bins, iv }
}

/** Pearson's chi-square of a 2 x k table (levels with no rows left out) and its upper-tail p-value. */
export function chiSquareTest (negatives: readonly number[], positives: readonly number[]): { chiSquare: number, df: number, pValue: number } | null {
  const columns = negatives.map((value, index) => [value, positives[index] as number] as const).filter(([a, b]) => a + b > 0)
  const totalNegatives = columns.reduce((sum, [a]) => sum + a, 0)
  const totalPositives = columns.reduce((sum, [, b]) => sum + b, 0)
  const total = totalNegatives + totalPositives
  if (columns.length < 2 || totalNegatives === 0 || totalPositives === 0) return null
  let chiSquare = 0
  for (const [a, b] of columns) {
    const expectedNegatives = (totalNegatives * (a + b)) / total
    const expectedPositives = (totalPositives * (a + b)) / total
    chiSquare += (a - expectedNegatives) ** 2 / expectedNegatives + (b - expectedPositives) ** 2 / expectedPositives
  }
  const df = columns.length - 1
  return { chiSquare, df, pValue: 1 - chisquareCdf(chiSquare, df) }
}

/** A table's cells for `protectCells`: counts tied by sums (each: cell `total` equals the sum of cells `parts`). */
export interface CellTable {
  values: number[]
  sums: Array<{ total: number, parts: number[] }>
  /** cells that are never published (they may still be derived, which protection prevents for small ones) */
  unpublished: Set<number>
  /** cells whose state another table decided: true hidden, false published */
  fixed: Map<number, boolean>
  /** order of preference for hiding a cell to protect another: lower first, then the smaller count */
  priority: number[]
}

/**
 * Cell suppression with complementary protection. A cell from 1 to minimum - 1 is hidden, and so is
 * every unpublished cell; then, while some small cell is determined by the published cells (exactly:
 * its unit vector lies in the row space of the sums restricted to the hidden cells), a published cell
 * sharing a sum with it (the lowest priority, then the smallest count) is hidden too. Returns which
 * cells are hidden. Zero cells are published: they identify no one.
 */
export function protectCells (table: CellTable, minimum: number): boolean[] {
  const { values, sums, unpublished, fixed, priority } = table
  const small = (index: number): boolean => (values[index] as number) > 0 && (values[index] as number) < minimum
  const hidden = values.map((_, index) => fixed.get(index) ?? (small(index) || unpublished.has(index)))
  const equations = sums.map(({ total, parts }) => {
    const row = new Map<number, number>()
    row.set(total, -1)
    for (const part of parts) row.set(part, (row.get(part) ?? 0) + 1)
    return row
  })
  const better = (candidate: number, best: number): boolean => best < 0 ||
    (priority[candidate] as number) < (priority[best] as number) ||
    ((priority[candidate] as number) === (priority[best] as number) && (values[candidate] as number) < (values[best] as number))
  const hideable = (index: number): boolean => !hidden[index] && !fixed.has(index) && (values[index] as number) > 0
  for (let guard = 0; guard <= values.length; guard++) {
    const exposed = determinedCells(equations, hidden).filter(small)
    if (exposed.length === 0) return hidden
    const cell = exposed[0] as number
    let best = -1
    for (const equation of equations) {
      if (!equation.has(cell)) continue
      for (const other of equation.keys()) if (hideable(other) && better(other, best)) best = other
    }
    // nothing beside it can hide it: hide the best published cell anywhere
    if (best < 0) values.forEach((_, index) => { if (hideable(index) && better(index, best)) best = index })
    if (best < 0) throw new RangeError(`no cell left to hide: cell ${cell} stays determined by the fixed cells`)
    hidden[best] = true
  }
  throw new RangeError('cell protection did not settle')
}

/** The hidden cells whose value follows from the sums and the published cells (Gauss-Jordan elimination). */
export function determinedCells (equations: ReadonlyArray<ReadonlyMap<number, number>>, hidden: readonly boolean[]): number[] {
  const columns = hidden.flatMap((isHidden, index) => isHidden ? [index] : [])
  const position = new Map(columns.map((cell, index) => [cell, index]))
  const rows: Float64Array[] = equations.map((equation) => {
    const row = new Float64Array(columns.length)
    for (const [cell, coefficient] of equation) {
      const at = position.get(cell)
      if (at !== undefined) row[at] = coefficient
    }
    return row
  })
  const pivots: Array<{ row: number, column: number }> = []
  let rank = 0
  for (let column = 0; column < columns.length && rank < rows.length; column++) {
    let pivot = -1
    for (let row = rank; row < rows.length; row++) if (Math.abs((rows[row] as Float64Array)[column] as number) > 1e-9) { pivot = row; break }
    if (pivot < 0) continue
    const swap = rows[rank] as Float64Array
    rows[rank] = rows[pivot] as Float64Array
    rows[pivot] = swap
    const top = rows[rank] as Float64Array
    const scale = top[column] as number
    for (let c = 0; c < columns.length; c++) top[c] = (top[c] as number) / scale
    for (let row = 0; row < rows.length; row++) {
      if (row === rank) continue
      const other = rows[row] as Float64Array
      const factor = other[column] as number
      if (Math.abs(factor) <= 1e-12) continue
      for (let c = 0; c < columns.length; c++) other[c] = (other[c] as number) - factor * (top[c] as number)
    }
    pivots.push({ row: rank, column })
    rank++
  }
  return pivots.filter(({ row, column }) => {
    const values = rows[row] as Float64Array
    for (let c = 0; c < columns.length; c++) if (c !== column && Math.abs(values[c] as number) > 1e-9) return false
    return true
  }).map(({ column }) => columns[column] as number)
}

const shown = (value: number, hidden: boolean | undefined): number | null => hidden === true ? null : value

/** Priorities of hiding (see CellTable): cross-table cells first, then level counts, counts, WOE groups. */
const PRIORITY = { cell: 0, margin: 1, count: 2, group: 3, fixed: 4 } as const

/**
 * One feature's table with everything published about it, protected as a whole. Columns are the
 * feature's levels (or its WOE value bins) and, last, its missing values; classes the outcome's 0, 1
 * and missing (one class without an outcome). Cells: the inner [column][class] counts, the column
 * margins, the class margins (the outcome's counts, decided by the outcome's own table), the count
 * (columns but the last), the total rows, and per WOE group its events and non-events.
 */
function protectFeature (input: {
  inner: number[][]
  /** cross-table cells (columns but the last, classes 0 and 1) and level counts are published */
  publishCells: boolean
  publishColumns: boolean
  classHidden: boolean[] | null
  groups: number[][]
  rows: number
}, minimum: number): { cell: (column: number, cls: number) => boolean, column: (column: number) => boolean, count: boolean, groups: boolean } {
  const { inner, classHidden } = input
  const columns = inner.length
  const classes = (inner[0] as number[]).length
  const values: number[] = []
  const unpublished = new Set<number>()
  const fixed = new Map<number, boolean>()
  const priority: number[] = []
  const sums: CellTable['sums'] = []
  const add = (value: number, level: number, published: boolean): number => {
    values.push(value)
    priority.push(level)
    if (!published) unpublished.add(values.length - 1)
    return values.length - 1
  }
  const cellAt = inner.map((row, column) => row.map((value, cls) => add(value, PRIORITY.cell, input.publishCells && column < columns - 1 && cls < 2 && classes > 1)))
  const columnAt = inner.map((row, column) => {
    const at = add(row.reduce((sum, value) => sum + value, 0), PRIORITY.margin, input.publishColumns || column === columns - 1)
    sums.push({ total: at, parts: (cellAt[column] as number[]).slice() })
    return at
  })
  if (classHidden !== null) {
    for (let cls = 0; cls < classes; cls++) {
      const at = add(inner.reduce((sum, row) => sum + (row[cls] as number), 0), PRIORITY.fixed, true)
      sums.push({ total: at, parts: cellAt.map((row) => row[cls] as number) })
      fixed.set(at, classHidden[cls] === true)
    }
  }
  const countAt = add(input.rows - (values[columnAt[columns - 1] as number] as number), PRIORITY.count, true)
  sums.push({ total: countAt, parts: columnAt.slice(0, -1) })
  const totalAt = add(input.rows, PRIORITY.fixed, true)
  sums.push({ total: totalAt, parts: [countAt, columnAt[columns - 1] as number] })
  fixed.set(totalAt, false)
  const groupAt = input.groups.flatMap((members) => [0, 1].map((cls) => {
    const parts = members.map((column) => (cellAt[column] as number[])[cls] as number)
    const at = add(parts.reduce((sum, part) => sum + (values[part] as number), 0), PRIORITY.group, true)
    sums.push({ total: at, parts })
    return at
  }))
  const hidden = protectCells({ values, sums, unpublished, fixed, priority }, minimum)
  return {
    cell: (column, cls) => hidden[(cellAt[column] as number[])[cls] as number] === true,
    column: (column) => hidden[columnAt[column] as number] === true,
    count: hidden[countAt] === true,
    groups: groupAt.some((at) => hidden[at] === true)
  }
}

/** The WOE bins of a numeric feature: equal-frequency cuts of the fine histogram of the rows with an outcome. */
function numericWoeBins (positives: readonly number[], negatives: readonly number[], edges: HistogramEdges, bins: number): RawBin[] {
  const present = positives.map((value, bin) => value + (negatives[bin] as number))
  const cuts = new Set(equalFrequencyCuts(present, edges.fine, bins))
  const raw: RawBin[] = []
  let lower: number | null = null
  let events = 0
  let nonEvents = 0
  for (let bin = 0; bin < edges.fine + 2; bin++) {
    events += positives[bin] as number
    nonEvents += negatives[bin] as number
    // a WOE bin ends after each cut and at the end; the end bins belong to their neighbours
    if (bin === edges.fine + 1 || (bin >= 1 && bin < edges.fine && cuts.has(bin))) {
      const upper: number | null = bin === edges.fine + 1 ? null : edgeAt(edges, bin)
      raw.push({ lower, upper, levels: null, missing: false, members: [raw.length], events: Math.round(events), nonEvents: Math.round(nonEvents) })
      lower = upper
      events = 0
      nonEvents = 0
    }
  }
  return raw
}

/** Everything one analyst with every row, or a member from the federation's totals, reads off the two sums. */
export function statsFromTotals (request: StatsRequest, firstTotals: ArrayLike<number>, secondTotals: ArrayLike<number>, peers: number): StatsResult {
  const first = readFirst(request, firstTotals)
  const { minimum } = request
  const rows = first.rows
  const binary = request.outcome !== null && first.outcome !== null
  // the outcome's own table: negatives, positives, missing and their total
  let classHidden: boolean[] | null = null
  let outcome: StatsResult['outcome'] = null
  if (binary) {
    const count = Math.round((first.outcome as { count: number }).count)
    const positives = Math.round((first.outcome as { positives: number }).positives)
    const values = [count - positives, positives, rows - count, rows]
    const hidden = protectCells({ values, sums: [{ total: 3, parts: [0, 1, 2] }], unpublished: new Set(), fixed: new Map([[3, false]]), priority: [0, 0, 0, 0] }, minimum)
    classHidden = hidden.slice(0, 3)
    outcome = {
      name: request.outcome as string,
      count: hidden[2] === true ? null : count,
      missing: shown(rows - count, hidden[2]),
      positives: shown(positives, hidden[1]),
      negatives: shown(count - positives, hidden[0])
    }
  }
  const fine = FINE_PER_BIN * request.bins
  const width = fine + 2
  const block = numericBlock(request)
  const features: StatsResult['features'] = {}
  const iv: Record<string, number | null> = {}
  const woe: Record<string, WoeBin[] | null> = {}
  const crossTables: Record<string, CrossTable> = {}
  let at = 0
  for (const feature of request.features) {
    if (feature.type === 'numeric') {
      const { count, mean, edges } = first.numeric[feature.name] as FirstTotals['numeric'][string]
      const n = Math.round(count)
      const value = (offset: number): number => secondTotals[at + offset] as number
      const all = Array.from({ length: width }, (_, bin) => value(1 + bin))
      let protection: ReturnType<typeof protectFeature>
      let groups: RawBin[] = []
      if (binary) {
        const positives = Array.from({ length: width }, (_, bin) => value(1 + width + bin))
        const negatives = Array.from({ length: width }, (_, bin) => value(1 + 2 * width + bin))
        const raw = numericWoeBins(positives, negatives, edges, request.bins)
        const missingEvents = Math.round(value(1 + 3 * width))
        const missingNonEvents = Math.round(value(2 + 3 * width))
        groups = mergeBins(raw, { lower: null, upper: null, levels: null, missing: true, members: [raw.length], events: missingEvents, nonEvents: missingNonEvents }, minimum)
        // columns: each group's values, then the missing values; classes: 0, 1 and a missing outcome
        const valueGroups = groups.map((group) => group.members.filter((member) => member < raw.length))
        const inner = valueGroups.filter((members) => members.length > 0).map((members) => {
          const events = members.reduce((sum, member) => sum + (raw[member] as RawBin).events, 0)
          const nonEvents = members.reduce((sum, member) => sum + (raw[member] as RawBin).nonEvents, 0)
          return [nonEvents, events, 0]
        })
        // the rows whose outcome is missing are not binned by outcome: one unpublished cell for them
        const present = inner.reduce((sum, row) => sum + (row[0] as number) + (row[1] as number), 0)
        if (inner.length === 0) inner.push([0, 0, 0])
        ;(inner[0] as number[])[2] = n - present
        inner.push([missingNonEvents, missingEvents, rows - n - missingEvents - missingNonEvents])
        let column = 0
        const columnOf = valueGroups.map((members) => members.length > 0 ? column++ : -1)
        const groupColumns = groups.map((group, index) => [...(columnOf[index] as number) >= 0 ? [columnOf[index] as number] : [], ...(group.missing ? [inner.length - 1] : [])])
        protection = protectFeature({ inner, publishCells: false, publishColumns: false, classHidden, groups: groupColumns, rows }, minimum)
      } else {
        protection = protectFeature({ inner: [[n], [rows - n]], publishCells: false, publishColumns: true, classHidden: null, groups: [], rows }, minimum)
      }
      const enough = n >= minimum && n > 0
      features[feature.name] = {
        type: 'numeric',
        count: protection.count ? null : n,
        missing: protection.count ? null : rows - n,
        mean: enough ? mean : null,
        sd: enough && n > 1 ? Math.sqrt(value(0) / (n - 1)) : null,
        quantiles: enough ? quantilesFromHistogram(all, edges) : null,
        histogram: edges
      }
      if (binary) {
        const table = protection.groups ? null : woeTable(groups, minimum)
        iv[feature.name] = table?.iv ?? null
        woe[feature.name] = table?.bins ?? null
      }
      at += block
      continue
    }
    const levels = feature.levels.length
    const classes = outcomeClasses(request)
    const counts = first.tables[feature.name] as number[]
    const inner = Array.from({ length: levels + 1 }, (_, column) => counts.slice(column * classes, (column + 1) * classes))
    let groups: RawBin[] = []
    if (binary) {
      const raw = feature.levels.map((level, index): RawBin => ({ lower: null, upper: null, levels: [level], missing: false, members: [index], events: (inner[index] as number[])[1] as number, nonEvents: (inner[index] as number[])[0] as number }))
      const missing = inner[levels] as number[]
      groups = mergeBins(raw, { lower: null, upper: null, levels: null, missing: true, members: [levels], events: missing[1] as number, nonEvents: missing[0] as number }, minimum)
    }
    const protection = protectFeature({ inner, publishCells: binary, publishColumns: true, classHidden, groups: groups.map((group) => group.members), rows }, minimum)
    features[feature.name] = {
      type: 'categorical',
      count: protection.column(levels) ? null : rows - counts.slice(levels * classes).reduce((sum, value) => sum + value, 0),
      missing: protection.column(levels) ? null : counts.slice(levels * classes).reduce((sum, value) => sum + value, 0),
      mean: null,
      sd: null,
      quantiles: null,
      levels: Object.fromEntries(feature.levels.map((level, index) => [level, shown((inner[index] as number[]).reduce((sum, value) => sum + value, 0), protection.column(index))]))
    }
    if (binary) {
      const negatives = feature.levels.map((_, index) => (inner[index] as number[])[0] as number)
      const positives = feature.levels.map((_, index) => (inner[index] as number[])[1] as number)
      const anyHidden = feature.levels.some((_, index) => protection.cell(index, 0) || protection.cell(index, 1))
      const test = anyHidden ? null : chiSquareTest(negatives, positives)
      crossTables[feature.name] = {
        levels: [...feature.levels],
        negatives: negatives.map((value, index) => shown(value, protection.cell(index, 0))),
        positives: positives.map((value, index) => shown(value, protection.cell(index, 1))),
        chiSquare: test?.chiSquare ?? null,
        df: test?.df ?? 0,
        pValue: test?.pValue ?? null
      }
      const table = protection.groups ? null : woeTable(groups, minimum)
      iv[feature.name] = table?.iv ?? null
      woe[feature.name] = table?.bins ?? null
    }
  }
  // correlations, after the numeric features' blocks
  const names = correlationNames(request)
  const matrix = names.map((_, i) => names.map((__, j) => i === j ? 1 : null as number | null))
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const n = secondTotals[at] as number
      const dx = (secondTotals[at + 1] as number) / n
      const dy = (secondTotals[at + 2] as number) / n
      const sxx = (secondTotals[at + 3] as number) - n * dx * dx
      const syy = (secondTotals[at + 4] as number) - n * dy * dy
      const sxy = (secondTotals[at + 5] as number) - n * dx * dy
      const r = n < Math.max(2, minimum) || !(sxx > 0 && syy > 0) ? null : Math.max(-1, Math.min(1, sxy / Math.sqrt(sxx * syy)))
      ;(matrix[i] as Array<number | null>)[j] = r
      ;(matrix[j] as Array<number | null>)[i] = r
      at += 6
    }
  }
  const pointBiserial = binary ? Object.fromEntries(names.slice(0, -1).map((name, index) => [name, (matrix[index] as Array<number | null>)[names.length - 1] ?? null])) : null
  return {
    rows,
    peers,
    minimum,
    features,
    correlation: { names, matrix },
    pointBiserial,
    outcome,
    iv: binary ? iv : null,
    woe: binary ? woe : null,
    crossTables: binary ? crossTables : null
  }
}

/** The statistics of rows held in one place, by the very same sums (one analyst's view; for tests and demos). */
export function pooledStats (request: StatsRequest, data: StatsData): StatsResult {
  const firstTotals = localFirst(request, data)
  return statsFromTotals(request, firstTotals, localSecond(request, data, readFirst(request, firstTotals)), 1)
}
