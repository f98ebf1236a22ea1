import { describe, expect, it } from 'vitest'
import { createRng } from '../../src/consensus/rng.ts'
import type { DataBlock } from '../../src/learning/design.ts'
import { solveSymmetric } from '../../src/learning/linalg.ts'
import { glmObjective } from '../../src/learning/problem.ts'
import { contractTensor, tensorLength, thirdOrderStep } from '../../src/learning/third-order.ts'

/** Rows with an intercept, three slopes and an offset; binomial or Poisson outcomes. */
function block (family: 'binomial' | 'poisson', rows: number, seed: number): DataBlock {
  const rng = createRng(seed)
  const p = 4
  const x = new Float64Array(rows * p)
  const y = new Float64Array(rows)
  const offset = new Float64Array(rows)
  for (let row = 0; row < rows; row++) {
    x[row * p] = 1
    x[row * p + 1] = 2 * rng() - 1
    x[row * p + 2] = rng() < 0.4 ? 1 : 0
    x[row * p + 3] = rng() + rng() - 1
    offset[row] = 0.8 * (rng() - 0.5)
    const eta = 0.3 + 0.8 * (x[row * p + 1] as number) - 0.5 * (x[row * p + 2] as number) + (offset[row] as number)
    y[row] = family === 'binomial' ? (rng() < 1 / (1 + Math.exp(-eta)) ? 1 : 0) : Math.floor(3 * rng() * Math.exp(eta))
  }
  return { x, y, offset, rows, cols: p }
}

function hessianAt (objective: ReturnType<typeof glmObjective>, point: Float64Array): Float64Array {
  const p = objective.dimension
  const hessian = new Float64Array(p * p)
  objective.evaluate(point, new Float64Array(p), hessian, true)
  return hessian
}

describe('the third-derivative tensor of a GLM loss', () => {
  for (const family of ['binomial', 'poisson'] as const) {
    it(`${family} with an offset: equals central differences of the Hessian, and a penalty adds nothing to it`, () => {
      const data = block(family, 200, family === 'binomial' ? 3 : 4)
      const p = data.cols
      const point = Float64Array.from([0.2, 0.5, -0.4, 0.3])
      const plain = glmObjective(family, data, 0, 0)
      const penalised = glmObjective(family, data, 0, 2.5)
      const tensor = new Float64Array(tensorLength(p))
      plain.thirdDerivatives?.(point, tensor)
      const withPenalty = new Float64Array(tensorLength(p)).fill(7)
      penalised.thirdDerivatives?.(point, withPenalty)
      expect(Array.from(withPenalty)).toEqual(Array.from(tensor))
      expect(tensorLength(p)).toBe(20)
      const h = 1e-5
      let index = 0
      let largest = 0
      for (let i = 0; i < p; i++) {
        for (let j = i; j < p; j++) {
          for (let k = j; k < p; k++, index++) {
            const up = Float64Array.from(point)
            const down = Float64Array.from(point)
            up[k] = (up[k] as number) + h
            down[k] = (down[k] as number) - h
            const difference = ((hessianAt(plain, up)[i * p + j] as number) - (hessianAt(plain, down)[i * p + j] as number)) / (2 * h)
            largest = Math.max(largest, Math.abs(difference))
            expect(tensor[index] as number).toBeCloseTo(difference, 4)
          }
        }
      }
      expect(largest).toBeGreaterThan(1)
    })
  }

  it('contracts as the full symmetric tensor does', () => {
    const p = 3
    const rng = createRng(9)
    const packed = Float64Array.from({ length: tensorLength(p) }, () => rng() - 0.5)
    const full = new Float64Array(p * p * p)
    let index = 0
    for (let i = 0; i < p; i++) {
      for (let j = i; j < p; j++) {
        for (let k = j; k < p; k++, index++) {
          for (const [a, b, c] of [[i, j, k], [i, k, j], [j, i, k], [j, k, i], [k, i, j], [k, j, i]] as const) full[(a * p + b) * p + c] = packed[index] as number
        }
      }
    }
    const v = [0.7, -1.3, 0.4]
    const contracted = contractTensor(packed, 0, p, v)
    for (let a = 0; a < p; a++) {
      let sum = 0
      for (let b = 0; b < p; b++) for (let c = 0; c < p; c++) sum += (full[(a * p + b) * p + c] as number) * (v[b] as number) * (v[c] as number)
      expect(contracted[a] as number).toBeCloseTo(sum, 12)
    }
  })
})

describe('the third-order (Chebyshev) step', () => {
  /** Newton to the optimum of the objective from a point. */
  function optimum (objective: ReturnType<typeof glmObjective>, from: Float64Array): Float64Array {
    const p = objective.dimension
    const point = Float64Array.from(from)
    for (let iteration = 0; iteration < 30; iteration++) {
      const gradient = new Float64Array(p)
      const hessian = new Float64Array(p * p)
      objective.evaluate(point, gradient, hessian, true)
      const step = solveSymmetric(hessian, p, gradient)
      for (let index = 0; index < p; index++) point[index] = (point[index] as number) - (step[index] as number)
    }
    return point
  }

  function distance (a: Float64Array, b: Float64Array): number {
    return Math.sqrt(a.reduce((sum, value, index) => sum + (value - (b[index] as number)) ** 2, 0))
  }

  for (const family of ['binomial', 'poisson'] as const) {
    it(`${family}: without a tensor it is the Newton step; with one, its error falls as the cube of the distance`, () => {
      const data = block(family, 300, 11)
      const p = data.cols
      const objective = glmObjective(family, data, 0, 1)
      const best = optimum(objective, new Float64Array(p))
      // the errors after one step from a point at distance e: Newton's fall as e^2, the third-order step's as e^3
      const errors = (size: number): { newton: number, third: number, corrected: boolean } => {
        const start = Float64Array.from(best, (value, index) => value + size * (index % 2 === 0 ? 1 : -1))
        const gradient = new Float64Array(p)
        const hessian = new Float64Array(p * p)
        objective.evaluate(start, gradient, hessian, true)
        const tensor = new Float64Array(tensorLength(p))
        objective.thirdDerivatives?.(start, tensor)
        const newton = thirdOrderStep(gradient, hessian, p)
        const expected = solveSymmetric(hessian, p, gradient)
        expect(newton.thirdOrder).toBe(false)
        for (let index = 0; index < p; index++) expect(newton.direction[index] as number).toBeCloseTo(-(expected[index] as number), 12)
        const third = thirdOrderStep(gradient, hessian, p, tensor)
        return {
          newton: distance(Float64Array.from(start, (value, index) => value + (newton.direction[index] as number)), best),
          third: distance(Float64Array.from(start, (value, index) => value + (third.direction[index] as number)), best),
          corrected: third.thirdOrder
        }
      }
      const far = errors(0.04)
      const near = errors(0.02)
      expect(far.corrected && near.corrected).toBe(true)
      expect(near.third).toBeLessThan(near.newton / 5)
      // halving the distance: the Newton step's error by about 4, the third-order step's by about 8
      expect(far.newton / near.newton).toBeGreaterThan(3.5)
      expect(far.newton / near.newton).toBeLessThan(4.5)
      expect(far.third / near.third).toBeGreaterThan(7)
    })
  }

  it('takes the Newton step when the correction is more than half of it', () => {
    // f(x) = x^2 / 2 + x^3 / 6 at x = 1: g = 1.5, H = 2, T = 1; d_N = -0.75, correction -0.5 x 0.5625 / 2 = -0.14
    const small = thirdOrderStep([1.5], Float64Array.from([2]), 1, [1])
    expect(small.thirdOrder).toBe(true)
    expect(small.direction[0] as number).toBeCloseTo(-0.75 - 0.140625, 12)
    // a large third derivative: the correction (-0.5 x 0.5625 x 10 / 2 = -1.41) exceeds |d_N| / 2
    const large = thirdOrderStep([1.5], Float64Array.from([2]), 1, [10])
    expect(large.thirdOrder).toBe(false)
    expect(large.direction[0] as number).toBeCloseTo(-0.75, 12)
  })
})
