import { ClosingIncompleteError } from '../errors.ts'
import { bodyDigest, ByteReader, ByteWriter, signingPayload, type MessageVerifier } from '../audit/evidence.ts'
import { floodPatience } from './secure-sum.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * The closing of a job: every member's signed statement reaches every member. A statement says what the
 * member ends with (the digest of its model) and what it heard from its neighbours (receipts), so that
 * once all are in, every member can check for itself that all hold the same model and that no member
 * told two neighbours two different things. A member finishes its job only then.
 *
 * Round 0: each member broadcasts its own statement (kind `${kind}.own`), which its transport signs.
 * Rounds 1, 2, ...: each member sends each neighbour, privately, the statements it knows and the
 * neighbour's last report says it lacks, each as its author signed it (so a relay can neither forge
 * nor alter one), with a bitmap of the authors it knows. A member is done when it knows every
 * statement, has told its neighbours so, and they have all said the same. A member that never sends
 * its statement makes the closing fail (CLOSING_INCOMPLETE, naming it) rather than leave anyone
 * believing an agreement that was never checked.
 */
export interface ClosingInit {
  graph: Graph
  self: number
  job: string
  kind: string
  /** this member's statement */
  statement: Uint8Array
  /** the members taking part (node indices; default all) */
  members?: readonly number[]
  /** checks relayed statements' signatures; null in a simulation without signatures */
  verifier: MessageVerifier | null
}

export interface ClosingState {
  readonly init: ClosingInit
  readonly slots: readonly number[]
  readonly memberFlags: Uint8Array
  readonly memberCount: number
  round: number
  /** each member's statement as it signed it (this member's own: unsigned) */
  readonly known: Array<ConsensusMessage | null>
  knownCount: number
  readonly reported: Uint8Array[]
  readonly reportedCount: Int32Array
  readonly inFlight: Array<Set<number>>
  readonly lastHeard: Int32Array
  sentComplete: boolean
  done: boolean
  lastProgress: number
  lastGrowth: number
  rejected: number
}

const HOLDS_YOURS = 1
const MAX_STATEMENT_BYTES = 1 << 20

function bitmapBytes (peers: number): number { return Math.ceil(peers / 8) }
function hasBit (bitmap: Uint8Array, index: number): boolean { return (((bitmap[index >> 3] as number) >> (index & 7)) & 1) === 1 }
function setBit (bitmap: Uint8Array, index: number): void { bitmap[index >> 3] = (bitmap[index >> 3] as number) | (1 << (index & 7)) }

function ownMessage (state: ClosingState): ConsensusMessage {
  const { init } = state
  return { job: init.job, kind: `${init.kind}.own`, round: 0, from: init.graph.names[init.self] as string, values: new Float64Array(0), data: init.statement }
}

export function createClosing (init: ClosingInit): ClosingState {
  const peers = init.graph.names.length
  const memberFlags = new Uint8Array(peers)
  if (init.members === undefined) memberFlags.fill(1)
  else for (const member of init.members) memberFlags[member] = 1
  if (memberFlags[init.self] !== 1) throw new RangeError('a closing member must take part in it')
  let memberCount = 0
  for (const flag of memberFlags) memberCount += flag
  const slots = (init.graph.neighbours[init.self] ?? []).filter((node) => memberFlags[node] === 1)
  const state: ClosingState = {
    init,
    slots,
    memberFlags,
    memberCount,
    round: 0,
    known: Array.from({ length: peers }, () => null),
    knownCount: 0,
    reported: slots.map(() => new Uint8Array(bitmapBytes(peers))),
    reportedCount: new Int32Array(slots.length),
    inFlight: slots.map(() => new Set<number>()),
    lastHeard: new Int32Array(slots.length),
    sentComplete: false,
    done: false,
    lastProgress: 0,
    lastGrowth: 0,
    rejected: 0
  }
  learn(state, init.self, ownMessage(state))
  return state
}

function learn (state: ClosingState, origin: number, message: ConsensusMessage): void {
  if (state.known[origin] !== null) return
  state.known[origin] = message
  state.knownCount++
}

function complete (state: ClosingState): boolean { return state.knownCount === state.memberCount }

function floodMessage (state: ClosingState, slot: number): ConsensusMessage {
  const { graph } = state.init
  const peers = graph.names.length
  const reported = state.reported[slot] as Uint8Array
  const previous = state.inFlight[slot] as Set<number>
  const neighbour = state.slots[slot] as number
  const sending: number[] = []
  for (let origin = 0; origin < peers; origin++) {
    // this member's own statement goes out as its own signed broadcast, never relayed by itself
    if (origin === state.init.self || origin === neighbour) continue
    if (state.known[origin] !== null && !hasBit(reported, origin) && !previous.has(origin)) sending.push(origin)
  }
  state.inFlight[slot] = new Set(sending)
  const writer = new ByteWriter()
  writer.u8((state.reportedCount[slot] as number) === state.memberCount ? HOLDS_YOURS : 0)
  const bitmap = new Uint8Array(bitmapBytes(peers))
  for (let origin = 0; origin < peers; origin++) if (state.known[origin] !== null) setBit(bitmap, origin)
  writer.blob(bitmap)
  writer.u32(sending.length)
  for (const origin of sending) {
    const statement = state.known[origin] as ConsensusMessage
    writer.u32(origin)
    writer.blob(statement.data)
    writer.blob(statement.signature ?? new Uint8Array(0))
  }
  return { job: state.init.job, kind: state.init.kind, round: state.round, from: graph.names[state.init.self] as string, to: graph.names[neighbour] as string, values: new Float64Array(0), data: writer.bytes() }
}

function sendRound (state: ClosingState, outbox: ConsensusMessage[]): void {
  for (let slot = 0; slot < state.slots.length; slot++) outbox.push(floodMessage(state, slot))
  // a neighbour that still lacks this member's own statement gets it again
  const self = state.init.self
  if (state.round > 1 && state.reported.some((bitmap) => !hasBit(bitmap, self))) outbox.push(ownMessage(state))
  if (complete(state)) state.sentComplete = true
}

function neighboursComplete (state: ClosingState): boolean {
  for (let slot = 0; slot < state.slots.length; slot++) if ((state.reportedCount[slot] as number) < state.memberCount) return false
  return true
}

function roundComplete (state: ClosingState): boolean {
  const selfComplete = complete(state)
  for (let slot = 0; slot < state.slots.length; slot++) {
    if ((state.lastHeard[slot] as number) >= state.round) continue
    if (selfComplete && (state.reportedCount[slot] as number) === state.memberCount) continue
    return false
  }
  return true
}

function advance (state: ClosingState, outbox: ConsensusMessage[]): void {
  if (complete(state) && state.sentComplete && neighboursComplete(state)) {
    state.done = true
    return
  }
  const progress = state.knownCount + state.reportedCount.reduce((sum, count) => sum + count, 0)
  if (progress > state.lastProgress) {
    state.lastProgress = progress
    state.lastGrowth = state.round
  } else if (state.round - state.lastGrowth > floodPatience(state.init.graph)) {
    const missing = state.init.graph.names.filter((_, node) => state.memberFlags[node] === 1 && state.known[node] === null)
    throw new ClosingIncompleteError(missing, state.round - state.lastGrowth)
  }
  state.round++
  sendRound(state, outbox)
}

function slotOf (state: ClosingState, from: string): number {
  for (let slot = 0; slot < state.slots.length; slot++) if (state.init.graph.names[state.slots[slot] as number] === from) return slot
  return -1
}

function statementFrom (state: ClosingState, origin: number, data: Uint8Array, signature: Uint8Array): ConsensusMessage | null {
  const { init } = state
  const message: ConsensusMessage = { job: init.job, kind: `${init.kind}.own`, round: 0, from: init.graph.names[origin] as string, values: new Float64Array(0), data, ...(signature.length === 0 ? {} : { signature }) }
  if (init.verifier === null) return message
  if (signature.length === 0) return null
  return init.verifier.verify(message.from, signingPayload(message, bodyDigest(message)), signature) ? message : null
}

function receive (state: ClosingState, message: ConsensusMessage, log: LogRecord[]): void {
  const { init } = state
  const reject = (reason: string): void => {
    state.rejected++
    log.push({ level: 'warn', event: 'closing.message.rejected', fields: { from: message.from, round: message.round, reason } })
  }
  const slot = slotOf(state, message.from)
  if (slot < 0) return reject('not a member neighbour')
  if (message.kind === `${init.kind}.own`) {
    if (message.data.length > MAX_STATEMENT_BYTES) return reject('statement too large')
    if (init.verifier !== null && message.signature === undefined) return reject('unsigned statement')
    learn(state, state.slots[slot] as number, message)
    return
  }
  if (message.round < 1) return reject(`flood message for round ${message.round}`)
  const peers = init.graph.names.length
  let reported: Uint8Array
  const entries: Array<[number, ConsensusMessage]> = []
  try {
    const reader = new ByteReader(message.data)
    const flags = reader.u8()
    if ((flags & ~HOLDS_YOURS) !== 0) return reject(`unknown flags ${flags}`)
    reported = reader.blob(bitmapBytes(peers))
    if (reported.length !== bitmapBytes(peers)) return reject('bitmap of the wrong size')
    const count = reader.u32()
    if (count > peers) return reject('more statements than members')
    for (let entry = 0; entry < count; entry++) {
      const origin = reader.u32()
      const data = reader.blob(MAX_STATEMENT_BYTES)
      const signature = reader.blob(128)
      if (origin >= peers || state.memberFlags[origin] !== 1) return reject(`a statement of non-member ${origin}`)
      const statement = statementFrom(state, origin, data, signature)
      // a relayed statement that its author did not sign is the relay's doing: drop the whole message
      if (statement === null) return reject(`a statement of ${init.graph.names[origin]} whose signature does not verify`)
      entries.push([origin, statement])
    }
    if (!reader.atEnd()) return reject('trailing bytes')
  } catch (error) {
    return reject((error as Error).message)
  }
  for (let origin = 0; origin < peers; origin++) if (hasBit(reported, origin) && state.memberFlags[origin] !== 1) return reject(`reports non-member ${origin}`)
  const mine = state.reported[slot] as Uint8Array
  let count = 0
  for (let byte = 0; byte < mine.length; byte++) {
    const merged = (mine[byte] as number) | (reported[byte] as number)
    mine[byte] = merged
    for (let bits = merged; bits !== 0; bits &= bits - 1) count++
  }
  state.reportedCount[slot] = count
  for (const [origin, statement] of entries) learn(state, origin, statement)
  if (message.round > (state.lastHeard[slot] as number)) state.lastHeard[slot] = message.round
}

/** A finished closing still answers a neighbour that lags behind, as a finished masked sum does. */
function assist (state: ClosingState, message: ConsensusMessage): ConsensusMessage[] {
  const slot = slotOf(state, message.from)
  if (slot < 0 || message.job !== state.init.job) return []
  if (message.kind === `${state.init.kind}.own`) return []
  if (message.kind !== state.init.kind) return []
  const before = state.reportedCount[slot] as number
  receive(state, message, [])
  const holdsOurs = (message.data[0] as number) === HOLDS_YOURS
  if ((state.reportedCount[slot] as number) === state.memberCount && holdsOurs && before === state.memberCount) return []
  ;(state.inFlight[slot] as Set<number>).clear()
  const reply = floodMessage(state, slot)
  const out = [{ ...reply, round: message.round }]
  if (!hasBit(state.reported[slot] as Uint8Array, state.init.self)) out.push(ownMessage(state))
  return out
}

export const closingProtocol: Protocol<ClosingState, Array<ConsensusMessage | null>> = {
  start (state) {
    const outbox: ConsensusMessage[] = [ownMessage(state)]
    if (state.slots.length === 0) state.done = true
    else {
      state.round = 1
      sendRound(state, outbox)
    }
    return { state, outbox, log: [] }
  },

  step (state, input: MachineInput): StepResult<ClosingState> {
    // a neighbour moving on to a later phase changes nothing here: this machine does not wait on it
    if (input.type === 'moved-on') return { state, outbox: [], log: [] }
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) {
      if (input.type === 'message') outbox.push(...assist(state, input.message))
      return { state, outbox, log }
    }
    if (input.type === 'deadline') {
      if (input.round === state.round) advance(state, outbox)
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.init.job || (message.kind !== state.init.kind && message.kind !== `${state.init.kind}.own`)) return { state, outbox, log }
    receive(state, message, log)
    while (!state.done && roundComplete(state)) advance(state, outbox)
    return { state, outbox, log }
  },

  round: (state) => state.round,
  done: (state) => state.done,
  result: (state) => [...state.known]
}
