import { addInto, decodeVector, encodeVector, fromBytes, LIMBS, randomRingVector, subtractInto, toBytes } from './fixed-point.ts'
import type { Graph } from './graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from './machine.ts'
import type { ConsensusMessage, Rng } from './types.ts'

/**
 * Exact sum of a vector over every peer, such that no peer's own vector is ever visible.
 *
 * Round 0: peer i sends each neighbour j, privately, a fresh uniformly random ring vector r_ij. With its
 * neighbours' masks in hand it forms its contribution c_i = v_i - sum_j r_ij + sum_j r_ji (mod 2^128,
 * fixed point). The masks cancel in the sum over all peers; a single c_i is uniformly distributed and
 * tells nothing about v_i to anyone who lacks one of the masks, and a neighbour holds only its own.
 *
 * Then the contributions flood: every round a peer sends each neighbour the contributions that the
 * neighbour's last report says it lacks (its report is a bitmap of the origins it knows), so each
 * contribution crosses each link about once and a lost message is made good a round later. A peer
 * that knows all contributions and whose neighbours all report the same stops; every peer ends with the
 * exact total in about diameter + 2 rounds.
 */
export interface SecureSumInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  kind: string
  rng: Rng
}

export interface SecureSumState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly kind: string
  readonly length: number
  readonly rng: Rng
  round: number
  /** masks this peer sent, per neighbour slot */
  readonly masksOut: Uint32Array[]
  readonly masksIn: Array<Uint32Array | null>
  readonly value: Uint32Array
  readonly known: Array<Uint32Array | null>
  knownCount: number
  /** per neighbour slot: which origins it reported knowing */
  readonly reported: Uint8Array[]
  readonly reportedCount: Int32Array
  /** per neighbour slot: origins sent to it in the previous round (in flight) */
  readonly inFlight: Array<Set<number>>
  readonly heardThisRound: boolean[]
  sentComplete: boolean
  done: boolean
  total: Float64Array | null
  rejected: number
}

function bitmapBytes (peers: number): number {
  return Math.ceil(peers / 8)
}

function hasBit (bitmap: Uint8Array, index: number): boolean {
  return (((bitmap[index >> 3] as number) >> (index & 7)) & 1) === 1
}

function setBit (bitmap: Uint8Array, index: number): void {
  bitmap[index >> 3] = (bitmap[index >> 3] as number) | (1 << (index & 7))
}

export function createSecureSum (init: SecureSumInit): SecureSumState {
  const slots = init.graph.neighbours[init.self]
  if (slots === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const peers = init.graph.names.length
  const length = init.value.length
  return {
    graph: init.graph,
    self: init.self,
    job: init.job,
    kind: init.kind,
    length,
    rng: init.rng,
    round: 0,
    masksOut: slots.map(() => randomRingVector(init.rng, length)),
    masksIn: slots.map(() => null),
    value: encodeVector(init.value),
    known: Array.from({ length: peers }, () => null),
    knownCount: 0,
    reported: slots.map(() => new Uint8Array(bitmapBytes(peers))),
    reportedCount: new Int32Array(slots.length),
    inFlight: slots.map(() => new Set<number>()),
    heardThisRound: slots.map(() => false),
    sentComplete: false,
    done: false,
    total: null,
    rejected: 0
  }
}

function name (state: SecureSumState, node: number): string {
  return state.graph.names[node] as string
}

function maskMessage (state: SecureSumState, slot: number): ConsensusMessage {
  const neighbour = state.graph.neighbours[state.self]?.[slot] as number
  return {
    job: state.job,
    kind: `${state.kind}.mask`,
    round: 0,
    from: name(state, state.self),
    to: name(state, neighbour),
    values: new Float64Array(0),
    data: toBytes(state.masksOut[slot] as Uint32Array)
  }
}

/** Flood message to one neighbour: [bitmap of known origins][u32 count][(u32 origin, limbs)...] */
function floodMessage (state: SecureSumState, slot: number): ConsensusMessage {
  const peers = state.graph.names.length
  const neighbour = state.graph.neighbours[state.self]?.[slot] as number
  const reported = state.reported[slot] as Uint8Array
  const previous = state.inFlight[slot] as Set<number>
  const sending: number[] = []
  for (let origin = 0; origin < peers; origin++) {
    if (state.known[origin] !== null && !hasBit(reported, origin) && !previous.has(origin)) sending.push(origin)
  }
  state.inFlight[slot] = new Set(sending)
  const entryBytes = 4 + state.length * LIMBS * 4
  const bitmapLength = bitmapBytes(peers)
  const data = new Uint8Array(bitmapLength + 4 + sending.length * entryBytes)
  const view = new DataView(data.buffer)
  for (let origin = 0; origin < peers; origin++) if (state.known[origin] !== null) setBit(data, origin)
  view.setUint32(bitmapLength, sending.length, true)
  let offset = bitmapLength + 4
  for (const origin of sending) {
    view.setUint32(offset, origin, true)
    data.set(toBytes(state.known[origin] as Uint32Array), offset + 4)
    offset += entryBytes
  }
  return {
    job: state.job,
    kind: state.kind,
    round: state.round,
    from: name(state, state.self),
    to: name(state, neighbour),
    values: new Float64Array(0),
    data
  }
}

function complete (state: SecureSumState): boolean {
  return state.knownCount === state.graph.names.length
}

function neighboursComplete (state: SecureSumState): boolean {
  const peers = state.graph.names.length
  for (let slot = 0; slot < state.reportedCount.length; slot++) if ((state.reportedCount[slot] as number) < peers) return false
  return true
}

function learn (state: SecureSumState, origin: number, contribution: Uint32Array): void {
  if (state.known[origin] !== null) return
  state.known[origin] = contribution
  state.knownCount++
  if (complete(state)) {
    const total = new Uint32Array(state.length * LIMBS)
    for (const part of state.known) addInto(total, part as Uint32Array)
    state.total = decodeVector(total)
  }
}

function masksReady (state: SecureSumState): boolean {
  return state.masksIn.every((mask) => mask !== null)
}

/** Leaves round 0: forms the masked contribution and starts the flood. */
function beginFlood (state: SecureSumState, outbox: ConsensusMessage[]): void {
  const contribution = Uint32Array.from(state.value)
  for (const mask of state.masksOut) subtractInto(contribution, mask)
  for (const mask of state.masksIn) addInto(contribution, mask as Uint32Array)
  learn(state, state.self, contribution)
  state.round = 1
  sendRound(state, outbox)
}

function sendRound (state: SecureSumState, outbox: ConsensusMessage[]): void {
  for (let slot = 0; slot < state.masksOut.length; slot++) {
    state.heardThisRound[slot] = false
    outbox.push(floodMessage(state, slot))
  }
  if (complete(state)) state.sentComplete = true
}

function advanceFlood (state: SecureSumState, outbox: ConsensusMessage[]): void {
  // Done once this peer knows every contribution, has told its neighbours so, and has heard each of
  // them say the same. A neighbour that stopped first still answers (see assistSecureSum), so a lost
  // final report costs a round, not the sum.
  if (complete(state) && state.sentComplete && neighboursComplete(state)) {
    state.done = true
    return
  }
  state.round++
  sendRound(state, outbox)
}

function slotOf (state: SecureSumState, from: string): number {
  const slots = state.graph.neighbours[state.self] ?? []
  for (let slot = 0; slot < slots.length; slot++) if (state.graph.names[slots[slot] as number] === from) return slot
  return -1
}

function reject (state: SecureSumState, log: LogRecord[], message: ConsensusMessage, reason: string): void {
  state.rejected++
  log.push({ level: 'warn', event: 'secure-sum.message.rejected', fields: { kind: message.kind, from: message.from, round: message.round, reason } })
}

function receive (state: SecureSumState, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const slot = slotOf(state, message.from)
  if (slot < 0) return reject(state, log, message, 'not a neighbour')
  if (message.to !== undefined && message.to !== name(state, state.self)) return reject(state, log, message, 'addressed to another peer')
  const maskBytes = state.length * LIMBS * 4
  if (message.kind === `${state.kind}.mask`) {
    if (message.data.length !== maskBytes) return reject(state, log, message, `mask of ${message.data.length} bytes, expected ${maskBytes}`)
    if (state.masksIn[slot] === null) state.masksIn[slot] = fromBytes(message.data, 0, state.length * LIMBS)
    // The neighbour is still waiting for masks: ours may have been lost, send it again.
    if (state.round > 0) outbox.push(maskMessage(state, slot))
    if (state.round === 0 && masksReady(state)) beginFlood(state, outbox)
    return
  }
  const peers = state.graph.names.length
  const bitmapLength = bitmapBytes(peers)
  if (message.data.length < bitmapLength + 4) return reject(state, log, message, 'truncated flood message')
  const view = new DataView(message.data.buffer, message.data.byteOffset, message.data.length)
  const count = view.getUint32(bitmapLength, true)
  const entryBytes = 4 + maskBytes
  if (message.data.length !== bitmapLength + 4 + count * entryBytes) return reject(state, log, message, 'flood message of the wrong size')
  const entries: Array<[number, Uint32Array]> = []
  for (let entry = 0; entry < count; entry++) {
    const offset = bitmapLength + 4 + entry * entryBytes
    const origin = view.getUint32(offset, true)
    if (origin >= peers) return reject(state, log, message, `unknown origin ${origin}`)
    entries.push([origin, fromBytes(message.data, offset + 4, state.length * LIMBS)])
  }
  const reported = state.reported[slot] as Uint8Array
  reported.set(message.data.subarray(0, bitmapLength))
  let reportedCount = 0
  for (let origin = 0; origin < peers; origin++) if (hasBit(reported, origin)) reportedCount++
  state.reportedCount[slot] = reportedCount
  for (const [origin, contribution] of entries) learn(state, origin, contribution)
  if (message.round === state.round) state.heardThisRound[slot] = true
}

/**
 * A finished sum still answers a neighbour that lags behind (its messages for this sum keep coming):
 * the mask it may have missed, or the contributions its last report lacks. Without this, a peer whose
 * last messages were lost would wait for neighbours that have moved on.
 */
export function assistSecureSum (state: SecureSumState, message: ConsensusMessage): ConsensusMessage[] {
  if (message.job !== state.job) return []
  const slot = slotOf(state, message.from)
  if (slot < 0) return []
  if (message.kind === `${state.kind}.mask`) return [maskMessage(state, slot)]
  if (message.kind !== state.kind) return []
  const peers = state.graph.names.length
  const bitmapLength = bitmapBytes(peers)
  if (message.data.length < bitmapLength) return []
  const reported = state.reported[slot] as Uint8Array
  reported.set(message.data.subarray(0, bitmapLength))
  ;(state.inFlight[slot] as Set<number>).clear()
  const reply = floodMessage(state, slot)
  return [{ ...reply, round: message.round }]
}

export const secureSumProtocol: Protocol<SecureSumState, Float64Array> = {
  start (state) {
    const outbox = state.masksOut.map((_, slot) => maskMessage(state, slot))
    if (outbox.length === 0) {
      // a federation of one: the contribution is the value itself
      beginFlood(state, [])
      state.done = true
    }
    return { state, outbox, log: [] }
  },

  step (state, input: MachineInput): StepResult<SecureSumState> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) {
      if (input.type === 'message') outbox.push(...assistSecureSum(state, input.message))
      return { state, outbox, log }
    }
    if (input.type === 'deadline') {
      if (input.round !== state.round) return { state, outbox, log }
      if (state.round === 0) {
        // Still missing masks: send ours again to those whose mask has not arrived.
        state.masksIn.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
      } else {
        advanceFlood(state, outbox)
      }
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.job || (message.kind !== state.kind && message.kind !== `${state.kind}.mask`)) return { state, outbox, log }
    receive(state, message, outbox, log)
    if (state.round > 0 && state.heardThisRound.every(Boolean)) advanceFlood(state, outbox)
    return { state, outbox, log }
  },

  round: (state) => state.round,
  done: (state) => state.done,

  result (state) {
    if (state.total === null) throw new RangeError(`the secure sum ${state.kind} has not completed`)
    return state.total
  }
}

/** Rounds a secure sum needs without losses: the mask round, the flood, and the final report. */
export function secureSumRounds (diameter: number): number {
  return diameter + 3
}
