import { describe, expect, it } from 'vitest'
import { federatedForecastFit, heldOutSkill, simulateForecast } from '../../src/consensus/sim/forecast-simulation.ts'
import { createForecastModelSpec } from '../../src/learning/forecast.ts'
import { panelHistories } from '../../src/learning/forecast-panel.ts'
import { createRiskParams } from '../../src/learning/risk.ts'
import { loadFluBYBW, loadMeaslesDE } from '../helpers/forecast-data.ts'

const spec = createForecastModelSpec()
const clock = { now: () => performance.now() }

describe('federated forecasting fit: one peer per region, the fit job, the real adjacency graph', () => {
  it('fluBYBW (140 districts): equals the pooled Poisson fit to 1e-6', async () => {
    const { panel, graph } = await loadFluBYBW()
    expect(graph.names).toHaveLength(140)
    const fit = federatedForecastFit({ spec, histories: panelHistories(panel, graph.neighbours), graph, to: 416, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed: 3, clock })
    expect(fit.converged).toBe(true)
    expect(fit.rows).toBe(57960)
    expect(fit.relativeError).toBeLessThan(1e-6)
  })

  it('fluBYBW with own lags as incidence: a Newton trial point out of the masked sums\' range is halved back, and the fit still equals the pooled one', async () => {
    const { panel, graph } = await loadFluBYBW()
    const incidence = createForecastModelSpec({ ownScale: 'incidence' })
    const fit = federatedForecastFit({ spec: incidence, histories: panelHistories(panel, graph.neighbours), graph, to: 364, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed: 3 })
    expect(fit.converged).toBe(true)
    expect(fit.relativeError).toBeLessThan(1e-6)
  })

  it('measlesDE (16 states, their land borders): equals the pooled Poisson fit to 1e-6', async () => {
    const { panel, graph } = await loadMeaslesDE()
    expect(graph.names).toHaveLength(16)
    const fit = federatedForecastFit({ spec, histories: panelHistories(panel, graph.neighbours), graph, to: 156, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed: 5 })
    expect(fit.converged).toBe(true)
    expect(fit.relativeError).toBeLessThan(1e-6)
  })

  it('fluBYBW, the last 52 weeks one week ahead: better than last value and seasonal naive on log score and MAE', async () => {
    const { panel, graph } = await loadFluBYBW()
    const histories = panelHistories(panel, graph.neighbours)
    const fit = federatedForecastFit({ spec, histories, graph, to: 364, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed: 1 })
    expect(fit.relativeError).toBeLessThan(1e-6)
    const skill = heldOutSkill(spec, fit.coefficients, histories, 364, 416)
    expect(skill.model.count).toBe(140 * 52)
    const seasonal = skill.seasonalNaive
    if (seasonal === null) throw new Error('expected a seasonal-naive score')
    expect(skill.model.logScore).toBeGreaterThan(skill.lastValue.logScore)
    expect(skill.model.logScore).toBeGreaterThan(seasonal.logScore)
    expect(skill.model.mae).toBeLessThan(skill.lastValue.mae)
    expect(skill.model.mae).toBeLessThan(seasonal.mae)
    // the baselines depend on the data only; these are the figures the issue quotes (-1.10, 1.02; -1.51, 1.24)
    expect(skill.lastValue.logScore).toBeCloseTo(-1.10, 2)
    expect(skill.lastValue.mae).toBeCloseTo(1.02, 2)
    expect(seasonal.logScore).toBeCloseTo(-1.51, 2)
    expect(seasonal.mae).toBeCloseTo(1.24, 2)
  })

  it('measlesDE end to end: risk scores in [0, 1] and the joint risk equals their plain sum', async () => {
    const { panel, graph } = await loadMeaslesDE()
    const output = simulateForecast({ panel, graph, spec, holdout: 52, risk: createRiskParams(), algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed: 2, openRegions: ['Berlin'] })
    expect(output.skill?.fit.relativeError).toBeLessThan(1e-6)
    expect(output.regions).toHaveLength(16)
    for (const region of output.regions) {
      expect(region.h).toBeGreaterThanOrEqual(0)
      expect(region.h).toBeLessThanOrEqual(1)
      expect(region.forecast).toHaveLength(1)
      expect(region.rate).toBeCloseTo((region.forecast[0]?.mean as number) / region.population * 1e5, 12)
    }
    const plain = output.regions.reduce((sum, region) => sum + region.h, 0)
    expect(Math.abs(output.jointRisk.sum - plain)).toBeLessThan(1e-9)
    expect(Math.abs(output.jointRisk.mean - plain / 16)).toBeLessThan(1e-9)
    expect(output.jointRisk.open).toHaveLength(1)
    expect(Math.abs((output.jointRisk.open[0]?.h as number) - (output.regions.find((region) => region.region === 'Berlin')?.h as number))).toBeLessThan(1e-12)
  })
})
