import { describe, expect, it } from 'vitest'
import { graphFromEdges, type Graph } from '../../src/consensus/graph.ts'
import type { MachineInput, Protocol, StepResult } from '../../src/consensus/machine.ts'
import { deliverToTransports, encodedSize, MemoryNetwork, MemoryTransport } from '../../src/consensus/sim/memory-network.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'

function message (from: string, round: number, extra: Partial<ConsensusMessage> = {}): ConsensusMessage {
  return { job: 'job', kind: 'test', round, from, values: new Float64Array(0), data: new Uint8Array(0), ...extra }
}

/** Sends one broadcast per tick from every peer for `ticks` ticks and records who got what. */
function traffic (network: MemoryNetwork, ticks: number, kind = 'test') {
  const received: Array<{ tick: number, to: number, message: ConsensusMessage }> = []
  for (let tick = 0; tick < ticks; tick++) {
    network.graph.names.forEach((name, node) => network.send(node, message(name, tick, { kind })))
    network.beginRound()
    for (const delivery of network.deliverDue()) received.push({ tick, ...delivery })
  }
  return received
}

/**
 * A toy machine: each round it broadcasts its round number and waits for every neighbour's; it counts
 * the rounds it completed with everyone heard. Done after `rounds` rounds.
 */
interface EchoState { graph: Graph, self: number, rounds: number, round: number, heard: Set<string>, full: number, early: ConsensusMessage[] }
const echo: Protocol<EchoState, number> = {
  start: (state) => ({ state, outbox: [message(state.graph.names[state.self]!, 0)], log: [] }),
  step (state, input: MachineInput): StepResult<EchoState> {
    const outbox: ConsensusMessage[] = []
    if (state.round >= state.rounds) return { state, outbox, log: [] }
    const degree = state.graph.neighbours[state.self]!.length
    const advance = (): void => {
      if (state.heard.size === degree) state.full++
      state.round++
      state.heard = new Set(state.early.filter((item) => item.round === state.round).map((item) => item.from))
      state.early = state.early.filter((item) => item.round > state.round)
      if (state.round < state.rounds) outbox.push(message(state.graph.names[state.self]!, state.round))
    }
    if (input.type === 'moved-on') return { state, outbox, log: [] }
    if (input.type === 'deadline') {
      if (input.round === state.round) advance()
    } else if (input.message.round === state.round) {
      state.heard.add(input.message.from)
      if (state.heard.size === degree) advance()
    } else if (input.message.round > state.round) {
      state.early.push(input.message)
    }
    return { state, outbox, log: [] }
  },
  round: (state) => state.round,
  done: (state) => state.round >= state.rounds,
  result: (state) => state.full
}
const echoStates = (graph: Graph, rounds: number): EchoState[] =>
  graph.names.map((_, self) => ({ graph, self, rounds, round: 0, heard: new Set(), full: 0, early: [] }))

describe('in-memory network', () => {
  it('counts messages, bytes and kinds by the documented size estimate', () => {
    const graph = buildTopology('ring', 4, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    const broadcast = message('peer-0', 3, { values: new Float64Array(5), data: new Uint8Array(7) })
    network.send(0, broadcast)
    network.send(1, message('peer-1', 0, { kind: 'mask', to: 'peer-2' }))
    expect(encodedSize(broadcast)).toBe(24 + 3 + 4 + 6 + 40 + 7)
    expect(encodedSize(message('pé', 0, { to: '区' }))).toBe(24 + 3 + 4 + 3 + 3)
    expect(network.messages).toBe(3)
    expect(network.bytes).toBe(2 * encodedSize(broadcast) + encodedSize(message('peer-1', 0, { kind: 'mask', to: 'peer-2' })))
    expect(network.byKind.get('test')).toBe(2)
    expect(network.byKind.get('mask')).toBe(1)
    network.beginRound()
    const due = network.deliverDue()
    expect(due.map(({ to }) => to)).toEqual([1, 3, 2])
    expect(network.counters()).toMatchObject({ messages: 3, delivered: 3, lost: 0 })
    expect(() => network.send(0, message('peer-0', 0, { to: 'peer-2' }))).toThrow(RangeError)
  })

  it('loses a link for a whole round in both directions, at the asked rate', () => {
    const graph = buildTopology('ring', 20, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(2), linkLoss: 0.3 })
    const received = traffic(network, 200)
    const delivered = new Set(received.map(({ tick, to, message }) => `${tick}/${message.from}>${graph.names[to]}`))
    let edgesUp = 0
    let asymmetric = 0
    for (let tick = 0; tick < 200; tick++) {
      for (let node = 0; node < 20; node++) {
        const a = graph.names[node]!
        const b = graph.names[(node + 1) % 20]!
        const forward = delivered.has(`${tick}/${a}>${b}`)
        if (forward !== delivered.has(`${tick}/${b}>${a}`)) asymmetric++
        if (forward) edgesUp++
      }
    }
    expect(asymmetric).toBe(0)
    // 4000 edge-rounds: the standard deviation of the lost share is 0.007
    expect(1 - edgesUp / 4000).toBeGreaterThan(0.27)
    expect(1 - edgesUp / 4000).toBeLessThan(0.33)
    expect(network.lost + network.delivered).toBe(network.messages)
  })

  it('loses single messages independently at the asked rate', () => {
    const graph = buildTopology('complete', 10, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(3), messageLoss: 0.2 })
    traffic(network, 100)
    expect(network.messages).toBe(9000)
    expect(network.lost / network.messages).toBeGreaterThan(0.18)
    expect(network.lost / network.messages).toBeLessThan(0.22)
  })

  it('delays messages by whole ticks, at most maxRounds', () => {
    const graph = buildTopology('ring', 10, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(4), delay: { probability: 0.5, maxRounds: 3 } })
    const received = traffic(network, 50)
    const lateness = received.map(({ tick, message }) => tick - message.round)
    expect(Math.max(...lateness)).toBe(3)
    expect(Math.min(...lateness)).toBe(0)
    const late = lateness.filter((value) => value > 0).length / lateness.length
    expect(late).toBeGreaterThan(0.4)
    expect(late).toBeLessThan(0.6)
    expect(() => new MemoryNetwork({ graph, rng: createRng(1), linkLoss: 1.5 })).toThrow(RangeError)
    expect(() => new MemoryNetwork({ graph, rng: createRng(1), delay: { probability: 0.1, maxRounds: 0 } })).toThrow(RangeError)
  })

  it('cuts, heals and isolates', () => {
    const graph = buildTopology('ring', 4, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    network.cut('peer-0', 'peer-1')
    let received = traffic(network, 1)
    expect(received.some(({ to, message }) => (to === 1 && message.from === 'peer-0') || (to === 0 && message.from === 'peer-1'))).toBe(false)
    expect(received).toHaveLength(6)
    network.heal('peer-0', 'peer-1')
    network.isolate('peer-2')
    received = traffic(network, 1)
    expect(received).toHaveLength(4)
    expect(received.some(({ to, message }) => to === 2 || message.from === 'peer-2')).toBe(false)
    network.rejoin('peer-2')
    expect(traffic(network, 1)).toHaveLength(8)
  })

  it('is reproducible from its seed', () => {
    const graph = buildTopology('er:0.3', 12, createRng(1))
    const run = (seed: number) => traffic(new MemoryNetwork({ graph, rng: createRng(seed), linkLoss: 0.2, messageLoss: 0.1, delay: { probability: 0.2, maxRounds: 2 } }), 30)
      .map(({ tick, to, message }) => `${tick}:${message.from}>${to}@${message.round}`)
    expect(run(5)).toEqual(run(5))
    expect(run(5)).not.toEqual(run(6))
  })

  it('offers the Transport interface', async () => {
    const graph = graphFromEdges(null, [['a', 'b'], ['b', 'c']])
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    const transports = graph.names.map((name) => new MemoryTransport(network, name))
    expect(transports[1]!.neighbours()).toEqual(['a', 'c'])
    const inboxes = transports.map(() => [] as ConsensusMessage[])
    const unsubscribe = transports.map((transport, node) => transport.onMessage((received) => inboxes[node]!.push(received)))
    await transports[1]!.broadcast(message('b', 0))
    await transports[0]!.send('b', message('a', 0))
    expect(deliverToTransports(network, transports)).toBe(3)
    expect(inboxes.map((inbox) => inbox.map((received) => received.from))).toEqual([['b'], ['a'], ['b']])
    expect(inboxes[1]![0]!.to).toBe('b')
    unsubscribe[2]!()
    await transports[1]!.broadcast(message('b', 1))
    deliverToTransports(network, transports)
    expect(inboxes[2]).toHaveLength(1)
    await expect(transports[0]!.send('c', message('a', 1))).rejects.toThrow(RangeError)
  })
})

describe('synchronous driver', () => {
  it('runs a lossless round machine one round per tick', () => {
    const graph = buildTopology('ring', 8, createRng(1))
    const run = runSynchronous({ protocol: echo, states: echoStates(graph, 10), network: new MemoryNetwork({ graph, rng: createRng(1) }), maxRounds: 100 })
    expect(run.ticks).toBe(10)
    expect(run.results).toEqual(new Array(8).fill(10))
    expect(run.messages).toBe(8 * 2 * 10)
    expect(run.bytes).toBe(run.messages * encodedSize(message('peer-0', 0)))
  })

  it('passes deadlines to peers whose neighbours are silent, and stops at the tick budget', () => {
    const graph = buildTopology('ring', 6, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    network.isolate('peer-0')
    const run = runSynchronous({ protocol: echo, states: echoStates(graph, 5), network, maxRounds: 100, deadlineTicks: 2 })
    expect(run.results[0]).toBe(0)
    expect(run.results[3]).toBe(5)
    expect(run.results[1]).toBeLessThan(5)
    const short = runSynchronous({ protocol: echo, states: echoStates(graph, 50), network: new MemoryNetwork({ graph, rng: createRng(1) }), maxRounds: 7 })
    expect(short.ticks).toBe(7)
    expect(short.results.every((result) => result === null)).toBe(true)
  })

  it('a killed peer is not stepped; restarted, it resumes from its last state and resends', () => {
    const graph = buildTopology('ring', 6, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    let currentTick = 0
    const sentByPeer2: number[] = []
    const send = network.send.bind(network)
    network.send = (from, outgoing) => {
      if (from === 2) sentByPeer2.push(currentTick)
      send(from, outgoing)
    }
    let roundAtDeath = -1
    const states = echoStates(graph, 30)
    const run = runSynchronous({
      protocol: echo,
      states,
      network,
      maxRounds: 500,
      beforeTick: (tick, net) => {
        currentTick = tick
        if (tick === 5) {
          net.kill('peer-2')
          roundAtDeath = states[2]!.round
        }
        if (tick === 12) {
          expect(states[2]!.round).toBe(roundAtDeath)
          net.restart('peer-2')
        }
      }
    })
    expect(sentByPeer2.filter((tick) => tick > 5 && tick < 12)).toHaveLength(0)
    // on restart it sends its last round's broadcast again
    expect(sentByPeer2.filter((tick) => tick === 12).length).toBeGreaterThanOrEqual(1)
    expect(run.states.every((state) => state.round === 30)).toBe(true)
    // the peer opposite the dead one lost no round; the others went on by deadlines
    expect(run.results[5]).toBe(30)
    expect(run.results[1]).toBeLessThan(30)
  })

  it('restarts a peer from an older snapshot when asked', () => {
    const graph = buildTopology('ring', 5, createRng(1))
    const network = new MemoryNetwork({ graph, rng: createRng(1) })
    const states = echoStates(graph, 20)
    let snapshot: EchoState | null = null
    const run = runSynchronous({
      protocol: echo,
      states,
      network,
      maxRounds: 500,
      beforeTick: (tick, net) => {
        if (tick === 3) snapshot = { ...states[4]!, heard: new Set(states[4]!.heard), early: [...states[4]!.early] }
        if (tick === 8) net.kill('peer-4')
        if (tick === 10) net.restart('peer-4', snapshot)
      }
    })
    expect(run.states.every((state) => state.round === 20)).toBe(true)
    expect(run.results[4]).toBeLessThan(20)
  })
})
