import { describe, expect, it } from 'vitest'
import { designRow, predictRecords, waldIntervals, Z_975, type RowPrediction, type ScoringModel } from '../../src/learning/predict.ts'

/** The pure scoring core: design rows, the delta method, the offset, and every reason a record cannot be scored. */
const MODEL: ScoringModel = {
  family: 'poisson',
  features: [{ name: 'age', type: 'numeric' }, { name: 'zone', type: 'categorical', levels: ['north', 'south', 'east'] }],
  offset: 'logPopulation',
  coefficients: [-2, 0.01, 0.5, -0.25],
  // a covariance with correlations, so that every term of x'Vx counts
  covariance: [
    0.04, -0.001, 0.002, 0.001,
    -0.001, 0.0001, 0, 0,
    0.002, 0, 0.09, 0.01,
    0.001, 0, 0.01, 0.16
  ]
}

describe('scoring records', () => {
  it('builds the row as the fit did (treatment contrasts, offset) and takes the delta method from the covariance', () => {
    const [scored] = predictRecords(MODEL, [{ age: 40, zone: 'east', logPopulation: Math.log(1000) }]) as RowPrediction[]
    const x = [1, 40, 0, 1]
    const link = -2 + 0.01 * 40 - 0.25 + Math.log(1000)
    let variance = 0
    for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) variance += (x[i] as number) * (MODEL.covariance[i * 4 + j] as number) * (x[j] as number)
    expect(scored?.link).toBeCloseTo(link, 12)
    expect(scored?.linkSe).toBeCloseTo(Math.sqrt(variance), 12)
    expect(scored?.fit).toBeCloseTo(Math.exp(link), 9)
    expect(scored?.se).toBeCloseTo(Math.exp(link) * Math.sqrt(variance), 9)
    expect(scored?.lower).toBeCloseTo(Math.exp(link - Z_975 * Math.sqrt(variance)), 9)
    expect(scored?.upper).toBeCloseTo(Math.exp(link + Z_975 * Math.sqrt(variance)), 9)
  })

  it('a logistic model without an intercept: probabilities, and the interval within 0 and 1', () => {
    const model: ScoringModel = { family: 'binomial', intercept: false, features: [{ name: 'dose', type: 'numeric' }], coefficients: [3], covariance: [4] }
    const [scored] = predictRecords(model, [{ dose: 2 }]) as RowPrediction[]
    expect(scored?.link).toBe(6)
    expect(scored?.linkSe).toBe(4)
    const fit = 1 / (1 + Math.exp(-6))
    expect(scored?.se).toBeCloseTo(fit * (1 - fit) * 4, 14)
    expect(scored?.lower).toBeGreaterThan(0)
    expect(scored?.upper).toBeLessThan(1)
  })

  it('gives the reason a record cannot be scored, and numbers the rows from the first', () => {
    const scored = predictRecords(MODEL, [
      { age: 40, zone: 'west', logPopulation: 7 },
      { age: null, zone: 'east', logPopulation: 7 },
      { age: 'old', zone: 'east', logPopulation: 7 },
      { age: 40, zone: 'east' },
      { age: '41', zone: 'north', logPopulation: '7' }
    ], 10)
    expect(scored.map((row) => row.row)).toEqual([10, 11, 12, 13, 14])
    expect(scored[0]).toMatchObject({ kind: 'LEVEL_UNKNOWN', column: 'zone' })
    expect(scored[1]).toMatchObject({ kind: 'VALUE_MISSING', column: 'age' })
    expect(scored[2]).toMatchObject({ kind: 'NOT_A_NUMBER', column: 'age' })
    expect(scored[3]).toMatchObject({ kind: 'VALUE_MISSING', column: 'logPopulation' })
    expect(scored[4]).toHaveProperty('fit')
    expect(designRow(MODEL, { age: 1, zone: 'south', logPopulation: 0 }, 1)).toEqual({ x: Float64Array.from([1, 1, 1, 0]), offset: 0 })
  })

  it('refuses a model whose coefficients or covariance do not fit its features', () => {
    expect(() => predictRecords({ ...MODEL, coefficients: [1, 2] }, [])).toThrow(/coefficients/)
    expect(() => predictRecords({ ...MODEL, covariance: [1] }, [])).toThrow(/covariance/)
  })

  it('Wald intervals as confint.default', () => {
    expect(waldIntervals([1, 2], [0.5, null])).toEqual([{ lower: 1 - Z_975 * 0.5, upper: 1 + Z_975 * 0.5 }, { lower: null, upper: null }])
  })
})
