import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/fit-job.ts'
import { simulateFit } from '../../src/consensus/fit-simulation.ts'
import { partitionByValue, splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { selectRows } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'

const INFERT = { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] }

describe('a federated fit equals the pooled fit', () => {
  it.each(['admm', 'newton'] as const)('infert over 16 peers on a ring (%s): every peer matches R glm to 1e-6', async (algorithm) => {
    const { block, terms } = await loadModel('infert.csv', INFERT)
    const parts = splitRows(block.rows, 16, 'even', createRng(1))
    const graph = buildTopology('ring', 16, createRng(1))
    const simulation = simulateFit({
      family: 'binomial', terms, interceptColumn: 0, graph, seed: 1,
      blocks: parts.map((rows) => selectRows(block, rows)),
      params: createFitJobParams({ algorithm, tolerance: algorithm === 'admm' ? 1e-10 : 1e-10 })
    })
    expect(simulation.results).toHaveLength(16)
    for (const result of simulation.results) {
      expect(result.converged).toBe(true)
      expect(result.terms).toEqual(R_INFERT.terms)
      expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result.standardErrors, R_INFERT.standardError)).toBeLessThan(1e-6)
      expect(Math.abs(result.logLikelihood - R_INFERT.logLikelihood)).toBeLessThan(1e-6)
      expect(result.rows).toBe(248)
      expect(result.peers).toBe(16)
    }
    if (algorithm === 'newton') expect(simulation.rounds).toBeLessThanOrEqual(100)
  })

  it('infert with one peer per education level', async () => {
    const { block, terms, rows } = await loadModel('infert.csv', INFERT)
    const { names, parts } = partitionByValue(rows.map((row) => String(row.education)))
    expect(names).toHaveLength(3)
    const simulation = simulateFit({
      family: 'binomial', terms, interceptColumn: 0, seed: 2,
      graph: buildTopology('complete', 3, createRng(1), names),
      blocks: parts.map((indices) => selectRows(block, indices)),
      params: createFitJobParams({ tolerance: 1e-10 })
    })
    for (const result of simulation.results) {
      expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result.standardErrors, R_INFERT.standardError)).toBeLessThan(1e-6)
    }
  })

  it('property: ADMM and Newton agree with the pooled fit on random connected graphs and random partitions', async () => {
    const { block, terms } = await loadModel('infert.csv', INFERT)
    const pooled = fitModel(block, terms, { family: 'binomial', lambda: 0.5, standardize: true })
    await fc.assert(fc.asyncProperty(
      fc.integer({ min: 2, max: 10 }),
      fc.constantFrom('er:0.5', 'ring', 'star', 'smallworld:2,0.3', 'line'),
      fc.constantFrom('even', 'skewed') as fc.Arbitrary<'even' | 'skewed'>,
      fc.constantFrom('admm', 'newton') as fc.Arbitrary<'admm' | 'newton'>,
      fc.integer({ min: 1, max: 100_000 }),
      async (peers, topology, split, algorithm, seed) => {
        const parts = splitRows(block.rows, peers, split, createRng(seed), 4)
        const graph = buildTopology(topology, peers, createRng(seed + 1))
        const simulation = simulateFit({
          family: 'binomial', terms, interceptColumn: 0, graph, seed,
          blocks: parts.map((rows) => selectRows(block, rows)),
          params: createFitJobParams({ algorithm, lambda: 0.5, tolerance: 1e-10, maxRounds: 4000 })
        })
        return simulation.results.every((result) =>
          result.converged &&
          relativeError(result.coefficients, pooled.coefficients.estimate) < 1e-6 &&
          relativeError(result.standardErrors, pooled.coefficients.standardError) < 1e-6)
      }
    ), { numRuns: 12, seed: 20261123 })
  })
})
