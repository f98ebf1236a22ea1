import { ConsensusParamsError } from '../errors.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * Push-sum (Kempe, Dobra, Gehrke 2003) in its running-sum form (Dominguez-Garcia and Hadjicostis), for
 * lossy or one-way links. Each peer holds a value s and a weight w, keeps 1/(d+1) of both and pushes
 * 1/(d+1) to each out-neighbour; the estimate s/w tends to the average. Instead of the shares, a peer
 * sends the running totals it has ever pushed on a link, and the receiver adds the difference from the
 * last total it saw: a lost message's mass arrives with the next one that gets through, so no mass is
 * lost and the estimate stays exact.
 *
 * `outNeighbours` may differ from the graph's (one-way links); by default they are the graph neighbours.
 * The estimate converges when the out-links make the graph strongly connected and every link gets a
 * message through infinitely often; in-flight mass is missing from the estimates only until it lands.
 * A finished peer has some of its last pushes still in flight: estimates at the end are accurate to
 * the error of the last rounds, not exact.
 */
export interface PushSumInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  kind?: string
  rounds: number
  /** out-neighbours of every node, for directed graphs; default: the undirected neighbours */
  outNeighbours?: number[][]
}

export interface PushSumState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly kind: string
  readonly rounds: number
  readonly out: number[]
  round: number
  /** s (length p) and w, as one vector [s..., w] */
  mass: Float64Array
  /** running totals pushed on each out-link */
  readonly sent: Float64Array[]
  /** last running total seen from each in-neighbour, by name */
  readonly seen: Map<string, Float64Array>
  readonly inbox: ConsensusMessage[]
  done: boolean
  rejected: number
}

export function createPushSum (init: PushSumInit): PushSumState {
  if (!Number.isInteger(init.rounds) || init.rounds < 0) throw new ConsensusParamsError('rounds', `a non-negative integer, got ${init.rounds}`)
  const out = init.outNeighbours?.[init.self] ?? init.graph.neighbours[init.self]
  if (out === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const n = init.graph.names.length
  if (out.some((node) => !Number.isInteger(node) || node < 0 || node >= n || node === init.self) || new Set(out).size !== out.length) {
    throw new RangeError(`peer ${init.self}: out-neighbours must be distinct other nodes of the graph`)
  }
  for (const entry of Array.from(init.value)) if (!Number.isFinite(entry)) throw new RangeError(`peer ${init.self} starts with a non-finite value`)
  const mass = new Float64Array(init.value.length + 1)
  mass.set(Array.from(init.value))
  mass[init.value.length] = 1
  return {
    graph: init.graph,
    self: init.self,
    job: init.job,
    kind: init.kind ?? 'push-sum',
    rounds: init.rounds,
    out: [...out],
    round: 0,
    mass,
    sent: out.map(() => new Float64Array(mass.length)),
    seen: new Map(),
    inbox: [],
    done: init.rounds === 0,
    rejected: 0
  }
}

function push (state: PushSumState): ConsensusMessage[] {
  const share = 1 / (state.out.length + 1)
  const outbox: ConsensusMessage[] = []
  state.out.forEach((target, link) => {
    const total = state.sent[link] as Float64Array
    for (let index = 0; index < total.length; index++) total[index] = (total[index] as number) + share * (state.mass[index] as number)
    outbox.push({ job: state.job, kind: state.kind, round: state.round, from: state.graph.names[state.self] as string, to: state.graph.names[target] as string, values: Float64Array.from(total), data: new Uint8Array(0) })
  })
  for (let index = 0; index < state.mass.length; index++) state.mass[index] = share * (state.mass[index] as number)
  return outbox
}

function absorb (state: PushSumState, log: LogRecord[]): void {
  for (const incoming of state.inbox) {
    if (incoming.values.length !== state.mass.length || !allFinite(incoming.values)) {
      state.rejected++
      log.push({ level: 'warn', event: 'push-sum.message.rejected', fields: { from: incoming.from } })
      continue
    }
    const previous = state.seen.get(incoming.from) ?? new Float64Array(state.mass.length)
    // running totals only grow; an older total that arrives late carries nothing new
    if ((incoming.values[state.mass.length - 1] as number) <= (previous[state.mass.length - 1] as number)) continue
    for (let index = 0; index < state.mass.length; index++) state.mass[index] = (state.mass[index] as number) + (incoming.values[index] as number) - (previous[index] as number)
    // a delivered message is never changed again: keep it, no copy
    state.seen.set(incoming.from, incoming.values)
  }
  state.inbox.length = 0
}

export function pushSumEstimate (state: PushSumState): Float64Array {
  const p = state.mass.length - 1
  const weight = state.mass[p] as number
  return state.mass.slice(0, p).map((value) => value / weight)
}

/**
 * Push-sum has no natural round barrier (a peer cannot know who will push to it); every round ends at
 * its deadline, after the messages that arrived in time have been absorbed.
 */
export const pushSumProtocol: Protocol<PushSumState, Float64Array> = {
  start (state) {
    return { state, outbox: state.done ? [] : push(state), log: [] }
  },
  step (state, input: MachineInput): StepResult<PushSumState> {
    // a neighbour moving on to a later phase changes nothing here: this machine does not wait on it
    if (input.type === 'moved-on') return { state, outbox: [], log: [] }
    const log: LogRecord[] = []
    if (state.done) return { state, outbox: [], log }
    if (input.type === 'message') {
      if (input.message.job === state.job && input.message.kind === state.kind) state.inbox.push(input.message)
      return { state, outbox: [], log }
    }
    if (input.round !== state.round) return { state, outbox: [], log }
    absorb(state, log)
    state.round++
    if (state.round >= state.rounds) {
      state.done = true
      return { state, outbox: [], log }
    }
    return { state, outbox: push(state), log }
  },
  round: (state) => state.round,
  done: (state) => state.done,
  result: pushSumEstimate
}

function allFinite (values: Float64Array): boolean {
  for (let index = 0; index < values.length; index++) if (!Number.isFinite(values[index])) return false
  return true
}
