import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { buildDesign, type DataBlock, type ModelSpec } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { addPenalty, createWorkspace, evaluateLoss } from '../../src/learning/glm.ts'
import { auc } from '../../src/learning/metrics.ts'
import { fitNewton } from '../../src/learning/newton.ts'
import { scalerFromStats, standardizeBlock, sufficientStats } from '../../src/learning/standardize.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { loadModel } from '../helpers/data.ts'

/** The penalised logistic gradient by a plain double loop, sharing no code with evaluateLoss. */
function naiveLogisticGradient (block: DataBlock, beta: ArrayLike<number>, lambda: number): number[] {
  const p = block.cols
  const gradient = new Array<number>(p).fill(0)
  for (let row = 0; row < block.rows; row++) {
    let eta = 0
    for (let column = 0; column < p; column++) eta += (block.x[row * p + column] as number) * (beta[column] as number)
    const probability = 1 / (1 + Math.exp(-eta))
    for (let column = 0; column < p; column++) gradient[column] = (gradient[column] as number) + (probability - (block.y[row] as number)) * (block.x[row * p + column] as number)
  }
  for (let column = 1; column < p; column++) gradient[column] = (gradient[column] as number) + lambda * (beta[column] as number)
  return gradient
}

describe('breast cancer, 30 standardised features, lambda = 1 (unique solution)', () => {
  it('reaches a point where the penalised gradient vanishes, confirmed by an independent gradient and by finite differences', async () => {
    const { block, terms } = await loadModel('breast_cancer.csv', { outcome: 'malignant' })
    expect(terms).toHaveLength(31)
    const standardized = standardizeBlock(block, scalerFromStats(sufficientStats(block), 0))
    const penalized = terms.map((term) => term !== '(Intercept)')
    const fit = fitNewton([standardized], { family: 'binomial', lambda: 1, penalized })
    expect(fit.converged).toBe(true)
    expect(fit.gradientNorm).toBeLessThan(1e-10)
    // independent check 1: the KKT condition with a separately written gradient
    const independent = naiveLogisticGradient(standardized, fit.beta, 1)
    expect(Math.hypot(...independent)).toBeLessThan(1e-9)
    // independent check 2: the objective is minimal along random directions (second-order, by differences)
    const workspace = createWorkspace(31)
    const objective = (beta: Float64Array): number => evaluateLoss('binomial', standardized, beta, workspace, false) + addPenalty(beta, 1, penalized, createWorkspace(31), false)
    const at = objective(fit.beta)
    const rng = createRng(4)
    for (let trial = 0; trial < 20; trial++) {
      const direction = Float64Array.from({ length: 31 }, () => rng() - 0.5)
      const step = 1e-4
      const forward = objective(fit.beta.map((value, index) => value + step * (direction[index] as number)))
      const backward = objective(fit.beta.map((value, index) => value - step * (direction[index] as number)))
      expect(forward).toBeGreaterThan(at)
      expect(backward).toBeGreaterThan(at)
      expect(Math.abs(forward - backward) / step).toBeLessThan(1e-6)
    }
    // the same through fitModel, whose coefficients come back on the original scale
    const model = fitModel(block, terms, { family: 'binomial', lambda: 1, standardize: true })
    expect(model.standardizedCoefficients?.[5]).toBeCloseTo(fit.beta[5] as number, 10)
  })

  it('gradient and Hessian agree with finite differences at random points', async () => {
    const { block } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const workspace = createWorkspace(5)
    const probe = createWorkspace(5)
    const rng = createRng(8)
    for (let trial = 0; trial < 5; trial++) {
      const beta = Float64Array.from({ length: 5 }, () => (rng() - 0.5) * 0.2)
      evaluateLoss('binomial', block, beta, workspace, true)
      for (let column = 0; column < 5; column++) {
        const step = 1e-6
        const plus = Float64Array.from(beta)
        const minus = Float64Array.from(beta)
        plus[column] = (plus[column] as number) + step
        minus[column] = (minus[column] as number) - step
        const difference = (evaluateLoss('binomial', block, plus, probe, true) - evaluateLoss('binomial', block, minus, probe, true)) / (2 * step)
        expect(Math.abs(difference - (workspace.gradient[column] as number))).toBeLessThan(1e-5 * (1 + Math.abs(difference)))
        evaluateLoss('binomial', block, plus, probe, true)
        const gradientPlus = Float64Array.from(probe.gradient)
        evaluateLoss('binomial', block, minus, probe, true)
        for (let other = 0; other < 5; other++) {
          const second = ((gradientPlus[other] as number) - (probe.gradient[other] as number)) / (2 * step)
          expect(Math.abs(second - (workspace.hessian[column * 5 + other] as number))).toBeLessThan(1e-4 * (1 + Math.abs(second)))
        }
      }
    }
  })
})

describe('Poisson regression with a log-population offset', () => {
  // Closed forms, worked out by hand: with an intercept only, the MLE rate is sum(y) / sum(pop), and
  // Var(log rate) = 1 / sum(y); with one binary covariate, each group's rate is its own sum(y)/sum(pop),
  // the coefficient is the log rate ratio, and its variance is 1/sum(y_1) + 1/sum(y_0).
  const population = [100, 120, 90, 200, 150, 80, 300, 250, 110, 60]
  const counts = [2, 3, 1, 9, 8, 4, 20, 19, 9, 6]
  const group = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
  const rows = counts.map((y, index) => ({ y, group: group[index], logPop: Math.log(population[index] as number) }))

  it('intercept only: exp(b0) = sum(y) / sum(pop), se = 1/sqrt(sum(y))', () => {
    const spec: ModelSpec = { outcome: 'y', features: [], offset: 'logPop' }
    const fit = fitModel(buildDesign(rows, spec, { outcome: 'count' }), ['(Intercept)'], { family: 'poisson' })
    const sumY = counts.reduce((a, b) => a + b, 0)
    const sumPop = population.reduce((a, b) => a + b, 0)
    expect(Math.abs((fit.coefficients.estimate[0] as number) - Math.log(sumY / sumPop))).toBeLessThan(1e-12)
    expect(Math.abs((fit.coefficients.standardError[0] as number) - 1 / Math.sqrt(sumY))).toBeLessThan(1e-12)
  })

  it('one binary covariate: the log rate ratio, se = sqrt(1/y1 + 1/y0)', () => {
    const spec: ModelSpec = { outcome: 'y', features: [{ name: 'group', type: 'numeric' }], offset: 'logPop' }
    const fit = fitModel(buildDesign(rows, spec, { outcome: 'count' }), ['(Intercept)', 'group'], { family: 'poisson' })
    const sum = (values: number[], which: number): number => values.filter((_, index) => group[index] === which).reduce((a, b) => a + b, 0)
    const rate0 = sum(counts, 0) / sum(population, 0)
    const rate1 = sum(counts, 1) / sum(population, 1)
    expect(Math.abs((fit.coefficients.estimate[0] as number) - Math.log(rate0))).toBeLessThan(1e-12)
    expect(Math.abs((fit.coefficients.estimate[1] as number) - Math.log(rate1 / rate0))).toBeLessThan(1e-12)
    expect(Math.abs((fit.coefficients.standardError[1] as number) - Math.sqrt(1 / sum(counts, 1) + 1 / sum(counts, 0)))).toBeLessThan(1e-12)
    // log-likelihood: sum(y log mu - mu - log y!) computed directly
    let logLikelihood = 0
    counts.forEach((y, index) => {
      const mu = (population[index] as number) * ((group[index] === 1) ? rate1 : rate0)
      let logFactorial = 0
      for (let k = 2; k <= y; k++) logFactorial += Math.log(k)
      logLikelihood += y * Math.log(mu) - mu - logFactorial
    })
    expect(Math.abs(fit.logLikelihood - logLikelihood)).toBeLessThan(1e-10)
  })
})

describe('bad input gets typed errors', () => {
  const spec: ModelSpec = { outcome: 'y', features: [{ name: 'x', type: 'numeric' }] }
  it('NaN and infinite features', () => {
    expect(() => buildDesign([{ x: Number.NaN, y: 1 }], spec)).toThrow(expect.objectContaining({ code: 'NON_FINITE' }))
    expect(() => buildDesign([{ x: Number.POSITIVE_INFINITY, y: 1 }], spec)).toThrow(expect.objectContaining({ code: 'NON_FINITE' }))
  })
  it('an outcome that is not 0/1', () => {
    expect(() => buildDesign([{ x: 1, y: 2 }], spec)).toThrow(expect.objectContaining({ code: 'INVALID_OUTCOME' }))
    expect(() => buildDesign([{ x: 1, y: 'yes' }], spec)).toThrow(expect.objectContaining({ code: 'INVALID_OUTCOME' }))
  })
  it('zero rows', () => {
    expect(() => buildDesign([], spec)).toThrow(expect.objectContaining({ code: 'EMPTY_DATA' }))
  })
  it('a constant column: cannot be standardised, and makes the unstandardised Hessian singular', () => {
    const rows = Array.from({ length: 20 }, (_, index) => ({ x: 3, y: index % 2 }))
    const block = buildDesign(rows, spec)
    expect(() => fitModel(block, ['(Intercept)', 'x'], { family: 'binomial', standardize: true })).toThrow(expect.objectContaining({ code: 'CONSTANT_COLUMN' }))
    expect(() => fitModel(block, ['(Intercept)', 'x'], { family: 'binomial' })).toThrow(expect.objectContaining({ code: 'SINGULAR_HESSIAN' }))
  })
  it('mismatched dimensions', () => {
    const block = buildDesign([{ x: 1, y: 1 }, { x: 2, y: 0 }], spec)
    expect(() => evaluateLoss('binomial', block, [0, 0, 0], createWorkspace(2))).toThrow(expect.objectContaining({ code: 'DIMENSION_MISMATCH' }))
  })
  it('perfect separation', () => {
    const rows = Array.from({ length: 20 }, (_, index) => ({ x: index, y: index < 10 ? 0 : 1 }))
    expect(() => fitModel(buildDesign(rows, spec), ['(Intercept)', 'x'], { family: 'binomial' })).toThrow(expect.objectContaining({ code: 'PERFECT_SEPARATION' }))
  })
})

describe('AUC', () => {
  it('equals the brute-force pairwise count, ties counting one half', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 6 })), { minLength: 2, maxLength: 60 }),
      (pairs) => {
        const y = pairs.map(([outcome]) => outcome)
        const p = pairs.map(([, score]) => score / 6)
        let wins = 0
        let total = 0
        for (let i = 0; i < y.length; i++) {
          for (let j = 0; j < y.length; j++) {
            if (y[i] === 1 && y[j] === 0) {
              total++
              wins += (p[i] as number) > (p[j] as number) ? 1 : p[i] === p[j] ? 0.5 : 0
            }
          }
        }
        const value = auc(y, p)
        if (total === 0) return Number.isNaN(value)
        return Math.abs(value - wins / total) < 1e-12
      }
    ), { seed: 20261123, numRuns: 200 })
  })
})
