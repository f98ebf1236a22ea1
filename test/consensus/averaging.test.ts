import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { averagingProtocol, createAveraging, roundsForAccuracy, type AveragingState } from '../../src/consensus/protocols/averaging.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { createPushSum, pushSumEstimate, pushSumProtocol } from '../../src/consensus/protocols/push-sum.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import type { Graph } from '../../src/consensus/graph.ts'

function average (graph: Graph, values: number[][], rounds: number, onRound?: (round: number, states: readonly AveragingState[]) => void) {
  const states = values.map((value, self) => createAveraging({ graph, self, value, job: 'avg', rounds }))
  const network = new MemoryNetwork({ graph, rng: createRng(1) })
  return runSynchronous({ protocol: averagingProtocol, states, network, maxRounds: rounds + 5, onRound, deadlineTicks: 1 })
}

describe('Metropolis average consensus', () => {
  it('reaches 1e-6 on a 16-peer ring within 10% of ln(1e-6) / ln(rho) rounds', () => {
    const graph = buildTopology('ring', 16, createRng(1))
    // A start with a large share in the slowest mode (a smooth wave around the ring, as a regional
    // gradient of incidence would be, plus noise): a start with little of it converges faster than
    // the bound, which is about the slowest mode.
    const rng = createRng(2)
    const values = graph.names.map((_, index) => [50 + 40 * Math.cos((2 * Math.PI * index) / 16) + 5 * rng()])
    const mean = values.reduce((sum, [value]) => sum + (value as number), 0) / 16
    // the error as the distance from consensus, ||x - mean 1|| / ||x0 - mean 1||, which rho^k bounds
    const distance = (xs: number[]): number => Math.hypot(...xs.map((value) => value - mean))
    const initialError = distance(values.map(([value]) => value as number))
    const bound = roundsForAccuracy(graph, 1e-6)
    let reached: number | null = null
    average(graph, values, 3 * bound, (round, states) => {
      const error = distance(states.map((state) => state.x[0] as number)) / initialError
      if (reached === null && error < 1e-6) reached = round
    })
    expect(reached).not.toBeNull()
    expect(Math.abs((reached as unknown as number) - bound) / bound).toBeLessThan(0.1)
  })

  it('gives the true mean on random connected graphs', () => {
    fc.assert(fc.property(fc.integer({ min: 3, max: 12 }), fc.integer({ min: 1, max: 1000 }), (peers, seed) => {
      const graph = buildTopology('er:0.5', peers, createRng(seed))
      const rng = createRng(seed + 1)
      const values = graph.names.map(() => [rng() * 10 - 5, rng()])
      const run = average(graph, values, 20 * roundsForAccuracy(graph, 1e-9))
      return [0, 1].every((index) => {
        const mean = values.reduce((sum, value) => sum + (value[index] as number), 0) / peers
        return run.states.every((state) => Math.abs((state.x[index] as number) - mean) < 1e-7)
      })
    }), { numRuns: 25, seed: 20261123 })
  })
})

describe('push-sum', () => {
  it('converges to the true average over one-way links with 30% of messages lost', () => {
    const peers = 12
    const graph = buildTopology('ring', peers, createRng(1))
    // a directed ring plus a few chords: strongly connected, no link used both ways
    const outNeighbours = graph.names.map((_, node) => node % 3 === 0 ? [(node + 1) % peers, (node + 5) % peers] : [(node + 1) % peers])
    const rng = createRng(6)
    const values = graph.names.map(() => [rng() * 50])
    const mean = values.reduce((sum, [value]) => sum + (value as number), 0) / peers
    const states = values.map((value, self) => createPushSum({ graph, self, value, job: 'ps', rounds: 600, outNeighbours }))
    const network = new MemoryNetwork({ graph: { names: graph.names, neighbours: outNeighbours }, rng: createRng(3), messageLoss: 0.3 })
    const run = runSynchronous({ protocol: pushSumProtocol, states, network, maxRounds: 700, deadlineTicks: 1 })
    for (const state of run.states) expect(Math.abs((pushSumEstimate(state)[0] as number) - mean)).toBeLessThan(1e-8 * mean)
  })
})
