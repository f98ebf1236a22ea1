import { EpimeshError } from '../errors.ts'

/**
 * Descriptive statistics a federation can compute from sums alone (learning's part of the statistics
 * job, consensus/jobs/stats-job.ts): each member turns its rows into vectors of sums (`localMoments`,
 * `localHistograms`, `localBinCounts`), the federation adds them with masked sums, and every member
 * reads the same statistics from the totals (`readMoments`, `quantilesFromHistogram`, `woeTable`,
 * `crossTable`). One analyst with every row gets the very same numbers from the same functions, which is
 * what the tests compare.
 *
 * Small cells: every published count below the disclosure minimum is suppressed (null), and so is a
 * second cell of the same row of a table whenever a row would otherwise have exactly one suppressed
 * cell (its value would follow from the row's total): the complementary suppression DataSHIELD applies.
 * WOE bins are merged with their neighbours until every cell reaches the minimum instead.
 */
export type StatsFeature = { name: string, type: 'numeric' } | { name: string, type: 'categorical', levels: string[] }

export interface StatsRequest {
  features: StatsFeature[]
  /** a binary outcome (0/1) for the correlations with it, the weights of evidence and the cross-tables */
  outcome: string | null
  /** bins of the weights of evidence (before merging) */
  bins: number
  /** the disclosure minimum: no published count below it */
  minimum: number
}

export class StatsRequestError extends EpimeshError {
  static override readonly name = 'StatsRequestError'
  readonly exitCode = 2
  constructor (message: string) { super('STATS_REQUEST_INVALID', message) }
}

/** Rows as columns: a numeric value or a level's index per feature (NaN when missing), and the outcome. */
export interface StatsData {
  rows: number
  columns: Float64Array[]
  outcome: Float64Array | null
}

export function buildStatsData (rows: ReadonlyArray<Record<string, unknown>>, request: StatsRequest): StatsData {
  const missing = (cell: unknown): boolean => cell === null || cell === undefined || cell === '' || (typeof cell === 'number' && Number.isNaN(cell))
  const columns = request.features.map((feature) => Float64Array.from(rows, (row) => {
    const cell = row[feature.name]
    if (missing(cell)) return Number.NaN
    if (feature.type === 'numeric') {
      const value = typeof cell === 'number' ? cell : Number(cell)
      return Number.isFinite(value) ? value : Number.NaN
    }
    const level = feature.levels.indexOf(String(cell))
    return level < 0 ? Number.NaN : level
  }))
  const outcome = request.outcome === null
    ? null
    : Float64Array.from(rows, (row) => {
      const cell = row[request.outcome as string]
      if (missing(cell)) return Number.NaN
      const value = typeof cell === 'number' ? cell : ['1', 'yes', 'true', 'y', 't', 'positive'].includes(String(cell).toLowerCase()) ? 1 : ['0', 'no', 'false', 'n', 'f', 'negative'].includes(String(cell).toLowerCase()) ? 0 : Number.NaN
      return value === 0 || value === 1 ? value : Number.NaN
    })
  return { rows: rows.length, columns, outcome }
}

function numericIndices (request: StatsRequest): number[] {
  return request.features.flatMap((feature, index) => feature.type === 'numeric' ? [index] : [])
}

/** The numeric columns the correlations are of: the numeric features, then the outcome if there is one. */
function correlationColumns (request: StatsRequest, data: StatsData): Float64Array[] {
  const columns = numericIndices(request).map((index) => data.columns[index] as Float64Array)
  if (data.outcome !== null) columns.push(data.outcome)
  return columns
}

/**
 * Layout of the moments vector: [rows, outcome present, outcome positives], per feature [present,
 * sum, sum of squares] (numeric) or [count per level..., positives per level...] (categorical; the
 * positives only with an outcome), then per pair of correlation columns (i < j) over the rows where
 * both are present [n, sum i, sum j, squares i, squares j, products].
 */
export function momentsLength (request: StatsRequest): number {
  let length = 3
  for (const feature of request.features) length += feature.type === 'numeric' ? 3 : (request.outcome === null ? 1 : 2) * feature.levels.length
  const k = numericIndices(request).length + (request.outcome === null ? 0 : 1)
  return length + 6 * (k * (k - 1)) / 2
}

export function localMoments (request: StatsRequest, data: StatsData): Float64Array {
  const out = new Float64Array(momentsLength(request))
  out[0] = data.rows
  if (data.outcome !== null) {
    for (const value of data.outcome) {
      if (Number.isNaN(value)) continue
      out[1] = (out[1] as number) + 1
      out[2] = (out[2] as number) + value
    }
  }
  let at = 3
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
    const levels = feature.levels.length
    column.forEach((value, row) => {
      if (Number.isNaN(value)) return
      out[at + value] = (out[at + value] as number) + 1
      const outcome = data.outcome?.[row]
      if (data.outcome !== null && outcome === 1) out[at + levels + value] = (out[at + levels + value] as number) + 1
    })
    at += (request.outcome === null ? 1 : 2) * levels
  })
  const columns = correlationColumns(request, data)
  for (let i = 0; i < columns.length; i++) {
    for (let j = i + 1; j < columns.length; j++) {
      const a = columns[i] as Float64Array
      const b = columns[j] as Float64Array
      for (let row = 0; row < data.rows; row++) {
        const x = a[row] as number
        const y = b[row] as number
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

export interface NumericSummary {
  count: number
  missing: number
  mean: number | null
  /** the sample standard deviation (n - 1) */
  sd: number | null
  /** the 0, 5, 25, 50, 75, 95 and 100th percentiles from the pooled histogram */
  quantiles: Record<string, number> | null
}

export interface CategoricalSummary {
  count: number
  missing: number
  /** rows per level, null where below the minimum (or suppressed to protect one that is) */
  levels: Record<string, number | null>
}

export interface Moments {
  rows: number
  features: Record<string, { count: number, missing: number, mean: number | null, sd: number | null } | CategoricalSummary>
  /** per categorical feature: counts per level of the outcome's negatives and positives */
  crossCounts: Record<string, { negatives: number[], positives: number[] }>
  correlation: { names: string[], matrix: Array<Array<number | null>> }
  outcome: { count: number, positives: number } | null
}

/** The statistics the moments give, read from the totals (the same on every member). */
export function readMoments (request: StatsRequest, totals: Float64Array): Moments {
  const rows = totals[0] as number
  const features: Moments['features'] = {}
  const crossCounts: Moments['crossCounts'] = {}
  let at = 3
  for (const feature of request.features) {
    if (feature.type === 'numeric') {
      const n = totals[at] as number
      const sum = totals[at + 1] as number
      const squares = totals[at + 2] as number
      const small = n < request.minimum
      features[feature.name] = {
        count: n,
        missing: rows - n,
        mean: small ? null : sum / n,
        sd: small || n < 2 ? null : Math.sqrt(Math.max(0, (squares - (sum * sum) / n) / (n - 1)))
      }
      at += 3
      continue
    }
    const levels = feature.levels.length
    const counts = Array.from(totals.subarray(at, at + levels))
    const count = counts.reduce((sum, value) => sum + value, 0)
    features[feature.name] = { count, missing: rows - count, levels: Object.fromEntries(feature.levels.map((level, index) => [level, suppress(counts, request.minimum)[index] ?? null])) }
    if (request.outcome !== null) {
      const positives = Array.from(totals.subarray(at + levels, at + 2 * levels))
      crossCounts[feature.name] = { negatives: counts.map((value, index) => value - (positives[index] as number)), positives }
    }
    at += (request.outcome === null ? 1 : 2) * levels
  }
  const names = [...numericIndices(request).map((index) => (request.features[index] as StatsFeature).name), ...(request.outcome === null ? [] : [request.outcome])]
  const matrix = names.map((_, i) => names.map((__, j) => i === j ? 1 : null as number | null))
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const n = totals[at] as number
      const sx = totals[at + 1] as number
      const sy = totals[at + 2] as number
      const sxx = totals[at + 3] as number
      const syy = totals[at + 4] as number
      const sxy = totals[at + 5] as number
      const covariance = sxy - (sx * sy) / n
      const denominator = Math.sqrt(Math.max(0, sxx - (sx * sx) / n) * Math.max(0, syy - (sy * sy) / n))
      const r = n < request.minimum || !(denominator > 0) ? null : covariance / denominator
      ;(matrix[i] as Array<number | null>)[j] = r
      ;(matrix[j] as Array<number | null>)[i] = r
      at += 6
    }
  }
  return { rows, features, crossCounts, correlation: { names, matrix }, outcome: request.outcome === null ? null : { count: totals[1] as number, positives: totals[2] as number } }
}

/**
 * Counts as they may be published: each below the minimum becomes null, and if exactly one of a row's
 * counts is null, the smallest other one is too (the row's total would give the first away).
 */
export function suppress (counts: readonly number[], minimum: number): Array<number | null> {
  const out: Array<number | null> = counts.map((count) => count > 0 && count < minimum ? null : count)
  const hidden = out.filter((value) => value === null).length
  if (hidden === 1) {
    let smallest = -1
    out.forEach((value, index) => { if (value !== null && value > 0 && (smallest < 0 || value < (out[smallest] as number))) smallest = index })
    if (smallest >= 0) out[smallest] = null
  }
  return out
}

/** A fine histogram of a numeric column over [low, high]: [below, fine bins..., above]; missing values left out. */
export function histogramOf (values: Float64Array, low: number, high: number, fine: number, outcome: Float64Array | null = null): Float64Array {
  // with an outcome: a second histogram of the positives follows, for the weights of evidence
  const counts = new Float64Array((fine + 2) * (outcome === null ? 1 : 2))
  const width = (high - low) / fine
  values.forEach((value, row) => {
    if (Number.isNaN(value)) return
    const bin = value < low ? 0 : value >= high ? fine + 1 : 1 + Math.min(fine - 1, Math.floor((value - low) / width))
    counts[bin] = (counts[bin] as number) + 1
    if (outcome !== null && outcome[row] === 1) counts[fine + 2 + bin] = (counts[fine + 2 + bin] as number) + 1
  })
  return counts
}

/** The range a feature's fine histogram covers: its mean plus or minus 4 SDs (values beyond go to the end bins). */
export function histogramRange (summary: { count: number, mean: number | null, sd: number | null }): { low: number, high: number } {
  if (summary.mean === null) return { low: 0, high: 1 }
  const half = Math.max(4 * (summary.sd ?? 0), 1e-9 * Math.max(1, Math.abs(summary.mean)))
  return { low: summary.mean - half, high: summary.mean + half }
}

export const QUANTILES = [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1] as const

/**
 * Quantiles from a fine histogram, linear within a bin (the end bins, below and above the range, give
 * the range's ends); null when fewer values than the minimum.
 */
export function quantilesFromHistogram (counts: ArrayLike<number>, low: number, high: number, minimum: number): Record<string, number> | null {
  const fine = counts.length - 2
  let total = 0
  for (let index = 0; index < fine + 2; index++) total += counts[index] as number
  if (total < Math.max(1, minimum)) return null
  const width = (high - low) / fine
  const out: Record<string, number> = {}
  for (const q of QUANTILES) {
    const target = q * total
    let cumulative = 0
    let value = high
    for (let bin = 0; bin < fine + 2; bin++) {
      const count = counts[bin] as number
      if (count > 0 && cumulative + count >= target) {
        if (bin === 0) value = low
        else if (bin === fine + 1) value = high
        else value = low + (bin - 1 + (target - cumulative) / count) * width
        break
      }
      cumulative += count
    }
    out[`p${Math.round(q * 100)}`] = value
  }
  return out
}

export interface WoeBin {
  /** the bin's range (numeric) or level (categorical); `missing` for the missing values */
  lower: number | null
  upper: number | null
  level: string | null
  events: number
  nonEvents: number
  woe: number
}

/**
 * Weights of evidence and the information value of one feature from its bins' events and non-events:
 * adjacent bins (and, for a factor, levels in their order) are merged until each has at least `minimum`
 * events and non-events; WOE = ln((non-events share) / (events share)), IV = sum (non-events share -
 * events share) x WOE.
 */
export function woeTable (bins: Array<{ lower: number | null, upper: number | null, level: string | null, events: number, nonEvents: number }>, minimum: number): { bins: WoeBin[], iv: number } | null {
  const merged = bins.filter((bin) => bin.events + bin.nonEvents > 0).map((bin) => ({ ...bin }))
  const small = (bin: { events: number, nonEvents: number }): boolean => bin.events < minimum || bin.nonEvents < minimum
  for (let index = 0; index < merged.length && merged.length > 1;) {
    const bin = merged[index] as (typeof merged)[number]
    if (!small(bin)) { index++; continue }
    const other = index + 1 < merged.length ? index + 1 : index - 1
    const neighbour = merged[other] as (typeof merged)[number]
    const [first, second] = other > index ? [bin, neighbour] : [neighbour, bin]
    merged.splice(Math.min(index, other), 2, {
      lower: first.lower,
      upper: second.upper,
      level: first.level === null ? null : `${first.level}+${second.level ?? ''}`,
      events: first.events + second.events,
      nonEvents: first.nonEvents + second.nonEvents
    })
    index = Math.max(0, Math.min(index, other))
  }
  if (merged.length < 2 || merged.some(small)) return null
  const events = merged.reduce((sum, bin) => sum + bin.events, 0)
  const nonEvents = merged.reduce((sum, bin) => sum + bin.nonEvents, 0)
  let iv = 0
  const out = merged.map((bin) => {
    const share = bin.nonEvents / nonEvents
    const eventShare = bin.events / events
    const woe = Math.log(share / eventShare)
    iv += (share - eventShare) * woe
    return { ...bin, woe }
  })
  return { bins: out, iv }
}

/** Bin edges at the `bins` quantiles of a fine histogram (as for trees), without repeats. */
export function equalFrequencyEdges (counts: ArrayLike<number>, low: number, high: number, bins: number): number[] {
  const fine = counts.length - 2
  let total = 0
  for (let index = 0; index < fine + 2; index++) total += counts[index] as number
  const width = (high - low) / fine
  const edges: number[] = []
  let cumulative = counts[0] as number
  let next = 1
  for (let bin = 0; bin < fine && next < bins; bin++) {
    cumulative += counts[bin + 1] as number
    while (next < bins && cumulative >= (next * total) / bins) {
      const edge = low + (bin + 1) * width
      if (edges.length === 0 || edge > (edges[edges.length - 1] as number)) edges.push(edge)
      next++
    }
  }
  return edges
}

/** A 2 x k table of a factor against the outcome, with Pearson's chi-square (no continuity correction). */
export interface CrossTable {
  levels: string[]
  negatives: Array<number | null>
  positives: Array<number | null>
  chiSquare: number | null
  df: number
}

export function crossTable (levels: string[], negatives: readonly number[], positives: readonly number[], minimum: number): CrossTable {
  const total = negatives.reduce((sum, value) => sum + value, 0) + positives.reduce((sum, value) => sum + value, 0)
  const totalNegatives = negatives.reduce((sum, value) => sum + value, 0)
  const totalPositives = total - totalNegatives
  let chi = 0
  let used = 0
  levels.forEach((_, index) => {
    const column = (negatives[index] as number) + (positives[index] as number)
    if (column === 0) return
    used++
    for (const [observed, rowTotal] of [[negatives[index] as number, totalNegatives], [positives[index] as number, totalPositives]] as const) {
      const expected = (rowTotal * column) / total
      if (expected > 0) chi += ((observed - expected) ** 2) / expected
    }
  })
  const published = protectTable([negatives, positives], minimum)
  const anyHidden = published.some((row) => row.some((value) => value === null))
  return { levels, negatives: published[0] as Array<number | null>, positives: published[1] as Array<number | null>, chiSquare: anyHidden || used < 2 ? null : chi, df: Math.max(0, used - 1) }
}

/**
 * A table's cells as they may be published: small ones hidden, and then, until nothing changes, a
 * second cell of any row or column with exactly one hidden cell (its totals would give it away).
 */
export function protectTable (rows: ReadonlyArray<readonly number[]>, minimum: number): Array<Array<number | null>> {
  const out: Array<Array<number | null>> = rows.map((row) => row.map((count) => count > 0 && count < minimum ? null : count))
  const lines = (): Array<Array<[number, number]>> => {
    const list: Array<Array<[number, number]>> = out.map((row, r) => row.map((_, c) => [r, c] as [number, number]))
    const columns = Math.max(0, ...out.map((row) => row.length))
    for (let c = 0; c < columns; c++) list.push(out.map((_, r) => [r, c] as [number, number]))
    return list
  }
  for (let changed = true; changed;) {
    changed = false
    for (const line of lines()) {
      const hidden = line.filter(([r, c]) => out[r]?.[c] === null)
      if (hidden.length !== 1) continue
      let smallest: [number, number] | null = null
      for (const [r, c] of line) {
        const value = out[r]?.[c]
        if (value === null || value === undefined || value === 0) continue
        if (smallest === null || value < (out[smallest[0]]?.[smallest[1]] as number)) smallest = [r, c]
      }
      if (smallest !== null) {
        ;(out[smallest[0]] as Array<number | null>)[smallest[1]] = null
        changed = true
      }
    }
  }
  return out
}
