import { describe, expect, it } from 'vitest'
import { fitModel } from '../../src/learning/fit.ts'
import { twoSidedNormalPValue } from '../../src/learning/inference.ts'
import { buildDesign, type ModelSpec } from '../../src/learning/design.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { fixture, loadModel, relativeError, R_INFERT, R_WNV } from '../helpers/data.ts'

describe('pooled fits match R glm', () => {
  it('infert: case ~ age + parity + induced + spontaneous', async () => {
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const fit = fitModel(block, terms, { family: 'binomial' })
    expect(fit.terms).toEqual(R_INFERT.terms)
    expect(relativeError(fit.coefficients.estimate, R_INFERT.estimate)).toBeLessThan(1e-8)
    expect(relativeError(fit.coefficients.standardError, R_INFERT.standardError)).toBeLessThan(1e-8)
    expect(Math.abs(fit.logLikelihood - R_INFERT.logLikelihood) / Math.abs(R_INFERT.logLikelihood)).toBeLessThan(1e-9)
    expect(fit.converged).toBe(true)
  })

  it('wnv: dead ~ age + male on the 551 rows with known death, age and sex', async () => {
    const dataset = await readDataset(fixture('wnv.csv'))
    const rows = dataset.rows
      .filter((row) => (row.death === 'Yes' || row.death === 'No') && typeof row.age === 'number' && (row.sex === 'M' || row.sex === 'F'))
      .map((row) => ({ dead: row.death === 'Yes' ? 1 : 0, age: row.age, male: row.sex === 'M' ? 1 : 0 }))
    expect(rows).toHaveLength(551)
    const spec: ModelSpec = { outcome: 'dead', features: [{ name: 'age', type: 'numeric' }, { name: 'male', type: 'numeric' }] }
    const fit = fitModel(buildDesign(rows, spec), R_WNV.terms, { family: 'binomial' })
    expect(relativeError(fit.coefficients.estimate, R_WNV.estimate)).toBeLessThan(1e-8)
    expect(relativeError(fit.coefficients.standardError, R_WNV.standardError)).toBeLessThan(1e-8)
    expect(Math.abs(fit.logLikelihood - R_WNV.logLikelihood) / Math.abs(R_WNV.logLikelihood)).toBeLessThan(1e-9)
  })

  it('infert with education as a factor (treatment contrasts), and Hosmer-Lemeshow with 10 groups', async () => {
    // R: glm(case ~ age + parity + education + spontaneous + induced, binomial, infert)
    const { block, terms } = await loadModel('infert.csv', {
      outcome: 'case',
      features: ['age', 'parity', 'education', 'spontaneous', 'induced'],
      levels: { education: ['0-5yrs', '6-11yrs', '12+ yrs'] }
    })
    expect(terms).toEqual(['(Intercept)', 'age', 'parity', 'education6-11yrs', 'education12+ yrs', 'spontaneous', 'induced'])
    const fit = fitModel(block, terms, { family: 'binomial' })
    const estimate = [-1.1492365355906, 0.0395820016977, -0.8282773822931, -1.0442435837275, -1.4032050894763, 2.0459050216801, 1.2887573809390]
    const standardError = [1.4122093417314, 0.0312028090607, 0.1964938941234, 0.7925590697067, 0.8341662077577, 0.3101633246601, 0.3014661869563]
    expect(relativeError(fit.coefficients.estimate, estimate)).toBeLessThan(1e-8)
    expect(relativeError(fit.coefficients.standardError, standardError)).toBeLessThan(1e-8)
    const hosmerLemeshow = fit.metrics?.hosmerLemeshow
    expect(hosmerLemeshow?.df).toBe(8)
    expect(Math.abs((hosmerLemeshow?.statistic ?? 0) - 5.2769)).toBeLessThan(1e-3)
    expect(Math.abs((hosmerLemeshow?.pValue ?? 0) - 0.7276)).toBeLessThan(1e-3)
    expect(hosmerLemeshow?.groups.reduce((sum, group) => sum + group.n, 0)).toBe(248)
  })

  it('p-values are two-sided normal tail probabilities, accurate far in the tail', async () => {
    // 1.959963984540054 is the 97.5% normal quantile; Phi(-8) = 6.220960574271785e-16 (standard tables).
    expect(Math.abs(twoSidedNormalPValue(1.959963984540054) - 0.05)).toBeLessThan(1e-15)
    expect(Math.abs(twoSidedNormalPValue(-8) / 1.244192114854357e-15 - 1)).toBeLessThan(1e-12)
    expect(twoSidedNormalPValue(30)).toBeGreaterThan(1e-200)
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const table = fitModel(block, terms, { family: 'binomial' }).coefficients
    table.z.forEach((z, index) => {
      expect(z).toBeCloseTo((table.estimate[index] as number) / (table.standardError[index] as number), 12)
      expect(table.pValue[index]).toBe(twoSidedNormalPValue(z))
    })
  })
})
