import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  averagingProtocol, createAveraging, createAveragingParams, createSumViaAverage, roundsForAccuracy, sumViaAverage, type AveragingState
} from '../../src/consensus/protocols/averaging.ts'
import { diameter, graphFromEdges, spectralGap, type Graph } from '../../src/consensus/graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from '../../src/consensus/sim/memory-network.ts'
import { createPushSum, pushSumEstimate, pushSumProtocol } from '../../src/consensus/protocols/push-sum.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'

function averageOver (graph: Graph, values: number[][], options: {
  rounds?: number
  tolerance?: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  deadlineTicks?: number
  onRound?: (tick: number, states: readonly AveragingState[]) => void
}) {
  const states = values.map((value, self) => createAveraging({ graph, self, value, job: 'avg', rounds: options.rounds, tolerance: options.tolerance }))
  const network = new MemoryNetwork({ ...(options.network ?? {}), graph, rng: createRng(17) })
  return runSynchronous({ protocol: averagingProtocol, states, network, maxRounds: 100_000, onRound: options.onRound, deadlineTicks: options.deadlineTicks ?? 1 })
}

const means = (values: number[][]): number[] => values[0]!.map((_, column) => values.reduce((sum, row) => sum + row[column]!, 0) / values.length)

function maxRelativeError (states: readonly AveragingState[], mean: number[]): number {
  let worst = 0
  for (const state of states) mean.forEach((target, index) => { worst = Math.max(worst, Math.abs(state.x[index]! - target) / Math.abs(target)) })
  return worst
}

describe('Metropolis averaging: rounds against the spectral bound', () => {
  it('a 16-peer ring reaches 1e-6 max relative error within 10% of ln(1e-6) / ln(rho) rounds', () => {
    const graph = buildTopology('ring', 16, createRng(1))
    const rng = createRng(4)
    // a regional gradient around the ring (the slowest mode, which the bound is about) plus noise
    const values = graph.names.map((_, index) => [100 + 100 * Math.cos(2 * Math.PI * index / 16 + 0.3) + 10 * rng()])
    const mean = means(values)
    const bound = Math.log(1e-6) / Math.log(spectralGap(graph).secondLargestModulus)
    let reached = -1
    averageOver(graph, values, { rounds: 400, onRound: (tick, states) => { if (reached < 0 && maxRelativeError(states, mean) <= 1e-6) reached = tick } })
    expect(reached / bound).toBeGreaterThan(0.9)
    expect(reached / bound).toBeLessThan(1.1)
    expect(roundsForAccuracy(graph, 1e-6)).toBe(Math.ceil(bound))
  })

  it('roundsForAccuracy: one round on a complete graph, never on a disconnected one', () => {
    expect(roundsForAccuracy(buildTopology('complete', 6, createRng(1)), 1e-9)).toBe(1)
    expect(roundsForAccuracy(graphFromEdges(['a', 'b', 'c'], [['a', 'b']]), 1e-3)).toBe(Number.POSITIVE_INFINITY)
    expect(() => roundsForAccuracy(buildTopology('ring', 5, createRng(1)), 0)).toThrow(RangeError)
  })
})

describe('Metropolis averaging: stopping by tolerance', () => {
  it('every peer stops at the same round, within the tolerance, at most two epochs after it could', () => {
    const graph = buildTopology('ring', 16, createRng(1))
    const rng = createRng(5)
    const values = graph.names.map(() => [rng() * 100, 50 + rng(), -20 * rng()])
    const mean = means(values)
    const scale = values[0]!.map((_, column) => Math.max(...values.map((row) => Math.abs(row[column]!))))
    const tolerance = 1e-6
    let firstWithin = -1
    const run = averageOver(graph, values, {
      tolerance,
      onRound: (tick, states) => {
        const spread = mean.map((_, column) => Math.max(...states.map((state) => state.x[column]!)) - Math.min(...states.map((state) => state.x[column]!)))
        if (firstWithin < 0 && spread.every((value, column) => value <= tolerance * scale[column]!)) firstWithin = tick
      }
    })
    const stops = new Set(run.states.map((state) => state.convergedAt))
    expect(stops.size).toBe(1)
    const stoppedAt = run.states[0]!.convergedAt!
    expect(run.ticks).toBe(stoppedAt)
    expect(stoppedAt % diameter(graph)).toBe(0)
    expect(stoppedAt - firstWithin).toBeLessThanOrEqual(2 * diameter(graph))
    for (const state of run.states) mean.forEach((target, column) => expect(Math.abs(state.x[column]! - target)).toBeLessThanOrEqual(tolerance * scale[column]!))
    // the stop costs two more vectors per message
    const fresh = createAveraging({ graph, self: 0, value: values[0]!, job: 'avg', tolerance })
    expect(averagingProtocol.start(fresh).outbox[0]!.values).toHaveLength(9)
  })

  it('a rounds cap still applies with a tolerance; equal starts stop after one epoch', () => {
    const graph = buildTopology('ring', 8, createRng(1))
    const capped = averageOver(graph, graph.names.map((_, index) => [index]), { tolerance: 1e-12, rounds: 10 })
    expect(capped.ticks).toBe(10)
    expect(capped.states.every((state) => state.done && state.convergedAt === null)).toBe(true)
    const equal = averageOver(graph, graph.names.map(() => [3, -1]), { tolerance: 1e-9 })
    expect(equal.states.every((state) => state.convergedAt === diameter(graph))).toBe(true)
  })

  it('gives the true mean within the tolerance on random connected graphs', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 14 }), fc.integer({ min: 0, max: 100_000 }),
      fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 28, maxLength: 28 }),
      (peers, seed, pool) => {
        const graph = buildTopology('er:0.5', peers, createRng(seed))
        const values = graph.names.map((_, node) => [pool[2 * node]!, pool[2 * node + 1]!])
        const mean = means(values)
        const scale = mean.map((_, column) => Math.max(...values.map((row) => Math.abs(row[column]!))))
        const run = averageOver(graph, values, { tolerance: 1e-8 })
        const stops = new Set(run.states.map((state) => state.convergedAt))
        return stops.size === 1 && run.states.every((state) => mean.every((target, column) => Math.abs(state.x[column]! - target) <= 1e-8 * scale[column]! + 1e-300))
      }), { numRuns: 40, seed: 20261123 })
  })

  it('waits for late messages in order: delays alone do not move the mean', () => {
    const graph = buildTopology('grid', 12, createRng(1))
    const values = graph.names.map((_, index) => [index * index])
    // a deadline longer than the longest delay never passes: every round uses every neighbour's value
    const run = averageOver(graph, values, { rounds: 300, network: { delay: { probability: 0.4, maxRounds: 3 } }, deadlineTicks: 1000 })
    expect(run.states.every((state) => state.done && state.roundsWithMissing === 0)).toBe(true)
    expect(run.ticks).toBeGreaterThan(400)
    const mean = means(values)[0]!
    for (const state of run.states) expect(Math.abs(state.x[0]! - mean)).toBeLessThan(1e-9 * mean)
  })

  it('drifts from the mean under message loss, where push-sum does not', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const values = graph.names.map((_, index) => [index === 0 ? 100 : 1])
    const mean = means(values)[0]!
    const lossy = { messageLoss: 0.3 }
    const averaged = averageOver(graph, values, { rounds: 800, network: lossy, deadlineTicks: 2 })
    const pushed = runSynchronous({
      protocol: pushSumProtocol,
      states: values.map((value, self) => createPushSum({ graph, self, value, job: 'ps', rounds: 800 })),
      network: new MemoryNetwork({ graph, rng: createRng(17), ...lossy }),
      maxRounds: 10_000,
      deadlineTicks: 1
    })
    const averagingError = Math.max(...averaged.states.map((state) => Math.abs(state.x[0]! - mean) / mean))
    const pushSumError = Math.max(...pushed.states.map((state) => Math.abs(pushSumEstimate(state)[0]! - mean) / mean))
    expect(averagingError).toBeGreaterThan(1e-3)
    expect(pushSumError).toBeLessThan(1e-9)
  })
})

describe('sums and counts by averaging', () => {
  it('finds the number of peers exactly and the sums to the tolerance', () => {
    const graph = buildTopology('er:0.3', 15, createRng(2))
    const rng = createRng(3)
    const values = graph.names.map(() => [Math.floor(rng() * 1000), rng()])
    const sums = values[0]!.map((_, column) => values.reduce((sum, row) => sum + row[column]!, 0))
    const upperBound = 50
    const states = values.map((value, self) => createSumViaAverage({ graph, self, value, job: 'sum', tolerance: 1 / (4 * upperBound ** 2) / 10 }))
    const run = runSynchronous({ protocol: averagingProtocol, states, network: new MemoryNetwork({ graph, rng: createRng(1) }), maxRounds: 10_000, deadlineTicks: 1 })
    for (const result of run.results) {
      const { sum, count } = sumViaAverage(result!)
      expect(count).toBe(15)
      sums.forEach((total, column) => expect(Math.abs(sum[column]! - total) / total).toBeLessThan(1e-4))
    }
  })
})

describe('averaging parameters', () => {
  it('are validated at the edge, naming the field', () => {
    const fieldOf = (build: () => unknown): string | undefined => {
      try { build() } catch (error) { return (error as { code?: string, field?: string }).code === 'CONSENSUS_PARAMS_INVALID' ? (error as { field: string }).field : 'wrong code' }
      return undefined
    }
    expect(fieldOf(() => createAveragingParams({}))).toBe('rounds')
    expect(fieldOf(() => createAveragingParams({ rounds: -1 }))).toBe('rounds')
    expect(fieldOf(() => createAveragingParams({ rounds: 2.5 }))).toBe('rounds')
    expect(fieldOf(() => createAveragingParams({ tolerance: 0 }))).toBe('tolerance')
    expect(fieldOf(() => createAveragingParams({ tolerance: 2 }))).toBe('tolerance')
    expect(fieldOf(() => createAveragingParams({ rounds: 3, kind: '' }))).toBe('kind')
    expect(createAveragingParams({ tolerance: 1e-6 })).toEqual({ kind: 'average', rounds: null, tolerance: 1e-6 })
    expect(Object.isFrozen(createAveragingParams({ rounds: 1 }))).toBe(true)
    const graph = buildTopology('ring', 4, createRng(1))
    expect(() => createAveraging({ graph, self: 0, value: [Number.NaN], job: 'a', rounds: 3 })).toThrow(RangeError)
  })
})
