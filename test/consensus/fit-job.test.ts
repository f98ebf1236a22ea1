import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
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

describe('a peer that dies for good', () => {
  it('is dropped after dropAfterRounds silent rounds, and the others end at the pooled fit of their own data', async () => {
    const { createFitJobState, fitJobProtocol } = await import('../../src/consensus/jobs/fit-job.ts')
    const { MemoryNetwork } = await import('../../src/consensus/sim/memory-network.ts')
    const { runSynchronous } = await import('../../src/consensus/sim/simulation.ts')
    const { createGlmProblem } = await import('../../src/learning/problem.ts')
    const { concatBlocks } = await import('../../src/learning/design.ts')
    const { diameter } = await import('../../src/consensus/graph.ts')
    const { block, terms } = await loadModel('infert.csv', INFERT)
    const peers = 6
    const parts = splitRows(block.rows, peers, 'even', createRng(3))
    const blocks = parts.map((rows) => selectRows(block, rows))
    const graph = buildTopology('ring', peers, createRng(1))
    const rng = createRng(11)
    const states = blocks.map((local, self) => createFitJobState({
      job: 'drop', graph, self, diameter: diameter(graph), rng,
      problem: createGlmProblem({ family: 'binomial', block: local, terms, interceptColumn: 0 }),
      params: createFitJobParams({ tolerance: 1e-10, dropAfterRounds: 10 })
    }))
    const victim = 2
    const network = new MemoryNetwork({ graph, rng: createRng(5) })
    let killedAt: number | null = null
    const run = runSynchronous({
      protocol: fitJobProtocol, states, network, maxRounds: 20_000,
      beforeTick: (tick, net) => {
        const state = states[victim]
        if (killedAt === null && state?.current?.name === 'admm2' && (state.fit.admmState?.round ?? 0) > 20) {
          net.kill(graph.names[victim] as string)
          killedAt = tick
        }
      }
    })
    expect(killedAt).not.toBeNull()
    const survivors = blocks.filter((_, index) => index !== victim)
    const pooled = fitModel(concatBlocks(survivors), terms, { family: 'binomial' })
    run.states.forEach((state, index) => {
      if (index === victim) return
      const result = fitJobProtocol.result(state)
      expect(result.dropped).toEqual([graph.names[victim]])
      expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result.standardErrors, pooled.coefficients.standardError)).toBeLessThan(1e-6)
    })
  })
})

describe('metrics computed by the federation', () => {
  it('AUC, Brier and Hosmer-Lemeshow from pooled risk histograms agree with the row-level values', async () => {
    const { block, terms } = await loadModel('infert.csv', INFERT)
    const parts = splitRows(block.rows, 8, 'even', createRng(4))
    const simulation = simulateFit({
      family: 'binomial', terms, interceptColumn: 0, seed: 4,
      graph: buildTopology('ring', 8, createRng(1)),
      blocks: parts.map((rows) => selectRows(block, rows)),
      params: createFitJobParams({ algorithm: 'newton' })
    })
    const pooled = fitModel(block, terms, { family: 'binomial' })
    for (const result of simulation.results) {
      const metrics = result.metrics
      expect(metrics).not.toBeNull()
      expect(Math.abs((metrics?.auc ?? 0) - (pooled.metrics?.auc ?? 1))).toBeLessThan(2e-3)
      expect(Math.abs((metrics?.brier ?? 0) - (pooled.metrics?.brier ?? 1))).toBeLessThan(1e-9)
      expect(metrics?.hosmerLemeshow.groups.reduce((sum, group) => sum + group.n, 0)).toBe(248)
      expect(metrics?.hosmerLemeshow.groups.length).toBeGreaterThanOrEqual(8)
      expect(Math.abs((metrics?.hosmerLemeshow.statistic ?? 0) - (pooled.metrics?.hosmerLemeshow.statistic ?? 99))).toBeLessThan(2)
    }
  })
})
