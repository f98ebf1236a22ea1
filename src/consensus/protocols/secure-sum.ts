import { GraphDisconnectedError, SumIncompleteError } from '../errors.ts'
import { addInto, decodeVector, encodeVector, fromBytes, LIMBS, toBytes } from './fixed-point.ts'
import { addEdgeMask, createMaskSeeds, edgeMask, SEED_BYTES, seedFor, type MaskSeeds } from './mask-seeds.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage, Rng } from '../types.ts'

/**
 * Exact sum of a vector over the members of a federation, such that no member's own vector is ever
 * visible.
 *
 * Masks: every edge between members has one mask per sum, r_e = PRG(s_ij, s_ji, kind), from the two
 * 32-byte seeds its ends drew and sent each other privately, once per job (see mask-seeds.ts); the end
 * with the lower index adds it, the other subtracts it: c_i = enc(v_i) + sum_j +-r_ij (mod 2^128, fixed
 * point, see fixed-point.ts). The masks cancel in the sum over all members, exactly; a single c_i
 * cannot be told from uniform by anyone who lacks the seeds of one of its edges (computationally: the
 * masks are a keyed stream, not a one-time pad; mask-seeds.ts gives the argument). A neighbour holds
 * only the seeds of its own edge, so a member with two or more neighbours is hidden from each of them;
 * all of a member's neighbours together can recover its value, and a member with a single neighbour
 * is visible to it (start() logs a warning).
 *
 * Seeds' round, only where a seed is missing (the job's first sum, or an edge no earlier sum had):
 * round 0's `${kind}.mask` message carries this peer's seed for the edge (a lost one is asked for
 * again at the round's deadline), and the flood starts in round 1. Where every seed is known, the
 * contribution is formed and sent at once: the flood starts in round 0.
 *
 * Then the contributions flood: every round a member sends each neighbour the contributions that the
 * neighbour's last report says it lacks (every flood message carries a bitmap of the origins its
 * sender knows), so each contribution crosses each link about once and one lost in flight is sent
 * again a round later. (Re-broadcasting everything known every round would be simpler, but moves
 * m vectors over every link every round: quadratic in the federation's size.) A member advances a
 * round when every neighbour's message of that round (or a later one) is in, or at the round's
 * deadline; a neighbour whose report is complete has sent everything this member lacks and is not
 * waited for (if this member still lacks something then, a message was lost: it waits for the
 * deadline). A member is done as soon as it knows every contribution (its total is exact then) and
 * has sent one round with that complete report, which gives every neighbour whatever it still lacks:
 * without loss a member finishes after its eccentricity in ticks (the diameter at most; one more for
 * a seed round; see secureSumRounds) and goes on to the job's next phase while its neighbours may
 * still be finishing. A finished machine keeps answering a neighbour that lags behind (see
 * assistSecureSum), so a lost final message costs a round, not the sum.
 *
 * A member waits in the flood's first round for every neighbour's first message (one may still be
 * finishing the job's previous phase), as it waits for seeds, without counting rounds towards giving
 * up. A member that never answers (dead, or cut off) stalls the sum there: leave it out of `members`
 * instead. Non-members take no part and relay nothing; the members must induce a connected subgraph.
 */
export interface SecureSumInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  /** message kind; the seeds travel as `${kind}.mask` (default 'secure-sum') */
  kind?: string
  /** seeds come from here; a real peer passes a cryptographic keystream, a simulation a seeded rng */
  rng: Rng
  /** the job's mask seeds, shared by its sums (default: this sum's own, exchanged in its round 0) */
  seeds?: MaskSeeds
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
  readonly seeds: MaskSeeds
  /** this peer's seed for each neighbour slot (sent in round 0 where the neighbour lacks it) */
  readonly seedsOut: Uint8Array[]
  /** each neighbour slot's edge mask for this sum (null: the neighbour's seed is not in yet) */
  readonly masks: Array<Uint32Array | null>
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
  /** per neighbour slot: the latest flood round heard from it (-1 before any) */
  readonly lastHeard: Int32Array
  /** the contribution is formed and flooding: from round 1 after a seeds' round, from round 0 without one */
  flooding: boolean
  firstFloodRound: number
  sentComplete: boolean
  done: boolean
  /** per neighbour slot: flood messages heard from it, still incomplete, after this peer was done */
  readonly requestsAfterDone: Int32Array
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
  const kind = init.kind ?? 'secure-sum'
  const seeds = init.seeds ?? createMaskSeeds()
  const seedsOut = slots.map((node) => seedFor(seeds, node, init.rng))
  return {
    graph,
    self: init.self,
    job: init.job,
    kind,
    length,
    rng: init.rng,
    memberFlags,
    memberCount,
    slots,
    round: 0,
    seeds,
    seedsOut,
    masks: slots.map((node) => edgeMask(seeds, init.self, node, kind, length * LIMBS)),
    value: encodeVector(init.value),
    known: Array.from({ length: peers }, () => null),
    knownCount: 0,
    lastProgress: 0,
    lastGrowth: 0,
    reported: slots.map(() => new Uint8Array(bitmapBytes(peers))),
    reportedCount: new Int32Array(slots.length),
    inFlight: slots.map(() => new Set<number>()),
    lastHeard: new Int32Array(slots.length).fill(-1),
    flooding: false,
    firstFloodRound: 0,
    sentComplete: false,
    done: false,
    requestsAfterDone: new Int32Array(slots.length),
    total: null,
    rejected: 0
  }
}

function name (state: SecureSumState, node: number): string {
  return state.graph.names[node] as string
}

/** The flag byte of a message: the sender holds the recipient's seed (mask messages) or complete report (flood messages). */
const HOLDS_YOURS = 1
const FLAG_BYTES = 1

/**
 * Mask message to one neighbour: [u8 flags][this peer's 32-byte seed for the edge]. A neighbour that
 * receives a seed without the flag lacks ours and gets it back; one that has the flag does not answer,
 * so lost seeds are made good without two peers ever echoing each other.
 */
function maskMessage (state: SecureSumState, slot: number): ConsensusMessage {
  const data = new Uint8Array(FLAG_BYTES + SEED_BYTES)
  if (state.masks[slot] !== null) data[0] = HOLDS_YOURS
  data.set(state.seedsOut[slot] as Uint8Array, FLAG_BYTES)
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

/**
 * Every neighbour has been heard for the current round, or has reported complete: a neighbour sends
 * its complete report in a round that carries everything our last report lacked, so it has nothing
 * more for us (it may have finished the sum and moved on).
 */
function roundComplete (state: SecureSumState): boolean {
  let heard = false
  for (let slot = 0; slot < state.slots.length; slot++) {
    if ((state.lastHeard[slot] as number) >= state.round) {
      heard = true
      continue
    }
    if ((state.reportedCount[slot] as number) === state.memberCount) continue
    return false
  }
  // An incomplete member whose neighbours all reported complete without giving it everything lost a
  // message: it waits for the deadline (which asks them again) rather than spin through empty rounds.
  return heard || complete(state)
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
  return state.masks.every((mask) => mask !== null)
}

/**
 * Forms the masked contribution and starts the flood: in round 1 after a seeds' round (round 0), in
 * round 0 when every seed was known (so that the sum counts no round in which it sent nothing).
 */
function beginFlood (state: SecureSumState, outbox: ConsensusMessage[], afterSeeds: boolean): void {
  const contribution = Uint32Array.from(state.value)
  state.masks.forEach((mask, slot) => { addEdgeMask(contribution, mask as Uint32Array, state.self, state.slots[slot] as number) })
  learn(state, state.self, contribution)
  state.round = afterSeeds ? 1 : 0
  state.firstFloodRound = state.round
  state.flooding = true
  sendRound(state, outbox)
}

/**
 * One flood round's messages. The first round sent with the complete report ends the sum here: it
 * carries each neighbour every contribution its last report lacked (or that went out the round
 * before), so a neighbour needs nothing more from this peer unless a message is lost, which the
 * finished machine makes good when the neighbour asks (assistSecureSum).
 */
function sendRound (state: SecureSumState, outbox: ConsensusMessage[]): void {
  for (let slot = 0; slot < state.slots.length; slot++) outbox.push(floodMessage(state, slot))
  if (complete(state)) {
    state.sentComplete = true
    state.done = true
  }
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
  if (complete(state) && state.sentComplete) {
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

function maskFlags (message: ConsensusMessage): number | string {
  const maskBytes = FLAG_BYTES + SEED_BYTES
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
    const flags = maskFlags(message)
    if (typeof flags === 'string') return reject(state, log, message, flags)
    if (state.masks[slot] === null) {
      const node = state.slots[slot] as number
      if (!state.seeds.received.has(node)) state.seeds.received.set(node, message.data.slice(FLAG_BYTES))
      state.masks[slot] = edgeMask(state.seeds, state.self, node, state.kind, state.length * LIMBS)
    }
    // The neighbour lacks our seed: the first one or its answer was lost. Send it again.
    if (flags !== HOLDS_YOURS) outbox.push(maskMessage(state, slot))
    if (!state.flooding && masksReady(state)) beginFlood(state, outbox, true)
    return
  }
  if (!Number.isInteger(message.round) || message.round < 0) return reject(state, log, message, `flood message for round ${message.round}`)
  const content = parseFlood(state, message)
  if (typeof content === 'string') return reject(state, log, message, content)
  recordReport(state, slot, content.reported)
  for (const [origin, contribution] of content.entries) learn(state, origin, contribution)
  if (message.round > (state.lastHeard[slot] as number)) state.lastHeard[slot] = message.round
}

/**
 * A finished sum still answers a neighbour that lags behind (its messages for this sum keep coming,
 * possibly while this peer is in the job's next phase): the seed it may have missed, or the
 * contributions its last report lacks, with our complete report. Without this, a peer whose last
 * messages were lost would wait for neighbours that have moved on. A neighbour that reports complete
 * needs nothing and gets no answer, so two finished machines never echo each other.
 */
export function assistSecureSum (state: SecureSumState, message: ConsensusMessage): ConsensusMessage[] {
  if (message.job !== state.job) return []
  const slot = slotOf(state, message.from)
  if (slot < 0) return []
  if (message.kind === `${state.kind}.mask`) return maskFlags(message) === 0 ? [maskMessage(state, slot)] : []
  if (message.kind !== state.kind) return []
  const content = parseFlood(state, message)
  if (typeof content === 'string') return []
  recordReport(state, slot, content.reported)
  if ((state.reportedCount[slot] as number) === state.memberCount) return []
  // The first request after this peer finished may have crossed its last round in flight: answer it
  // with what that round did not carry, if anything. A request from a neighbour that holds our
  // complete report and still lacks contributions, or a second one, means that something was lost:
  // send everything it lacks again.
  const again = content.holdsOurCompleteReport || (state.requestsAfterDone[slot] as number) > 0
  state.requestsAfterDone[slot] = (state.requestsAfterDone[slot] as number) + 1
  if (again) (state.inFlight[slot] as Set<number>).clear()
  const reply = floodMessage(state, slot)
  if (!again && (state.inFlight[slot] as Set<number>).size === 0) return []
  return [{ ...reply, round: message.round }]
}

export const secureSumProtocol: Protocol<SecureSumState, Float64Array> = {
  start (state) {
    const log: LogRecord[] = []
    if (state.slots.length === 1 && state.memberCount > 2) {
      log.push({ level: 'warn', event: 'secure-sum.single-neighbour', fields: { kind: state.kind, neighbour: name(state, state.slots[0] as number), reason: 'the only neighbour holds both masks of this peer and can recover its value' } })
    }
    // seeds only to the neighbours whose seed this peer lacks; with every seed known (a later sum of
    // the job), the contribution goes out at once
    const outbox: ConsensusMessage[] = []
    state.masks.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
    if (masksReady(state)) beginFlood(state, outbox, false)
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
      if (!state.flooding) {
        // Still missing seeds: ask again by sending ours, without the flag, to whoever has not sent
        // theirs. A neighbour that lacks ours asks us in the same way.
        state.masks.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
      } else if (state.round === state.firstFloodRound && !complete(state) && state.lastHeard.some((round) => round < 0)) {
        // A neighbour not heard from in this sum yet may still be in the job's previous phase (with
        // every seed known, this peer sent its contribution as it entered the sum): wait for it as the
        // seeds' round waits, without counting rounds towards giving up, and send the first round again
        // to every neighbour (to the unheard ones in full), in case it was lost.
        state.lastHeard.forEach((round, slot) => {
          if (round < 0) (state.inFlight[slot] as Set<number>).clear()
          outbox.push(floodMessage(state, slot))
        })
      } else {
        advanceFlood(state, outbox)
      }
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.job || (message.kind !== state.kind && message.kind !== `${state.kind}.mask`)) return { state, outbox, log }
    receive(state, message, outbox, log)
    // messages of later rounds may already have arrived: advance as far as they allow
    while (!state.done && state.flooding && roundComplete(state)) advanceFlood(state, outbox)
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
 * Ticks a secure sum takes without losses when every member starts it together: one flood tick per hop
 * of the diameter (the farthest contribution is then everywhere), and one more for the seeds' round
 * where seeds are exchanged (`seeded`: the job's first sum). Takes the graph (its diameter is computed,
 * and cached) or the diameter itself.
 */
export function secureSumRounds (graphOrDiameter: Graph | number, seeded = true): number {
  const diameter = typeof graphOrDiameter === 'number' ? graphOrDiameter : graphDiameter(graphOrDiameter)
  return seeded ? diameter + 1 : diameter
}
