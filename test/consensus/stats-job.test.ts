import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { simulateStatsOnRows } from '../../src/consensus/sim/stats-simulation.ts'
import { QUANTILES, type NumericSummary, type StatsRequest, type StatsResult } from '../../src/learning/statistics.ts'
import { fixture } from '../helpers/data.ts'
import { derivedCells, publishedCounts, statsDataset, STATS_DATASETS } from '../helpers/stats.ts'

interface Reference { numeric: string[], mean: number[], sd: number[], correlation: number[][], chiSquare: Record<string, { chiSquare: number, df: number, pValue: number }> }

const close = (actual: number | null | undefined, expected: number, tolerance = 1e-10): void => {
  expect(actual, `expected ${expected}`).not.toBeNull()
  expect(Math.abs((actual as number) - expected)).toBeLessThanOrEqual(tolerance * Math.max(1, Math.abs(expected)))
}
const absent = (cell: unknown): boolean => cell === null || cell === undefined || cell === ''
const binary = (cell: unknown): number | null => absent(cell) ? null : cell === 1 || cell === '1' || String(cell).toLowerCase() === 'yes' ? 1 : 0

/**
 * The pooled computation, written the plain way on all rows at once (two passes, no sums of the
 * job's): means, sample SDs, pairwise-complete correlations, the histogram on the published edges and
 * its quantiles, and the WOE and IV of the published bins recounted from the rows.
 */
function checkAgainstPooled (rows: ReadonlyArray<Record<string, unknown>>, request: StatsRequest, stats: StatsResult): void {
  const outcome = request.outcome as string
  const columnOf = (name: string): Array<number | null> => rows.map((row) => name === outcome ? binary(row[name]) : absent(row[name]) ? null : Number(row[name]))
  for (const feature of request.features) {
    if (feature.type !== 'numeric') continue
    const summary = stats.features[feature.name] as NumericSummary
    const values = columnOf(feature.name).filter((value): value is number => value !== null)
    const mean = values.reduce((sum, value) => sum + value, 0) / values.length
    const sd = Math.sqrt(values.reduce((sum, value) => sum + (value - mean) ** 2, 0) / (values.length - 1))
    expect(summary.count).toBe(values.length)
    expect(summary.missing).toBe(rows.length - values.length)
    close(summary.mean, mean)
    close(summary.sd, sd)
    // the pooled histogram on the published edges, and its quantiles
    const { low, width, fine } = summary.histogram
    const counts = new Array<number>(fine + 2).fill(0)
    // a value's bin: how many of the edges low + b x width (b = 0..fine) lie at or below it
    const edges = Array.from({ length: fine + 1 }, (_, b) => low + b * width)
    for (const value of values) counts[edges.filter((edge) => edge <= value).length]! += 1
    const sorted = [...values].sort((a, b) => a - b)
    for (const q of QUANTILES) {
      const target = q * values.length
      let before = 0
      let bin = 0
      while (counts[bin] === 0 || before + counts[bin]! < target) before += counts[bin++]!
      const expected = edges[bin - 1]! + ((target - before) / counts[bin]!) * width
      close(summary.quantiles?.[`p${Math.round(q * 100)}`], expected)
      // and within one fine bin of the sample's own quantile
      expect(Math.abs(expected - sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(target) - 1))]!)).toBeLessThanOrEqual(width)
    }
  }
  // pairwise-complete Pearson correlations, the outcome last (point-biserial)
  const { names, matrix } = stats.correlation
  names.forEach((a, i) => names.forEach((b, j) => {
    if (i === j) return
    const x = columnOf(a)
    const y = columnOf(b)
    const pairs = x.flatMap((value, row) => value === null || y[row] === null ? [] : [[value, y[row] as number] as const])
    const mx = pairs.reduce((sum, [value]) => sum + value, 0) / pairs.length
    const my = pairs.reduce((sum, [, value]) => sum + value, 0) / pairs.length
    let sxy = 0
    let sxx = 0
    let syy = 0
    for (const [u, v] of pairs) { sxy += (u - mx) * (v - my); sxx += (u - mx) ** 2; syy += (v - my) ** 2 }
    close(matrix[i]![j], sxy / Math.sqrt(sxx * syy))
  }))
  // WOE and IV of the published bins, recounted from the rows
  for (const feature of request.features) {
    const bins = stats.woe?.[feature.name]
    if (bins === null || bins === undefined) continue
    const member = (row: Record<string, unknown>, bin: (typeof bins)[number]): boolean => {
      const cell = row[feature.name]
      if (absent(cell)) return bin.missing
      if (feature.type === 'categorical') return bin.levels?.includes(String(cell)) ?? false
      const value = Number(cell)
      return (bin.lower === null || value >= bin.lower) && (bin.upper === null || value < bin.upper)
    }
    const labelled = rows.filter((row) => binary(row[outcome]) !== null)
    const events = labelled.filter((row) => binary(row[outcome]) === 1).length
    const nonEvents = labelled.length - events
    let iv = 0
    for (const bin of bins) {
      const inside = labelled.filter((row) => member(row, bin))
      const binEvents = inside.filter((row) => binary(row[outcome]) === 1).length
      expect([bin.events, bin.nonEvents]).toEqual([binEvents, inside.length - binEvents])
      expect(Math.min(bin.events, bin.nonEvents)).toBeGreaterThanOrEqual(request.minimum)
      const woe = Math.log(((inside.length - binEvents) / nonEvents) / (binEvents / events))
      close(bin.woe, woe)
      iv += ((inside.length - binEvents) / nonEvents - binEvents / events) * woe
    }
    // the bins cover every labelled row once
    expect(bins.reduce((sum, bin) => sum + bin.events + bin.nonEvents, 0)).toBe(labelled.length)
    close(stats.iv?.[feature.name], iv)
  }
}

/** No count from 1 to minimum - 1 is published, nor derivable by subtraction from what is. */
function checkDisclosure (rows: ReadonlyArray<Record<string, unknown>>, request: StatsRequest, stats: StatsResult): void {
  for (const { where, value } of publishedCounts(stats)) expect(value === 0 || value >= request.minimum, `${where} = ${value}`).toBe(true)
  for (const { feature, cell, value } of derivedCells(rows, request, stats)) expect(value === 0 || value >= request.minimum, `${feature} ${cell} = ${value} derived`).toBe(true)
}

describe('descriptive statistics by masked sums over 8 simulated peers', () => {
  it.each(Object.keys(STATS_DATASETS) as Array<keyof typeof STATS_DATASETS>)('%s: every statistic equals the pooled computation (and R) to 1e-10; no small cell published or derivable', async (name) => {
    const { rows, request } = await statsDataset(name)
    const simulation = simulateStatsOnRows({ rows, request, peers: 8, split: 'skewed', topology: 'ring', seed: 7 })
    const { stats } = simulation
    expect(stats.peers).toBe(8)
    expect(stats.rows).toBe(rows.length)
    checkAgainstPooled(rows, request, stats)
    checkDisclosure(rows, request, stats)
    // R 4.2.2 (scripts/reference/stats-reference.R): means, SDs, correlations, chi-square tests
    const reference = (JSON.parse(await readFile(fixture('stats-reference.json'), 'utf8')) as Record<string, Reference>)[name]!
    reference.numeric.forEach((feature, index) => {
      close((stats.features[feature] as NumericSummary).mean, reference.mean[index]!)
      close((stats.features[feature] as NumericSummary).sd, reference.sd[index]!)
    })
    expect(stats.correlation.names).toEqual([...reference.numeric, request.outcome])
    reference.correlation.forEach((row, i) => row.forEach((value, j) => close(stats.correlation.matrix[i]![j], value)))
    for (const [feature, test] of Object.entries(reference.chiSquare)) {
      const table = stats.crossTables?.[feature]
      if (table?.chiSquare === null) continue
      close(table?.chiSquare, test.chiSquare)
      expect(table?.df).toBe(test.df)
      close(table?.pValue, test.pValue)
    }
  })

  it('a small group is never published, also not through its complement: infert\'s 12 women of education 0-5yrs under a minimum of 15', async () => {
    const { rows, request } = await statsDataset('infert', { minimum: 15 })
    const { stats } = simulateStatsOnRows({ rows, request, peers: 8, split: 'even', topology: 'ring', seed: 3 })
    const education = stats.features.education!
    expect(education.type === 'categorical' && education.levels['0-5yrs']).toBeNull()
    // its complement: another level is hidden too, or the total would give it away
    expect(education.type === 'categorical' && Object.values(education.levels).filter((value) => value === null).length).toBeGreaterThanOrEqual(2)
    const cross = stats.crossTables?.education
    expect(cross?.negatives[0]).toBeNull()
    expect(cross?.positives[0]).toBeNull()
    expect(cross?.chiSquare).toBeNull()
    checkDisclosure(rows, request, stats)
    checkAgainstPooled(rows, request, stats)
  })

  it.each([10, 30, 60])('wnv under a minimum of %i: nothing small published or derivable, whatever the minimum hides', async (minimum) => {
    const { rows, request } = await statsDataset('wnv', { minimum })
    const { stats } = simulateStatsOnRows({ rows, request, peers: 8, split: 'even', topology: 'ring', seed: 5 })
    checkDisclosure(rows, request, stats)
  })
})
