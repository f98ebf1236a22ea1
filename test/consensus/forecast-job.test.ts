import { describe, expect, test } from 'vitest'
import { createForecastJobState, forecastJobProtocol, type ForecastJobState } from '../../src/consensus/jobs/forecast-job.ts'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { jointRiskGraph } from '../../src/consensus/protocols/joint-risk.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { createForecastModelSpec, forecastRegion } from '../../src/learning/forecast.ts'
import { panelHistories, pooledDesign } from '../../src/learning/forecast-panel.ts'
import { createRiskParams, riskScore } from '../../src/learning/risk.ts'
import { readForecastInputs } from '../../src/peer/data/forecast-files.ts'
import { createEndemicEpidemicSpec, fitEndemicEpidemic, panelRegions } from '../../src/learning/endemic-epidemic.ts'
import { forecastEndemicEpidemicRegion } from '../../src/learning/endemic-epidemic-forecast.ts'
import { fixture, relativeError } from '../helpers/data.ts'
import { hhh4Reference } from '../helpers/hhh4-reference.ts'

/**
 * The whole regional-risk job as the peers run it, in the simulator: each region's machine holds only
 * its own series, receives its neighbours' incidence, fits the shared model with the others, forecasts,
 * and takes part in the masked sum of h.
 */
describe('the forecasting job on measlesDE (16 states, their borders)', () => {
  test('each state gets the pooled model, its own forecast and h, the exact joint risk and total forecast; no message carries an h or a state\'s forecast', async () => {
    const { panel, graph } = await readForecastInputs({ counts: fixture('measlesDE_counts.csv'), population: fixture('measlesDE_population.csv'), adjacency: fixture('measlesDE_adjacency.csv') }, { totalPopulation: 82_300_000 })
    const spec = createForecastModelSpec()
    const risk = createRiskParams({ periodDays: 7 })
    const rng = createRng(7)
    const states: ForecastJobState[] = panel.regions.map((_, self) => createForecastJobState({
      job: 'forecast-1', graph, self, diameter: diameter(graph), spec,
      counts: panel.counts[self] as Float64Array, population: panel.populations[self] as number, start: 0,
      horizon: 4, risk, openRegions: [], params: createFitJobParams({ algorithm: 'newton', tolerance: 1e-10 }), rng: forkRng(rng, `peer-${self}`)
    }))
    const network = new MemoryNetwork({ graph: jointRiskGraph(graph), rng: forkRng(rng, 'network') })
    const sent: ConsensusMessage[] = []
    const send = network.send.bind(network)
    network.send = (from: number, message: ConsensusMessage): void => { sent.push(message); send(from, message) }
    const run = runSynchronous({ protocol: forecastJobProtocol, states, network, maxRounds: 20_000 })
    const results = run.results.map((result) => { if (result === null) throw new Error('a state did not finish'); return result })

    // the pooled fit of every state's rows, computed here with all the series in hand
    const histories = panelHistories(panel, graph.neighbours)
    const { block, terms } = pooledDesign(spec, histories)
    const pooled = fitModel(block, terms, { family: 'poisson', standardize: true, tolerance: 1e-12, maxIterations: 100 })
    let sum = 0
    for (const [region, result] of results.entries()) {
      expect(relativeError(result.fit.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result.fit.standardErrors, pooled.coefficients.standardError)).toBeLessThan(1e-5)
      const forecast = forecastRegion(spec, result.fit.coefficients, histories[region]!, { horizon: 4 })
      expect(result.forecast.map((period) => period.mean)).toEqual(forecast.map((period) => period.mean))
      expect(result.risk.h).toBeCloseTo(riskScore(forecast.map((period) => period.mean), panel.populations[region]!, risk).h, 12)
      sum += result.risk.h
    }
    // the federation's total forecast per period: every state's forecast means fused by the same masked sum
    const totals = [0, 1, 2, 3].map((step) => results.reduce((total, result) => total + (result.forecast[step]?.mean as number), 0))
    for (const result of results) {
      expect(result.joint.regions).toBe(16)
      expect(Math.abs(result.joint.sum - sum)).toBeLessThan(1e-9)
      expect(Math.abs(result.joint.mean - sum / 16)).toBeLessThan(1e-10)
      expect(result.joint.fused).toHaveLength(4)
      result.joint.fused.forEach((total, step) => { expect(Math.abs(total - (totals[step] as number))).toBeLessThan(1e-8 * Math.max(1, totals[step] as number)) })
    }
    // no state's forecast mean is in any message, as a value or as its bytes
    const means = results.flatMap((result) => result.forecast.map((period) => period.mean)).filter((mean) => mean !== 0)
    for (const message of sent) {
      for (const value of message.values) expect(means.includes(value)).toBe(false)
      const bytes = Buffer.from(message.data)
      for (const mean of means) {
        const le = Buffer.alloc(8)
        le.writeDoubleLE(mean)
        expect(bytes.includes(le)).toBe(false)
      }
    }
    // the h values are in no message, in the clear or as a float in the bytes
    const hs = results.map((result) => result.risk.h)
    for (const message of sent) {
      for (const value of message.values) expect(hs.includes(value)).toBe(false)
      const bytes = Buffer.from(message.data)
      for (const h of hs) {
        const le = Buffer.alloc(8)
        le.writeDoubleLE(h)
        expect(bytes.includes(le)).toBe(false)
      }
    }
    expect(sent.some((message) => message.kind === 'incidence')).toBe(true)
    expect(sent.some((message) => message.kind.startsWith('joint-risk'))).toBe(true)
  }, 60_000)

  test('with the endemic-epidemic model: hhh4\'s fit on every state, each state\'s own negative binomial forecast and h, the exact joint risk', async () => {
    const { panel, graph } = await readForecastInputs({ counts: fixture('measlesDE_counts.csv'), population: fixture('measlesDE_population.csv'), adjacency: fixture('measlesDE_adjacency.csv') }, { totalPopulation: 82_300_000 })
    const spec = createForecastModelSpec()
    const endemicEpidemic = createEndemicEpidemicSpec({ unitIntercepts: true })
    const risk = createRiskParams({ periodDays: 7 })
    const rng = createRng(11)
    const states: ForecastJobState[] = panel.regions.map((_, self) => createForecastJobState({
      job: 'forecast-ee', graph, self, diameter: diameter(graph), spec, endemicEpidemic,
      counts: panel.counts[self] as Float64Array, population: panel.populations[self] as number, start: 0,
      horizon: 2, risk, openRegions: [], params: createFitJobParams({ algorithm: 'newton', tolerance: 1e-10 }), rng: forkRng(rng, `peer-${self}`)
    }))
    const network = new MemoryNetwork({ graph: jointRiskGraph(graph), rng: forkRng(rng, 'network') })
    const run = runSynchronous({ protocol: forecastJobProtocol, states, network, maxRounds: 20_000 })
    const results = run.results.map((result) => { if (result === null) throw new Error('a state did not finish'); return result })
    const reference = hhh4Reference('measlesDE', 'unitSpecific').full
    const regions = panelRegions(panel, graph.neighbours)
    const pooled = fitEndemicEpidemic(endemicEpidemic, regions)
    let sum = 0
    for (const [region, result] of results.entries()) {
      expect(result.fit.terms).toEqual(['ar.1', 'ne.1', 'end.sin(2 * pi * t/52)', 'end.cos(2 * pi * t/52)', '-log(overdisp)'])
      result.fit.terms.forEach((term, index) => {
        expect(Math.abs((result.fit.coefficients[index] as number) / (reference.coefficients[term] as number) - 1), term).toBeLessThan(1e-6)
        expect(Math.abs((result.fit.standardErrors[index] as number) / (reference.standardErrors[term] as number) - 1), term).toBeLessThan(1e-4)
      })
      const own = result.endemicEpidemic?.local
      if (own === null || own === undefined) throw new Error('expected the region\'s own intercept')
      const forecast = forecastEndemicEpidemicRegion({ spec: endemicEpidemic, shared: pooled.shared, local: pooled.local[region]?.estimate ?? null }, regions[region]!, { horizon: 2 })
      expect(relativeError(result.forecast.map((period) => period.mean), forecast.map((period) => period.mean))).toBeLessThan(1e-6)
      expect(result.forecast.map((period) => [period.lower, period.upper])).toEqual(forecast.map((period) => [period.lower, period.upper]))
      sum += result.risk.h
    }
    for (const result of results) expect(Math.abs(result.joint.sum - sum)).toBeLessThan(1e-9)
  }, 60_000)
})
