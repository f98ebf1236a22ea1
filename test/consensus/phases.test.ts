import { describe, expect, it } from 'vitest'
import { SumOutOfRangeError } from '../../src/consensus/errors.ts'
import { FLAGS_PER_SLOT, flagSlots, maskedSum, sumTotal, type SumPhase } from '../../src/consensus/jobs/phases.ts'
import type { Protocol } from '../../src/consensus/machine.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { finishedResults, runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { spanningTree, treeSumProtocol, type TreeSumState } from '../../src/consensus/protocols/tree-sum.ts'

/** Every peer's flagged masked sum of its own value (a spanning tree past 64 peers, flooding below), run to the end. */
function flaggedSums (spec: string, peers: number, value: (peer: number) => Float64Array): Float64Array[] {
  const graph = buildTopology(spec, peers, createRng(7))
  const rng = createRng(11)
  const phases: SumPhase[] = graph.names.map((_, self) => maskedSum({ job: 'flags', graph, self, rng: forkRng(rng, self) }, 'total', value(self)))
  const protocol = phases[0]?.protocol as unknown as Protocol<unknown, Float64Array>
  const run = runSynchronous({ protocol, states: phases.map((phase) => phase.state as unknown), network: new MemoryNetwork({ graph, rng: createRng(3) }), maxRounds: 500 })
  const totals = finishedResults(run, graph.names)
  for (const total of totals) expect(total.length).toBe(value(0).length + flagSlots(graph))
  return totals.map((total) => { expect(Array.from(total)).toEqual(Array.from(totals[0] as Float64Array)); return total })
}

describe('the flags of a masked sum, one bit per peer', () => {
  it('name exactly the peers whose values are out of range, across slots, over a tree (130 peers) and flooding (12)', () => {
    for (const [spec, peers, bad] of [['regular:4', 130, [0, 47, 48, 95, 96, 129]], ['ring', 12, [3, 11]]] as const) {
      const graph = buildTopology(spec, peers, createRng(7))
      expect(flagSlots(graph)).toBe(Math.ceil(peers / FLAGS_PER_SLOT))
      const value = (peer: number): Float64Array => Float64Array.of(peer + 0.25, (bad as readonly number[]).includes(peer) ? (peer % 2 === 0 ? Number.NaN : 2 ** 70) : -1)
      const [total] = flaggedSums(spec, peers, value)
      let caught: unknown = null
      try {
        sumTotal(total as Float64Array, graph, 'total')
      } catch (error) {
        caught = error
      }
      expect(caught).toBeInstanceOf(SumOutOfRangeError)
      expect((caught as SumOutOfRangeError).peers).toEqual(bad.map((peer) => graph.names[peer]))
      // the values of a flagged peer are left out: the first value sums the others only
      const expected = graph.names.reduce((sum, _, peer) => (bad as readonly number[]).includes(peer) ? sum : sum + peer + 0.25, 0)
      expect((total as Float64Array)[0]).toBe(expected)
    }
  })

  it('leave an in-range sum exact, and fail a slot that holds no set of flags naming its peers', () => {
    const graph = buildTopology('regular:4', 100, createRng(7))
    const [total] = flaggedSums('regular:4', 100, (peer) => Float64Array.of(peer / 8, 1))
    expect(Array.from(sumTotal(total as Float64Array, graph, 'total'))).toEqual([99 * 100 / 16, 100])
    // a member writing into others' flags: a slot total that is no sum of distinct bits
    const tampered = Float64Array.from(total as Float64Array)
    tampered[2 + 1] = 0.3
    expect(() => sumTotal(tampered, graph, 'total')).toThrow(SumOutOfRangeError)
    try {
      sumTotal(tampered, graph, 'total')
    } catch (error) {
      expect((error as SumOutOfRangeError).peers).toEqual(graph.names.slice(FLAGS_PER_SLOT, 2 * FLAGS_PER_SLOT))
    }
  })
})

describe('a sum up a spanning tree', () => {
  it('counts a round per step it takes, not per partial a child sends again while it waits for the total', () => {
    // 300 peers, random 4-regular: before, the deep peers' resends were passed on up to the root, each hop
    // counting a round (the busiest peer's round reached 62 against a depth of 7)
    const graph = buildTopology('regular:4', 300, createRng(1))
    const depth = spanningTree(graph).depth
    const rng = createRng(5)
    const phases = graph.names.map((_, self) => maskedSum({ job: 'deep', graph, self, rng: forkRng(rng, self) }, 'total', Float64Array.of(self), { method: 'tree' }))
    const run = runSynchronous({ protocol: treeSumProtocol, states: phases.map((phase) => phase.state as TreeSumState), network: new MemoryNetwork({ graph, rng: createRng(3) }), maxRounds: 10 * depth })
    const totals = finishedResults(run, graph.names)
    expect(sumTotal(totals[0] as Float64Array, graph, 'total')[0]).toBe(299 * 300 / 2)
    expect(totals.every((total) => total[0] === 299 * 300 / 2)).toBe(true)
    const rounds = run.states.map((state) => treeSumProtocol.round(state))
    // every peer resends at most once per deadline (two ticks) while it waits: well under 2 x depth rounds
    expect(Math.max(...rounds)).toBeLessThan(2 * depth)
    expect(run.ticks).toBeLessThanOrEqual(2 * depth + 3)
  })
})
