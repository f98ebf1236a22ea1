import { describe, expect, it } from 'vitest'
import { createFitJobParams, REFIT_NEWTON_STEPS, type FitWarmStart } from '../../src/consensus/jobs/fit-job.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { INTERCEPT, selectRows, type DataBlock } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { loadModel, relativeError } from '../helpers/data.ts'

/**
 * A re-fit warm-started from the previous shared model and each peer's own ADMM duals (FitWarmStart):
 * it ends at the pooled fit of the new data, as a cold fit does, and sooner.
 */
const PEERS = 8

async function federation (): Promise<{ terms: string[], blocks: (late: ReadonlySet<number>) => DataBlock[], rows: number, all: DataBlock }> {
  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
  const parts = splitRows(block.rows, PEERS, 'even', createRng(5))
  return { terms, rows: block.rows, all: block, blocks: (late) => parts.map((rows) => selectRows(block, rows.filter((row) => !late.has(row)))) }
}

describe('a warm-started re-fit (consensus ADMM, simulated ring)', () => {
  it('on the same data starts at the solution: the same model in a fraction of the rounds', async () => {
    const { terms, blocks, all } = await federation()
    const graph = buildTopology('ring', PEERS, createRng(1))
    const params = createFitJobParams({ algorithm: 'admm', tolerance: 1e-10 })
    const pooled = fitModel(all, terms, { family: 'binomial', standardize: true, tolerance: 1e-13 })
    const run = (warmStarts?: FitWarmStart[]): ReturnType<typeof simulateFit> => simulateFit({ family: 'binomial', terms, interceptColumn: terms.indexOf(INTERCEPT), blocks: blocks(new Set()), graph, params, seed: 2, ...(warmStarts === undefined ? {} : { warmStarts }) })
    const cold = run()
    for (const result of cold.results) expect(result.duals.map((entry) => entry.neighbour).sort()).toHaveLength(2)
    const warm = run(cold.results.map((result) => ({ coefficients: result.coefficients, duals: result.duals })))
    for (const result of warm.results) expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
    expect(warm.rounds).toBeLessThan(cold.rounds / 3)
    // without the duals the tilt alone puts every peer's residual right: fast too, and the same model
    const primalOnly = run(cold.results.map((result) => ({ coefficients: result.coefficients, duals: [] })))
    expect(primalOnly.rounds).toBeLessThan(cold.rounds / 3)
    for (const result of primalOnly.results) expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
  })

  it('after 5% more rows reaches the pooled fit of all rows in at most half the rounds of a cold fit', async () => {
    const { terms, blocks, rows, all } = await federation()
    const graph = buildTopology('ring', PEERS, createRng(1))
    const params = createFitJobParams({ algorithm: 'admm', tolerance: 1e-10 })
    const pooled = fitModel(all, terms, { family: 'binomial', standardize: true, tolerance: 1e-13 })
    const reference = Float64Array.from(pooled.coefficients.estimate)
    const late = new Set(Array.from({ length: Math.round(0.05 * rows) }, (_, index) => index * 20 + 3))
    const base = { family: 'binomial' as const, terms, interceptColumn: terms.indexOf(INTERCEPT), graph, params, seed: 2 }
    const first = simulateFit({ ...base, blocks: blocks(late) })
    const cold = simulateFit({ ...base, blocks: blocks(new Set()), reference })
    const warm = simulateFit({ ...base, blocks: blocks(new Set()), reference, warmStarts: first.results.map((result) => ({ coefficients: result.coefficients, duals: result.duals })) })
    for (const result of warm.results) expect(relativeError(result.coefficients, reference)).toBeLessThan(1e-8)
    const roundsTo = (errors: number[]): number => errors.findIndex((error, round) => errors.slice(round).every((later) => later < 1e-6))
    expect(roundsTo(warm.errorByRound)).toBeGreaterThan(0)
    // exact Newton steps from the previous model put ADMM at its fixed point for the new rows: it only
    // confirms (its stop counter climbs to the diameter and the margin), and the whole re-fit takes at
    // most half the rounds of a cold fit, to 1e-6 as to the stop
    expect(roundsTo(warm.errorByRound)).toBeLessThanOrEqual(roundsTo(cold.errorByRound) / 2)
    expect(warm.rounds).toBeLessThanOrEqual(cold.rounds / 2)
    expect(warm.results[0]?.phaseRounds['refit-newton']).toBeLessThanOrEqual(REFIT_NEWTON_STEPS * (warm.diameter + 3))
    expect(warm.results[0]?.phaseRounds.admm).toBeLessThanOrEqual(warm.diameter + 2 + 3)
  })

  it('refuses a warm start of another size', async () => {
    const { terms, blocks } = await federation()
    const graph = buildTopology('ring', PEERS, createRng(1))
    expect(() => simulateFit({ family: 'binomial', terms, interceptColumn: 0, blocks: blocks(new Set()), graph, params: createFitJobParams({ algorithm: 'newton' }), seed: 1, warmStarts: blocks(new Set()).map(() => ({ coefficients: [0, 1], duals: [] })) })).toThrow(/warmStart/)
  })
})
