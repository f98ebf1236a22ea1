import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { decodeVector, encodeVector, toBytes } from '../../src/consensus/protocols/fixed-point.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { createSecureSum, secureSumProtocol } from '../../src/consensus/protocols/secure-sum.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { diameter, type Graph } from '../../src/consensus/graph.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'

function secureSum (graph: Graph, values: number[][], seed: number, linkLoss = 0) {
  const rng = createRng(seed)
  const states = values.map((value, self) => createSecureSum({ graph, self, value, job: 'sum', kind: 'total', rng: forkRng(rng, self) }))
  const network = new MemoryNetwork({ graph, rng: forkRng(rng, 'network'), linkLoss })
  const sent: ConsensusMessage[] = []
  const send = network.send.bind(network)
  network.send = (from, message) => { sent.push(message); send(from, message) }
  const run = runSynchronous({ protocol: secureSumProtocol, states, network, maxRounds: 500 })
  return { run, sent }
}

function containsBytes (haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let start = 0; start + needle.length <= haystack.length; start++) {
    for (let index = 0; index < needle.length; index++) if (haystack[start + index] !== needle[index]) continue outer
    return true
  }
  return false
}

describe('secure sum', () => {
  it('fixed point round-trips and is exact under masking', () => {
    for (const value of [0, 1, -1, 3.25, -1234567.890123, 1e12, -5e-9]) {
      expect(decodeVector(encodeVector([value]))[0]).toBeCloseTo(value, 12)
    }
  })

  it('every peer gets the exact total, in about diameter + 3 rounds', () => {
    const graph = buildTopology('ring', 16, createRng(1))
    const rng = createRng(5)
    const values = graph.names.map(() => [rng() * 1000 - 500, rng(), Math.floor(rng() * 100)])
    const { run } = secureSum(graph, values, 7)
    const totals = [0, 1, 2].map((index) => values.reduce((sum, value) => sum + (value[index] as number), 0))
    for (const state of run.states) {
      const result = secureSumProtocol.result(state)
      totals.forEach((total, index) => expect(Math.abs((result[index] as number) - total)).toBeLessThan(1e-9 * Math.max(1, Math.abs(total))))
    }
    expect(run.ticks).toBeLessThanOrEqual(diameter(graph) + 4)
  })

  it('no message carries a peer value, and what a neighbour sees does not depend on it', () => {
    const graph = buildTopology('ring', 6, createRng(1))
    const values = graph.names.map((_, index) => [100 + index, 7 * index])
    const { sent } = secureSum(graph, values, 3)
    for (const value of values) {
      const plain = toBytes(encodeVector(value))
      const floats = new Uint8Array(Float64Array.from(value).buffer)
      for (const message of sent) {
        expect(containsBytes(message.data, plain)).toBe(false)
        expect(containsBytes(message.data, floats)).toBe(false)
        expect(message.values).toHaveLength(0)
      }
    }
    // Peer 0's contribution for two different values, everything else (all masks) equal: it differs only
    // by the difference of the values, and with a mask from another neighbour that a single neighbour
    // does not hold, each contribution is uniform on the ring.
    const shifted = values.map((value, index) => index === 0 ? [value[0] as number + 1, value[1] as number] : value)
    const first = secureSum(graph, values, 3).sent.filter((message) => message.kind === 'total' && message.from === 'peer-0' && message.round === 1)
    const second = secureSum(graph, shifted, 3).sent.filter((message) => message.kind === 'total' && message.from === 'peer-0' && message.round === 1)
    expect(first.length).toBeGreaterThan(0)
    expect(first[0]?.data).not.toEqual(second[0]?.data)
  })

  it('gives the exact total on random graphs with lost links', () => {
    fc.assert(fc.property(fc.integer({ min: 2, max: 12 }), fc.integer({ min: 1, max: 10_000 }), (peers, seed) => {
      const graph = buildTopology('er:0.4', peers, createRng(seed))
      const rng = createRng(seed + 7)
      const values = graph.names.map(() => [rng() * 20 - 10])
      const total = values.reduce((sum, [value]) => sum + (value as number), 0)
      const { run } = secureSum(graph, values, seed, 0.3)
      return run.states.every((state) => state.done && Math.abs((secureSumProtocol.result(state)[0] as number) - total) < 1e-9 * Math.max(1, Math.abs(total)))
    }), { numRuns: 30, seed: 20261123 })
  })
})

describe('secure sum over a spanning tree', () => {
  it('gives every peer the exact total, with and without lost links, in 1 + 2 x depth rounds without loss', async () => {
    const { createTreeSum, spanningTree, treeSumProtocol } = await import('../../src/consensus/protocols/tree-sum.ts')
    for (const [linkLoss, seed] of [[0, 1], [0.3, 2], [0.3, 3]] as const) {
      const graph = buildTopology('regular:4', 40, createRng(seed))
      const rng = createRng(seed)
      const values = graph.names.map(() => [rng() * 100 - 50, rng()])
      const tree = spanningTree(graph)
      const states = values.map((value, self) => createTreeSum({ graph, self, value, job: 'sum', kind: 'total', rng: forkRng(rng, self) }, tree))
      const run = runSynchronous({ protocol: treeSumProtocol, states, network: new MemoryNetwork({ graph, rng: forkRng(rng, 'net'), linkLoss }), maxRounds: 1000 })
      const totals = [0, 1].map((index) => values.reduce((sum, value) => sum + (value[index] as number), 0))
      for (const state of run.states) {
        const result = treeSumProtocol.result(state)
        totals.forEach((total, index) => expect(Math.abs((result[index] as number) - total)).toBeLessThan(1e-9 * Math.max(1, Math.abs(total))))
      }
      if (linkLoss === 0) expect(run.ticks).toBeLessThanOrEqual(1 + 2 * tree.depth + 1)
    }
  })
})
