import type { LogRecord, Protocol } from './machine.ts'
import type { MemoryNetwork } from './memory-network.ts'

/**
 * The synchronous driver of the simulator: every tick delivers what was sent in the previous tick
 * (subject to the network's faults), and then gives every live peer that did not advance a `deadline`
 * for its current round, just as a real peer's round timer would. Peers are visited in index order, so
 * a run is a pure function of its inputs and the network's seed.
 */
export interface SynchronousRun<S> {
  states: S[]
  ticks: number
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

export function runSynchronous<S, R> (options: {
  protocol: Protocol<S, R>
  states: S[]
  network: MemoryNetwork
  maxRounds: number
  onRound?: ((tick: number, states: readonly S[]) => void) | undefined
  /** keep the machines' log records (off by default: long runs produce many) */
  keepLog?: boolean
  /**
   * Ticks a peer waits in a round before its deadline passes (default 2). One tick is what a message
   * takes, so a deadline of one tick would pass before a neighbour that has just caught up can answer,
   * where a real peer's deadline is many message latencies long.
   */
  deadlineTicks?: number
  /** called at the start of each tick, for scripted faults (kill, restart, cut) */
  beforeTick?: (tick: number, network: MemoryNetwork) => void
}): SynchronousRun<S> {
  const { protocol, network } = options
  const states = options.states
  const log: Array<LogRecord & { peer: number, tick: number }> = []
  const keep = (peer: number, tick: number, records: readonly LogRecord[]): void => {
    if (options.keepLog === true) for (const record of records) log.push({ ...record, peer, tick })
  }
  const lastOutbox = states.map(() => [] as ReturnType<Protocol<S, R>['start']>['outbox'])
  const wasAlive = states.map((_, peer) => network.isAlive(peer))
  states.forEach((state, peer) => {
    const started = protocol.start(state)
    states[peer] = started.state
    lastOutbox[peer] = started.outbox
    for (const message of started.outbox) network.send(peer, message)
    keep(peer, 0, started.log)
  })
  const deadlineTicks = options.deadlineTicks ?? 2
  const waited = states.map(() => 0)
  let tick = 0
  while (tick < options.maxRounds) {
    if (states.every((state, peer) => protocol.done(state) || !network.isAlive(peer))) break
    tick++
    options.beforeTick?.(tick, network)
    states.forEach((_, peer) => {
      const alive = network.isAlive(peer)
      // A restarted peer resumes from its last persisted state and sends its last messages again.
      if (alive && !(wasAlive[peer] as boolean)) for (const message of lastOutbox[peer] ?? []) network.send(peer, message)
      wasAlive[peer] = alive
    })
    network.beginRound()
    const roundBefore = states.map((state) => protocol.round(state))
    for (const { to, message } of network.deliverDue()) {
      const state = states[to] as S
      // A finished machine still gets its messages: some answer neighbours that lag behind.
      if (!network.isAlive(to)) continue
      const stepped = protocol.step(state, { type: 'message', message })
      states[to] = stepped.state
      if (stepped.outbox.length > 0) lastOutbox[to] = stepped.outbox
      for (const sent of stepped.outbox) network.send(to, sent)
      keep(to, tick, stepped.log)
    }
    states.forEach((state, peer) => {
      if (protocol.done(state) || !network.isAlive(peer)) return
      const round = protocol.round(state)
      if (round !== roundBefore[peer]) {
        waited[peer] = 0
        return
      }
      waited[peer] = (waited[peer] as number) + 1
      if ((waited[peer] as number) < deadlineTicks) return
      waited[peer] = 0
      const stepped = protocol.step(state, { type: 'deadline', round })
      states[peer] = stepped.state
      if (stepped.outbox.length > 0) lastOutbox[peer] = stepped.outbox
      for (const sent of stepped.outbox) network.send(peer, sent)
      keep(peer, tick, stepped.log)
    })
    options.onRound?.(tick, states)
  }
  return { states, ticks: tick, messages: network.messages, bytes: network.bytes, log }
}
