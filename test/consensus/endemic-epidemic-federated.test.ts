import { describe, expect, it } from 'vitest'
import { simulateEndemicEpidemic, simulateEndemicEpidemicForecast } from '../../src/consensus/sim/endemic-epidemic-simulation.ts'
import { createRiskParams } from '../../src/learning/risk.ts'
import { createEndemicEpidemicSpec } from '../../src/learning/endemic-epidemic.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import { loadFluBYBW, loadMeaslesDE } from '../helpers/forecast-data.ts'
import { hhh4Reference, type Hhh4Reference } from '../helpers/hhh4-reference.ts'

function relative (actual: number, expected: number): number {
  return Math.abs(actual - expected) / Math.abs(expected)
}

/** R's estimate is a finite maximum (not an intercept that runs off to -Infinity on a flat likelihood). */
function bounded (reference: Hhh4Reference, name: string): boolean {
  return !reference.zeroRegions.full.includes(name) && (reference.full.standardErrors[`end.1.${name}`] as number) < 100
}

async function federated (data: Hhh4Reference['data'], design: Hhh4Reference['design'], observe?: (from: number, message: ConsensusMessage) => void): Promise<{ output: ReturnType<typeof simulateEndemicEpidemic>, names: string[], reference: Hhh4Reference }> {
  const { panel, graph } = data === 'fluBYBW' ? await loadFluBYBW() : await loadMeaslesDE()
  const reference = hhh4Reference(data, design)
  const output = simulateEndemicEpidemic({
    spec: createEndemicEpidemicSpec({ unitIntercepts: design === 'unitSpecific' }),
    counts: panel.counts,
    populations: panel.populations,
    graph,
    seed: 7,
    keepLog: observe !== undefined,
    ...(observe === undefined ? {} : { observe })
  })
  return { output, names: graph.names, reference }
}

function expectR (output: ReturnType<typeof simulateEndemicEpidemic>, names: string[], reference: Hhh4Reference): void {
  expect(output.results).toHaveLength(names.length)
  for (const result of output.results) {
    expect(result.converged).toBe(true)
    expect(relative(result.logLikelihood, reference.full.logLikelihood)).toBeLessThan(1e-10)
    expect(result.rows).toBe(reference.full.rows * names.length)
    result.terms.forEach((term, index) => {
      expect(relative(result.shared[index] as number, reference.full.coefficients[term] as number), term).toBeLessThan(1e-6)
      expect(relative(result.standardErrors[index] as number, reference.full.standardErrors[term] as number), term).toBeLessThan(1e-4)
    })
  }
  // every region holds the very same shared model
  const first = output.results[0]
  for (const result of output.results) expect(Array.from(result.shared)).toEqual(Array.from(first?.shared ?? []))
}

describe('the federated endemic-epidemic fit (one peer per region, exact Newton by masked sums) equals R\'s hhh4', () => {
  it('measlesDE, one endemic intercept: coefficients and psi to 1e-6, standard errors to 1e-4', async () => {
    const { output, names, reference } = await federated('measlesDE', 'shared')
    expectR(output, names, reference)
    for (const result of output.results) expect(result.local).toBeNull()
  })

  it('measlesDE, each state its own endemic intercept: R\'s fit, and a state\'s own intercept is in no message and no log record', async () => {
    const sent: ConsensusMessage[] = []
    const { output, names, reference } = await federated('measlesDE', 'unitSpecific', (_, message) => { sent.push(message) })
    expectR(output, names, reference)
    expect(sent.length).toBeGreaterThan(1000)
    const kinds = new Set(sent.map((message) => message.kind.replace(/\.[0-9]+.*$/, '')))
    expect(kinds.has('ee-counts') && kinds.has('ee-stats') && kinds.has('ee-newton')).toBe(true)
    const values = Float64Array.from(sent.flatMap((message) => Array.from(message.values)))
    const data = Buffer.concat(sent.map((message) => message.data))
    const logText = output.log.map((record) => JSON.stringify(record.fields)).join('\n')
    expect(data.length).toBeGreaterThan(10_000)
    output.results.forEach((result, index) => {
      const name = names[index] as string
      const own = result.local
      if (own === null) throw new Error(`${name} has no intercept`)
      if (bounded(reference, name)) {
        expect(relative(own.estimate, reference.full.coefficients[`end.1.${name}`] as number), name).toBeLessThan(1e-6)
        expect(relative(own.standardError, reference.full.standardErrors[`end.1.${name}`] as number), name).toBeLessThan(1e-4)
      } else {
        expect(own.estimate).toBeLessThan(-15)
      }
      // neither the estimate nor its standard error travels: not as a float in any message's values, not
      // as its eight bytes in any message's data, not in any log record of any peer
      for (const secret of [own.estimate, own.standardError]) {
        const bytes = Buffer.from(new Float64Array([secret]).buffer)
        expect(values.some((value) => Math.abs(value - secret) <= 1e-9 * Math.abs(secret)), name).toBe(false)
        expect(data.includes(bytes), name).toBe(false)
        expect(logText.includes(String(secret).slice(0, 12)), name).toBe(false)
      }
    })
    expect(output.log.length).toBeGreaterThan(0)
  })

  it('fluBYBW (140 districts), one endemic intercept: R\'s fit over masked sums on a spanning tree', async () => {
    const { output, names, reference } = await federated('fluBYBW', 'shared')
    expectR(output, names, reference)
    expect(output.results[0]?.iterations).toBeLessThan(15)
  })

  it('measlesDE, the last 52 weeks one week ahead from the federated fit on the weeks before: hhh4\'s own scores, better than both baselines', async () => {
    const { panel, graph } = await loadMeaslesDE()
    const output = simulateEndemicEpidemicForecast({ panel, graph, spec: createEndemicEpidemicSpec(), holdout: 52, risk: createRiskParams(), seed: 3, openRegions: ['Berlin'] })
    const skill = output.skill
    if (skill === null || skill.seasonalNaive === null) throw new Error('expected the skill and a seasonal-naive baseline')
    expect(skill.fit.relativeError).toBeLessThan(1e-6)
    expect(skill.model.count).toBe(16 * 52)
    const reference = hhh4Reference('measlesDE', 'shared').heldOut
    for (const key of ['logScore', 'rps', 'dss', 'mae', 'coverage'] as const) expect(Math.abs(skill.model[key] - reference[key]), key).toBeLessThan(1e-6)
    expect(skill.model.coverage).toBeGreaterThan(0.85)
    expect(skill.model.coverage).toBeLessThan(0.95)
    expect(skill.model.logScore).toBeGreaterThan(Math.max(skill.lastValue.logScore, skill.seasonalNaive.logScore))
    expect(skill.model.mae).toBeLessThan(Math.min(skill.lastValue.mae, skill.seasonalNaive.mae))
    for (const region of output.regions) {
      expect(region.h).toBeGreaterThanOrEqual(0)
      expect(region.h).toBeLessThanOrEqual(1)
      expect(region.forecast[0]?.lower).toBeLessThanOrEqual(region.forecast[0]?.upper as number)
    }
    expect(Math.abs(output.jointRisk.sum - output.jointRisk.plainSum)).toBeLessThan(1e-9)
  })
})
