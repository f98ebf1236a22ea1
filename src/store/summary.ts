import { echo, OptionInvalidError } from './errors.ts'
import { layoutOf, toCaseChunk } from './layout.ts'
import { isInternalColumn } from './schema.ts'
import type { Store } from './store.ts'

/**
 * Aggregates of a region's store for its operator: counts, missingness, ranges, outcome balance and
 * series coverage. Counts below the disclosure threshold (DataSHIELD's nfilter.tab, 3) are suppressed,
 * and so are the extremes (a minimum or maximum is one person's value): a number column's observed
 * range runs from its threshold-th lowest to its threshold-th highest value (the 3rd by default), shown
 * beside the schema's allowed range.
 */
export interface StoreSummary {
  records: number
  imports: number
  threshold: number
  columns: Record<string, { type: string, missing: number | string, min?: number | string, max?: number | string, allowed?: { min: number | null, max: number | null }, levels?: Record<string, number | string> }>
  outcome: { column: string, counts: Record<string, number | string> } | null
  series: { points: number, first: string | null, last: string | null, total: number | string }
}

export async function summarize (store: Store, threshold = 3): Promise<StoreSummary> {
  if (!(Number.isInteger(threshold) && threshold >= 1)) throw new RangeError(`the disclosure threshold is a whole number from 1, got ${threshold}`)
  const schema = await store.schema()
  const imports = await store.imports()
  const suppress = (count: number): number | string => (count > 0 && count < threshold ? `<${threshold}` : count)
  const stats = new Map<string, { missing: number, lowest: number[], highest: number[], minText: string, maxText: string, levels: Map<string, number> }>()
  // the threshold lowest and highest values of each number column, sorted: the observed range leaves the extremes out
  const keep = (list: number[], value: number, lower: boolean): void => {
    if (list.length === threshold && (lower ? value >= (list[threshold - 1] as number) : value <= (list[threshold - 1] as number))) return
    let at = list.length
    while (at > 0 && (lower ? (list[at - 1] as number) > value : (list[at - 1] as number) < value)) at--
    list.splice(at, 0, value)
    if (list.length > threshold) list.pop()
  }
  let records = 0
  for await (const row of store.rows()) {
    records++
    for (const [column, value] of Object.entries(row)) {
      if (isInternalColumn(column)) continue
      let entry = stats.get(column)
      if (entry === undefined) {
        entry = { missing: 0, lowest: [], highest: [], minText: '\uffff', maxText: '', levels: new Map() }
        stats.set(column, entry)
      }
      if (value === null) entry.missing++
      else if (typeof value === 'number') {
        keep(entry.lowest, value, true)
        keep(entry.highest, value, false)
        if (column === schema?.outcome) entry.levels.set(String(value), (entry.levels.get(String(value)) ?? 0) + 1)
      } else {
        entry.levels.set(value, (entry.levels.get(value) ?? 0) + 1)
        if (value < entry.minText) entry.minText = value
        if (value > entry.maxText) entry.maxText = value
      }
    }
  }
  const columns: StoreSummary['columns'] = {}
  for (const [column, rule] of Object.entries(schema?.columns ?? {})) {
    if ('action' in rule) {
      columns[column] = { type: rule.action === 'drop' ? 'dropped' : 'hashed', missing: 0 }
      continue
    }
    const entry = stats.get(column)
    const enough = records >= threshold
    if (rule.type === 'category') {
      columns[column] = { type: 'category', missing: suppress(entry?.missing ?? 0), levels: Object.fromEntries(rule.levels.map((level) => [level, suppress(entry?.levels.get(level) ?? 0)])) }
    } else if (rule.type === 'number') {
      // the extremes are single people's values: the observed range runs from the threshold-th lowest
      // to the threshold-th highest value, shown only when there are at least threshold values
      const observed = entry !== undefined && entry.lowest.length >= threshold && entry.highest.length >= threshold
      columns[column] = {
        type: 'number',
        missing: suppress(entry?.missing ?? 0),
        ...(enough && observed ? { min: entry.lowest[threshold - 1] as number, max: entry.highest[threshold - 1] as number } : {}),
        ...(rule.min === undefined && rule.max === undefined ? {} : { allowed: { min: rule.min ?? null, max: rule.max ?? null } })
      }
    } else {
      columns[column] = { type: 'date', missing: suppress(entry?.missing ?? 0), ...(enough && entry !== undefined && entry.maxText !== '' ? { min: entry.minText.slice(0, 7), max: entry.maxText.slice(0, 7) } : {}) }
    }
  }
  let outcome: StoreSummary['outcome'] = null
  if (schema?.outcome !== undefined) {
    // a category's levels, or a number outcome's values (0 and 1, counts): at most 20 shown, the rest together
    const levels = [...(stats.get(schema.outcome)?.levels ?? new Map<string, number>()).entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
    const shown = levels.length > 20 ? [...levels.slice(0, 19), ['other values', levels.slice(19).reduce((sum, [, value]) => sum + value, 0)] as [string, number]] : levels
    outcome = { column: schema.outcome, counts: Object.fromEntries(shown.map(([level, count]) => [level, suppress(count)])) }
  }
  let points = 0
  let first: string | null = null
  let last: string | null = null
  let total = 0
  for (const point of await store.readSeries()) {
    points++
    first ??= point.date
    last = point.date
    total += point.count
  }
  return { records, imports: imports.length, threshold, columns, outcome, series: { points, first, last, total: suppress(total) } }
}

export interface PurgeReport {
  /** records dated before the cutoff: removed, or with `dryRun` those that would be */
  removed: number
  kept: number
  undated: number
}

/**
 * Removes records dated before `cutoff` (YYYY-MM-DD) in bounded atomic batches; safe to interrupt.
 * With `dryRun` it only counts what it would remove.
 */
export async function purgeBefore (store: Store, cutoff: string, options: { batchSize?: number, dryRun?: boolean } = {}): Promise<PurgeReport> {
  const batchSize = options.batchSize ?? 5000
  const schema = await store.schema()
  if (schema?.date === undefined) return { removed: 0, kept: await store.count(), undated: 0 }
  const layout = layoutOf(store)
  let removed = 0
  let kept = 0
  let undated = 0
  let batch = layout.db.batch()
  let size = 0
  for await (const [key, rows] of layout.committedChunks()) {
    // a chunk keeps its other rows: written again without the ones removed, or deleted when none is left
    const keep: typeof rows = []
    const gone: typeof rows = []
    for (const row of rows) {
      const date = row[schema.date]
      if (typeof date !== 'string') {
        undated++
        keep.push(row)
      } else if (date >= cutoff) {
        kept++
        keep.push(row)
      } else {
        removed++
        gone.push(row)
      }
    }
    if (gone.length === 0 || options.dryRun === true) continue
    if (keep.length === 0) batch.del(key, { sublevel: layout.cases })
    else batch.put(key, toCaseChunk(keep), { sublevel: layout.cases })
    for (const row of gone) {
      if (typeof row.__id !== 'string') continue
      batch.del(row.__id, { sublevel: layout.idOwners })
      batch.del(row.__id, { sublevel: layout.ids })
    }
    size += gone.length
    if (size >= batchSize) {
      await batch.write()
      batch = layout.db.batch()
      size = 0
    }
  }
  if (options.dryRun === true) await batch.close()
  else await batch.write()
  return { removed, kept, undated }
}

const PERIOD_LIMITS = { d: 36_500, m: 1_200, y: 100 } as const

/**
 * "12m", "90d", "1y" before `now`, as a YYYY-MM-DD cutoff: a whole number from 1 (at most 100 years)
 * and its unit, d, m or y. A bare number is refused: 12 days and 12 months are too far apart to guess.
 */
export function cutoffDate (period: string, now: Date): string {
  const match = /^([1-9]\d{0,5})([dmy])$/.exec(period.trim())
  const amount = Number(match?.[1])
  const unit = match?.[2] as keyof typeof PERIOD_LIMITS | undefined
  if (match === null || unit === undefined || amount > PERIOD_LIMITS[unit]) {
    throw new OptionInvalidError(`--older-than must be a whole number and its unit, d (days), m (months) or y (years), at most 100 years, such as 12m; got ${echo(period)}`)
  }
  const date = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()))
  if (unit === 'd') date.setUTCDate(date.getUTCDate() - amount)
  if (unit === 'm') date.setUTCMonth(date.getUTCMonth() - amount)
  if (unit === 'y') date.setUTCFullYear(date.getUTCFullYear() - amount)
  return date.toISOString().slice(0, 10)
}
