import { choleskyInPlace, choleskySolveInPlace } from '../../learning/linalg.ts'
import { NonFiniteError } from '../../learning/errors.ts'
import { AdmmDivergedError, AdmmParamsError } from '../errors.ts'
import { indexOf, type Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { LocalObjective } from '../../learning/objective.ts'
import type { ConsensusMessage } from '../types.ts'
import { bodyDigest, receiptOf, type Evidence, type Receipt } from '../audit/evidence.ts'
import { equalBytes } from '../sha256.ts'

/**
 * Decentralized consensus ADMM (Shi, Ling, Yuan, Wu, Yin 2014), one machine per peer.
 *
 * Round k: every peer broadcasts x_i^k. With the neighbours' x_j^k in hand it updates the dual of each
 * edge it heard on, lambda_ij += c (x_i^k - x_j^k), sets alpha_i = sum_j lambda_ij, and takes one or two
 * Newton steps, warm-started at x_i^k, on
 *   f_i(x) + <alpha_i, x> + c * sum_{j heard} || x - (x_i^k + x_j^k) / 2 ||^2.
 *
 * Duals are kept per edge, never per peer: a per-peer dual fed with a stale or missing neighbour value
 * converges to a wrong point, while per-edge duals whose both ends skip a failed edge keep
 * sum_i alpha_i = 0 and converge to the right one. Both ends must agree on whether an edge was skipped,
 * and a lost message can be seen by one end only; so each edge's dual has an owner (the end with the
 * smaller graph index), which sends its current lambda with every round message, and the other end
 * adopts the owner's value before applying the round's increment. A one-sided loss therefore costs at
 * most one round of disagreement on one edge, healed by the next message that gets through.
 *
 * Stopping is decided by the network, not an oracle: each peer keeps a counter that is 1 + the minimum
 * of its neighbours' counters while its own primal and dual residuals are below the tolerance, and 0
 * otherwise. A counter of diameter + margin proves that every peer was converged over the last rounds;
 * that peer announces `done`, and the announcement spreads one hop per round.
 */

export interface AdmmParams {
  /** ADMM penalty c, the same at both ends of every edge */
  penalty: number
  /** relative tolerance on the primal residual max_j ||x_i - x_j|| and the dual residual ||x_i^{k+1} - x_i^k|| */
  tolerance: number
  maxRounds: number
  /** Newton steps of the local subproblem per round: 1 or 2 */
  newtonSteps: number
  /** rounds beyond the graph diameter that the stop counter must reach */
  stopMargin: number
  /** consecutive silent rounds after which a neighbour is dropped from this peer's graph; 0 never */
  dropAfterRounds: number
  /** keep vectors in the round log records (for the audit log); off in large simulations */
  recordVectors: boolean
  /**
   * halve a local Newton step until the subproblem does not get worse: needed for losses that can
   * overshoot by orders of magnitude (Poisson's e^eta); costs one more pass over the peer's rows
   */
  damped: boolean
  /**
   * Bounded influence (in the spirit of ClippedGossip): a neighbour's iterate enters this peer's dual
   * update and proximal centre only as x_i + clip(x_j - x_i, clipRadius), so that one neighbour, however
   * far off, moves this peer by a bounded step per round. null: no clipping. Residuals are measured on
   * the unclipped values.
   */
  clipRadius: number | null
  /**
   * Check every neighbour's message against the protocol (values in range, a stop announced only with
   * its counter, counters and residuals consistent with what this peer sent and heard, one message per
   * round) and keep the signed messages that prove a violation.
   */
  guard: boolean
  /** largest magnitude of an iterate or dual: beyond it the masked sums that follow cannot hold it */
  valueLimit: number
}

export const DEFAULT_ADMM_PARAMS: Readonly<Omit<AdmmParams, 'penalty'>> = Object.freeze({
  tolerance: 1e-8,
  maxRounds: 2000,
  newtonSteps: 1,
  stopMargin: 2,
  dropAfterRounds: 0,
  recordVectors: false,
  damped: true,
  clipRadius: null,
  guard: true,
  valueLimit: 2 ** 58
})

export function createAdmmParams (params: Partial<AdmmParams> & { penalty: number }): AdmmParams {
  const merged: AdmmParams = { ...DEFAULT_ADMM_PARAMS, ...params }
  validateAdmmParams(merged)
  return merged
}

export function validateAdmmParams (params: AdmmParams): void {
  const positive = (field: keyof AdmmParams): void => {
    const value = params[field]
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new AdmmParamsError(field, `must be a positive finite number, got ${String(value)}`)
    }
  }
  positive('penalty')
  positive('tolerance')
  positive('maxRounds')
  if (!Number.isInteger(params.maxRounds)) throw new AdmmParamsError('maxRounds', 'must be an integer')
  if (params.newtonSteps !== 1 && params.newtonSteps !== 2 && params.newtonSteps !== 3) {
    throw new AdmmParamsError('newtonSteps', 'must be 1, 2 or 3')
  }
  if (!Number.isInteger(params.stopMargin) || params.stopMargin < 0) throw new AdmmParamsError('stopMargin', 'must be a non-negative integer')
  if (!Number.isInteger(params.dropAfterRounds) || params.dropAfterRounds < 0) throw new AdmmParamsError('dropAfterRounds', 'must be a non-negative integer')
  if (params.clipRadius !== null && !(Number.isFinite(params.clipRadius) && params.clipRadius > 0)) throw new AdmmParamsError('clipRadius', 'must be a positive number or null')
  positive('valueLimit')
}

/** The default penalty: c = sqrt(lmin(Hbar) lmax(Hbar)) / sqrt(l2(L) lmax(L)). */
export function defaultPenalty (hessianExtremes: { smallest: number, largest: number }, laplacian: { secondSmallest: number, largest: number }): number {
  const numerator = Math.sqrt(Math.max(hessianExtremes.smallest, 1e-12 * hessianExtremes.largest) * hessianExtremes.largest)
  const denominator = Math.sqrt(laplacian.secondSmallest * laplacian.largest)
  const penalty = numerator / denominator
  if (!Number.isFinite(penalty) || penalty <= 0) throw new AdmmParamsError('penalty', `the default penalty is not positive (${penalty})`)
  return penalty
}

const DONE_NONE = 0
const DONE_CONVERGED = 1
const DONE_EXHAUSTED = 2
/** An ADMM round message's values: [stop counter, done flag, primal residual, dual residual, x (p), the owned edges' duals (p each)]. */
export const ADMM_MESSAGE_HEADER = 4
const HEADER = ADMM_MESSAGE_HEADER

export interface AdmmPeer {
  job: string
  /** message kind; lets a job run several ADMM phases */
  kind: string
  graph: Graph
  self: number
  /** graph diameter, public knowledge from the federation's graph */
  diameter: number
  objective: LocalObjective
  start: Float64Array
  params: AdmmParams
}

export interface AdmmState {
  readonly peer: AdmmPeer
  round: number
  x: Float64Array
  /** per neighbour slot (aligned with graph.neighbours[self]) */
  readonly lambdas: Float64Array[]
  readonly heard: Array<Float64Array | null>
  readonly ownerLambda: Array<Float64Array | null>
  readonly heardCounter: Int32Array
  readonly lastCounter: Int32Array
  /** ||x_i - x_j|| at the last round j was heard: a lost message leaves the last known distance */
  readonly lastDistance: Float64Array
  readonly heardDone: Int8Array
  readonly silentRounds: Int32Array
  readonly active: boolean[]
  /** neighbours known to have finished (they moved on to the job's next phase): no longer waited for */
  readonly finished: boolean[]
  /**
   * Peers dropped anywhere in the federation (by index), as far as this peer knows: its own drops and
   * those its neighbours report. Every message carries the set, so it reaches every peer within the
   * diameter, and the job's later sums leave those peers out.
   */
  readonly knownDropped: Uint8Array
  /** the same set as the bitmap every message carries (kept alongside: written by markPeerDropped only) */
  readonly droppedBitmap: Uint8Array
  /** for each slot, this peer's position in that neighbour's list of owned edges, or -1 if this peer owns the edge */
  readonly positionInOwner: Int32Array
  /** for each slot this peer owns, its position in this peer's own list of owned edges, or -1 */
  readonly ownedPosition: Int32Array
  readonly ownedCount: number
  pending: ConsensusMessage[]
  stopCounter: number
  done: boolean
  converged: boolean
  primalResidual: number
  dualResidual: number
  staleMessages: number
  rejectedMessages: number
  /** rounds in which a neighbour's iterate was clipped (clipRadius) */
  clippedEdges: number
  /** this peer's own messages of the last rounds (stop counter, iterate, body digest), by round */
  readonly sent: Map<number, { counter: number, x: Float64Array, digest: Uint8Array, message: ConsensusMessage }>
  /** each neighbour's accepted messages of the last rounds (signed), by round */
  readonly received: Array<Map<number, ConsensusMessage>>
  /** per slot: the round (-1: never) and body digest of the neighbour's message this peer last used, echoed in every message */
  readonly echoRound: Int32Array
  readonly echoDigest: Uint8Array[]
  /** per slot: the body digest of the message accepted for the current round */
  readonly heardDigest: Array<Uint8Array | null>
  /** the first protocol violation a neighbour was caught in, with its proof */
  violation: Evidence | null
  /** scratch space, reused every round */
  readonly gradient: Float64Array
  readonly hessian: Float64Array
  readonly direction: Float64Array
  readonly next: Float64Array
  readonly alpha: Float64Array
  readonly center: Float64Array
  readonly trial: Float64Array
  readonly scratch: Float64Array
}

export interface AdmmResult {
  x: Float64Array
  rounds: number
  converged: boolean
  primalResidual: number
  dualResidual: number
  staleMessages: number
  rejectedMessages: number
  dropped: string[]
}

function ownedNeighbours (graph: Graph, node: number): number[] {
  return (graph.neighbours[node] ?? []).filter((other) => other > node)
}

export function createAdmmState (peer: AdmmPeer): AdmmState {
  validateAdmmParams(peer.params)
  const p = peer.objective.dimension
  if (peer.start.length !== p) throw new RangeError(`start has length ${peer.start.length}, expected ${p}`)
  const slots = peer.graph.neighbours[peer.self]
  if (slots === undefined) throw new RangeError(`peer ${peer.self} is not in the graph`)
  const positionInOwner = new Int32Array(slots.length).fill(-1)
  const ownedPosition = new Int32Array(slots.length).fill(-1)
  let ownedCount = 0
  slots.forEach((neighbour, slot) => {
    if (neighbour < peer.self) {
      positionInOwner[slot] = ownedNeighbours(peer.graph, neighbour).indexOf(peer.self)
    } else {
      ownedPosition[slot] = ownedCount++
    }
  })
  return {
    peer,
    round: 0,
    x: Float64Array.from(peer.start),
    lambdas: slots.map(() => new Float64Array(p)),
    heard: slots.map(() => null),
    ownerLambda: slots.map(() => null),
    heardCounter: new Int32Array(slots.length),
    lastCounter: new Int32Array(slots.length),
    lastDistance: new Float64Array(slots.length).fill(Number.POSITIVE_INFINITY),
    heardDone: new Int8Array(slots.length),
    silentRounds: new Int32Array(slots.length),
    active: slots.map(() => true),
    finished: slots.map(() => false),
    knownDropped: new Uint8Array(peer.graph.names.length),
    droppedBitmap: new Uint8Array(Math.ceil(peer.graph.names.length / 8)),
    positionInOwner,
    ownedPosition,
    ownedCount,
    pending: [],
    stopCounter: 0,
    done: false,
    converged: false,
    primalResidual: Number.POSITIVE_INFINITY,
    dualResidual: Number.POSITIVE_INFINITY,
    staleMessages: 0,
    rejectedMessages: 0,
    clippedEdges: 0,
    sent: new Map(),
    received: slots.map(() => new Map()),
    echoRound: new Int32Array(slots.length).fill(-1),
    echoDigest: slots.map(() => new Uint8Array(32)),
    heardDigest: slots.map(() => null),
    violation: null,
    gradient: new Float64Array(p),
    hessian: new Float64Array(p * p),
    direction: new Float64Array(p),
    next: new Float64Array(p),
    alpha: new Float64Array(p),
    center: new Float64Array(p),
    trial: new Float64Array(p),
    scratch: new Float64Array(p)
  }
}

function outgoing (state: AdmmState, doneFlag: number): ConsensusMessage {
  const { peer } = state
  const p = peer.objective.dimension
  const values = new Float64Array(HEADER + p * (1 + state.ownedCount))
  values[0] = state.stopCounter
  values[1] = doneFlag
  values[2] = Number.isFinite(state.primalResidual) ? state.primalResidual : -1
  values[3] = Number.isFinite(state.dualResidual) ? state.dualResidual : -1
  values.set(state.x, HEADER)
  const slots = peer.graph.neighbours[peer.self] ?? []
  for (let slot = 0; slot < slots.length; slot++) {
    const position = state.ownedPosition[slot] ?? -1
    if (position >= 0) values.set(state.lambdas[slot] as Float64Array, HEADER + p * (1 + position))
  }
  const message: ConsensusMessage = {
    job: peer.job,
    kind: peer.kind,
    round: state.round,
    from: peer.graph.names[peer.self] as string,
    values,
    data: messageData(state)
  }
  if (peer.params.guard) {
    state.sent.set(state.round, { counter: state.stopCounter, x: Float64Array.from(state.x), digest: bodyDigest(message), message })
    state.sent.delete(state.round - historyRounds(peer))
  }
  return message
}

/** Rounds of its own and its neighbours' messages a peer keeps to check what its neighbours claim. */
function historyRounds (peer: AdmmPeer): number {
  return peer.diameter + peer.params.stopMargin + 4
}

/** Bytes per neighbour slot of a message's echo: the round (plus one; 0 for never) and the body digest of the last message used. */
const ECHO_BYTES = 36

/**
 * A round message's data: the dropped-peer bitmap, then for each of the sender's neighbours (in graph
 * order) the round and body digest of the last message of that neighbour the sender used. The echo
 * commits the sender to what it heard, so that its stop counter and residuals can be checked by each
 * neighbour against that neighbour's own message.
 */
function messageData (state: AdmmState): Uint8Array {
  const bitmapLength = state.droppedBitmap.length
  const slots = state.echoRound.length
  const data = new Uint8Array(bitmapLength + slots * ECHO_BYTES)
  data.set(state.droppedBitmap)
  const view = new DataView(data.buffer)
  for (let slot = 0; slot < slots; slot++) {
    const offset = bitmapLength + slot * ECHO_BYTES
    view.setUint32(offset, (state.echoRound[slot] as number) + 1, true)
    data.set(state.echoDigest[slot] as Uint8Array, offset + 4)
  }
  return data
}

/** The parts of a consensus-ADMM round message, as its sender laid them out; null if malformed. */
export interface AdmmMessageFields {
  counter: number
  done: number
  x: Float64Array
  /** peers the sender knows were dropped */
  dropped: (node: number) => boolean
  /** the sender's echo for one of its neighbours: the round it last used that neighbour's message, and its digest */
  echo: (neighbour: number) => { round: number, digest: Uint8Array } | null
}

export function readAdmmMessage (graph: Graph, dimension: number, message: ConsensusMessage): AdmmMessageFields | null {
  const sender = indexOf(graph, message.from)
  const slots = graph.neighbours[sender]
  if (sender < 0 || slots === undefined) return null
  const expected = HEADER + dimension * (1 + ownedNeighbours(graph, sender).length)
  const bitmapLength = Math.ceil(graph.names.length / 8)
  if (message.values.length !== expected || message.data.length !== bitmapLength + slots.length * ECHO_BYTES) return null
  return new AdmmFields(message, dimension, slots, bitmapLength)
}

/** (A class rather than closures: a peer reads every neighbour's message several times a round.) */
class AdmmFields implements AdmmMessageFields {
  readonly counter: number
  readonly done: number
  readonly x: Float64Array
  private readonly data: Uint8Array

  constructor (message: ConsensusMessage, dimension: number, private readonly slots: readonly number[], private readonly bitmapLength: number) {
    this.counter = message.values[0] as number
    this.done = message.values[1] as number
    this.x = message.values.subarray(HEADER, HEADER + dimension)
    this.data = message.data
  }

  dropped (node: number): boolean {
    return (((this.data[node >> 3] as number) >> (node & 7)) & 1) === 1
  }

  echo (neighbour: number): { round: number, digest: Uint8Array } | null {
    const slot = this.slots.indexOf(neighbour)
    if (slot < 0) return null
    const offset = this.bitmapLength + slot * ECHO_BYTES
    const data = this.data
    const round = ((data[offset] as number) | ((data[offset + 1] as number) << 8) | ((data[offset + 2] as number) << 16) | ((data[offset + 3] as number) << 24)) >>> 0
    return round === 0 ? null : { round: round - 1, digest: data.slice(offset + 4, offset + 4 + 32) }
  }
}

/** What every check of a neighbour's claims needs to know of the job. */
export interface AdmmRules {
  graph: Graph
  dimension: number
  /** diameter + stop margin: the counter that proves the stop */
  horizon: number
  tolerance: number
  valueLimit: number
}

export function admmRules (peer: AdmmPeer): AdmmRules {
  return { graph: peer.graph, dimension: peer.objective.dimension, horizon: peer.diameter + peer.params.stopMargin, tolerance: peer.params.tolerance, valueLimit: peer.params.valueLimit }
}

/** A message's values out of range (a single message proves it). */
export function rangeViolation (rules: AdmmRules, message: ConsensusMessage): string | null {
  const values = message.values
  const counter = values[0] as number
  const done = values[1] as number
  if (!Number.isInteger(counter) || counter < 0 || counter > 2 ** 31) return `a stop counter of ${counter}`
  if (done !== 0 && done !== 1 && done !== 2) return `a done flag of ${done}`
  for (let index = HEADER; index < values.length; index++) {
    if (!(Math.abs(values[index] as number) < rules.valueLimit)) return `value ${index - HEADER} is ${values[index]}, beyond ${rules.valueLimit}`
  }
  return null
}

/** A stop announced without the counter that proves it. */
export function stopFlagViolation (rules: AdmmRules, message: ConsensusMessage): string | null {
  const fields = readAdmmMessage(rules.graph, rules.dimension, message)
  if (fields === null) return null
  return fields.done === DONE_CONVERGED && fields.counter < rules.horizon ? `announces the stop with a counter of ${fields.counter}, below ${rules.horizon}` : null
}

/**
 * A stop counter above what the witness allows: the sender says it last used `witness` (a message of
 * the witness's author, at most horizon - 1 rounds before) and claims a counter above 1 + that message's.
 */
export function counterViolation (rules: AdmmRules, message: ConsensusMessage, witness: ConsensusMessage): string | null {
  const fields = readAdmmMessage(rules.graph, rules.dimension, message)
  const witnessFields = readAdmmMessage(rules.graph, rules.dimension, witness)
  if (fields === null || witnessFields === null) return null
  const author = indexOf(rules.graph, witness.from)
  const echo = fields.echo(author)
  if (echo === null || echo.round !== witness.round || witness.job !== message.job || witness.kind !== message.kind) return null
  if (!equalBytes(echo.digest, bodyDigest(witness)) || fields.dropped(author)) return null
  const computedAt = message.round - 1
  if (computedAt - echo.round >= rules.horizon) return null
  const bound = 1 + Math.max(0, Math.floor(witnessFields.counter))
  return fields.counter > bound ? `a stop counter of ${fields.counter} after hearing a counter of ${bound - 1} from ${witness.from} in round ${witness.round}` : null
}

/**
 * Residuals claimed small (a positive stop counter) that the sender's own iterates contradict: its step
 * from the previous round (`previous`, its message one round before), or its distance to the witness's
 * iterate in the round it says it last heard the witness (`earlier`, its own message of that round).
 */
export function residualViolation (rules: AdmmRules, message: ConsensusMessage, previous: ConsensusMessage | null, earlier: ConsensusMessage | null, witness: ConsensusMessage | null): string | null {
  const fields = readAdmmMessage(rules.graph, rules.dimension, message)
  if (fields === null || fields.counter <= 0) return null
  const scale = Math.max(1, norm(fields.x))
  if (previous !== null && previous.round === message.round - 1 && previous.from === message.from && previous.kind === message.kind && previous.job === message.job) {
    const before = readAdmmMessage(rules.graph, rules.dimension, previous)
    if (before !== null) {
      const dual = distance(fields.x, before.x) / scale
      if (!(dual < rules.tolerance)) return `a stop counter of ${fields.counter} with a step of ${dual} since round ${previous.round}, not below ${rules.tolerance}`
    }
  }
  if (earlier !== null && witness !== null && earlier.from === message.from && earlier.round === witness.round && earlier.kind === message.kind && witness.kind === message.kind) {
    const author = indexOf(rules.graph, witness.from)
    const echo = fields.echo(author)
    const own = readAdmmMessage(rules.graph, rules.dimension, earlier)
    const theirs = readAdmmMessage(rules.graph, rules.dimension, witness)
    if (echo !== null && echo.round === witness.round && equalBytes(echo.digest, bodyDigest(witness)) && !fields.dropped(author) && own !== null && theirs !== null) {
      const primal = distance(own.x, theirs.x) / scale
      if (!(primal < rules.tolerance)) return `a stop counter of ${fields.counter} with a distance of ${primal} to ${witness.from} in round ${witness.round}, not below ${rules.tolerance}`
    }
  }
  return null
}

function slotOf (state: AdmmState, from: string): number {
  const slots = state.peer.graph.neighbours[state.peer.self] ?? []
  for (let slot = 0; slot < slots.length; slot++) {
    if (state.peer.graph.names[slots[slot] as number] === from) return slot
  }
  return -1
}

function rejectMessage (state: AdmmState, message: ConsensusMessage, log: LogRecord[], reason: string): false {
  state.rejectedMessages++
  log.push({ level: 'warn', event: 'admm.message.rejected', fields: { from: message.from, round: message.round, reason } })
  return false
}

/** Checks a same-round message and files it; returns false (and counts) when it is unusable. */
function accept (state: AdmmState, message: ConsensusMessage, log: LogRecord[]): boolean {
  const slot = slotOf(state, message.from)
  const p = state.peer.objective.dimension
  if (slot < 0) return rejectMessage(state, message, log, 'not a neighbour')
  if (message.to !== undefined) return rejectMessage(state, message, log, 'a round message is a broadcast, never addressed')
  if (!(state.active[slot] ?? false)) return rejectMessage(state, message, log, 'dropped neighbour')
  const neighbour = state.peer.graph.neighbours[state.peer.self]?.[slot] as number
  const expected = HEADER + p * (1 + ownedNeighbours(state.peer.graph, neighbour).length)
  if (message.values.length !== expected) return rejectMessage(state, message, log, `expected ${expected} values, got ${message.values.length}`)
  for (let index = 0; index < message.values.length; index++) {
    if (!Number.isFinite(message.values[index] as number)) return rejectMessage(state, message, log, 'non-finite value')
  }
  if (state.heard[slot] !== null || (state.received[slot] as Map<number, ConsensusMessage>).has(message.round)) {
    if (state.peer.params.guard) checkEquivocation(state, slot, message, log)
    return rejectMessage(state, message, log, 'duplicate')
  }
  const fields = readAdmmMessage(state.peer.graph, p, message)
  if (fields === null) return rejectMessage(state, message, log, `a message of ${message.data.length} data bytes`)
  if (state.peer.params.guard) {
    const violation = guardCheck(state, slot, message, log)
    if (violation !== null) {
      state.violation ??= violation
      return rejectMessage(state, message, log, `protocol violation (${violation.rule})`)
    }
    const history = state.received[slot] as Map<number, ConsensusMessage>
    history.set(message.round, message)
    history.delete(message.round - historyRounds(state.peer))
    state.heardDigest[slot] = bodyDigest(message)
  }
  markDropped(state, message.data)
  const values = message.values
  state.heard[slot] = values.slice(HEADER, HEADER + p)
  const position = state.positionInOwner[slot] ?? -1
  state.ownerLambda[slot] = position >= 0 ? values.slice(HEADER + p * (1 + position), HEADER + p * (2 + position)) : null
  state.heardCounter[slot] = Math.max(0, Math.floor(values[0] as number))
  state.heardDone[slot] = Math.round(values[1] as number)
  return true
}

/** Adds the peers a neighbour's message reports dropped (its bitmap, the start of its data) to this peer's. */
function markDropped (state: AdmmState, data: Uint8Array): void {
  const known = state.knownDropped
  const bitmapLength = state.droppedBitmap.length
  // four bytes at a time where the data is aligned (usually all zero: nobody dropped)
  let start = 0
  if (data.byteOffset % 4 === 0) {
    const words = new Uint32Array(data.buffer, data.byteOffset, bitmapLength >> 2)
    while (start < words.length && words[start] === 0) start++
    start *= 4
  }
  for (let byte = start; byte < bitmapLength; byte++) {
    const bits = data[byte] as number
    if (bits === 0) continue
    for (let bit = 0; bit < 8; bit++) {
      const node = byte * 8 + bit
      if ((bits >> bit) & 1 && node < known.length) markPeerDropped(state, node)
    }
  }
}

/** Records that peer `node` was dropped, in the set and in the bitmap the messages carry. */
export function markPeerDropped (state: AdmmState, node: number): void {
  state.knownDropped[node] = 1
  state.droppedBitmap[node >> 3] = (state.droppedBitmap[node >> 3] as number) | (1 << (node & 7))
}

function violationEvidence (log: LogRecord[], reporter: string, message: ConsensusMessage, rule: Evidence['rule'], detail: string, messages: ConsensusMessage[], witnesses: ConsensusMessage[] = []): Evidence {
  log.push({ level: 'warn', event: 'admm.violation', fields: { rule, from: message.from, round: message.round, detail } })
  return { rule, offender: message.from, reporter, messages, receipts: [], witnesses }
}

/**
 * Checks a neighbour's message against the protocol, with what this peer holds: the message itself, the
 * neighbour's earlier messages, and this peer's own messages that the neighbour echoes. Returns the
 * proof of the first violation found, or null.
 */
function guardCheck (state: AdmmState, slot: number, message: ConsensusMessage, log: LogRecord[]): Evidence | null {
  const rules = admmRules(state.peer)
  const self = state.peer.graph.names[state.peer.self] as string
  const history = state.received[slot] as Map<number, ConsensusMessage>
  const range = rangeViolation(rules, message)
  if (range !== null) return violationEvidence(log, self, message, 'range', range, [message])
  const flag = stopFlagViolation(rules, message)
  if (flag !== null) return violationEvidence(log, self, message, 'stop-flag', flag, [message])
  const fields = readAdmmMessage(rules.graph, rules.dimension, message) as AdmmMessageFields
  const echo = fields.echo(state.peer.self)
  let witness: ConsensusMessage | null = null
  if (echo !== null) {
    const mine = state.sent.get(echo.round)
    if (mine !== undefined && equalBytes(mine.digest, echo.digest)) witness = mine.message
    else if (mine !== undefined) log.push({ level: 'warn', event: 'admm.echo.mismatch', fields: { from: message.from, round: message.round, echoed: echo.round } })
  }
  if (witness !== null) {
    const counter = counterViolation(rules, message, witness)
    if (counter !== null) return violationEvidence(log, self, message, 'stop-counter', counter, [message], [witness])
  }
  const previous = history.get(message.round - 1) ?? null
  const then = witness === null ? null : history.get(witness.round) ?? null
  const residual = residualViolation(rules, message, previous, then, witness)
  if (residual !== null) {
    const usesPrevious = previous !== null && residualViolation(rules, message, previous, null, null) !== null
    return usesPrevious ? violationEvidence(log, self, message, 'residual', residual, [message, previous]) : violationEvidence(log, self, message, 'residual', residual, [message, then as ConsensusMessage], [witness as ConsensusMessage])
  }
  return null
}

/**
 * A second message from a neighbour for a round this peer already holds one for: the same one again is a
 * harmless duplicate; a different one, both signed, proves equivocation (two bodies for one round).
 */
function checkEquivocation (state: AdmmState, slot: number, message: ConsensusMessage, log: LogRecord[]): void {
  const earlier = (state.received[slot] as Map<number, ConsensusMessage>).get(message.round)
  if (earlier === undefined) return
  const first = receiptOf(earlier)
  const second = receiptOf(message)
  if (first === null || second === null || equalBytes(first.digest, second.digest)) return
  log.push({ level: 'warn', event: 'admm.violation', fields: { rule: 'equivocation', from: message.from, round: message.round } })
  state.violation ??= { rule: 'equivocation', offender: message.from, reporter: state.peer.graph.names[state.peer.self] as string, messages: [], receipts: [first, second], witnesses: [] }
}

function heardFromAllActive (state: AdmmState): boolean {
  for (let slot = 0; slot < state.heard.length; slot++) {
    if ((state.active[slot] ?? false) && !(state.finished[slot] ?? false) && state.heard[slot] === null) return false
  }
  return true
}

/**
 * A neighbour's iterate as it enters this peer's update: `raw` itself, or, when it is farther than
 * `clip` from `x`, the point at distance `clip` on the way to it. (The audit recomputes dual updates
 * with this same function.)
 */
export function clippedNeighbour (x: ArrayLike<number>, raw: Float64Array, clip: number | null): Float64Array {
  if (clip === null) return raw
  let sum = 0
  for (let index = 0; index < raw.length; index++) sum += ((x[index] as number) - (raw[index] as number)) ** 2
  const gap = Math.sqrt(sum)
  if (!(gap > clip)) return raw
  const out = new Float64Array(raw.length)
  for (let index = 0; index < raw.length; index++) out[index] = (x[index] as number) + ((raw[index] as number) - (x[index] as number)) * (clip / gap)
  return out
}

function norm (vector: Float64Array): number {
  let sum = 0
  for (let index = 0; index < vector.length; index++) sum += (vector[index] as number) ** 2
  return Math.sqrt(sum)
}

function distance (a: Float64Array, b: Float64Array): number {
  let sum = 0
  for (let index = 0; index < a.length; index++) sum += ((a[index] as number) - (b[index] as number)) ** 2
  return Math.sqrt(sum)
}

/**
 * Completes the current round with whatever has arrived, and emits the next round's message (unless
 * `silent`: a round passed over while catching up sends nothing).
 */
function advance (state: AdmmState, outbox: ConsensusMessage[], log: LogRecord[], silent = false): void {
  const { peer } = state
  const { penalty: c, tolerance } = peer.params
  const p = peer.objective.dimension
  const slots = peer.graph.neighbours[peer.self] ?? []
  const x = state.x

  const heardSlots: number[] = []
  const skipped: string[] = []
  const clip = peer.params.clipRadius
  for (let slot = 0; slot < slots.length; slot++) {
    if (!(state.active[slot] ?? false)) continue
    // A neighbour that has finished is not waited for and holds no one back; its last iterate and
    // counter stay as they were. (Its stop does not end this peer's: each peer stops on its own counter.)
    if ((state.finished[slot] ?? false) && state.heard[slot] === null) continue
    const raw = state.heard[slot]
    const name = peer.graph.names[slots[slot] as number] as string
    if (raw === null || raw === undefined) {
      skipped.push(name)
      state.silentRounds[slot] = (state.silentRounds[slot] as number) + 1
      if (peer.params.dropAfterRounds > 0 && (state.silentRounds[slot] as number) >= peer.params.dropAfterRounds) {
        // A neighbour that never returns is removed together with its edge dual, which keeps
        // sum_i alpha_i = 0 over the peers that remain.
        state.active[slot] = false
        markPeerDropped(state, slots[slot] as number)
        ;(state.lambdas[slot] as Float64Array).fill(0)
        log.push({ level: 'warn', event: 'admm.neighbour.dropped', fields: { round: state.round, neighbour: name } })
      }
      continue
    }
    state.silentRounds[slot] = 0
    heardSlots.push(slot)
    // residuals on what the neighbour said; the updates on it clipped to the radius
    state.lastDistance[slot] = distance(x, raw)
    const xj = clippedNeighbour(x, raw, clip)
    if (xj !== raw) {
      state.heard[slot] = xj
      state.clippedEdges++
    }
    const lambda = state.lambdas[slot] as Float64Array
    const ownerValue = state.ownerLambda[slot]
    if (ownerValue !== null && ownerValue !== undefined) {
      for (let index = 0; index < p; index++) lambda[index] = -(ownerValue[index] as number)
    }
    for (let index = 0; index < p; index++) lambda[index] = (lambda[index] as number) + c * ((x[index] as number) - (xj[index] as number))
    state.lastCounter[slot] = state.heardCounter[slot] as number
    if ((state.heardDone[slot] as number) !== DONE_NONE) state.finished[slot] = true
    if (peer.params.guard) {
      state.echoRound[slot] = state.round
      state.echoDigest[slot] = state.heardDigest[slot] ?? new Uint8Array(32)
    }
  }

  // Primal: Newton steps on f_i(z) + <alpha, z> + c sum_{j heard} ||z - (x + x_j)/2||^2, from z = x.
  const next = state.next
  next.set(x)
  let primalResidual = 0
  for (let slot = 0; slot < slots.length; slot++) {
    if (state.active[slot] ?? false) primalResidual = Math.max(primalResidual, state.lastDistance[slot] as number)
  }
  if (heardSlots.length > 0) {
    const { gradient, hessian, direction, alpha, center, trial } = state
    const proximalWeight = 2 * c * heardSlots.length
    alpha.fill(0)
    center.fill(0)
    for (let index = 0; index < p; index++) {
      for (let slot = 0; slot < slots.length; slot++) {
        if (state.active[slot] ?? false) alpha[index] = (alpha[index] as number) + ((state.lambdas[slot] as Float64Array)[index] as number)
      }
      for (const slot of heardSlots) center[index] = (center[index] as number) + ((x[index] as number) + ((state.heard[slot] as Float64Array)[index] as number)) / 2
    }
    // the local subproblem f_i(z) + <alpha, z> + c sum_j ||z - m_j||^2, up to a constant
    const heardCount = heardSlots.length
    const augmented = (z: Float64Array, loss: number): number => {
      let value = loss
      for (let index = 0; index < p; index++) {
        const zi = z[index] as number
        value += (alpha[index] as number) * zi + c * (heardCount * zi * zi - 2 * zi * (center[index] as number))
      }
      return value
    }
    for (let step = 0; step < peer.params.newtonSteps; step++) {
      const current = augmented(next, peer.objective.evaluate(next, gradient, hessian, true))
      for (let index = 0; index < p; index++) {
        direction[index] = (gradient[index] as number) + (alpha[index] as number) + 2 * c * (heardCount * (next[index] as number) - (center[index] as number))
        hessian[index * p + index] = (hessian[index * p + index] as number) + proximalWeight
      }
      choleskyInPlace(hessian, p)
      choleskySolveInPlace(hessian, p, direction)
      // Damped: halve the step until the subproblem does not get worse. A full Newton step on a
      // Poisson loss far from its minimum can overshoot by orders of magnitude (e^eta); on a logistic
      // loss plus the proximal term it does not, and the check is left out there (fit-job.ts).
      if (!peer.params.damped) {
        for (let index = 0; index < p; index++) next[index] = (next[index] as number) - (direction[index] as number)
        continue
      }
      let size = 1
      for (let halving = 0; ; halving++) {
        for (let index = 0; index < p; index++) trial[index] = (next[index] as number) - size * (direction[index] as number)
        const value = augmented(trial, peer.objective.evaluate(trial, state.scratch, hessian, false))
        if ((Number.isFinite(value) && value <= current + 1e-12 * Math.abs(current)) || halving >= 30) break
        size /= 2
      }
      next.set(trial)
    }
  }
  for (let index = 0; index < p; index++) {
    if (!Number.isFinite(next[index] as number)) throw new NonFiniteError(`ADMM iterate became non-finite at round ${state.round}`)
    if (!(Math.abs(next[index] as number) < peer.params.valueLimit)) throw new AdmmDivergedError(peer.graph.names[peer.self] as string, state.round)
  }

  const scale = Math.max(1, norm(next))
  state.primalResidual = primalResidual / scale
  state.dualResidual = distance(next, x) / scale
  // A lost message leaves that edge's last known distance and counter in place, so that stopping
  // still works when links fail at random; a neighbour that stays silent keeps its stale counter
  // from growing this one past it.
  const locallyConverged = state.primalResidual < tolerance && state.dualResidual < tolerance
  // A neighbour silent for longer than the stopping horizon has finished (its `done` message was lost)
  // or is gone; it no longer holds this peer's counter down.
  const horizon = peer.diameter + peer.params.stopMargin
  let minimumCounter = Number.POSITIVE_INFINITY
  for (let slot = 0; slot < slots.length; slot++) {
    if ((state.active[slot] ?? false) && !(state.finished[slot] ?? false) && (state.silentRounds[slot] as number) < horizon) minimumCounter = Math.min(minimumCounter, state.lastCounter[slot] as number)
  }
  if (!Number.isFinite(minimumCounter)) minimumCounter = peer.diameter + peer.params.stopMargin
  state.stopCounter = locallyConverged ? 1 + minimumCounter : 0

  log.push({
    level: 'debug',
    event: 'admm.round',
    fields: {
      kind: peer.kind,
      round: state.round,
      heard: heardSlots.length,
      skipped,
      primalResidual: state.primalResidual,
      dualResidual: state.dualResidual,
      stopCounter: state.stopCounter,
      ...(peer.params.recordVectors ? roundVectors(state, heardSlots, x, next) : {})
    }
  })

  for (let slot = 0; slot < slots.length; slot++) {
    state.heard[slot] = null
    state.ownerLambda[slot] = null
    state.heardDone[slot] = DONE_NONE
    state.heardDigest[slot] = null
  }
  x.set(next)
  // This peer never sends what the masked sums that follow could not hold: an honest peer pulled that
  // far stops here, under its own name, rather than be taken for the one who lied.
  for (let slot = 0; slot < slots.length; slot++) {
    const lambda = state.lambdas[slot] as Float64Array
    for (let index = 0; index < p; index++) {
      if (!(Math.abs(lambda[index] as number) < peer.params.valueLimit)) throw new AdmmDivergedError(peer.graph.names[peer.self] as string, state.round)
    }
  }
  state.round++

  // Each peer stops on its own counter (or its round budget): a neighbour's announcement never stops
  // it, so that a member announcing a false stop can end only its own part.
  let doneFlag = DONE_NONE
  if (state.stopCounter >= peer.diameter + peer.params.stopMargin) {
    doneFlag = DONE_CONVERGED
  } else if (state.round >= peer.params.maxRounds) {
    doneFlag = DONE_EXHAUSTED
  }
  if (!silent || doneFlag !== DONE_NONE) outbox.push(outgoing(state, doneFlag))
  if (doneFlag !== DONE_NONE) {
    state.done = true
    state.converged = doneFlag === DONE_CONVERGED
    state.pending = []
    log.push({ level: 'info', event: 'admm.done', fields: { round: state.round, converged: state.converged, primalResidual: state.primalResidual, dualResidual: state.dualResidual } })
  }
}

/**
 * What the audit log keeps of a round (recordVectors): the penalty, the neighbours heard, the iterate
 * sent and the next one, and every edge's dual after the round's update, by neighbour. With the
 * vectors the neighbours sent, an auditor recomputes each dual update.
 */
function roundVectors (state: AdmmState, heardSlots: readonly number[], x: Float64Array, next: Float64Array): Record<string, unknown> {
  const { peer } = state
  const slots = peer.graph.neighbours[peer.self] ?? []
  const duals: Record<string, number[]> = {}
  const inactive: string[] = []
  const finished: string[] = []
  slots.forEach((neighbour, slot) => {
    const name = peer.graph.names[neighbour] as string
    if (!(state.active[slot] ?? false)) inactive.push(name)
    else {
      duals[name] = Array.from(state.lambdas[slot] as Float64Array)
      if ((state.finished[slot] ?? false) && state.heard[slot] === null) finished.push(name)
    }
  })
  return {
    penalty: peer.params.penalty,
    clipRadius: peer.params.clipRadius,
    heardFrom: heardSlots.map((slot) => peer.graph.names[slots[slot] as number] as string),
    inactive,
    finished,
    sent: Array.from(x),
    next: Array.from(next),
    duals
  }
}

function takePending (state: AdmmState, log: LogRecord[]): void {
  const current = state.pending.filter((message) => message.round === state.round)
  if (current.length === 0) return
  state.pending = state.pending.filter((message) => message.round > state.round)
  for (const message of current) accept(state, message, log)
}

function drainPending (state: AdmmState, outbox: ConsensusMessage[], log: LogRecord[]): void {
  for (;;) {
    if (state.done) return
    takePending(state, log)
    if (!heardFromAllActive(state)) return
    advance(state, outbox, log)
  }
}

/**
 * A neighbour's message for a round two or more ahead means that neighbour went through the rounds in
 * between without this peer (its deadlines passed). Rounds are what pairs the two ends of an edge, so this peer
 * catches up at once, passing those rounds with what it has heard for them, instead of trailing for
 * good; otherwise two peers that started a few rounds apart would never hear each other again.
 */
function catchUp (state: AdmmState, target: number, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const from = state.round
  while (!state.done && state.round < target) {
    takePending(state, log)
    advance(state, outbox, log, state.round + 1 < target)
  }
  if (state.round > from) log.push({ level: 'info', event: 'admm.caught-up', fields: { from, to: state.round } })
}

/** How far ahead of its own round a peer accepts a neighbour's message. */
const MAX_ROUNDS_AHEAD = 1000

export const admmProtocol: Protocol<AdmmState, AdmmResult> = {
  start (state) {
    return { state, outbox: [outgoing(state, DONE_NONE)], log: [] }
  },

  step (state, input: MachineInput): StepResult<AdmmState> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (state.done) return { state, outbox, log }
    if (input.type === 'deadline') {
      if (input.round === state.round) {
        advance(state, outbox, log)
        drainPending(state, outbox, log)
      }
      return { state, outbox, log }
    }
    if (input.type === 'moved-on') {
      // The neighbour has finished (its messages for the job's next phase are arriving): its final
      // message here may have been lost, and it sends no more. It is no longer waited for, and no
      // longer holds this peer's stop counter back; this peer still stops on its own counter.
      const slot = slotOf(state, input.from)
      if (slot < 0 || (state.finished[slot] ?? false)) return { state, outbox, log }
      state.finished[slot] = true
      log.push({ level: 'info', event: 'admm.neighbour.finished', fields: { round: state.round, neighbour: input.from } })
      if (heardFromAllActive(state)) {
        advance(state, outbox, log)
        drainPending(state, outbox, log)
      }
      return { state, outbox, log }
    }
    const message = input.message
    if (message.job !== state.peer.job || message.kind !== state.peer.kind) return { state, outbox, log }
    if (message.round < state.round) {
      state.staleMessages++
      const slot = slotOf(state, message.from)
      if (state.peer.params.guard && slot >= 0) checkEquivocation(state, slot, message, log)
      return { state, outbox, log }
    }
    if (message.round > state.round) {
      if (message.round - state.round > MAX_ROUNDS_AHEAD || slotOf(state, message.from) < 0) {
        state.rejectedMessages++
        log.push({ level: 'warn', event: 'admm.message.rejected', fields: { from: message.from, round: message.round, reason: 'not a neighbour, or too far ahead' } })
        return { state, outbox, log }
      }
      state.pending.push(message)
      // One round ahead is ordinary asynchrony: that neighbour heard everyone first. Two or more
      // means it went through a round that needed this peer's message, which was never sent.
      if (message.round >= state.round + 2) {
        catchUp(state, message.round, outbox, log)
        drainPending(state, outbox, log)
      }
      return { state, outbox, log }
    }
    if (accept(state, message, log) && heardFromAllActive(state)) {
      advance(state, outbox, log)
      drainPending(state, outbox, log)
    }
    return { state, outbox, log }
  },

  round: (state) => state.round,
  done: (state) => state.done,

  result (state) {
    return {
      x: Float64Array.from(state.x),
      rounds: state.round,
      converged: state.converged,
      primalResidual: state.primalResidual,
      dualResidual: state.dualResidual,
      staleMessages: state.staleMessages,
      rejectedMessages: state.rejectedMessages,
      dropped: state.peer.graph.names.filter((_, node) => state.knownDropped[node] === 1)
    }
  },

  evidence: (state) => state.violation,

  receipts (state) {
    const receipts: Receipt[] = []
    for (const history of state.received) {
      const rounds = [...history.keys()].sort((a, b) => b - a).slice(0, RECEIPTS_PER_NEIGHBOUR)
      for (const round of rounds) {
        const receipt = receiptOf(history.get(round) as ConsensusMessage)
        if (receipt !== null) receipts.push(receipt)
      }
    }
    return receipts
  }
}

/**
 * Receipts a closing statement carries of each neighbour's last round messages: enough to prove an
 * equivocation that lasted to the end (two neighbours holding different signed messages of one round).
 */
const RECEIPTS_PER_NEIGHBOUR = 3
