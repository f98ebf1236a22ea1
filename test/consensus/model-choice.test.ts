import { describe, expect, it } from 'vitest'
import { simulateModelChoice } from '../../src/consensus/sim/model-choice-simulation.ts'
import { createEndemicEpidemicSpec, panelRegions } from '../../src/learning/endemic-epidemic.ts'
import { candidateLabel, chooseCandidate, parseCandidates, pooledModelChoice } from '../../src/learning/model-choice.ts'
import { ForecastInputError } from '../../src/learning/forecast.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import { loadMeaslesDE } from '../helpers/forecast-data.ts'
import { createForecastJobState, forecastJobProtocol } from '../../src/consensus/jobs/forecast-job.ts'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { jointRiskGraph } from '../../src/consensus/protocols/joint-risk.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { fitEndemicEpidemic } from '../../src/learning/endemic-epidemic.ts'
import { createForecastModelSpec } from '../../src/learning/forecast.ts'
import { createRiskParams } from '../../src/learning/risk.ts'
import { parseForecastProposal } from '../../src/peer/runtime/forecast-proposal.ts'

describe('model choice by the federation: candidates scored by masked sums of one-step log scores on a validation window', () => {
  it('measlesDE, 16 states: the federation\'s totals and choice are the pooled computation\'s, and a state\'s own score travels in no message', async () => {
    const { panel, graph } = await loadMeaslesDE()
    const periods = panel.counts[0]?.length ?? 0
    // a validation window of 26 weeks just before a held-out tail of 52
    const validation = { from: periods - 52 - 26, to: periods - 52 }
    const candidates = parseCandidates('harmonics=0;harmonics=1;harmonics=1,unit-intercepts', createEndemicEpidemicSpec())
    const pooled = pooledModelChoice(candidates, panelRegions(panel, graph.neighbours, validation.to), validation)
    const sent: ConsensusMessage[] = []
    const output = simulateModelChoice({ candidates, counts: panel.counts, populations: panel.populations, graph, validation, seed: 5, observe: (_, message) => { sent.push(message) } })
    expect(output.results).toHaveLength(16)
    for (const result of output.results) {
      expect(result.candidates).toEqual(candidates.map(candidateLabel))
      expect(result.chosen).toBe(pooled.chosen)
      result.scores.forEach((score, index) => {
        expect(Math.abs(score - (pooled.scores[index]?.logScore as number)), result.candidates[index]).toBeLessThan(1e-9)
      })
      expect(result.counts).toEqual(pooled.scores.map((score) => score.count))
      expect(result.counts.every((count) => count === 16 * 26)).toBe(true)
      result.fits.forEach((fit) => { expect(fit.converged).toBe(true) })
    }
    // the scores differ (the choice is not decided by a tie) and the totals are sums of the regions' own
    const scores = output.results[0]?.scores as number[]
    expect(new Set(scores).size).toBe(3)
    expect(scores.every(Number.isFinite)).toBe(true)
    candidates.forEach((_, index) => {
      const sum = output.results.reduce((total, result) => total + (result.own[index] as number), 0)
      expect(Math.abs(sum - (scores[index] as number))).toBeLessThan(1e-9)
    })
    // every candidate had its own fit's phases, and one sum of the scores
    const kinds = new Set(sent.map((message) => message.kind.replace(/\.[0-9]+.*$/, '').replace(/\.mask$/, '')))
    for (const prefix of ['c0-', 'c1-', 'c2-']) expect(kinds.has(`${prefix}ee-newton`), prefix).toBe(true)
    expect([...kinds].some((kind) => kind.startsWith('mc-scores'))).toBe(true)
    const values = Float64Array.from(sent.flatMap((message) => Array.from(message.values)))
    for (const result of output.results) {
      for (const secret of result.own) expect(values.some((value) => Math.abs(value - secret) <= 1e-9 * Math.abs(secret))).toBe(false)
    }
  })

  it('ties go to the first listed; a score that is not finite never wins', () => {
    expect(chooseCandidate([-3, -2, -2])).toBe(1)
    expect(chooseCandidate([Number.NaN, -5])).toBe(1)
    expect(chooseCandidate([-1, Number.NEGATIVE_INFINITY])).toBe(0)
  })

  it('candidates from text: settings over the base design, errors that name the design', () => {
    const base = createEndemicEpidemicSpec({ harmonics: 2 })
    const specs = parseCandidates('harmonics=1; family=poisson ;harmonics=0,unit-intercepts', base)
    expect(specs.map(candidateLabel)).toEqual(['harmonics=1,family=negbin1', 'harmonics=2,family=poisson', 'harmonics=0,family=negbin1,unit-intercepts'])
    expect(() => parseCandidates('harmonics=1;harmonics=x', base)).toThrow(/design 2/)
    expect(() => parseCandidates('harmonics=1;;', base)).toThrow(ForecastInputError)
    expect(() => parseCandidates('lags=3', base)).toThrow(/unknown setting/)
    expect(() => parseCandidates('harmonics=9', base)).toThrow(/harmonics/)
    expect(() => parseCandidates('harmonics=1;harmonics=1', base)).toThrow(/repeats design 1/)
    expect(() => parseCandidates(Array.from({ length: 9 }, (_, index) => `harmonics=${index % 7}`).join(';'), base)).toThrow(/at most 8/)
  })

  it('the forecasting job with candidates: the same choice on the last weeks of the series, then the chosen design fitted on every week', async () => {
    const { panel, graph } = await loadMeaslesDE()
    const periods = panel.counts[0]?.length ?? 0
    const candidates = parseCandidates('harmonics=0;harmonics=1,unit-intercepts', createEndemicEpidemicSpec())
    const rng = createRng(13)
    const states = panel.regions.map((_, self) => createForecastJobState({
      job: 'forecast-mc', graph, self, diameter: diameter(graph), spec: createForecastModelSpec(), endemicEpidemic: createEndemicEpidemicSpec(), candidates, validation: 13,
      counts: panel.counts[self] as Float64Array, population: panel.populations[self] as number, start: 0,
      horizon: 1, risk: createRiskParams({ periodDays: 7 }), openRegions: [], params: createFitJobParams({ algorithm: 'newton', tolerance: 1e-10 }), rng: forkRng(rng, `peer-${self}`)
    }))
    const run = runSynchronous({ protocol: forecastJobProtocol, states, network: new MemoryNetwork({ graph: jointRiskGraph(graph), rng: forkRng(rng, 'network') }), maxRounds: 20_000 })
    const results = run.results.map((result) => { if (result === null) throw new Error('a state did not finish'); return result })
    const regions = panelRegions(panel, graph.neighbours)
    const pooled = pooledModelChoice(candidates, regions, { from: periods - 13, to: periods })
    const chosen = candidates[pooled.chosen]!
    const fit = fitEndemicEpidemic(chosen, regions)
    for (const result of results) {
      const choice = result.choice
      if (choice === null) throw new Error('expected the choice')
      expect(choice.chosen).toBe(pooled.chosen)
      expect(choice.validation).toEqual({ from: periods - 13, to: periods })
      choice.scores.forEach((score, index) => { expect(Math.abs(score - pooled.scores[index]!.logScore)).toBeLessThan(1e-9) })
      expect(result.fit.terms.length).toBe(fit.terms.length)
      result.fit.coefficients.forEach((value, index) => { expect(Math.abs(value - fit.shared[index]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(fit.shared[index]!))) })
    }
  }, 60_000)

  it('a forecasting proposal\'s candidates: endemic-epidemic designs over the proposal\'s own, a validation window that leaves periods to fit on', () => {
    const proposal = { from: '2001-01-01', periods: 100, period: 'week' }
    const plan = parseForecastProposal({ ...proposal, candidates: [{ harmonics: 0 }, { unitIntercepts: true, family: 'poisson' }], validation: 20 })
    expect(plan.candidates?.map(candidateLabel)).toEqual(['harmonics=0,family=negbin1', 'harmonics=1,family=poisson,unit-intercepts'])
    expect(plan.validation).toBe(20)
    expect(parseForecastProposal(proposal).candidates).toBeNull()
    for (const [value, message] of [
      [{ ...proposal, kind: 'loglinear', candidates: [{ harmonics: 0 }] }, 'kind endemic-epidemic'],
      [{ ...proposal, validation: 10 }, 'give candidates too'],
      [{ ...proposal, candidates: [{ harmonics: 1 }, {}] }, 'repeats candidates.0'],
      [{ ...proposal, candidates: [{ harmonics: 0 }], validation: 95 }, 'at least 8'],
      [{ ...proposal, candidates: [{ harmonics: 0, lags: 2 }] }, 'candidates.0'],
      [{ ...proposal, candidates: [] }, 'candidates'],
      [{ ...proposal, candidates: Array.from({ length: 9 }, (_, index) => ({ harmonics: index % 7 })) }, 'candidates']
    ] as const) {
      expect(() => parseForecastProposal(value), message).toThrow(message)
    }
  })
})
