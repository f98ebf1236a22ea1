import { describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { selectRows } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { loadModel, relativeError } from '../helpers/data.ts'

/**
 * Exact Newton's rounds against the graph's diameter, as scripts/rounds-table.ts counts them (infert,
 * standardised, lambda = 1, an even split, seed 1): to 1e-6 of the pooled fit takes the statistics' sum
 * (diameter + 1 ticks: the mask seeds' round, then the flood) and, with third-order steps (newtonOrder
 * 'auto' picks them for infert's 5 columns), two Newton sums of the diameter each, so at most
 * 3 x diameter + 1 ticks on every topology of the table; with Newton steps (newtonOrder 2), three sums,
 * 4 x diameter + 1.
 */
describe('exact Newton: rounds bounded by the diameter', () => {
  it('reaches 1e-6 of the pooled fit within 3 x diameter + 1 rounds on rings, grids, random graphs and stars', async () => {
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const pooled = fitModel(block, terms, { family: 'binomial', lambda: 1, standardize: true, tolerance: 1e-13 })
    const measured: string[] = []
    for (const topology of ['ring', 'grid', 'er:0.3', 'star']) {
      for (const peers of [4, 16, 32]) {
        const rng = createRng(1)
        const parts = splitRows(block.rows, peers, 'even', forkRng(rng, 'split'))
        const graph = buildTopology(topology, peers, forkRng(rng, 'topology'))
        const simulation = simulateFit({
          family: 'binomial', terms, interceptColumn: 0, graph, seed: 1,
          blocks: parts.map((rows) => selectRows(block, rows)),
          params: createFitJobParams({ algorithm: 'newton', lambda: 1, tolerance: 1e-10, maxRounds: 6000 }),
          reference: Float64Array.from(pooled.coefficients.estimate)
        })
        const rounds = simulation.errorByRound.findIndex((error) => error < 1e-6) + 1
        const d = diameter(graph)
        measured.push(`${topology} ${peers}: ${rounds} rounds, diameter ${d}`)
        expect(rounds, `${topology} with ${peers} peers`).toBeGreaterThan(0)
        expect(rounds, `${topology} with ${peers} peers`).toBeLessThanOrEqual(3 * d + 1)
        // every peer ends with the same exact model, the pooled fit's
        for (const result of simulation.results) {
          expect(result.converged).toBe(true)
          expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
        }
      }
    }
    expect(measured).toContain('ring 16: 25 rounds, diameter 8')
  })

  it('takes one sum more with Newton steps (newtonOrder 2): 4 x diameter + 1 rounds on the 16-ring, the same model; Poisson with an offset too', async () => {
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const pooled = fitModel(block, terms, { family: 'binomial', lambda: 1, standardize: true, tolerance: 1e-13 })
    const rng = createRng(1)
    const parts = splitRows(block.rows, 16, 'even', forkRng(rng, 'split'))
    const graph = buildTopology('ring', 16, forkRng(rng, 'topology'))
    const rounds: number[] = []
    for (const newtonOrder of [2, 3] as const) {
      const simulation = simulateFit({
        family: 'binomial', terms, interceptColumn: 0, graph, seed: 1,
        blocks: parts.map((rows) => selectRows(block, rows)),
        params: createFitJobParams({ algorithm: 'newton', lambda: 1, tolerance: 1e-10, maxRounds: 6000, newtonOrder }),
        reference: Float64Array.from(pooled.coefficients.estimate)
      })
      rounds.push(simulation.errorByRound.findIndex((error) => error < 1e-6) + 1)
      for (const result of simulation.results) expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
    }
    expect(rounds).toEqual([4 * 8 + 1, 3 * 8 + 1])
    // Poisson with an exposure offset (8-ring, diameter 4): third-order steps end every peer at the pooled
    // fit in fewer rounds (measured: 13 = 3 d + 1, Newton steps 21)
    const rows = 400
    const p = 4
    const draw = createRng(5)
    const x = new Float64Array(rows * p)
    const y = new Float64Array(rows)
    const offset = new Float64Array(rows)
    for (let row = 0; row < rows; row++) {
      x[row * p] = 1
      x[row * p + 1] = 40 + 10 * draw()
      x[row * p + 2] = draw() < 0.3 ? 1 : 0
      x[row * p + 3] = draw() - 0.5
      offset[row] = Math.log(50 + 100 * draw())
      const mean = Math.exp(-7 + 0.1 * (x[row * p + 1] as number) + 1.2 * (x[row * p + 2] as number) + 1.5 * (x[row * p + 3] as number) + (offset[row] as number))
      y[row] = Math.round(mean * (0.5 + draw()))
    }
    const counts = { x, y, offset, rows, cols: p }
    const countTerms = ['(Intercept)', 'age', 'exposed', 'noise']
    const poissonPooled = fitModel(counts, countTerms, { family: 'poisson', lambda: 0.5, standardize: true, tolerance: 1e-13 })
    const poissonParts = splitRows(rows, 8, 'even', forkRng(createRng(2), 'split'))
    const ring = buildTopology('ring', 8, forkRng(createRng(2), 'topology'))
    const poissonRounds: number[] = []
    for (const newtonOrder of [2, 3] as const) {
      const simulation = simulateFit({
        family: 'poisson', terms: countTerms, interceptColumn: 0, graph: ring, seed: 2,
        blocks: poissonParts.map((part) => selectRows(counts, part)),
        params: createFitJobParams({ algorithm: 'newton', lambda: 0.5, tolerance: 1e-10, maxRounds: 6000, newtonOrder }),
        reference: Float64Array.from(poissonPooled.coefficients.estimate)
      })
      poissonRounds.push(simulation.errorByRound.findIndex((error) => error < 1e-6) + 1)
      for (const result of simulation.results) expect(relativeError(result.coefficients, poissonPooled.coefficients.estimate)).toBeLessThan(1e-8)
    }
    expect(poissonRounds[1] as number).toBeGreaterThan(0)
    expect(poissonRounds[1] as number).toBeLessThan(poissonRounds[0] as number)
    expect(() => createFitJobParams({ newtonOrder: 4 as unknown as 3 })).toThrow(/newtonOrder/)
  })
})

describe('a later sum entered while a neighbour is still in the job\'s previous phase', () => {
  it('waits for it without counting rounds towards SUM_INCOMPLETE: ADMM fits on a star with lost links complete and equal the pooled fit', async () => {
    // The leaves leave consensus ADMM before the hub and send their contributions to the next sum at
    // once (its masks come from the job's seeds); a leaf that counted the rounds it waited for the hub
    // gave up after 3 x diameter + 12 of them
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const pooled = fitModel(block, terms, { family: 'binomial', lambda: 1, standardize: true, tolerance: 1e-13 })
    for (const [peers, network] of [[8, { linkLoss: 0.3 }], [20, { messageLoss: 0.2 }]] as const) {
      for (const seed of [1, 2]) {
        const rng = createRng(seed)
        const parts = splitRows(block.rows, peers, 'even', forkRng(rng, 'split'))
        const graph = buildTopology('star', peers, forkRng(rng, 'topology'))
        const simulation = simulateFit({
          family: 'binomial', terms, interceptColumn: 0, graph, seed, network,
          blocks: parts.map((rows) => selectRows(block, rows)),
          params: createFitJobParams({ algorithm: 'admm', lambda: 1, tolerance: 1e-10 })
        })
        expect(simulation.results).toHaveLength(peers)
        for (const result of simulation.results) expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
      }
    }
  })
})
