import { EpimeshError } from '../../errors.ts'
import { NotConvergedError } from '../../learning/errors.ts'
import { ByteReader, ByteWriter, decodeEvidence, encodeEvidence, judgeEquivocation, verifyReceipt, type Evidence, type MessageVerifier, type Receipt } from '../audit/evidence.ts'
import { JobAbortedError, MemberMisbehavedError, ModelDisagreementError } from '../errors.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import { closingProtocol, createClosing, type ClosingState } from '../protocols/closing.ts'
import { toHex } from '../sha256.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * One way to write a job: a script of phases, and one combinator that runs it.
 *
 * A job's script is a generator that yields phases (a machine and its starting state, named) and gets
 * each one's result back, so a job reads as what it does:
 *
 *   function * script (ctx) {
 *     const totals = yield * run(maskedSum('stats', statistics))
 *     for (let step = 0; ; step++) {
 *       const derivatives = yield * run(maskedSum(`newton.${step}`, contribution(point)))
 *       ...
 *     }
 *     return model
 *   }
 *
 * The combinator (`jobProtocol`) owns everything around the phases, the same for every kind of job:
 * - phase numbering: phases are numbered in the order the script enters them, the same on every peer
 *   (scripts are deterministic), and the job's round is the sum of the finished phases' rounds plus the
 *   current machine's;
 * - message routing: a message belongs to the phase its kind names (`stats`, `stats.mask`,
 *   `newton.3.mask`); one for the current phase goes to its machine, one for a finished phase to that
 *   machine (which answers a neighbour that lags behind), one for a phase not entered yet waits
 *   (bounded), and tells the current machine that its sender has moved on (`moved-on`);
 * - the audit's view: where the job stands (`jobPosition`) and the order of its phases (`phaseIndex`);
 * - failure: a machine's typed error ends the job on this peer, which tells every other member why
 *   (`abort`, relayed once) instead of leaving them to wait; proof that a member broke the protocol
 *   (kept by a machine, `evidence`) goes to every member in an `alarm`, and each member checks it
 *   itself and fails the job naming the member;
 * - the network-agreed stop: when the script has its result, every member's signed statement (the
 *   digest of its result, and receipts of what its neighbours said) goes to every member (the
 *   closing); a peer finishes only when all statements are in, name one result, and show no member
 *   signing two messages for one round.
 */

/** A phase of a job: a named machine and its starting state. Its messages' kinds are `name` or `name.<part>`. */
export interface Phase<S = unknown, R = unknown> {
  readonly name: string
  readonly protocol: Protocol<S, R>
  readonly state: S
}

export function phase<S, R> (name: string, protocol: Protocol<S, R>, state: S): Phase<S, R> {
  if (!/^[A-Za-z][A-Za-z0-9-]*(\.[0-9]+)?$/.test(name) || name === ALARM_KIND || name === ABORT_KIND) throw new RangeError(`a phase is named by letters, digits and '-', and an optional .number: ${name}`)
  return { name, protocol, state }
}

/** What a job's script sees of the job beyond its phases' results. */
export interface JobContext {
  readonly job: string
  readonly graph: Graph
  readonly self: number
  readonly diameter: number
  /** the job's round so far (the finished phases' rounds) */
  round (): number
  /** rounds taken by each phase name, summed over its entries (`newton.3` counts as `newton`) */
  phaseRounds (): Record<string, number>
  log (level: LogRecord['level'], event: string, fields: Record<string, unknown>): void
  /** receipts gathered from the finished phases, for the closing statement */
  receipts (): Receipt[]
}

export type JobScript<R> = Generator<Phase, R, unknown>

/** Runs one phase inside a script and gives back its result, typed: `const total = yield * run(sum)`. */
export function * run<R> (next: Phase<unknown, R>): Generator<Phase, R, unknown> {
  return (yield next as unknown as Phase) as R
}

/** How the members check, at the end, that they agree. */
export interface JobClosing<R> {
  /** the digest of what the members must agree on */
  digest (result: R): Uint8Array
  /** the members that end the job together (default: all; a job that dropped members leaves them out) */
  members? (result: R): readonly number[] | undefined
  /** false for approximate results (research algorithms): the digests are not compared, only the receipts */
  exact: boolean
}

export interface JobDefinition<R> {
  job: string
  graph: Graph
  self: number
  diameter: number
  script: (ctx: JobContext) => JobScript<R>
  closing: JobClosing<R> | null
  /** checks the signatures on alarms' proof and on relayed closing statements; null: alarms are not acted on */
  verifier: MessageVerifier | null
  /** whether a proof of a broken rule holds (consensus ADMM's rules for this job); null: it holds, a string: why not */
  judge: (evidence: Evidence) => string | null
}

/** A job on one peer: the script, the phase it is in, the phases it finished, and its outcome. */
export interface JobState<R> {
  readonly definition: JobDefinition<R>
  readonly script: JobScript<R>
  current: Phase | null
  /** names of the phases entered, in order */
  readonly entered: string[]
  /** finished phases that may still have to answer a neighbour, by name (the last MAX_KEPT_PHASES) */
  readonly finished: Map<string, Phase>
  roundOffset: number
  readonly phaseRounds: Record<string, number>
  pending: ConsensusMessage[]
  /** the script's result, once it returned */
  result: R | null
  /** true once the closing agreed (or there is none) */
  done: boolean
  failure: EpimeshError | null
  readonly receipts: Receipt[]
  alarmsRejected: number
  /** log records the script wrote during the current step */
  scriptLog: LogRecord[]
}

export const ALARM_KIND = 'alarm'
export const ABORT_KIND = 'abort'
const CLOSE_PHASE = 'close'
/** Messages of phases not entered yet, held at most (a neighbour a phase ahead sends a few per round). */
const MAX_PENDING = 100_000
/** Finished phases kept to answer laggards: a neighbour is never more than a couple of phases behind. */
const MAX_KEPT_PHASES = 4
const SUB_KINDS = new Set(['mask', 'up', 'down', 'own'])

/** The phase a message kind belongs to: `stats.mask` -> `stats`, `newton.3.mask` -> `newton.3`. */
export function phaseOf (kind: string): string {
  const dot = kind.lastIndexOf('.')
  return dot > 0 && SUB_KINDS.has(kind.slice(dot + 1)) ? kind.slice(0, dot) : kind
}

export function createJob<R> (definition: JobDefinition<R>): JobState<R> {
  const state: JobState<R> = {
    definition,
    script: null as unknown as JobScript<R>,
    current: null,
    entered: [],
    finished: new Map(),
    roundOffset: 0,
    phaseRounds: {},
    pending: [],
    result: null,
    done: false,
    failure: null,
    receipts: [],
    alarmsRejected: 0,
    scriptLog: []
  }
  const context: JobContext = {
    job: definition.job,
    graph: definition.graph,
    self: definition.self,
    diameter: definition.diameter,
    round: () => state.roundOffset,
    phaseRounds: () => ({ ...state.phaseRounds }),
    log: (level, event, fields) => { state.scriptLog.push({ level, event, fields }) },
    receipts: () => [...state.receipts]
  }
  ;(state as { script: JobScript<R> }).script = definition.script(context)
  return state
}

export function jobRound<R> (state: JobState<R>): number {
  const current = state.current
  return current === null ? state.roundOffset : state.roundOffset + current.protocol.round(current.state)
}

/** Where the job stands, for the audit log: its phase, the phase's own round (the one its messages carry) and the job round. */
export function jobPosition<R> (state: JobState<R>): { phase: string, round: number, jobRound: number } {
  const current = state.current
  if (current === null) return { phase: 'done', round: 0, jobRound: state.roundOffset }
  const round = current.protocol.round(current.state)
  return { phase: current.name, round, jobRound: state.roundOffset + round }
}

/**
 * The order of a phase in this job, for the audit log: its index among the phases entered so far; a
 * phase not entered yet comes after all of them; a kind that is no phase's (alarms) has none (NaN).
 */
export function phaseIndex<R> (state: JobState<R>, name: string): number {
  if (name === ALARM_KIND || name === ABORT_KIND) return Number.NaN
  const index = state.entered.indexOf(name)
  return index >= 0 ? index : Number.MAX_SAFE_INTEGER
}

/** The job's failure on this peer, if it failed. */
export function jobFailure<R> (state: JobState<R>): EpimeshError | null {
  return state.failure
}

/** The current phase's machine state, when it is `name` (for simulations and progress reports). */
export function currentPhase<R> (state: JobState<R>): Phase | null {
  return state.current
}

function counted (name: string): string {
  const dot = name.indexOf('.')
  return dot < 0 ? name : name.slice(0, dot)
}

/** Starts a phase: its first messages, then the messages that were waiting for it. */
function enter<R> (state: JobState<R>, next: Phase, outbox: ConsensusMessage[], log: LogRecord[]): boolean {
  if (state.entered.includes(next.name)) throw new RangeError(`phase ${next.name} entered twice`)
  state.current = next
  state.entered.push(next.name)
  log.push({ level: 'info', event: 'job.phase', fields: { job: state.definition.job, phase: next.name, round: state.roundOffset } })
  const started = next.protocol.start(next.state)
  outbox.push(...started.outbox)
  log.push(...started.log)
  let finished = next.protocol.done(next.state)
  const ready = state.pending.filter((message) => phaseOf(message.kind) === next.name)
  if (ready.length > 0) state.pending = state.pending.filter((message) => phaseOf(message.kind) !== next.name)
  for (const message of ready) {
    // a phase that finished on the messages before still answers the rest (a neighbour asking for a
    // seed or for contributions it lacks), as a finished phase does
    if (finished) outbox.push(...next.protocol.step(next.state, { type: 'message', message }).outbox)
    else finished = forward(state, next, { type: 'message', message }, outbox, log)
  }
  return finished
}

/** Steps the current machine; true when it is done. */
function forward<R> (state: JobState<R>, current: Phase, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): boolean {
  const stepped = current.protocol.step(current.state, input)
  outbox.push(...stepped.outbox)
  log.push(...stepped.log)
  const evidence = current.protocol.evidence?.(current.state) ?? null
  if (evidence !== null && state.failure === null) {
    fail(state, evidence, log)
    outbox.push(alarm(state, encodeEvidence(evidence)))
  }
  return current.protocol.done(current.state)
}

/** The current phase is done: account for it, and run the script on to its next phase (or its end). */
function settle<R> (state: JobState<R>, finished: boolean, outbox: ConsensusMessage[], log: LogRecord[]): void {
  while (finished && state.failure === null && !state.done) {
    const current = state.current as Phase
    const rounds = current.protocol.round(current.state) + 1
    state.phaseRounds[counted(current.name)] = (state.phaseRounds[counted(current.name)] ?? 0) + rounds
    state.roundOffset += rounds
    state.finished.set(current.name, current)
    for (const name of state.finished.keys()) {
      if (state.finished.size <= MAX_KEPT_PHASES) break
      state.finished.delete(name)
    }
    state.receipts.push(...(current.protocol.receipts?.(current.state) ?? []))
    state.current = null
    if (current.name === CLOSE_PHASE) {
      judgeClosing(state, closingProtocol.result(current.state as ClosingState), log)
      if (state.failure === null) {
        state.done = true
        log.push({ level: 'info', event: 'job.phase', fields: { job: state.definition.job, phase: 'done', round: state.roundOffset } })
      }
      return
    }
    const output = state.result === null ? state.script.next(current.protocol.result(current.state)) : null
    log.push(...state.scriptLog.splice(0))
    if (output !== null && output.done !== true) {
      finished = enter(state, output.value, outbox, log)
      continue
    }
    if (output !== null) state.result = output.value as R
    finished = close(state, outbox, log)
  }
}

/** The script returned: the closing, or the end where a job has none. */
function close<R> (state: JobState<R>, outbox: ConsensusMessage[], log: LogRecord[]): boolean {
  const { definition } = state
  const result = state.result as R
  if (definition.closing === null) {
    state.done = true
    log.push({ level: 'info', event: 'job.phase', fields: { job: definition.job, phase: 'done', round: state.roundOffset } })
    return false
  }
  const members = definition.closing.members?.(result)
  const statement = encodeStatement(definition.closing.digest(result), state.receipts)
  const closing = createClosing({ graph: definition.graph, self: definition.self, job: definition.job, kind: CLOSE_PHASE, statement, verifier: definition.verifier, ...(members === undefined ? {} : { members }) })
  return enter(state, { name: CLOSE_PHASE, protocol: closingProtocol as Protocol<unknown, unknown>, state: closing }, outbox, log)
}

function encodeStatement (digest: Uint8Array, receipts: readonly Receipt[]): Uint8Array {
  const writer = new ByteWriter()
  writer.u8(1)
  writer.blob(digest)
  writer.u32(receipts.length)
  for (const receipt of receipts) {
    writer.string(receipt.from)
    writer.string(receipt.kind)
    writer.u32(receipt.round)
    writer.string(receipt.to ?? '')
    writer.blob(receipt.digest)
    writer.blob(receipt.signature)
  }
  return writer.bytes()
}

function decodeStatement (job: string, data: Uint8Array): { digest: Uint8Array, receipts: Receipt[] } | null {
  try {
    const reader = new ByteReader(data)
    if (reader.u8() !== 1) return null
    const digest = reader.blob(32)
    const count = reader.u32()
    if (digest.length !== 32 || count > 4096) return null
    const receipts: Receipt[] = []
    for (let index = 0; index < count; index++) {
      const from = reader.string()
      const kind = reader.string()
      const round = reader.u32()
      const to = reader.string()
      const receiptDigest = reader.blob(32)
      const signature = reader.blob(128)
      receipts.push({ job, kind, round, from, ...(to === '' ? {} : { to }), digest: receiptDigest, signature })
    }
    return reader.atEnd() ? { digest, receipts } : null
  } catch {
    return null
  }
}

/**
 * Every member's statement is in: all must name this peer's result, and no two receipts of one member's
 * message may differ. The first proven equivocation fails the job naming its author; otherwise results
 * that differ fail it naming who holds which.
 */
function judgeClosing<R> (state: JobState<R>, statements: Array<ConsensusMessage | null>, log: LogRecord[]): void {
  const { definition } = state
  const names = definition.graph.names
  const closing = definition.closing as JobClosing<R>
  const mine = toHex(closing.digest(state.result as R))
  const groups = new Map<string, string[]>()
  const seen = new Map<string, Receipt>()
  const verifier = definition.verifier
  for (const [node, statement] of statements.entries()) {
    if (statement === null) continue
    const author = names[node] as string
    const decoded = decodeStatement(definition.job, statement.data)
    if (decoded === null) {
      state.failure = new MemberMisbehavedError(author, 'statement', state.roundOffset, author, 'its signed closing statement cannot be read')
      return
    }
    const digest = toHex(decoded.digest)
    groups.set(digest, [...(groups.get(digest) ?? []), author])
    for (const receipt of decoded.receipts) {
      if (receipt.from === author) continue
      const key = `${receipt.from}\n${receipt.kind}\n${receipt.round}\n${receipt.to ?? ''}`
      const other = seen.get(key)
      if (other === undefined) {
        seen.set(key, receipt)
        continue
      }
      if (toHex(other.digest) === toHex(receipt.digest) || verifier === null) continue
      const evidence: Evidence = { rule: 'equivocation', offender: receipt.from, reporter: author, messages: [], receipts: [other, receipt], witnesses: [] }
      if (judgeEquivocation(evidence, verifier) === null) {
        log.push({ level: 'warn', event: 'closing.equivocation', fields: { offender: receipt.from, kind: receipt.kind, round: receipt.round } })
        state.failure = new MemberMisbehavedError(receipt.from, 'equivocation', receipt.round, author, `two neighbours hold its signatures on two different ${receipt.kind} messages for round ${receipt.round}`)
        return
      }
      if (!verifyReceipt(receipt, verifier)) log.push({ level: 'warn', event: 'closing.receipt.invalid', fields: { statement: author, subject: receipt.from } })
    }
  }
  if (closing.exact && (groups.size > 1 || !groups.has(mine))) {
    const ordered = [mine, ...[...groups.keys()].filter((digest) => digest !== mine)]
    state.failure = new ModelDisagreementError(ordered.map((digest) => groups.get(digest) ?? []).filter((group) => group.length > 0))
    return
  }
  log.push({ level: 'info', event: 'closing.agreed', fields: { members: statements.filter((statement) => statement !== null).length, result: mine.slice(0, 16) } })
}

function fail<R> (state: JobState<R>, evidence: Evidence, log: LogRecord[]): void {
  const round = evidence.messages[0]?.round ?? evidence.receipts[0]?.round ?? 0
  state.failure = new MemberMisbehavedError(evidence.offender, evidence.rule, round, evidence.reporter, evidence.rule === 'equivocation' ? 'two different signed messages for one round' : 'its signed messages contradict the protocol')
  log.push({ level: 'warn', event: 'job.member-misbehaved', fields: { job: state.definition.job, offender: evidence.offender, rule: evidence.rule, round, reporter: evidence.reporter } })
}

/** The alarm that carries a proof to every member: broadcast by whoever caught the offender, and relayed once by everyone. */
function alarm<R> (state: JobState<R>, data: Uint8Array): ConsensusMessage {
  const { definition } = state
  return { job: definition.job, kind: ALARM_KIND, round: jobRound(state), from: definition.graph.names[definition.self] as string, values: new Float64Array(0), data }
}

/**
 * Whether an alarm's proof holds: the job's own rules (the definition's judge) for a broken round
 * message, the receipts' signatures for an equivocation. The offender's signatures are checked here.
 */
function judgeAlarm<R> (state: JobState<R>, evidence: Evidence): string | null {
  const { definition } = state
  if (definition.verifier === null) return 'no verifier: signatures cannot be checked here'
  const names = definition.graph.names
  if (!names.includes(evidence.offender) || !names.includes(evidence.reporter) || evidence.offender === evidence.reporter) return 'offender or reporter is not a member'
  if (evidence.rule === 'equivocation') {
    if (evidence.receipts.some((receipt) => receipt.job !== definition.job)) return 'receipts of another job'
    return judgeEquivocation(evidence, definition.verifier)
  }
  return definition.judge(evidence)
}

function receiveAlarm<R> (state: JobState<R>, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  if (state.failure !== null) return
  const evidence = decodeEvidence(message.data)
  const reason = typeof evidence === 'string' ? evidence : judgeAlarm(state, evidence)
  if (typeof evidence === 'string' || reason !== null) {
    state.alarmsRejected++
    log.push({ level: 'warn', event: 'job.alarm.rejected', fields: { from: message.from, reason } })
    return
  }
  fail(state, evidence, log)
  outbox.push(alarm(state, message.data))
}

function abortMessage<R> (state: JobState<R>, origin: string, code: string, reason: string): ConsensusMessage {
  const { definition } = state
  const text = JSON.stringify({ origin, code: code.slice(0, 40), reason: reason.slice(0, 400) })
  return { job: definition.job, kind: ABORT_KIND, round: jobRound(state), from: definition.graph.names[definition.self] as string, values: new Float64Array(0), data: new TextEncoder().encode(text) }
}

function receiveAbort<R> (state: JobState<R>, message: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  let parsed: { origin?: unknown, code?: unknown, reason?: unknown }
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(message.data.subarray(0, 1024))) as typeof parsed
  } catch {
    return
  }
  const names = state.definition.graph.names
  if (typeof parsed.origin !== 'string' || !names.includes(parsed.origin) || typeof parsed.code !== 'string' || typeof parsed.reason !== 'string') return
  state.failure = new JobAbortedError(parsed.origin, parsed.code, parsed.reason)
  log.push({ level: 'warn', event: 'job.aborted', fields: { job: state.definition.job, origin: parsed.origin, code: parsed.code } })
  outbox.push(abortMessage(state, parsed.origin, parsed.code, parsed.reason))
}

function stepJob<R> (state: JobState<R>, input: MachineInput, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const current = state.current
  if (input.type === 'moved-on') return
  if (input.type === 'deadline') {
    if (current === null || input.round !== jobRound(state)) return
    settle(state, forward(state, current, { type: 'deadline', round: input.round - state.roundOffset }, outbox, log), outbox, log)
    return
  }
  const message = input.message
  if (message.job !== state.definition.job) return
  const name = phaseOf(message.kind)
  if (current !== null && name === current.name) {
    settle(state, forward(state, current, input, outbox, log), outbox, log)
    return
  }
  const finished = state.finished.get(name)
  if (finished !== undefined) {
    // a finished phase still answers a neighbour that lags behind
    outbox.push(...finished.protocol.step(finished.state, input).outbox)
    return
  }
  if (state.entered.includes(name) || current === null) return
  // a phase this peer has not reached: its sender has moved on from the current one
  if (state.pending.length < MAX_PENDING) state.pending.push(message)
  settle(state, forward(state, current, { type: 'moved-on', from: message.from }, outbox, log), outbox, log)
}

export const jobProtocol: Protocol<JobState<unknown>, unknown> = {
  start (state) {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    try {
      const first = state.script.next()
      log.push(...state.scriptLog.splice(0))
      if (first.done === true) {
        state.result = first.value
        settle(state, close(state, outbox, log), outbox, log)
      } else {
        settle(state, enter(state, first.value, outbox, log), outbox, log)
      }
    } catch (error) {
      failed(state, error, outbox, log)
    }
    return { state, outbox, log }
  },

  step (state, input): StepResult<JobState<unknown>> {
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    // A job that failed here (a member caught, no agreement, a sum that cannot complete) does nothing more.
    if (state.failure !== null) return { state, outbox, log }
    if (input.type === 'message' && input.message.job === state.definition.job && input.message.kind === ALARM_KIND) {
      receiveAlarm(state, input.message, outbox, log)
      return { state, outbox, log }
    }
    if (input.type === 'message' && input.message.job === state.definition.job && input.message.kind === ABORT_KIND) {
      receiveAbort(state, input.message, outbox, log)
      return { state, outbox, log }
    }
    if (state.done) {
      // still answer neighbours that have not finished the last phases
      if (input.type === 'message' && input.message.job === state.definition.job) {
        const finished = state.finished.get(phaseOf(input.message.kind))
        if (finished !== undefined) outbox.push(...finished.protocol.step(finished.state, input).outbox)
      }
      return { state, outbox, log }
    }
    try {
      stepJob(state, input, outbox, log)
    } catch (error) {
      failed(state, error, outbox, log)
    }
    return { state, outbox, log }
  },

  round: jobRound,
  done: (state) => state.done || state.failure !== null,

  result (state) {
    if (state.failure !== null) throw state.failure
    if (!state.done || state.result === null) throw new NotConvergedError(`job ${state.definition.job} has not finished`)
    return state.result
  }
}

/**
 * A failure (a sum that cannot complete, values out of range, an iterate pulled away) ends the job on
 * this peer, and every other member hears why at once instead of waiting for it. Only typed failures:
 * anything else is a bug, and is thrown.
 */
function failed<R> (state: JobState<R>, error: unknown, outbox: ConsensusMessage[], log: LogRecord[]): void {
  if (!(error instanceof EpimeshError)) throw error
  log.push(...state.scriptLog.splice(0))
  state.failure = error
  log.push({ level: 'warn', event: 'job.failed', fields: { job: state.definition.job, code: error.code, reason: error.message } })
  outbox.push(abortMessage(state, state.definition.graph.names[state.definition.self] as string, error.code, error.message))
}
