import { GraphDisconnectedError, SumIncompleteError } from '../errors.ts'
import { addInto, decodeVector, encodeVector, fromBytes, LIMBS, randomRingVector, subtractInto, toBytes } from './fixed-point.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage, Rng } from '../types.ts'

/**
 * Exact sum of a vector over the members of a federation, such that no member's own vector is ever
 * visible.
 *
 * Round 0: member i sends each member neighbour j, privately, a fresh uniformly random ring vector r_ij
 * (the `${kind}.mask` message; a lost one is asked for again at the round's deadline). With its
 * neighbours' masks in hand it forms its contribution
 * c_i = enc(v_i) - sum_j r_ij + sum_j r_ji (mod 2^128, fixed point, see fixed-point.ts). The masks
 * cancel in the sum over all members, exactly; a single c_i is uniformly distributed to anyone who
 * lacks one of the masks it contains. A neighbour holds only the two masks of its own edge, so a member
 * with two or more neighbours is hidden from each of them; all of a member's neighbours together can
 * recover its value, and a member with a single neighbour is visible to it (start() logs a warning).
 *
 * Then the contributions flood: every round a member sends each neighbour the contributions that the
 * neighbour's last report says it lacks (every flood message carries a bitmap of the origins its
 * sender knows), so each contribution crosses each link about once and one lost in flight is sent
 * again a round later. (Re-broadcasting everything known every round would be simpler, but moves
 * m vectors over every link every round: quadratic in the federation's size.) A member advances a round when every neighbour's message of that round (or a
 * later one) is in, or at the round's deadline; a neighbour whose report is complete need not be
 * heard once this member is complete too. A member is done when it knows every contribution, has
 * sent at least one complete report, and every neighbour has reported complete: with no loss every
 * member ends with the exact total after diameter + 2 ticks (see secureSumRounds). A finished
 * machine keeps answering a neighbour that lags behind (see assistSecureSum), so a lost final report
 * costs a round, not the sum.
 *
 * A member that never answers (dead, or cut off) stalls the sum in the mask round: leave it out of
 * `members` instead. Non-members take no part and relay nothing; the members must induce a connected
 * subgraph.
 */
export interface SecureSumInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  /** message kind; the masks travel as `${kind}.mask` (default 'secure-sum') */
  kind?: string
  /** masks come from here; a real peer passes a cryptographic keystream, a simulation a seeded rng */
  rng: Rng
  /** the peers whose values are summed (node indices; default every peer); self must be one */
  members?: readonly number[]
}

export interface SecureSumState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly kind: string
  /** entries in the summed vector */
  readonly length: number
  readonly rng: Rng
  /** 1 for a member node, 0 otherwise */
  readonly memberFlags: Uint8Array
  readonly memberCount: number
  /** the member neighbours, in increasing order; "slot" indexes this list */
  readonly slots: readonly number[]
  round: number
  /** masks this peer sent, per neighbour slot */
  readonly masksOut: Uint32Array[]
  readonly masksIn: Array<Uint32Array | null>
  /** enc(v_i): never leaves the machine */
  readonly value: Uint32Array
  /** contributions known, by origin node */
  readonly known: Array<Uint32Array | null>
  knownCount: number
  /** per neighbour slot: which origins it reported knowing */
  readonly reported: Uint8Array[]
  readonly reportedCount: Int32Array
  /** per neighbour slot: origins sent to it in the previous round (in flight) */
  readonly inFlight: Array<Set<number>>
  /** per neighbour slot: the latest flood round heard from it (0 before any) */
  readonly lastHeard: Int32Array
  sentComplete: boolean
  done: boolean
  total: Float64Array | null
  rejected: number
  /** contributions and reports known at the last flood round that learnt something, and that round */
  lastProgress: number
  lastGrowth: number
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

function memberFlagsOf (graph: Graph, members: readonly number[] | undefined): Uint8Array {
  const n = graph.names.length
  const flags = new Uint8Array(n)
  if (members === undefined) return flags.fill(1)
  for (const member of members) {
    if (!Number.isInteger(member) || member < 0 || member >= n) throw new RangeError(`member ${member} is not a node of the graph`)
    flags[member] = 1
  }
  return flags
}

/** Whether the members reach each other through members only. */
function membersConnected (graph: Graph, flags: Uint8Array, start: number, count: number): boolean {
  const seen = new Uint8Array(flags.length)
  seen[start] = 1
  const queue = [start]
  for (let head = 0; head < queue.length; head++) {
    for (const other of graph.neighbours[queue[head] as number] ?? []) {
      if (flags[other] === 1 && seen[other] === 0) {
        seen[other] = 1
        queue.push(other)
      }
    }
  }
  return queue.length === count
}

const connectivityChecked = new WeakMap<Graph, boolean>()

export function createSecureSum (init: SecureSumInit): SecureSumState {
  const { graph } = init
  const adjacent = graph.neighbours[init.self]
  if (adjacent === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const memberFlags = memberFlagsOf(graph, init.members)
  if (memberFlags[init.self] !== 1) throw new RangeError(`peer ${graph.names[init.self]} runs a secure sum it is not a member of`)
  let memberCount = 0
  for (const flag of memberFlags) memberCount += flag
  const everyone = init.members === undefined
  // the whole graph's connectivity is the same for every peer: check it once per graph
  if (!everyone || connectivityChecked.get(graph) !== true) {
    if (!membersConnected(graph, memberFlags, init.self, memberCount)) {
      throw new GraphDisconnectedError(`the members of the secure sum ${init.kind ?? 'secure-sum'} do not form a connected graph: their contributions cannot reach every member`)
    }
    if (everyone) connectivityChecked.set(graph, true)
  }
  const slots = adjacent.filter((node) => memberFlags[node] === 1)
  const peers = graph.names.length
  const length = init.value.length
  return {
    graph,
    self: init.self,
    job: init.job,
    kind: init.kind ?? 'secure-sum',
    length,
    rng: init.rng,
    memberFlags,
    memberCount,
    slots,
    round: 0,
    masksOut: slots.map(() => randomRingVector(init.rng, length)),
    masksIn: slots.map(() => null),
    value: encodeVector(init.value),
    known: Array.from({ length: peers }, () => null),
    knownCount: 0,
    lastProgress: 0,
    lastGrowth: 0,
    reported: slots.map(() => new Uint8Array(bitmapBytes(peers))),
    reportedCount: new Int32Array(slots.length),
    inFlight: slots.map(() => new Set<number>()),
    lastHeard: new Int32Array(slots.length),
    sentComplete: false,
    done: false,
    total: null,
    rejected: 0
  }
}

function name (state: SecureSumState, node: number): string {
  return state.graph.names[node] as string
}

/** The flag byte of a message: the sender holds the recipient's mask (mask messages) or complete report (flood messages). */
const HOLDS_YOURS = 1
const FLAG_BYTES = 1

/**
 * Mask message to one neighbour: [u8 flags][the mask, 16 bytes per vector entry]. A neighbour that
 * receives a mask without the flag lacks ours and gets it back; one that has the flag does not answer,
 * so lost masks are made good without two peers ever echoing each other.
 */
function maskMessage (state: SecureSumState, slot: number): ConsensusMessage {
  const mask = state.masksOut[slot] as Uint32Array
  const data = new Uint8Array(FLAG_BYTES + mask.length * 4)
  if (state.masksIn[slot] !== null) data[0] = HOLDS_YOURS
  data.set(toBytes(mask), FLAG_BYTES)
  return {
    job: state.job,
    kind: `${state.kind}.mask`,
    round: 0,
    from: name(state, state.self),
    to: name(state, state.slots[slot] as number),
    values: new Float64Array(0),
    data
  }
}

/**
 * Flood message to one neighbour: [u8 flags][bitmap of known origins][u32 count][(u32 origin,
 * 16 bytes per vector entry)...], little-endian.
 */
function floodMessage (state: SecureSumState, slot: number): ConsensusMessage {
  const peers = state.graph.names.length
  const reported = state.reported[slot] as Uint8Array
  const previous = state.inFlight[slot] as Set<number>
  const sending: number[] = []
  for (let origin = 0; origin < peers; origin++) {
    if (state.known[origin] !== null && !hasBit(reported, origin) && !previous.has(origin)) sending.push(origin)
  }
  state.inFlight[slot] = new Set(sending)
  const entryBytes = 4 + state.length * LIMBS * 4
  const bitmapLength = bitmapBytes(peers)
  const data = new Uint8Array(FLAG_BYTES + bitmapLength + 4 + sending.length * entryBytes)
  const view = new DataView(data.buffer)
  if ((state.reportedCount[slot] as number) === state.memberCount) data[0] = HOLDS_YOURS
  const bitmap = data.subarray(FLAG_BYTES, FLAG_BYTES + bitmapLength)
  for (let origin = 0; origin < peers; origin++) if (state.known[origin] !== null) setBit(bitmap, origin)
  view.setUint32(FLAG_BYTES + bitmapLength, sending.length, true)
  let offset = FLAG_BYTES + bitmapLength + 4
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
    to: name(state, state.slots[slot] as number),
    values: new Float64Array(0),
    data
  }
}

function complete (state: SecureSumState): boolean {
  return state.knownCount === state.memberCount
}

function neighboursComplete (state: SecureSumState): boolean {
  for (let slot = 0; slot < state.reportedCount.length; slot++) if ((state.reportedCount[slot] as number) < state.memberCount) return false
  return true
}

/** Every neighbour has been heard for the current round, or has nothing left to exchange with us. */
function roundComplete (state: SecureSumState): boolean {
  const selfComplete = complete(state)
  for (let slot = 0; slot < state.slots.length; slot++) {
    if ((state.lastHeard[slot] as number) >= state.round) continue
    if (selfComplete && (state.reportedCount[slot] as number) === state.memberCount) continue
    return false
  }
  return true
}

function learn (state: SecureSumState, origin: number, contribution: Uint32Array): void {
  if (state.known[origin] !== null) return
  state.known[origin] = contribution
  state.knownCount++
  if (complete(state)) {
    const total = new Uint32Array(state.length * LIMBS)
    for (const part of state.known) if (part !== null) addInto(total, part)
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
  for (let slot = 0; slot < state.slots.length; slot++) outbox.push(floodMessage(state, slot))
  if (complete(state)) state.sentComplete = true
}

/**
 * Flood rounds a sum may go without learning anything new before it gives up: far more than a
 * contribution needs to cross the graph even when messages are lost, so that only a member gone for
 * good (which an exact sum cannot do without) ends it.
 */
export function floodPatience (graph: Graph): number {
  return 3 * graphDiameter(graph) + 12
}

function advanceFlood (state: SecureSumState, outbox: ConsensusMessage[]): void {
  if (complete(state) && state.sentComplete && neighboursComplete(state)) {
    state.done = true
    return
  }
  const progress = state.knownCount + state.reportedCount.reduce((sum, count) => sum + count, 0)
  if (progress > state.lastProgress) {
    state.lastProgress = progress
    state.lastGrowth = state.round
  } else if (state.round - state.lastGrowth > floodPatience(state.graph)) {
    const missing = state.graph.names.filter((_, node) => state.memberFlags[node] === 1 && state.known[node] === null)
    throw new SumIncompleteError(state.kind, missing, state.round - state.lastGrowth)
  }
  state.round++
  sendRound(state, outbox)
}

function slotOf (state: SecureSumState, from: string): number {
  for (let slot = 0; slot < state.slots.length; slot++) if (state.graph.names[state.slots[slot] as number] === from) return slot
  return -1
}

function reject (state: SecureSumState, log: LogRecord[], message: ConsensusMessage, reason: string): void {
  state.rejected++
  log.push({ level: 'warn', event: 'secure-sum.message.rejected', fields: { kind: message.kind, from: message.from, round: message.round, reason } })
}

function maskFlags (state: SecureSumState, message: ConsensusMessage): number | string {
  const maskBytes = FLAG_BYTES + state.length * LIMBS * 4
  if (message.data.length !== maskBytes) return `mask message of ${message.data.length} bytes, expected ${maskBytes}`
  const flags = message.data[0] as number
  if ((flags & ~HOLDS_YOURS) !== 0) return `unknown flags ${flags}`
  return flags
}

interface FloodContent { holdsOurCompleteReport: boolean, reported: Uint8Array, entries: Array<[number, Uint32Array]> }

function parseFlood (state: SecureSumState, message: ConsensusMessage): FloodContent | string {
  const peers = state.graph.names.length
  const bitmapLength = bitmapBytes(peers)
  const header = FLAG_BYTES + bitmapLength + 4
  if (message.data.length < header) return 'truncated flood message'
  const view = new DataView(message.data.buffer, message.data.byteOffset, message.data.length)
  const count = view.getUint32(FLAG_BYTES + bitmapLength, true)
  const entryBytes = 4 + state.length * LIMBS * 4
  if (message.data.length !== header + count * entryBytes) return 'flood message of the wrong size'
  const flags = message.data[0] as number
  if ((flags & ~HOLDS_YOURS) !== 0) return `unknown flags ${flags}`
  const reported = message.data.subarray(FLAG_BYTES, FLAG_BYTES + bitmapLength)
  for (let origin = 0; origin < peers; origin++) if (hasBit(reported, origin) && state.memberFlags[origin] !== 1) return `reports a contribution from non-member ${origin}`
  for (let origin = peers; origin < bitmapLength * 8; origin++) if (hasBit(reported, origin)) return 'bitmap beyond the last peer'
  const entries: Array<[number, Uint32Array]> = []
  for (let entry = 0; entry < count; entry++) {
    const offset = header + entry * entryBytes
    const origin = view.getUint32(offset, true)
    if (origin >= peers || state.memberFlags[origin] !== 1) return `contribution from unknown origin ${origin}`
    entries.push([origin, fromBytes(message.data, offset + 4, state.length * LIMBS)])
  }
  return { holdsOurCompleteReport: flags === HOLDS_YOURS, reported, entries }
}

function recordReport (state: SecureSumState, slot: number, bitmap: Uint8Array): void {
  const reported = state.reported[slot] as Uint8Array
  // reports only grow: a late, older report must not make us resend what the neighbour has
  let count = 0
  for (let byte = 0; byte < reported.length; byte++) {
    const merged = (reported[byte] as number) | (bitmap[byte] as number)
    reported[byte] = merged
    for (let bits = merged; bits !== 0; bits &= bits - 1) count++
  }
  state.reportedCount[slot] = count
}

function receive (state: SecureSumState, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const slot = slotOf(state, message.from)
  if (slot < 0) return reject(state, log, message, 'not a member neighbour')
  if (message.to !== undefined && message.to !== name(state, state.self)) return reject(state, log, message, 'addressed to another peer')
  if (message.kind === `${state.kind}.mask`) {
    const flags = maskFlags(state, message)
    if (typeof flags === 'string') return reject(state, log, message, flags)
    if (state.masksIn[slot] === null) state.masksIn[slot] = fromBytes(message.data, FLAG_BYTES, state.length * LIMBS)
    // The neighbour lacks our mask: the first one or its answer was lost. Send it again.
    if (flags !== HOLDS_YOURS) outbox.push(maskMessage(state, slot))
    if (state.round === 0 && masksReady(state)) beginFlood(state, outbox)
    return
  }
  if (!Number.isInteger(message.round) || message.round < 1) return reject(state, log, message, `flood message for round ${message.round}`)
  const content = parseFlood(state, message)
  if (typeof content === 'string') return reject(state, log, message, content)
  recordReport(state, slot, content.reported)
  for (const [origin, contribution] of content.entries) learn(state, origin, contribution)
  if (message.round > (state.lastHeard[slot] as number)) state.lastHeard[slot] = message.round
}

/**
 * A finished sum still answers a neighbour that lags behind (its messages for this sum keep coming):
 * the mask it may have missed, the contributions its last report lacks, or our complete report that it
 * has not seen. Without this, a peer whose last messages were lost would wait for neighbours that have
 * moved on. A neighbour that is complete and holds our complete report gets no answer, so two finished
 * machines never echo each other.
 */
export function assistSecureSum (state: SecureSumState, message: ConsensusMessage): ConsensusMessage[] {
  if (message.job !== state.job) return []
  const slot = slotOf(state, message.from)
  if (slot < 0) return []
  if (message.kind === `${state.kind}.mask`) return maskFlags(state, message) === 0 ? [maskMessage(state, slot)] : []
  if (message.kind !== state.kind) return []
  const content = parseFlood(state, message)
  if (typeof content === 'string') return []
  recordReport(state, slot, content.reported)
  if ((state.reportedCount[slot] as number) === state.memberCount && content.holdsOurCompleteReport) return []
  ;(state.inFlight[slot] as Set<number>).clear()
  const reply = floodMessage(state, slot)
  return [{ ...reply, round: message.round }]
}

export const secureSumProtocol: Protocol<SecureSumState, Float64Array> = {
  start (state) {
    const log: LogRecord[] = []
    if (state.slots.length === 1 && state.memberCount > 2) {
      log.push({ level: 'warn', event: 'secure-sum.single-neighbour', fields: { kind: state.kind, neighbour: name(state, state.slots[0] as number), reason: 'the only neighbour holds both masks of this peer and can recover its value' } })
    }
    const outbox = state.masksOut.map((_, slot) => maskMessage(state, slot))
    if (outbox.length === 0) {
      // a federation of one: the contribution is the value itself
      beginFlood(state, [])
      state.done = true
    }
    return { state, outbox, log }
  },

  step (state, input: MachineInput): StepResult<SecureSumState> {
    // a neighbour moving on to a later phase changes nothing here: this machine does not wait on it
    if (input.type === 'moved-on') return { state, outbox: [], log: [] }
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) {
      if (input.type === 'message') outbox.push(...assistSecureSum(state, input.message))
      return { state, outbox, log }
    }
    if (input.type === 'deadline') {
      if (input.round !== state.round) return { state, outbox, log }
      if (state.round === 0) {
        // Still missing masks: ask again by sending ours, without the flag, to whoever has not sent
        // theirs. A neighbour that lacks ours asks us in the same way.
        state.masksIn.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
      } else {
        advanceFlood(state, outbox)
      }
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.job || (message.kind !== state.kind && message.kind !== `${state.kind}.mask`)) return { state, outbox, log }
    receive(state, message, outbox, log)
    // messages of later rounds may already have arrived: advance as far as they allow
    while (!state.done && state.round > 0 && roundComplete(state)) advanceFlood(state, outbox)
    return { state, outbox, log }
  },

  round: (state) => state.round,
  done: (state) => state.done,

  result (state) {
    if (state.total === null) throw new RangeError(`the secure sum ${state.kind} has not completed`)
    return state.total
  }
}

/**
 * Ticks a secure sum takes without losses: the masks' tick, one flood tick per hop of the diameter
 * (the farthest contribution is then everywhere, with the complete reports of the peers that had it
 * first), and one for the last complete reports. Takes the graph (its diameter is computed, and
 * cached) or the diameter itself.
 */
export function secureSumRounds (graphOrDiameter: Graph | number): number {
  const diameter = typeof graphOrDiameter === 'number' ? graphOrDiameter : graphDiameter(graphOrDiameter)
  return diameter + 2
}
