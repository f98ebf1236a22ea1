import { describe, expect, it } from 'vitest'
import type { Graph } from '../../src/consensus/graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from '../../src/consensus/sim/memory-network.ts'
import { createPushSum, pushSumEstimate, pushSumProtocol, type PushSumState } from '../../src/consensus/protocols/push-sum.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'

/** Push-sum over the out-links `outNeighbours` (the network only carries those). */
function pushSum (graph: Graph, outNeighbours: number[][] | undefined, values: number[][], rounds: number, network: Omit<MemoryNetworkOptions, 'graph' | 'rng'> = {}, seed = 1) {
  const states = values.map((value, self) => createPushSum({ graph, self, value, job: 'ps', rounds, outNeighbours }))
  const carrier: Graph = outNeighbours === undefined ? graph : { names: graph.names, neighbours: outNeighbours }
  const net = new MemoryNetwork({ ...network, graph: carrier, rng: createRng(seed) })
  const run = runSynchronous({ protocol: pushSumProtocol, states, network: net, maxRounds: 100_000, deadlineTicks: 1 })
  return { ...run, network: net }
}

const means = (values: number[][]): number[] => values[0]!.map((_, column) => values.reduce((sum, row) => sum + row[column]!, 0) / values.length)

function worstRelativeError (states: readonly PushSumState[], mean: number[]): number {
  let worst = 0
  for (const state of states) {
    const estimate = pushSumEstimate(state)
    mean.forEach((target, column) => { worst = Math.max(worst, Math.abs(estimate[column]! - target) / Math.abs(target)) })
  }
  return worst
}

const directedRing = (peers: number): number[][] => Array.from({ length: peers }, (_, node) => [(node + 1) % peers])

describe('push-sum', () => {
  it('converges to the true average over a one-way ring', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const rng = createRng(2)
    const values = graph.names.map(() => [rng() * 100, 1 + rng()])
    const run = pushSum(graph, directedRing(10), values, 500)
    expect(worstRelativeError(run.states, means(values))).toBeLessThan(1e-10)
  })

  it('converges to the true average over a one-way ring with 30% of messages lost', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const rng = createRng(3)
    const values = graph.names.map(() => [rng() * 100])
    const run = pushSum(graph, directedRing(10), values, 1500, { messageLoss: 0.3 })
    expect(run.network.lost / run.network.messages).toBeGreaterThan(0.25)
    expect(worstRelativeError(run.states, means(values))).toBeLessThan(1e-8)
  })

  it('conserves mass exactly: what the peers hold plus what is in flight is what they started with', () => {
    const graph = buildTopology('er:0.3', 12, createRng(4))
    const rng = createRng(5)
    const values = graph.names.map(() => [rng() * 10 - 5])
    const run = pushSum(graph, undefined, values, 40, { messageLoss: 0.4, delay: { probability: 0.3, maxRounds: 3 } })
    let held = 0
    let weight = 0
    for (const state of run.states) {
      held += state.mass[0]!
      weight += state.mass[1]!
    }
    // mass pushed on a link and not yet absorbed at its end: the sender's running total minus the last
    // total the receiver saw
    for (const state of run.states) {
      state.out.forEach((target, link) => {
        const seen = run.states[target]!.seen.get(graph.names[state.self]!) ?? new Float64Array(2)
        held += state.sent[link]![0]! - seen[0]!
        weight += state.sent[link]![1]! - seen[1]!
      })
    }
    expect(held).toBeCloseTo(values.reduce((sum, [value]) => sum + value!, 0), 10)
    expect(weight).toBeCloseTo(12, 10)
  })

  it('ignores a running total older than one already absorbed (reordered delivery)', () => {
    const graph = buildTopology('complete', 6, createRng(1))
    const values = graph.names.map((_, index) => [index * 10])
    const run = pushSum(graph, undefined, values, 400, { delay: { probability: 0.5, maxRounds: 4 } })
    expect(worstRelativeError(run.states, means(values))).toBeLessThan(1e-10)
  })

  it('runs over undirected links with whole-round link failures', () => {
    const graph = buildTopology('grid', 16, createRng(1))
    const values = graph.names.map((_, index) => [index + 1, 100])
    const run = pushSum(graph, undefined, values, 1200, { linkLoss: 0.3 })
    expect(worstRelativeError(run.states, means(values))).toBeLessThan(1e-8)
  })

  it('validates its input', () => {
    const graph = buildTopology('ring', 4, createRng(1))
    expect(() => createPushSum({ graph, self: 0, value: [1], job: 'ps', rounds: -1 })).toThrowError(expect.objectContaining({ code: 'CONSENSUS_PARAMS_INVALID', field: 'rounds' }))
    expect(() => createPushSum({ graph, self: 0, value: [1], job: 'ps', rounds: 5, outNeighbours: [[0], [2], [3], [0]] })).toThrow(RangeError)
    expect(() => createPushSum({ graph, self: 0, value: [Number.POSITIVE_INFINITY], job: 'ps', rounds: 5 })).toThrow(RangeError)
  })
})
