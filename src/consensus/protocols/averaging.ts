import { ConsensusParamsError } from '../errors.ts'
import { diameter as graphDiameter, metropolisWeights, spectralGap, type Graph, type MetropolisWeights } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * Average consensus with Metropolis weights: x_i <- W_ii x_i + sum_j W_ij x_j. Every peer converges to
 * the mean of the starting vectors, with an error falling like rho^k (rho the second-largest eigenvalue
 * modulus of W), so about ln(eps) / ln(rho) rounds (roundsForAccuracy).
 *
 * Each round a peer broadcasts its vector and advances when every neighbour's vector of that round is
 * in; a message for a later round waits, one for an earlier round is dropped. At a round's deadline a
 * missing neighbour's value is replaced by the peer's own, which keeps W stochastic but not doubly
 * stochastic in that round: the sum is no longer preserved and the agreed value drifts away from the
 * true mean. Averaging is for reliable links; push-sum (push-sum.ts) is the tool for lossy or one-way
 * ones.
 *
 * Stopping: after `rounds` rounds, or when the federation knows that every peer is within `tolerance`
 * of the mean, whichever comes first. The tolerance test is exact, not a local heuristic. Rounds are
 * cut into epochs of L = diameter rounds. At an epoch's first round every peer takes a snapshot of its
 * vector and from then on sends, with its vector, the element-wise maximum and minimum of the
 * snapshots it has heard of; after L rounds every peer holds the maximum and minimum over all peers.
 * Averaging with a stochastic W with positive weights keeps every later vector, and the mean, inside
 * that box, so when max - min <= tolerance * scale in every coordinate (scale: the largest magnitude of
 * the coordinate among the starting vectors, learned in the first epoch), every peer is within the
 * tolerance of the mean, and every peer knows it at the same round and stops there. It costs two more
 * vectors per message and up to two epochs past the first round at which the error is small enough.
 * With losses the box may miss an unheard peer's snapshot, and a peer may stop early (those that carry
 * on treat it as a missing neighbour).
 */
export interface AveragingParams {
  /** message kind */
  kind: string
  /** stop after this many rounds; null: only by tolerance */
  rounds: number | null
  /** stop when every coordinate is within tolerance * scale of the mean; null: only after `rounds` */
  tolerance: number | null
}

export const DEFAULT_AVERAGING_PARAMS: Readonly<AveragingParams> = Object.freeze({ kind: 'average', rounds: null, tolerance: null })

export function createAveragingParams (partial: Partial<AveragingParams> = {}): Readonly<AveragingParams> {
  const params = { ...DEFAULT_AVERAGING_PARAMS, ...partial }
  if (typeof params.kind !== 'string' || params.kind.length === 0 || params.kind.length > 32) throw new ConsensusParamsError('kind', 'a tag of 1 to 32 characters')
  if (params.rounds !== null && !(Number.isInteger(params.rounds) && params.rounds >= 0)) throw new ConsensusParamsError('rounds', `a non-negative integer, got ${params.rounds}`)
  if (params.tolerance !== null && !(params.tolerance > 0 && params.tolerance < 1)) throw new ConsensusParamsError('tolerance', `a number in (0, 1), got ${params.tolerance}`)
  if (params.rounds === null && params.tolerance === null) throw new ConsensusParamsError('rounds', 'give rounds, tolerance or both: nothing would stop the run')
  return Object.freeze(params)
}

export interface AveragingInit extends Partial<AveragingParams> {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  /** the epoch length of the tolerance test; default the graph's diameter (a larger bound also works) */
  diameter?: number
}

export interface AveragingState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly params: Readonly<AveragingParams>
  readonly kind: string
  /** rounds cap, Infinity when stopping only by tolerance */
  readonly rounds: number
  readonly weights: MetropolisWeights
  /** rounds per epoch of the tolerance test (0 without a tolerance) */
  readonly epoch: number
  readonly slots: Map<string, number>
  round: number
  x: Float64Array
  /** tolerance test: bounds of the current epoch's snapshots, and the per-coordinate scale */
  high: Float64Array
  low: Float64Array
  scale: Float64Array | null
  /** per neighbour slot, the values vector of its message for the current round */
  readonly heard: Array<Float64Array | null>
  heardCount: number
  /** messages of later rounds, in arrival order */
  pending: ConsensusMessage[]
  done: boolean
  /** the round at which the tolerance test passed, or null */
  convergedAt: number | null
  /** rounds closed by a deadline with some neighbour's value missing (each one moves the mean) */
  roundsWithMissing: number
  rejected: number
}

export function createAveraging (init: AveragingInit): AveragingState {
  const params = createAveragingParams({
    ...(init.kind === undefined ? {} : { kind: init.kind }),
    ...(init.rounds === undefined ? {} : { rounds: init.rounds }),
    ...(init.tolerance === undefined ? {} : { tolerance: init.tolerance })
  })
  const adjacent = init.graph.neighbours[init.self]
  if (adjacent === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const x = Float64Array.from(init.value)
  for (const entry of x) if (!Number.isFinite(entry)) throw new RangeError(`peer ${init.self} starts with a non-finite value`)
  const epoch = params.tolerance === null ? 0 : Math.max(1, init.diameter ?? graphDiameter(init.graph))
  return {
    graph: init.graph,
    self: init.self,
    job: init.job,
    params,
    kind: params.kind,
    rounds: params.rounds ?? Number.POSITIVE_INFINITY,
    weights: metropolisWeights(init.graph, init.self),
    epoch,
    slots: new Map(adjacent.map((node, slot) => [init.graph.names[node] as string, slot])),
    round: 0,
    x,
    high: Float64Array.from(x),
    low: Float64Array.from(x),
    scale: null,
    heard: adjacent.map(() => null),
    heardCount: 0,
    pending: [],
    done: params.rounds === 0,
    convergedAt: null,
    roundsWithMissing: 0,
    rejected: 0
  }
}

/** Rounds for the error to fall by a factor eps: ceil(ln(eps) / ln(rho)), from the Metropolis spectrum. */
export function roundsForAccuracy (graph: Graph, epsilon: number): number {
  if (!(epsilon > 0 && epsilon < 1)) throw new RangeError(`epsilon must be in (0, 1), got ${epsilon}`)
  const { secondLargestModulus } = spectralGap(graph)
  if (secondLargestModulus <= 0) return 1
  if (secondLargestModulus >= 1) return Number.POSITIVE_INFINITY
  return Math.ceil(Math.log(epsilon) / Math.log(secondLargestModulus))
}

function withBounds (state: AveragingState): boolean {
  return state.epoch > 0
}

function message (state: AveragingState): ConsensusMessage {
  const p = state.x.length
  const values = new Float64Array(withBounds(state) ? 3 * p : p)
  values.set(state.x)
  if (withBounds(state)) {
    values.set(state.high, p)
    values.set(state.low, 2 * p)
  }
  return { job: state.job, kind: state.kind, round: state.round, from: state.graph.names[state.self] as string, values, data: new Uint8Array(0) }
}

/** Whether the box of the epoch that just ended is within the tolerance in every coordinate. */
function boxWithinTolerance (state: AveragingState): boolean {
  const tolerance = state.params.tolerance as number
  if (state.scale === null) {
    // the first epoch's box gives every peer the same scale: the largest starting magnitude
    state.scale = state.high.map((high, index) => Math.max(Math.abs(high), Math.abs(state.low[index] as number)))
  }
  for (let index = 0; index < state.x.length; index++) {
    if ((state.high[index] as number) - (state.low[index] as number) > tolerance * (state.scale[index] as number)) return false
  }
  return true
}

function advance (state: AveragingState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const p = state.x.length
  const next = new Float64Array(p)
  const own = state.x
  const { self: selfWeight, neighbour } = state.weights
  for (let index = 0; index < p; index++) next[index] = selfWeight * (own[index] as number)
  for (let slot = 0; slot < state.heard.length; slot++) {
    const weight = neighbour[slot] as number
    const values = state.heard[slot] ?? own
    for (let index = 0; index < p; index++) next[index] = (next[index] as number) + weight * (values[index] as number)
    if (withBounds(state) && state.heard[slot] !== null) {
      for (let index = 0; index < p; index++) {
        const high = values[p + index] as number
        const low = values[2 * p + index] as number
        if (high > (state.high[index] as number)) state.high[index] = high
        if (low < (state.low[index] as number)) state.low[index] = low
      }
    }
  }
  state.x = next
  state.heard.fill(null)
  state.heardCount = 0
  state.round++
  if (withBounds(state) && state.round % state.epoch === 0) {
    if (boxWithinTolerance(state)) {
      state.convergedAt = state.round
      state.done = true
      log.push({ level: 'info', event: 'averaging.converged', fields: { round: state.round, spread: maxSpread(state) } })
      return
    }
    state.high.set(state.x)
    state.low.set(state.x)
  }
  if (state.round >= state.rounds) {
    state.done = true
    return
  }
  outbox.push(message(state))
}

function maxSpread (state: AveragingState): number {
  let spread = 0
  for (let index = 0; index < state.x.length; index++) spread = Math.max(spread, (state.high[index] as number) - (state.low[index] as number))
  return spread
}

function accept (state: AveragingState, incoming: ConsensusMessage, log: LogRecord[]): void {
  const slot = state.slots.get(incoming.from)
  const expected = withBounds(state) ? 3 * state.x.length : state.x.length
  const valid = slot !== undefined && incoming.values.length === expected && allFinite(incoming.values)
  if (!valid) {
    state.rejected++
    log.push({ level: 'warn', event: 'averaging.message.rejected', fields: { from: incoming.from, round: incoming.round, length: incoming.values.length } })
    return
  }
  if (state.heard[slot] === null) {
    state.heard[slot] = incoming.values
    state.heardCount++
  }
}

/** Takes in the buffered messages of the current round and advances while whole rounds are in. */
function drain (state: AveragingState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  while (!state.done) {
    if (state.pending.length > 0) {
      const later: ConsensusMessage[] = []
      for (const item of state.pending) {
        if (item.round === state.round) accept(state, item, log)
        else if (item.round > state.round) later.push(item)
      }
      state.pending = later
    }
    if (state.heardCount < state.heard.length) return
    advance(state, outbox, log)
  }
}

export const averagingProtocol: Protocol<AveragingState, Float64Array> = {
  start (state) {
    return { state, outbox: state.done ? [] : [message(state)], log: [] }
  },
  step (state, input: MachineInput): StepResult<AveragingState> {
    // a neighbour moving on to a later phase changes nothing here: this machine does not wait on it
    if (input.type === 'moved-on') return { state, outbox: [], log: [] }
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) return { state, outbox, log }
    if (input.type === 'deadline') {
      if (input.round === state.round) {
        state.roundsWithMissing++
        log.push({ level: 'debug', event: 'averaging.deadline', fields: { round: state.round, missing: state.heard.length - state.heardCount } })
        advance(state, outbox, log)
        drain(state, outbox, log)
      }
      return { state, outbox, log }
    }
    const incoming = input.message
    if (incoming.job !== state.job || incoming.kind !== state.kind || incoming.round < state.round) return { state, outbox, log }
    if (incoming.round === state.round) accept(state, incoming, log)
    else state.pending.push(incoming)
    drain(state, outbox, log)
    return { state, outbox, log }
  },
  round: (state) => state.round,
  done: (state) => state.done,
  result: (state) => Float64Array.from(state.x)
}

/**
 * Sums and counts by averaging (DESIGN: "sums = m times the average, with m found by the same
 * machinery"). Every peer appends an indicator to its vector, 1 at one agreed peer (the `leader`,
 * default node 0) and 0 elsewhere; its average is 1/m. Since m is an integer, m = round(1 / average)
 * is exact once the indicator is within 1/(2 m^2) of 1/m, that is with a tolerance below 1/(2 m^2)
 * for an upper bound m on the federation's size; the sums are then m times the averages.
 */
export function withCountIndicator (value: ArrayLike<number>, isLeader: boolean): Float64Array {
  const augmented = new Float64Array(value.length + 1)
  augmented.set(Array.from(value))
  augmented[value.length] = isLeader ? 1 : 0
  return augmented
}

/** Splits an averaged vector made by withCountIndicator into the sums and the count. */
export function sumViaAverage (average: Float64Array): { sum: Float64Array, count: number } {
  const p = average.length - 1
  const indicator = average[p] as number
  if (!(indicator > 0)) throw new RangeError('the count indicator has not reached this peer: average longer')
  const count = Math.round(1 / indicator)
  return { sum: average.slice(0, p).map((mean) => mean * count), count }
}

/** An averaging run whose result is read with sumViaAverage. */
export function createSumViaAverage (init: AveragingInit & { leader?: number }): AveragingState {
  const leader = init.leader ?? 0
  return createAveraging({ ...init, value: withCountIndicator(init.value, init.self === leader) })
}

function allFinite (values: Float64Array): boolean {
  for (let index = 0; index < values.length; index++) if (!Number.isFinite(values[index])) return false
  return true
}
