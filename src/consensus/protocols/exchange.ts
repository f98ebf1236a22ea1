import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * One vector from each graph neighbour: every peer sends its neighbours its own (a region's incidence
 * series, say) and waits for theirs. A copy carries one byte saying whether its sender is still waiting
 * (1: its first copy, or a resend at a deadline) or answers one that was (0); only a waiting sender is
 * answered, once per neighbour during the exchange and whenever asked after it, so two peers past the
 * exchange never echo each other and a neighbour that started late gets its copy without waiting for
 * a deadline. `accept` decides which vectors are usable (their length, their range); others are
 * counted and dropped.
 */
export interface ExchangeInit {
  graph: Graph
  self: number
  job: string
  kind: string
  value: Float64Array
  accept: (values: Float64Array) => boolean
}

export interface ExchangeState {
  readonly init: ExchangeInit
  /** neighbours' vectors, by neighbour slot */
  readonly heard: Array<Float64Array | null>
  /** neighbours already answered during the exchange */
  readonly answered: boolean[]
  done: boolean
  rejected: number
}

export function createExchange (init: ExchangeInit): ExchangeState {
  const slots = init.graph.neighbours[init.self] ?? []
  return { init, heard: slots.map(() => null), answered: slots.map(() => false), done: slots.length === 0, rejected: 0 }
}

function copy (state: ExchangeState, waiting: boolean): ConsensusMessage {
  const { init } = state
  return { job: init.job, kind: init.kind, round: 0, from: init.graph.names[init.self] as string, values: Float64Array.from(init.value), data: Uint8Array.of(waiting ? 1 : 0) }
}

function slotOf (state: ExchangeState, from: string): number {
  const { graph, self } = state.init
  return (graph.neighbours[self] ?? []).findIndex((node) => graph.names[node] === from)
}

export const exchangeProtocol: Protocol<ExchangeState, Array<Float64Array | null>> = {
  start (state) {
    return { state, outbox: [copy(state, true)], log: [] }
  },

  step (state, input: MachineInput): StepResult<ExchangeState> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (input.type === 'moved-on') return { state, outbox, log }
    if (input.type === 'deadline') {
      // the exchange waits for every neighbour (what follows needs their vectors): say it again
      if (!state.done && input.round === 0) outbox.push(copy(state, true))
      return { state, outbox, log }
    }
    const message = input.message
    const { init } = state
    if (message.job !== init.job || message.kind !== init.kind) return { state, outbox, log }
    const slot = slotOf(state, message.from)
    if (slot < 0 || message.data.length !== 1 || !init.accept(message.values)) {
      state.rejected++
      log.push({ level: 'warn', event: 'exchange.rejected', fields: { kind: init.kind, from: message.from, values: message.values.length } })
      return { state, outbox, log }
    }
    const waiting = message.data[0] === 1
    if (state.done) {
      // a neighbour still waiting (it began after this peer's exchange ended)
      if (waiting) outbox.push(copy(state, false))
      return { state, outbox, log }
    }
    if (waiting && !(state.answered[slot] ?? false)) {
      state.answered[slot] = true
      outbox.push(copy(state, true))
    }
    state.heard[slot] = Float64Array.from(message.values)
    if (state.heard.every((vector) => vector !== null)) state.done = true
    return { state, outbox, log }
  },

  round: () => 0,
  done: (state) => state.done,
  result: (state) => state.heard.map((vector) => vector === null ? null : Float64Array.from(vector))
}
