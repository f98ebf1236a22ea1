import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeVector, fromBytes, LIMBS, subtractInto, toBytes } from '../../src/consensus/protocols/fixed-point.ts'
import { diameter, graphFromEdges, type Graph } from '../../src/consensus/graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from '../../src/consensus/sim/memory-network.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { createSecureSum, secureSumProtocol, secureSumRounds, type SecureSumState } from '../../src/consensus/protocols/secure-sum.ts'
import { addEdgeMask, chacha20, createMaskSeeds, maskFromSeeds, type MaskSeeds } from '../../src/consensus/protocols/mask-seeds.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'

interface SumRun {
  states: SecureSumState[]
  ticks: number
  sent: ConsensusMessage[]
  network: MemoryNetwork
}

function secureSum (graph: Graph, values: number[][], seed: number, options: {
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  members?: number[]
  /** changes a state right after it is created (to craft masks) */
  adjust?: (state: SecureSumState) => void
  /** each peer's mask seeds, kept from earlier sums of the same job */
  seeds?: MaskSeeds[]
  kind?: string
} = {}): SumRun {
  const rng = createRng(seed)
  const members = options.members ?? graph.names.map((_, node) => node)
  const memberSet = new Set(members)
  const states = graph.names.map((_, self) => {
    const state = createSecureSum({ graph, self: memberSet.has(self) ? self : members[0]!, value: values[self]!, job: 'sum', kind: options.kind ?? 'total', rng: forkRng(rng, self), members: options.members, ...(options.seeds === undefined ? {} : { seeds: options.seeds[self] }) })
    options.adjust?.(state)
    return state
  })
  const network = new MemoryNetwork({ ...(options.network ?? {}), graph, rng: forkRng(rng, 'network') })
  for (let node = 0; node < graph.names.length; node++) if (!memberSet.has(node)) network.kill(graph.names[node]!)
  const sent: ConsensusMessage[] = []
  const send = network.send.bind(network)
  network.send = (from, message) => { sent.push(message); send(from, message) }
  const run = runSynchronous({ protocol: secureSumProtocol, states, network, maxRounds: 2000 })
  return { states: run.states, ticks: run.ticks, sent, network }
}

function columnTotals (values: number[][], members?: number[]): number[] {
  const rows = members === undefined ? values : members.map((member) => values[member]!)
  return rows[0]!.map((_, column) => rows.reduce((sum, row) => sum + row[column]!, 0))
}

function exact (result: Float64Array, totals: number[]): boolean {
  return totals.every((total, index) => Math.abs(result[index]! - total) <= 1e-9 * Math.max(1, Math.abs(total)))
}

/**
 * The total the masked sum must give: each value rounded to 48 fractional bits once, summed exactly
 * (BigInt), decoded. A float sum of values that cancel carries its own rounding error, far larger.
 */
function fixedPointTotals (values: number[][]): number[] {
  return values[0]!.map((_, column) => {
    let total = 0n
    for (const row of values) total += BigInt(Math.round(row[column]! * 2 ** 48))
    return Number(total) / 2 ** 48
  })
}

function matchesFixedPoint (result: Float64Array, values: number[][]): boolean {
  const magnitudes = values[0]!.map((_, column) => values.reduce((sum, row) => sum + Math.abs(row[column]!), 0))
  return fixedPointTotals(values).every((total, index) => Math.abs(result[index]! - total) <= 2 ** -52 * Math.abs(total) + 2 ** -60) &&
    columnTotals(values).every((total, index) => Math.abs(result[index]! - total) <= 1e-12 * Math.max(1, magnitudes[index]!))
}

function containsBytes (haystack: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let start = 0; start + needle.length <= haystack.length; start++) {
    for (let index = 0; index < needle.length; index++) if (haystack[start + index] !== needle[index]) continue outer
    return true
  }
  return false
}

const randomValues = (graph: Graph, width: number, seed: number): number[][] => {
  const rng = createRng(seed)
  return graph.names.map(() => Array.from({ length: width }, () => (rng() - 0.5) * 10 ** Math.floor(rng() * 8)))
}

describe('flooded secure sum: exactness and rounds', () => {
  it('finishes in exactly diameter + 1 rounds without loss (the seeds\' round and the flood), on every shape', () => {
    const measured: Record<string, { diameter: number, ticks: number }> = {}
    for (const [spec, peers] of [['ring', 16], ['line', 9], ['star', 12], ['complete', 8], ['grid', 16], ['regular:3', 20], ['smallworld:4,0.2', 24]] as const) {
      const graph = buildTopology(spec, peers, createRng(3))
      const values = randomValues(graph, 3, 5)
      const run = secureSum(graph, values, 7)
      for (const state of run.states) expect(exact(secureSumProtocol.result(state), columnTotals(values))).toBe(true)
      measured[spec] = { diameter: diameter(graph), ticks: run.ticks }
      expect(run.ticks, spec).toBe(secureSumRounds(graph))
      expect(secureSumRounds(diameter(graph))).toBe(secureSumRounds(graph))
    }
    expect(measured.ring).toEqual({ diameter: 8, ticks: 9 })
    expect(measured.complete).toEqual({ diameter: 1, ticks: 2 })
  })

  it('a later sum of the same job has no seeds\' round: on a ring of n it takes exactly the diameter, and stays exact', () => {
    for (const peers of [4, 7, 16, 31]) {
      const graph = buildTopology('ring', peers, createRng(1))
      const seeds = graph.names.map(() => createMaskSeeds())
      const first = secureSum(graph, randomValues(graph, 2, 3), 4, { seeds, kind: 'first' })
      expect(first.ticks).toBe(diameter(graph) + 1)
      expect(first.sent.filter((message) => message.kind === 'first.mask').length).toBeGreaterThan(0)
      const values = randomValues(graph, 2, 5)
      const second = secureSum(graph, values, 6, { seeds, kind: 'second' })
      expect(second.ticks, `ring of ${peers}`).toBe(diameter(graph))
      expect(second.ticks).toBe(secureSumRounds(graph, false))
      expect(second.sent.some((message) => message.kind.endsWith('.mask'))).toBe(false)
      for (const state of second.states) expect(matchesFixedPoint(secureSumProtocol.result(state), values)).toBe(true)
    }
  })

  it('every member finishes after its eccentricity, and the seeds of later sums carry over to a smaller set of members', () => {
    const graph = buildTopology('grid', 16, createRng(1))
    const seeds = graph.names.map(() => createMaskSeeds())
    secureSum(graph, randomValues(graph, 1, 1), 2, { seeds, kind: 'first' })
    const members = graph.names.map((_, node) => node).filter((node) => node !== 5)
    const values = randomValues(graph, 3, 3)
    const run = secureSum(graph, values, 4, { seeds, kind: 'second', members })
    expect(run.sent.some((message) => message.kind.endsWith('.mask'))).toBe(false)
    for (const member of members) expect(exact(secureSumProtocol.result(run.states[member]!), columnTotals(values, members))).toBe(true)
  })

  it('each contribution crosses each link about once', () => {
    const graph = buildTopology('grid', 16, createRng(1))
    const run = secureSum(graph, randomValues(graph, 2, 1), 2)
    const entryBytes = 4 + 2 * LIMBS * 4
    let entries = 0
    for (const message of run.sent) if (message.kind === 'total') entries += (message.data.length - 1 - 2 - 4) / entryBytes
    const directedLinks = graph.neighbours.reduce((sum, list) => sum + list.length, 0)
    // a contribution goes over every directed link at most once, and never back to where it came from
    expect(entries).toBeLessThanOrEqual(16 * directedLinks / 2)
    expect(entries).toBeGreaterThanOrEqual(16 * (16 - 1))
  })

  it('stays exact with lost messages, whole-round link failures and delays', () => {
    const graph = buildTopology('er:0.3', 20, createRng(8))
    const values = randomValues(graph, 4, 9)
    for (const network of [{ messageLoss: 0.3 }, { linkLoss: 0.4 }, { delay: { probability: 0.3, maxRounds: 3 } }, { messageLoss: 0.2, delay: { probability: 0.2, maxRounds: 2 } }]) {
      const run = secureSum(graph, values, 10, { network })
      expect(run.states.every((state) => state.done), JSON.stringify(network)).toBe(true)
      for (const state of run.states) expect(exact(secureSumProtocol.result(state), columnTotals(values))).toBe(true)
    }
  })

  it('finished machines fall silent: no echo between them', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const run = secureSum(graph, randomValues(graph, 1, 2), 3, { network: { messageLoss: 0.3 } })
    let sent = 0
    for (let tick = 0; tick < 50; tick++) {
      run.network.beginRound()
      for (const { to, message } of run.network.deliverDue()) {
        const stepped = secureSumProtocol.step(run.states[to]!, { type: 'message', message })
        for (const reply of stepped.outbox) {
          sent++
          run.network.send(to, reply)
        }
      }
    }
    expect(run.network.inFlight()).toBe(0)
    expect(sent).toBeLessThan(40)
  })

  it('sums over a connected subset of members; the others take no part', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const values = randomValues(graph, 2, 4)
    const members = [2, 3, 4, 5, 6, 7]
    const run = secureSum(graph, values, 5, { members })
    for (const member of members) expect(exact(secureSumProtocol.result(run.states[member]!), columnTotals(values, members))).toBe(true)
    expect(run.sent.every((message) => !['peer-0', 'peer-1', 'peer-8', 'peer-9'].includes(message.to ?? message.from))).toBe(true)
    expect(() => createSecureSum({ graph, self: 2, value: [1], job: 'sum', rng: createRng(1), members: [2, 3, 6] }))
      .toThrowError(expect.objectContaining({ code: 'GRAPH_DISCONNECTED' }))
    expect(() => createSecureSum({ graph, self: 1, value: [1], job: 'sum', rng: createRng(1), members: [2, 3] })).toThrow(RangeError)
  })

  it('a federation of one is its own total; a disconnected graph is refused', () => {
    const single = graphFromEdges(['only'], [])
    const state = createSecureSum({ graph: single, self: 0, value: [2.5, -1], job: 'sum', rng: createRng(1) })
    const started = secureSumProtocol.start(state)
    expect(started.outbox).toHaveLength(0)
    expect(Array.from(secureSumProtocol.result(started.state))).toEqual([2.5, -1])
    const split = graphFromEdges(['a', 'b', 'c', 'd'], [['a', 'b'], ['c', 'd']])
    expect(() => createSecureSum({ graph: split, self: 0, value: [1], job: 'sum', rng: createRng(1) })).toThrowError(expect.objectContaining({ code: 'GRAPH_DISCONNECTED' }))
  })

  it('gives every peer the exact total on random connected graphs with random values and losses', () => {
    fc.assert(fc.property(
      fc.integer({ min: 2, max: 14 }),
      fc.double({ min: 0.25, max: 0.9, noNaN: true }),
      fc.integer({ min: 0, max: 1_000_000 }),
      fc.constantFrom(0, 0.2),
      fc.array(fc.double({ min: -1e9, max: 1e9, noNaN: true }), { minLength: 28, maxLength: 28 }),
      (peers, density, seed, messageLoss, pool) => {
        const graph = buildTopology(`er:${density}`, peers, createRng(seed))
        const values = graph.names.map((_, node) => [pool[2 * node]!, pool[2 * node + 1]!])
        const run = secureSum(graph, values, seed, { network: { messageLoss } })
        return run.states.every((state) => state.done && matchesFixedPoint(secureSumProtocol.result(state), values))
      }), { numRuns: 40, seed: 20261123 })
  })
})

describe('flooded secure sum: privacy', () => {
  it('derives its masks from ChaCha20 as RFC 8439 defines it (the block function\'s test vector, 2.3.2)', () => {
    const key = Uint32Array.from({ length: 8 }, (_, word) => new DataView(Uint8Array.from({ length: 4 }, (_, byte) => 4 * word + byte).buffer).getUint32(0, true))
    const nonce = Uint32Array.of(0x09000000, 0x4a000000, 0)
    const block = chacha20(key, nonce, 16, 1)
    expect(Array.from(block, (word) => word.toString(16).padStart(8, '0')).join(' ')).toBe([
      'e4e7f110', '15593bd1', '1fdd0f50', 'c47120a3', 'c7f4d1c7', '0368c033', '9aaa2204', '4e6cd4c3',
      '466482d2', '09aa9f07', '05d7c214', 'a2028bd9', 'd19c12b5', 'b94e16de', 'e883d0cb', '4e3c50a2'
    ].join(' '))
  })

  it('no message anywhere carries a value, as fixed point or as float bits', () => {
    const graph = buildTopology('grid', 12, createRng(1))
    const values = graph.names.map((_, node) => [1000 + node, -3.5 * node, 0.125 * (node + 1)])
    const run = secureSum(graph, values, 11)
    for (const message of run.sent) expect(message.values).toHaveLength(0)
    for (const value of values) {
      const needles = [toBytes(encodeVector(value)), new Uint8Array(Float64Array.from(value).buffer)]
      for (const entry of value) needles.push(toBytes(encodeVector([entry])), new Uint8Array(Float64Array.of(entry).buffer))
      for (const message of run.sent) for (const needle of needles) expect(containsBytes(message.data, needle)).toBe(false)
    }
  })

  it('a neighbour sees exactly the same messages for two different values of a peer with two neighbours', () => {
    // Peer 0 on a ring has neighbours 1 and 7. Shift its value by delta, shift peer 7's by -delta and
    // take enc(delta) off the mask of the edge 0-7, which 0 adds and 7 subtracts (at both ends: a mask
    // that peer 1, lacking that edge's seeds, cannot compute): every contribution stays the same, and so does everything peer 1
    // ever receives, although peer 0's value differs. Peer 1 cannot tell the two apart. (This is a
    // later sum of the job: the masks come from seeds exchanged in an earlier one.)
    const graph = buildTopology('ring', 8, createRng(1))
    const values = graph.names.map((_, node) => [10 * node + 1, node % 3])
    const delta = [37.25, -4]
    const shifted = values.map((value, node) => node === 0 ? value.map((entry, index) => entry + delta[index]!) : node === 7 ? value.map((entry, index) => entry - delta[index]!) : value)
    const seeds = graph.names.map(() => createMaskSeeds())
    secureSum(graph, values, 20, { seeds, kind: 'first' })
    const plain = secureSum(graph, values, 21, { seeds })
    const crafted = secureSum(graph, shifted, 21, {
      seeds,
      adjust: (state) => {
        if (state.self === 0) subtractInto(state.masks[state.slots.indexOf(7)]!, encodeVector(delta))
        if (state.self === 7) subtractInto(state.masks[state.slots.indexOf(0)]!, encodeVector(delta))
      }
    })
    const seenBy = (run: SumRun, name: string) => run.sent.filter((message) => message.to === name || (message.to === undefined && graph.neighbours[graph.names.indexOf(name)]!.includes(graph.names.indexOf(message.from))))
    const view = seenBy(plain, 'peer-1')
    expect(view.length).toBeGreaterThan(0)
    expect(seenBy(crafted, 'peer-1')).toEqual(view)
    // the values did differ, and only the ends of the edge 0-7 hold the mask that tells them apart:
    // peer 1 never receives that edge's seeds
    expect(crafted.states[7]!.masks[crafted.states[7]!.slots.indexOf(0)]).not.toEqual(plain.states[7]!.masks[plain.states[7]!.slots.indexOf(0)])
    const edgeSeeds = [seeds[0]!.drawn.get(7)!, seeds[7]!.drawn.get(0)!]
    for (const run of [plain, crafted]) for (const message of run.sent) for (const seed of edgeSeeds) expect(containsBytes(message.data, seed)).toBe(false)
    for (const state of crafted.states) expect(exact(secureSumProtocol.result(state), columnTotals(values))).toBe(true)
  })

  it('a seed travels only to the neighbour of its edge, in that sum\'s .mask message; a contribution differs from the value, and the masks cancel', () => {
    const graph = buildTopology('grid', 9, createRng(2))
    const seeds = graph.names.map(() => createMaskSeeds())
    const values = graph.names.map((_, node) => [node + 0.5, -2 * node])
    const first = secureSum(graph, values, 30, { seeds, kind: 'first' })
    const second = secureSum(graph, values, 31, { seeds, kind: 'second' })
    for (const [self, held] of seeds.entries()) {
      for (const [neighbour, seed] of held.drawn) {
        expect(seeds[neighbour]!.received.get(self)).toEqual(seed)
        for (const message of [...first.sent, ...second.sent]) {
          const carries = containsBytes(message.data, seed)
          if (carries) expect([message.kind, message.from, message.to]).toEqual(['first.mask', graph.names[self], graph.names[neighbour]])
        }
      }
    }
    // each later sum has masks of its own, from the same seeds and its name
    const other = graph.neighbours[0]![0]!
    const [low, high] = [seeds[0]!.drawn.get(other)!, seeds[other]!.drawn.get(0)!]
    expect(maskFromSeeds(low, high, 'first', 8)).not.toEqual(maskFromSeeds(low, high, 'second', 8))
    expect(maskFromSeeds(low, high, 'second', 8)).toEqual(second.states[0]!.masks[0]!.subarray(0, 8))
    expect(maskFromSeeds(low, high, 'second', 8)).not.toEqual(maskFromSeeds(high, low, 'second', 8))
    const net = new Uint32Array(2 * LIMBS)
    for (const state of second.states) {
      expect(state.known[state.self]).not.toEqual(encodeVector(values[state.self]!))
      state.masks.forEach((mask, slot) => { addEdgeMask(net, mask!, state.self, state.slots[slot]!) })
    }
    expect(Array.from(net)).toEqual(new Array(2 * LIMBS).fill(0))
  })

  it('a contribution is uniform on the ring whatever the value', () => {
    // 600 sums of the same values over a 3-ring: the top byte of peer 0's masked contribution falls
    // evenly into 16 buckets (chi-square, 15 degrees of freedom, 0.999 quantile 37.7)
    const graph = buildTopology('ring', 3, createRng(1))
    const values = [[5], [5], [5]]
    const buckets = new Array<number>(16).fill(0)
    for (let seed = 0; seed < 600; seed++) {
      const states = values.map((value, self) => createSecureSum({ graph, self, value, job: 'sum', rng: forkRng(createRng(seed), self) }))
      const outboxes = states.map((state) => secureSumProtocol.start(state).outbox)
      for (const outbox of outboxes) {
        for (const message of outbox) {
          const to = graph.names.indexOf(message.to!)
          secureSumProtocol.step(states[to]!, { type: 'message', message })
        }
      }
      const contribution = states[0]!.known[0]!
      const high = fromBytes(toBytes(contribution), 12, 1)[0]!
      buckets[high >>> 28]!++
    }
    const expected = 600 / 16
    const chiSquare = buckets.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0)
    expect(chiSquare).toBeLessThan(37.7)
  })

  it('warns when a member has a single neighbour, who could recover its value', () => {
    const graph = buildTopology('line', 4, createRng(1))
    const logs = graph.names.map((_, self) => secureSumProtocol.start(createSecureSum({ graph, self, value: [1], job: 'sum', rng: createRng(self) })).log)
    expect(logs.map((log) => log.some((record) => record.event === 'secure-sum.single-neighbour'))).toEqual([true, false, false, true])
  })
})

describe('a member that leaves in the middle of the flood', () => {
  it('ends the sum with SUM_INCOMPLETE naming it, instead of flooding forever', () => {
    const graph = buildTopology('ring', 8, createRng(1))
    const rng = createRng(4)
    const states = graph.names.map((_, self) => createSecureSum({ graph, self, value: [self + 1], job: 'sum', kind: 'final', rng: forkRng(rng, self) }))
    const network = new MemoryNetwork({ graph, rng: forkRng(rng, 'network') })
    // peer 3 exchanges its masks, then is gone before its masked value leaves
    const leaver = graph.names[3] as string
    let error: unknown = null
    try {
      runSynchronous({ protocol: secureSumProtocol, states, network, maxRounds: 500, beforeTick: (tick, net) => { if (tick === 2) net.kill(leaver) } })
    } catch (caught) {
      error = caught
    }
    expect(error).toMatchObject({ code: 'SUM_INCOMPLETE', missing: [leaver] })
    // and without a departure the same sum completes
    const again = secureSum(graph, graph.names.map((_, self) => [self + 1]), 4)
    expect(again.states.every((state) => state.done)).toBe(true)
  })
})
