import { ADMM_MESSAGE_HEADER, clippedNeighbour } from '../protocols/admm.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'
import type { GbdtModelJson } from '../../learning/gbdt.ts'

/**
 * The round log of one peer in one job, as entry bodies: what the peer sent (whole vectors for the
 * messages every neighbour sees, digests only for private ones, which carry secure-sum masks), the
 * digest of everything it received, and for consensus-ADMM rounds the neighbours it heard and skipped,
 * its residuals, its iterate and every edge's dual after the round. Hashing, chaining and signing the
 * bodies is the peer's business; building them is pure, so the simulator can write the same log.
 *
 * A round is identified as its messages identify it: the phase (stats, curvature, admm, ..., final)
 * and the phase's own round. Entries come out in the order the peer passes the rounds; a round is
 * written once the peer has moved past it, with every message for it that arrived until then.
 * Messages that arrive for a round already written are stale (the machine drops them) and are listed
 * as `late` in the entry being filled, as are a finished phase's answers to a neighbour that lags.
 */

export const AUDIT_FORMAT_VERSION = 1

export interface SentRecord {
  kind: string
  round: number
  /** the recipient of a private message; absent for a message to every neighbour */
  to?: string
  /** sha256 of the message's wire encoding, hex */
  digest: string
  /** the vector, for messages every neighbour sees */
  values?: number[]
  /** the opaque bytes, hex, for messages every neighbour sees */
  data?: string
}

export interface ReceivedRecord {
  kind: string
  round: number
  from: string
  digest: string
}

export interface AdmmRoundRecord {
  penalty: number
  /** the clipping radius of neighbours' iterates (absent or null: none) */
  clipRadius?: number | null
  /** neighbours whose message for this round arrived, so the edge's dual was updated */
  heard: string[]
  /** neighbours whose message did not arrive by the deadline: the edge was skipped */
  skipped: string[]
  /** neighbours that had finished the phase (their last message was lost) */
  finished: string[]
  /** neighbours dropped from the graph (gone for too many rounds) */
  inactive: string[]
  /** null until a neighbour has been heard (the residual is not defined yet) */
  primalResidual: number | null
  dualResidual: number | null
  stopCounter: number
  /** x_i^k, the iterate sent in this round, and x_i^{k+1} */
  x: number[]
  next: number[]
  /** lambda_ij after this round's update, by neighbour */
  duals: Record<string, number[]>
}

export interface StartBody {
  type: 'start'
  format: number
  job: string
  peer: string
  algorithm: string
  params: Record<string, unknown>
  model: Record<string, unknown>
  /** the federation's graph as every peer holds it: member ids, adjacency by index, and region names */
  graph: { names: string[], neighbours: number[][], regions?: string[] }
  diameter: number
}

export interface RoundBody {
  type: 'round'
  job: string
  peer: string
  phase: string
  round: number
  /** the job's round: rounds of earlier phases plus this phase's round */
  jobRound: number
  /** the round's deadline passed before every neighbour was heard */
  deadline: boolean
  sent: SentRecord[]
  received: ReceivedRecord[]
  admm?: AdmmRoundRecord
  late?: { sent: SentRecord[], received: ReceivedRecord[] }
}

export interface FinalBody {
  type: 'final'
  job: string
  peer: string
  terms: string[]
  coefficients: number[]
  standardErrors: number[]
  standardizedCoefficients: number[]
  logLikelihood: number
  rounds: number
  converged: boolean
  peers: number
  rows: number
  penalty: number | null
  tolerance: number
  dropped: string[]
  /** a tree job's forest (its terms and coefficients are empty): every split and leaf, which the peers must agree on */
  trees?: GbdtModelJson
  /** a job without a model (statistics): SHA-256 of its published result, which the peers must agree on */
  resultDigest?: string
  /** messages sent and received after the machine finished, answering neighbours that lagged behind */
  late?: { sent: SentRecord[], received: ReceivedRecord[] }
}

/** What a job's final entry says of its result (the rest of the entry is filled in by the recorder). */
export type FinalRecord = Omit<FinalBody, 'type' | 'job' | 'peer' | 'late'>

export type EntryBody = StartBody | RoundBody | FinalBody

export interface Position {
  phase: string
  round: number
}

export interface AuditRecorderInit {
  job: string
  self: string
  /** sha256 of a message's wire encoding: supplied by the peer (the encoding lives with the transport) */
  digest: (message: ConsensusMessage) => string
  /** the order of the phases: the same function the job uses */
  phaseOf: (kind: string) => string
  phaseOrdinal: (phase: string) => number
}

function hex (bytes: Uint8Array): string {
  let out = ''
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0')
  return out
}

export function fromHex (text: string): Uint8Array {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) throw new RangeError('not lower-case hex')
  const bytes = new Uint8Array(text.length / 2)
  for (let index = 0; index < bytes.length; index++) bytes[index] = Number.parseInt(text.slice(2 * index, 2 * index + 2), 16)
  return bytes
}

function finiteOrNull (value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null
}

interface OpenEntry {
  phase: string
  round: number
  deadline: boolean
  sent: SentRecord[]
  received: ReceivedRecord[]
  admm?: AdmmRoundRecord
  late: { sent: SentRecord[], received: ReceivedRecord[] }
}

export class AuditRecorder {
  private readonly init: AuditRecorderInit
  private readonly open = new Map<string, OpenEntry>()
  private readonly offsets = new Map<string, number>()
  private readonly ready: EntryBody[] = []
  private position: Position = { phase: 'stats', round: 0 }
  private closed = false

  constructor (init: AuditRecorderInit, start: Omit<StartBody, 'type' | 'format' | 'job' | 'peer'>) {
    this.init = init
    this.offsets.set('stats', 0)
    this.ready.push({ type: 'start', format: AUDIT_FORMAT_VERSION, job: init.job, peer: init.self, ...start })
  }

  private order (position: Position): [number, number] {
    return position.phase === 'done' ? [Number.POSITIVE_INFINITY, 0] : [this.init.phaseOrdinal(position.phase), position.round]
  }

  private before (a: Position, b: Position): boolean {
    const [pa, ra] = this.order(a)
    const [pb, rb] = this.order(b)
    return pa < pb || (pa === pb && ra < rb)
  }

  private entry (position: Position): OpenEntry {
    const key = `${position.phase}#${position.round}`
    let entry = this.open.get(key)
    if (entry === undefined) {
      entry = { phase: position.phase, round: position.round, deadline: false, sent: [], received: [], late: { sent: [], received: [] } }
      this.open.set(key, entry)
    }
    return entry
  }

  /**
   * The entry that collects what belongs to no open round any more: the current round's, or once the
   * machine is done, the final entry's (a finished peer still answers neighbours that lag behind).
   */
  private current (): Pick<OpenEntry, 'late' | 'deadline'> {
    return this.position.phase === 'done' ? this.tail : this.entry(this.position)
  }

  private readonly tail: Pick<OpenEntry, 'late' | 'deadline'> = { deadline: false, late: { sent: [], received: [] } }

  private sentRecord (message: ConsensusMessage): SentRecord {
    const record: SentRecord = { kind: message.kind, round: message.round, digest: this.init.digest(message) }
    if (message.to !== undefined) record.to = message.to
    else {
      record.values = Array.from(message.values)
      record.data = hex(message.data)
    }
    return record
  }

  /**
   * One step of the machine: the input it stepped on (null for its start), what it sent, its log
   * records, and where it stands after the step.
   */
  observe (input: MachineInput | null, outbox: readonly ConsensusMessage[], log: readonly LogRecord[], after: Position): void {
    if (this.closed) return
    if (input?.type === 'deadline') {
      this.current().deadline = true
    }
    for (const record of log) {
      if (record.event === 'job.phase') {
        this.offsets.set(String(record.fields.phase), Number(record.fields.round))
      } else if (record.event === 'admm.round' && 'duals' in record.fields) {
        const fields = record.fields
        const entry = this.entry({ phase: String(fields.kind), round: Number(fields.round) })
        entry.admm = {
          penalty: fields.penalty as number,
          clipRadius: typeof fields.clipRadius === 'number' ? fields.clipRadius : null,
          heard: fields.heardFrom as string[],
          skipped: fields.skipped as string[],
          finished: fields.finished as string[],
          inactive: fields.inactive as string[],
          primalResidual: finiteOrNull(fields.primalResidual),
          dualResidual: finiteOrNull(fields.dualResidual),
          stopCounter: fields.stopCounter as number,
          x: fields.sent as number[],
          next: fields.next as number[],
          duals: fields.duals as Record<string, number[]>
        }
      }
    }
    const written = (position: Position): boolean => this.before(position, this.position) && !this.open.has(`${position.phase}#${position.round}`)
    if (input?.type === 'message' && input.message.job === this.init.job) {
      const message = input.message
      const position = { phase: this.init.phaseOf(message.kind), round: message.round }
      const record: ReceivedRecord = { kind: message.kind, round: message.round, from: message.from, digest: this.init.digest(message) }
      if (written(position) || Number.isNaN(this.init.phaseOrdinal(position.phase))) this.current().late.received.push(record)
      else this.entry(position).received.push(record)
    }
    for (const message of outbox) {
      const position = { phase: this.init.phaseOf(message.kind), round: message.round }
      if (written(position)) this.current().late.sent.push(this.sentRecord(message))
      else this.entry(position).sent.push(this.sentRecord(message))
    }
    this.position = { ...after }
    this.flush(false)
  }

  /** Writes out every open round the peer has passed (all of them when `all`), in order. */
  private flush (all: boolean): void {
    const passed = [...this.open.values()]
      .filter((entry) => all || this.before(entry, this.position))
      .sort((a, b) => this.before(a, b) ? -1 : this.before(b, a) ? 1 : 0)
    for (const entry of passed) {
      this.open.delete(`${entry.phase}#${entry.round}`)
      const offset = this.offsets.get(entry.phase)
      const body: RoundBody = {
        type: 'round',
        job: this.init.job,
        peer: this.init.self,
        phase: entry.phase,
        round: entry.round,
        jobRound: offset === undefined ? -1 : offset + entry.round,
        deadline: entry.deadline,
        sent: entry.sent,
        received: entry.received
      }
      if (entry.admm !== undefined) body.admm = entry.admm
      if (entry.late.sent.length > 0 || entry.late.received.length > 0) body.late = entry.late
      this.ready.push(body)
    }
  }

  /** The job's end: the remaining rounds, then the final model. Nothing is recorded after it. */
  finish (final: Omit<FinalBody, 'type' | 'job' | 'peer'>): void {
    if (this.closed) return
    this.flush(true)
    const late = this.tail.late.sent.length > 0 || this.tail.late.received.length > 0 ? { late: this.tail.late } : {}
    this.ready.push({ type: 'final', job: this.init.job, peer: this.init.self, ...final, ...late })
    this.closed = true
  }

  get finished (): boolean {
    return this.closed
  }

  /** The entries completed since the last call, in order. */
  take (): EntryBody[] {
    return this.ready.splice(0)
  }
}

/** The final entry's content from a fit job's result. */
export function finalRecord (result: { terms: readonly string[], coefficients: ArrayLike<number>, standardErrors: ArrayLike<number>, standardizedCoefficients: ArrayLike<number>, logLikelihood: number, rounds: number, converged: boolean, peers: number, rows: number, penalty: number | null, dropped: readonly string[] }, tolerance: number): Omit<FinalBody, 'type' | 'job' | 'peer'> {
  return {
    terms: [...result.terms],
    coefficients: Array.from(result.coefficients),
    standardErrors: Array.from(result.standardErrors),
    standardizedCoefficients: Array.from(result.standardizedCoefficients),
    logLikelihood: result.logLikelihood,
    rounds: result.rounds,
    converged: result.converged,
    peers: result.peers,
    rows: result.rows,
    penalty: result.penalty,
    tolerance,
    dropped: [...result.dropped]
  }
}

export function graphRecord (graph: Graph): { names: string[], neighbours: number[][] } {
  return { names: [...graph.names], neighbours: graph.neighbours.map((list) => [...list]) }
}

/* ---------------------------------------------------------------------------------------------- */
/* Recomputing the consensus-ADMM dual updates from logged vectors                                 */
/* ---------------------------------------------------------------------------------------------- */

const ADMM_HEADER = ADMM_MESSAGE_HEADER

export interface DualFinding {
  peer: string
  phase: string
  round: number
  neighbour: string
  field: string
  message: string
}

export interface DualCheckInput {
  graph: { names: readonly string[], neighbours: ReadonlyArray<readonly number[]> }
  /** ADMM round entries of every peer present, by peer id, each list in round order for one phase */
  rounds: ReadonlyMap<string, readonly RoundBody[]>
}

export interface DualCheckResult {
  /** edge-rounds whose dual update was recomputed and matched */
  checked: number
  /** edge-rounds that could not be recomputed (the neighbour's log is not among the files) */
  unverifiable: number
  /** edge-rounds heard at one end and skipped at the other (healed by the edge owner's next message) */
  oneSided: number
  findings: DualFinding[]
}

function close (a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a), Math.abs(b))
}

/**
 * Each edge's dual has an owner (its end with the smaller graph index) that sends it with every round
 * message. For each ADMM round k of a peer i and each neighbour j:
 *   owner i:     lambda_ij after k = lambda_ij sent in k + c (x_i^k - x_j^k) if i heard j in k, else unchanged;
 *   non-owner i: lambda_ij after k = -lambda_ji sent by j in k + c (x_i^k - x_j^k) if heard, else its value after k-1;
 * and the dual an owner sends in round k+1 is the one it held after round k. x_i^k and the owner's
 * duals are read from the vectors each peer logged as sent, so the check needs both ends' logs.
 */
export function checkDualUpdates (input: DualCheckInput): DualCheckResult {
  const { graph } = input
  const index = new Map(graph.names.map((name, node) => [name, node]))
  const result: DualCheckResult = { checked: 0, unverifiable: 0, oneSided: 0, findings: [] }
  const byRound = new Map<string, Map<number, RoundBody>>()
  for (const [peer, rounds] of input.rounds) byRound.set(peer, new Map(rounds.map((body) => [body.round, body])))
  const admmSent = (body: RoundBody | undefined): number[] | null => {
    const sent = body?.sent.find((record) => record.to === undefined && record.kind === body.phase && record.round === body.round)
    return sent?.values ?? null
  }
  for (const [peer, rounds] of input.rounds) {
    const self = index.get(peer)
    if (self === undefined) continue
    const neighbours = graph.neighbours[self] ?? []
    const owned = neighbours.filter((other) => other > self)
    let previous: Record<string, number[]> | null = null
    for (const body of rounds) {
      const admm = body.admm
      if (admm === undefined) continue
      const p = admm.x.length
      const c = admm.penalty
      const clip = typeof admm.clipRadius === 'number' ? admm.clipRadius : null
      const mine = admmSent(body)
      const finding = (neighbour: string, field: string, message: string): void => {
        result.findings.push({ peer, phase: body.phase, round: body.round, neighbour, field, message })
      }
      if (mine !== null) {
        for (let k = 0; k < p; k++) {
          if (!close(mine[ADMM_HEADER + k] as number, admm.x[k] as number)) {
            finding('', 'admm.x', 'the iterate in the log differs from the vector sent')
            break
          }
        }
      }
      for (const [name, dual] of Object.entries(admm.duals)) {
        const other = index.get(name)
        if (other === undefined || !neighbours.includes(other)) {
          finding(name, 'admm.duals', 'a dual for a peer that is not a neighbour')
          continue
        }
        const heard = admm.heard.includes(name)
        const theirs = byRound.get(name)?.get(body.round)
        const theirValues = admmSent(theirs)
        if (theirs?.admm !== undefined) {
          const theyHeard = theirs.admm.heard.includes(peer)
          const theySkipped = theirs.admm.skipped.includes(peer)
          if (heard && theySkipped && self < other) result.oneSided++
          if (!heard && theyHeard && self < other) result.oneSided++
        }
        if (self < other) {
          // this peer owns the edge: its sent dual is the reference
          if (mine === null) { result.unverifiable++; continue }
          const position = owned.indexOf(other)
          const sentDual = mine.slice(ADMM_HEADER + p * (1 + position), ADMM_HEADER + p * (2 + position))
          if (!heard) {
            if (!sentDual.every((value, k) => close(value, dual[k] as number))) finding(name, 'admm.duals', 'the edge was skipped but its dual changed')
            else result.checked++
            continue
          }
          if (theirValues === null) { result.unverifiable++; continue }
          let ok = true
          const theirX = clippedNeighbour(mine.slice(ADMM_HEADER, ADMM_HEADER + p), Float64Array.from(theirValues.slice(ADMM_HEADER, ADMM_HEADER + p)), clip)
          for (let k = 0; k < p; k++) {
            const expected = (sentDual[k] as number) + c * ((mine[ADMM_HEADER + k] as number) - (theirX[k] as number))
            if (!close(expected, dual[k] as number)) ok = false
          }
          if (ok) result.checked++
          else finding(name, 'admm.duals', 'the dual update does not follow from the logged vectors (owner\'s side)')
        } else {
          if (!heard) {
            const before = previous?.[name]
            if (before === undefined) { result.unverifiable++; continue }
            if (!before.every((value, k) => close(value, dual[k] as number))) finding(name, 'admm.duals', 'the edge was skipped but its dual changed')
            else result.checked++
            continue
          }
          if (theirValues === null || mine === null) { result.unverifiable++; continue }
          const position = (graph.neighbours[other] ?? []).filter((node) => node > other).indexOf(self)
          let ok = true
          const theirX = clippedNeighbour(mine.slice(ADMM_HEADER, ADMM_HEADER + p), Float64Array.from(theirValues.slice(ADMM_HEADER, ADMM_HEADER + p)), clip)
          for (let k = 0; k < p; k++) {
            const ownerDual = theirValues[ADMM_HEADER + p * (1 + position) + k] as number
            const expected = -ownerDual + c * ((mine[ADMM_HEADER + k] as number) - (theirX[k] as number))
            if (!close(expected, dual[k] as number)) ok = false
          }
          if (ok) result.checked++
          else finding(name, 'admm.duals', 'the dual update does not follow from the logged vectors (adopting the owner\'s dual)')
        }
      }
      // what the owner sends next round must be what it held after this one
      const next = byRound.get(peer)?.get(body.round + 1)
      const nextValues = admmSent(next)
      if (nextValues !== null) {
        owned.forEach((other, position) => {
          const name = graph.names[other] as string
          const dual = admm.duals[name]
          if (dual === undefined) return
          const sentNext = nextValues.slice(ADMM_HEADER + p * (1 + position), ADMM_HEADER + p * (2 + position))
          if (!sentNext.every((value, k) => close(value, dual[k] as number))) finding(name, 'sent.values', `the dual sent in round ${body.round + 1} is not the one held after round ${body.round}`)
        })
      }
      previous = admm.duals
    }
  }
  return result
}
