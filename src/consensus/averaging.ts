import { metropolisWeights, spectralGap, type Graph } from './graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from './machine.ts'
import type { ConsensusMessage } from './types.ts'

/**
 * Average consensus with Metropolis weights: x_i <- W_ii x_i + sum_j W_ij x_j. Every peer converges to
 * the mean of the starting vectors, with an error falling like rho^k (rho the second-largest eigenvalue
 * modulus of W), so about ln(eps) / ln(rho) rounds. Sums follow as m times the mean, and m itself from
 * the average of an indicator (1 on one agreed peer, 0 elsewhere), which converges to 1/m.
 *
 * A missing neighbour value (its deadline passed) is replaced by the peer's own value, which keeps W
 * stochastic but no longer doubly stochastic in that round: the mean drifts. Averaging is for reliable
 * links; push-sum is the tool for lossy or one-way ones.
 */
export interface AveragingInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  kind?: string
  /** stop after this many rounds */
  rounds: number
}

export interface AveragingState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly kind: string
  readonly rounds: number
  readonly weights: { self: number, neighbour: Float64Array }
  round: number
  x: Float64Array
  readonly heard: Array<Float64Array | null>
  pending: ConsensusMessage[]
  done: boolean
  rejected: number
}

export function createAveraging (init: AveragingInit): AveragingState {
  const slots = init.graph.neighbours[init.self]
  if (slots === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  if (!Number.isInteger(init.rounds) || init.rounds < 0) throw new RangeError('rounds must be a non-negative integer')
  return {
    graph: init.graph,
    self: init.self,
    job: init.job,
    kind: init.kind ?? 'average',
    rounds: init.rounds,
    weights: metropolisWeights(init.graph, init.self),
    round: 0,
    x: Float64Array.from(init.value),
    heard: slots.map(() => null),
    pending: [],
    done: init.rounds === 0,
    rejected: 0
  }
}

/** Rounds for the error to fall by a factor eps: ceil(ln(eps) / ln(rho)). */
export function roundsForAccuracy (graph: Graph, epsilon: number): number {
  const { secondLargestModulus } = spectralGap(graph)
  if (secondLargestModulus <= 0) return 1
  return Math.ceil(Math.log(epsilon) / Math.log(secondLargestModulus))
}

function message (state: AveragingState): ConsensusMessage {
  return { job: state.job, kind: state.kind, round: state.round, from: state.graph.names[state.self] as string, values: Float64Array.from(state.x), data: new Uint8Array(0) }
}

function slotOf (state: AveragingState, from: string): number {
  const slots = state.graph.neighbours[state.self] ?? []
  for (let slot = 0; slot < slots.length; slot++) if (state.graph.names[slots[slot] as number] === from) return slot
  return -1
}

function advance (state: AveragingState, outbox: ConsensusMessage[]): void {
  const next = new Float64Array(state.x.length)
  for (let index = 0; index < next.length; index++) {
    let value = state.weights.self * (state.x[index] as number)
    state.heard.forEach((heard, slot) => {
      const weight = state.weights.neighbour[slot] as number
      value += weight * ((heard ?? state.x)[index] as number)
    })
    next[index] = value
  }
  state.x = next
  state.heard.fill(null)
  state.round++
  if (state.round >= state.rounds) {
    state.done = true
    return
  }
  outbox.push(message(state))
}

function accept (state: AveragingState, incoming: ConsensusMessage, log: LogRecord[]): void {
  const slot = slotOf(state, incoming.from)
  const valid = slot >= 0 && incoming.values.length === state.x.length && incoming.values.every(Number.isFinite)
  if (!valid) {
    state.rejected++
    log.push({ level: 'warn', event: 'averaging.message.rejected', fields: { from: incoming.from, round: incoming.round } })
    return
  }
  if (state.heard[slot] === null) state.heard[slot] = incoming.values
}

function drain (state: AveragingState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  while (!state.done) {
    const current = state.pending.filter((item) => item.round === state.round)
    state.pending = state.pending.filter((item) => item.round > state.round)
    for (const item of current) accept(state, item, log)
    if (state.heard.some((heard) => heard === null)) return
    advance(state, outbox)
  }
}

export const averagingProtocol: Protocol<AveragingState, Float64Array> = {
  start (state) {
    return { state, outbox: state.done ? [] : [message(state)], log: [] }
  },
  step (state, input: MachineInput): StepResult<AveragingState> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) return { state, outbox, log }
    if (input.type === 'deadline') {
      if (input.round === state.round) {
        advance(state, outbox)
        drain(state, outbox, log)
      }
      return { state, outbox, log }
    }
    const incoming = input.message
    if (incoming.job !== state.job || incoming.kind !== state.kind || incoming.round < state.round) return { state, outbox, log }
    state.pending.push(incoming)
    drain(state, outbox, log)
    return { state, outbox, log }
  },
  round: (state) => state.round,
  done: (state) => state.done,
  result: (state) => Float64Array.from(state.x)
}
