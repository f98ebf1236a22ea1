import { describe, expect, it } from 'vitest'
import { interceptStartDerivatives } from '../../src/learning/intercept-start.ts'
import { readStatistics, type Family } from '../../src/learning/local-problem.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import type { DataBlock } from '../../src/learning/design.ts'
import { createRng } from '../../src/consensus/rng.ts'

/** Blocks of rows with an intercept, columns of very different means and scales, and (Poisson) exposures. */
function blocks (family: Family, count: number, seed: number): DataBlock[] {
  const rng = createRng(seed)
  return Array.from({ length: count }, (_, block) => {
    const rows = 20 + block * 7
    const p = 4
    const x = new Float64Array(rows * p)
    const y = new Float64Array(rows)
    const offset = new Float64Array(rows)
    for (let row = 0; row < rows; row++) {
      x[row * p] = 1
      x[row * p + 1] = 30 + 8 * (rng() - 0.5) + block
      x[row * p + 2] = rng() < 0.3 ? 1 : 0
      x[row * p + 3] = 0.01 * rng()
      offset[row] = Math.log(1 + 9 * rng())
      y[row] = family === 'binomial' ? (rng() < 0.35 ? 1 : 0) : Math.floor(4 * rng() * Math.exp(offset[row] as number))
    }
    return family === 'poisson' ? { x, y, offset, rows, cols: p } : { x, y, rows, cols: p }
  })
}

describe('exact Newton\'s first step from pooled sums', () => {
  for (const family of ['binomial', 'poisson'] as const) {
    it(`${family}: the closed form equals the summed value, gradient and Hessian at the intercept-only start, standardised and penalised`, () => {
      const terms = ['(Intercept)', 'age', 'flag', 'small']
      const problems = blocks(family, 5, family === 'binomial' ? 1 : 2).map((block) => createGlmProblem({ family, block, terms, interceptColumn: 0 }))
      const add = (vectors: Float64Array[]): Float64Array => vectors.reduce((sum, vector) => sum.map((value, index) => value + (vector[index] as number)))
      const pooled = readStatistics(add(problems.map((problem) => problem.statistics())), 4)
      const cross = add(problems.map((problem) => (problem.crossProducts as () => Float64Array)()))
      expect(cross[cross.length - 1]).toBe(0)
      const scaling = { mean: Float64Array.from(pooled.mean, (value, index) => index === 0 ? 0 : value), scale: Float64Array.from(pooled.standardDeviation, (value, index) => index === 0 ? 1 : value) }
      const lambda = 2.5
      const intercept = family === 'binomial' ? Math.log(pooled.outcomeSum / (pooled.rows - pooled.outcomeSum)) : Math.log(pooled.outcomeSum / pooled.exposureSum)
      const closed = interceptStartDerivatives({ family, dimension: 4, interceptColumn: 0, intercept, rows: pooled.rows, outcomeSum: pooled.outcomeSum, exposureSum: pooled.exposureSum, crossProducts: cross, scaling, lambda })
      // the same, summed from every block's own objective as a Newton sum does
      const point = Float64Array.of(intercept, 0, 0, 0)
      let value = 0
      const gradient = new Float64Array(4)
      const hessian = new Float64Array(16)
      for (const problem of problems) {
        const g = new Float64Array(4)
        const h = new Float64Array(16)
        value += problem.objective(scaling, lambda / problems.length).evaluate(point, g, h, true)
        g.forEach((entry, index) => { gradient[index] = (gradient[index] as number) + entry })
        h.forEach((entry, index) => { hessian[index] = (hessian[index] as number) + entry })
      }
      expect(Math.abs((closed[0] as number) - value) / Math.abs(value)).toBeLessThan(1e-12)
      for (let index = 0; index < 4; index++) expect(Math.abs((closed[1 + index] as number) - (gradient[index] as number))).toBeLessThan(1e-9 * Math.max(1, Math.abs(value)))
      let slot = 5
      for (let row = 0; row < 4; row++) {
        for (let column = row; column < 4; column++, slot++) {
          expect(Math.abs((closed[slot] as number) - (hessian[row * 4 + column] as number)) / Math.max(1, Math.abs(hessian[row * 4 + column] as number))).toBeLessThan(1e-10)
        }
      }
    })
  }

  it('a binomial block with offsets says the closed form does not hold for it', () => {
    const [block] = blocks('binomial', 1, 3)
    const withOffset = { ...(block as DataBlock), offset: new Float64Array((block as DataBlock).rows).fill(0.5) }
    const cross = (createGlmProblem({ family: 'binomial', block: withOffset, terms: ['a', 'b', 'c', 'd'], interceptColumn: 0 }).crossProducts as () => Float64Array)()
    expect(cross[cross.length - 1]).toBe(1)
  })
})
