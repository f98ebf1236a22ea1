import { describe, expect, it } from 'vitest'
import {
  binOf, buildStatsData, chiSquareTest, determinedCells, histogramEdges, mergeBins, pooledStats, protectCells, validateStatsRequest,
  type RawBin, type StatsRequest
} from '../../src/learning/statistics.ts'

const bin = (events: number, nonEvents: number, index: number): RawBin => ({ lower: index, upper: index + 1, levels: null, missing: false, members: [index], events, nonEvents })

describe('cell protection', () => {
  it('a row with one small cell loses a second one, the smallest other, so that its total does not give the first away', () => {
    // cells 0..3 and their total 4 (published, fixed)
    const hidden = protectCells({ values: [2, 40, 9, 30, 81], sums: [{ total: 4, parts: [0, 1, 2, 3] }], unpublished: new Set(), fixed: new Map([[4, false]]), priority: [0, 0, 0, 0, 0] }, 5)
    expect(hidden).toEqual([true, false, true, false, false])
  })

  it('in a 2 x 3 table with its margins published, hiding a second cell of its row is not enough; protection hides until nothing small follows', () => {
    // inner a b c / d e f, row totals 6, 7, column totals 8, 9, 10, grand total 11
    const values = [3, 20, 30, 40, 50, 60, 53, 150, 43, 70, 90, 203]
    const sums = [
      { total: 6, parts: [0, 1, 2] }, { total: 7, parts: [3, 4, 5] },
      { total: 8, parts: [0, 3] }, { total: 9, parts: [1, 4] }, { total: 10, parts: [2, 5] },
      { total: 11, parts: [6, 7] }
    ]
    const fixed = new Map([[6, false], [7, false], [8, false], [9, false], [10, false], [11, false]])
    const hidden = protectCells({ values, sums, unpublished: new Set(), fixed, priority: values.map(() => 0) }, 5)
    // at least a rectangle: two cells in each of two columns
    expect(hidden.filter(Boolean).length).toBeGreaterThanOrEqual(4)
    expect(hidden[0]).toBe(true)
    const equations = sums.map(({ total, parts }) => new Map([[total, -1], ...parts.map((part) => [part, 1] as [number, number])]))
    // no small cell follows from what is published (a complement may: it is no small group)
    expect(determinedCells(equations, hidden).filter((cell) => (values[cell] as number) < 5)).toEqual([])
    // the row's complement alone: the column total gives the small cell away
    expect(determinedCells(equations, values.map((_, index) => index === 0 || index === 1))).toEqual([0, 1])
  })
})

describe('weights of evidence', () => {
  it('merges small bins with their neighbours until each has the minimum of events and non-events; the missing bin joins the last when small', () => {
    const merged = mergeBins([bin(1, 30, 0), bin(6, 2, 1), bin(8, 40, 2), bin(9, 9, 3)], { lower: null, upper: null, levels: null, missing: true, members: [4], events: 1, nonEvents: 3 }, 5)
    for (const group of merged) expect(Math.min(group.events, group.nonEvents)).toBeGreaterThanOrEqual(5)
    expect(merged.map((group) => group.members)).toEqual([[0, 1], [2], [3, 4]])
    expect(merged.at(-1)?.missing).toBe(true)
    expect(merged.reduce((sum, group) => sum + group.events + group.nonEvents, 0)).toBe(31 + 8 + 48 + 18 + 4)
  })
})

describe('the statistics request and data', () => {
  const request: StatsRequest = { features: [{ name: 'x', type: 'numeric' }, { name: 'sex', type: 'categorical', levels: ['F', 'M'] }], outcome: 'y', bins: 10, minimum: 3 }

  it('refuses a level not declared, a value that is not a number and an outcome that is not binary, naming row and column', () => {
    expect(() => buildStatsData([{ x: 1, sex: 'female', y: 1 }], request)).toThrow(/row 1, column "sex"/)
    expect(() => buildStatsData([{ x: 'abc', sex: 'F', y: 1 }], request)).toThrow(/row 1, column "x"/)
    expect(() => buildStatsData([{ x: 1, sex: 'F', y: 1 }, { x: 1, sex: 'F', y: 2 }], request)).toThrow(/row 2, column "y"/)
    expect(buildStatsData([{ x: null, sex: 'M', y: 'Yes' }], request).outcome?.[0]).toBe(1)
  })

  it('bounds every field', () => {
    expect(() => validateStatsRequest({ ...request, bins: 1 })).toThrow(/bins/)
    expect(() => validateStatsRequest({ ...request, minimum: 0 })).toThrow(/minimum/)
    expect(() => validateStatsRequest({ ...request, outcome: 'x' })).toThrow(/also a feature/)
    expect(() => validateStatsRequest({ ...request, features: [{ name: 'x', type: 'numeric', low: 3, high: 1 }] })).toThrow(/low < high/)
    expect(validateStatsRequest(request)).toBe(request)
  })

  it('puts a value on an edge in the bin the published edge opens, and derives the same edges from totals differing in the last bit', () => {
    const edges = histogramEdges({ name: 'x', type: 'numeric' }, 100, 30, 100 * 0.3 * 0.3 + 99 * 0.01, 200)
    expect(edges).toEqual(histogramEdges({ name: 'x', type: 'numeric' }, 100, 30 * (1 + 2 ** -52), 100 * 0.3 * 0.3 + 99 * 0.01, 200))
    for (let index = 0; index <= edges.fine; index++) expect(binOf(edges.low + index * edges.width, edges)).toBe(index + 1)
    expect(histogramEdges({ name: 'x', type: 'numeric', low: 0, high: 120 }, 5, 1, 1, 200)).toEqual({ low: 0, width: 0.6, fine: 200 })
  })

  it('publishes no mean, SD or quantiles over fewer rows than the minimum', () => {
    const rows = [{ x: 1, sex: 'F', y: 0 }, { x: 2, sex: 'M', y: 1 }, { x: null, sex: 'M', y: 1 }]
    const stats = pooledStats({ ...request, minimum: 3 }, buildStatsData(rows, request))
    expect(stats.features.x).toMatchObject({ mean: null, sd: null, quantiles: null })
  })
})

describe('the chi-square test', () => {
  it('equals R\'s chisq.test(correct = FALSE) on wnv\'s syndrome against death', () => {
    // R 4.2.2: chisq.test(matrix(c(83, 268, 194, 8, 0, 15), nrow = 2, byrow = TRUE), correct = FALSE)
    const test = chiSquareTest([83, 268, 194], [8, 0, 15])
    expect(test?.df).toBe(2)
    expect(Math.abs((test?.chiSquare as number) - 21.8389217106241) / 21.8389217106241).toBeLessThan(1e-12)
    expect(Math.abs((test?.pValue as number) - 1.8102493707054104e-05) / 1.8102493707054104e-05).toBeLessThan(1e-10)
  })
})
