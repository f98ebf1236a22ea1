import type { LogRecord, Protocol } from '../machine.ts'
import type { MemoryNetwork } from './memory-network.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * The synchronous driver of the simulator: every tick delivers what was sent in earlier ticks (subject
 * to the network's faults) and then gives every live peer that did not advance a `deadline` for its
 * current round, just as a real peer's round timer would.
 *
 * Order, which makes a run a pure function of its inputs and the network's seed: `start` in peer index
 * order; then per tick `beforeTick`, restarted peers resend, the network delivers in sending order (a
 * finished machine still gets its messages, since some answer neighbours that lag behind), deadlines go
 * to peers in index order, and `onRound` sees the states. A killed peer is not stepped at all, so its
 * state stays the last one its machine returned: the state a peer that persists before sending would
 * restart from.
 */
export interface SynchronousRun<S, R> {
  states: S[]
  /** each peer's result, or null where its machine has not finished or failed */
  results: Array<R | null>
  /** each peer's failure (the error its finished machine gives instead of a result), or null */
  failures: unknown[]
  ticks: number
  /** messages and bytes sent during the run (lost ones included), from the network's counters */
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

export interface SynchronousOptions<S, R> {
  protocol: Protocol<S, R>
  /** one initial state per peer, aligned with network.graph.names; updated in place */
  states: S[]
  network: MemoryNetwork
  /** a tick budget: the run stops after this many ticks even if some peer has not finished */
  maxRounds: number
  onRound?: ((tick: number, states: readonly S[]) => void) | undefined
  /** checked after `onRound`: true ends the run there, finished or not (a benchmark that needs only part of a job) */
  until?: ((tick: number, states: readonly S[]) => boolean) | undefined
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
}

export function runSynchronous<S, R> (options: SynchronousOptions<S, R>): SynchronousRun<S, R> {
  const { protocol, network } = options
  const states = options.states
  const peers = states.length
  if (peers !== network.graph.names.length) throw new RangeError(`${peers} states for ${network.graph.names.length} peers`)
  const deadlineTicks = options.deadlineTicks ?? 2
  if (!Number.isInteger(deadlineTicks) || deadlineTicks < 1) throw new RangeError(`deadlineTicks must be a positive integer, got ${deadlineTicks}`)
  const log: Array<LogRecord & { peer: number, tick: number }> = []
  const keepLog = options.keepLog === true
  const lastOutbox: ConsensusMessage[][] = new Array(peers)
  const wasAlive = new Array<boolean>(peers)
  const roundBefore = new Float64Array(peers)
  const waited = new Int32Array(peers)
  let tick = 0

  const apply = (peer: number, stepped: { state: S, outbox: ConsensusMessage[], log: LogRecord[] }): void => {
    states[peer] = stepped.state
    if (stepped.outbox.length > 0) lastOutbox[peer] = stepped.outbox
    for (const message of stepped.outbox) network.send(peer, message)
    if (keepLog) for (const record of stepped.log) log.push({ ...record, peer, tick })
  }

  for (let peer = 0; peer < peers; peer++) {
    lastOutbox[peer] = []
    wasAlive[peer] = network.isAlive(peer)
    apply(peer, protocol.start(states[peer] as S))
  }

  const finished = (): boolean => {
    for (let peer = 0; peer < peers; peer++) if (network.isAlive(peer) && !protocol.done(states[peer] as S)) return false
    return true
  }

  while (tick < options.maxRounds && !finished()) {
    tick++
    options.beforeTick?.(tick, network)
    for (let peer = 0; peer < peers; peer++) {
      const alive = network.isAlive(peer)
      if (alive && !(wasAlive[peer] as boolean)) {
        const restored = network.takeRestartState(peer)
        if (restored !== null) {
          states[peer] = restored.state as S
          lastOutbox[peer] = []
        } else {
          for (const message of lastOutbox[peer] ?? []) network.send(peer, message)
        }
        waited[peer] = 0
      }
      wasAlive[peer] = alive
      roundBefore[peer] = protocol.round(states[peer] as S)
    }
    network.beginRound()
    for (const { to, message } of network.deliverDue()) {
      if (!network.isAlive(to)) continue
      apply(to, protocol.step(states[to] as S, { type: 'message', message }))
    }
    for (let peer = 0; peer < peers; peer++) {
      const state = states[peer] as S
      if (protocol.done(state) || !network.isAlive(peer)) continue
      const round = protocol.round(state)
      if (round !== roundBefore[peer]) {
        waited[peer] = 0
        continue
      }
      waited[peer] = (waited[peer] as number) + 1
      if ((waited[peer] as number) < deadlineTicks) continue
      waited[peer] = 0
      apply(peer, protocol.step(state, { type: 'deadline', round }))
    }
    options.onRound?.(tick, states)
    if (options.until?.(tick, states) === true) break
  }
  const failures: unknown[] = states.map(() => null)
  const results = states.map((state, peer) => {
    if (!protocol.done(state)) return null
    try {
      return protocol.result(state)
    } catch (error) {
      failures[peer] = error
      return null
    }
  })
  return { states, results, failures, ticks: tick, messages: network.messages, bytes: network.bytes, log }
}

/** Every peer's result of a run, in peer order; the first peer's failure (or that it did not finish) is thrown. */
export function finishedResults<S, R> (run: SynchronousRun<S, R>, names: readonly string[]): R[] {
  return run.results.map((result, peer) => {
    if (result === null) throw (run.failures[peer] ?? new RangeError(`peer ${names[peer]} did not finish`))
    return result
  })
}
