import { excerpt } from '../ids.ts'
import type { LogRecord } from '../machine.ts'

/**
 * The agreement on a job, without a coordinator, as a pure machine: any member proposes a job on the
 * federation's announcement topic; each member checks it against its own data and disclosure policy and
 * answers accept or decline (with the reason); when every member has accepted, all start round 0 of the
 * same job. Nothing here reads a clock, a store or the network: time comes with every input, the check
 * is asked of the shell as an effect (the data are not the machine's) and comes back as an input, and
 * what is to be published comes out as announcements. The simulator runs it over an in-memory topic
 * (sim/agreement-simulation.ts); a peer's shell runs it over the federation's topic.
 *
 * A member that joins late never sees what was published before it subscribed, and announcements get
 * lost, so a job's proposal and answers go out again at growing intervals (1, 2, 4, then every 8 s)
 * until it starts or, after `startTimeoutMs`, expires; and at once, once per member, when a member that
 * has not answered joins the topic (the shell reports the subscription). A job ends its agreement in one of two ways,
 * each followed by a short tail of announcements for members that missed the last one:
 * - started: this member's accept goes out three more times (0.5, 1.5 and 3.5 s after the start),
 *   since a member lacking one accept would otherwise wait until expiry while the others run;
 * - refused (a member declined): each member repeats what it published about the job (the proposal,
 *   its answer) at 1 and 2 s after the refusal, then forgets the job. A decline that arrives before
 *   its proposal (announcements overtake each other) is kept, for a few recent ids, and refuses the
 *   proposal when it comes.
 * Everything one member proposes is bounded for the others: a proposal must be in its author's own
 * name, at most 4 of one member's and 32 in all wait at once (more are ignored and counted), and every
 * proposal waits at most `startTimeoutMs`. So what each member holds and publishes stays bounded
 * whatever another proposes.
 *
 * The machine is generic over the proposal: it reads only its id and proposer, and hands the whole
 * proposal to the shell in the `check` and `start` effects. Announcements have the shape they have on
 * the wire (`job.propose` is the proposal itself); the shell validates them by schema before they come
 * in, so the machine trusts their shape but not their sender.
 */

/** Limits on what one member's proposals can make every other member hold and publish. */
export const AGREEMENT_LIMITS = Object.freeze({
  /** proposals of one member waiting to start at once; more are ignored (and counted) */
  pendingPerMember: 4,
  /** proposals waiting to start, all members together */
  pending: 32,
  /** ids remembered after a job ends, expires or is refused, so that repeats of it are not answered again */
  remembered: 10_000,
  /** proposals and answers are repeated with this first interval, doubling up to the cap, until the job starts or expires */
  repeatFirstMs: 1_000,
  repeatMaxMs: 8_000,
  /** a refused job's announcements go out this many times in all (at the refusal, then 1 and 2 s later); then it is forgotten */
  refusedAnnouncements: 3,
  /** declines of jobs not held here, kept (the most recent) for a proposal that arrives after them */
  earlyDeclines: 32,
  /** after a start this member's accept goes out again this many times, the first this long after the start, then doubling from repeatFirstMs */
  startEchoes: 3,
  startEchoMs: 500,
  /** characters of a decline's reason (the announcement schema's bound): a longer reason is cut */
  reasonLength: 1_000
})

export type AgreementLimits = { -readonly [K in keyof typeof AGREEMENT_LIMITS]: number }

/** What the machine reads of a proposal; the rest (model, forecast, ...) is the shell's. */
export interface ProposalHeader {
  readonly type: 'job.propose'
  readonly id: string
  /** the member proposing it: must be the announcement's authenticated author */
  readonly proposer: string
}

export interface JobAccept { type: 'job.accept', id: string }
export interface JobDecline { type: 'job.decline', id: string, reason: string }
/** An announcement on the federation's topic, as on the wire: a proposal, an accept or a decline. */
export type AgreementAnnouncement<P extends ProposalHeader> = P | JobAccept | JobDecline

/** A member's answer to a proposal. */
export type AgreementVerdict = { accept: true } | { accept: false, reason: string }

export type AgreementInput<P extends ProposalHeader> =
  /** an announcement another member published; `from` is its authenticated author */
  | { type: 'announcement', from: string, announcement: AgreementAnnouncement<P>, now: number }
  /** this member proposes a job (its proposer must be this member) */
  | { type: 'propose', proposal: P, now: number }
  /** the shell's answer to a `check` effect */
  | { type: 'checked', job: string, verdict: AgreementVerdict, now: number }
  /** time passes: repeats, expiries and the ends of tails fall due */
  | { type: 'tick', now: number }
  /** this member gives the job up: a waiting job is declined with `reason`, a started one forgotten */
  | { type: 'abort', job: string, reason?: string, now: number }
  /** a started job has run to its end (result or failure) here: only its id is kept */
  | { type: 'finished', job: string, now: number }
  /**
   * a member has just joined the federation's topic (it subscribed): what this member published about
   * each waiting job that member has not answered goes out again now, rather than at the next repeat
   * (once per member and job, so that re-subscribing cannot make this member publish more)
   */
  | { type: 'joined', member: string, now: number }

export type AgreementEffect<P extends ProposalHeader> =
  /** check the proposal against this region's data and disclosure policy; answer with `checked` */
  | { type: 'check', proposal: P }
  /** every member accepted: start round 0 of the job */
  | { type: 'start', proposal: P }
  /** `by` declined the job (this member, when `by` is itself) for `reason`: it will not start; once per job */
  | { type: 'refused', job: string, by: string, reason: string }
  /** the job did not start within `startTimeoutMs` of its proposal; `waitingFor` never answered here */
  | { type: 'expired', job: string, waitingFor: string[], afterMs: number }

export interface AgreementCounters {
  /** proposals of jobs not held or remembered here, this member's own included */
  proposalsSeen: number
  /** of those, ignored: not in the author's own name, or over a member's or the federation's pending limit */
  proposalsIgnored: number
  /** announcements from outside the federation's members, dropped */
  foreign: number
  started: number
  refused: number
  expired: number
  /** announcements this machine asked the shell to publish */
  announcements: number
}

export interface AgreementInit {
  /** this member's id (a peer id, or a name in simulation) */
  self: string
  /** every member of the federation, this one included: a job starts when all of them accepted */
  members: readonly string[]
  /** a proposal not started this long after it was first seen here expires */
  startTimeoutMs: number
  limits?: Partial<AgreementLimits>
}

/**
 * One job as this member knows it.
 * - pending: waiting for answers; its proposal (if this member's) and answer repeat with backoff;
 * - refused: a member declined; its announcements repeat twice, then the job is forgotten;
 * - started: every member accepted; the accept echoes a few times, then the job waits for `finished`.
 */
export interface AgreementJob<P extends ProposalHeader> {
  readonly proposal: P
  /** each member's answer as heard here, this member's own once its check is back */
  readonly answers: Map<string, AgreementVerdict>
  /** this member's answer as published, once its check is back */
  answer: JobAccept | JobDecline | null
  phase: 'pending' | 'refused' | 'started'
  readonly firstSeen: number
  /** when its announcements go out next, or null when nothing more is due (a started job after its echoes) */
  nextRepeat: number | null
  repeatInterval: number
  /** announcements of the tail (refused or started) still to go out */
  tailLeft: number
  /** the shell reported it finished while its tail still ran: forgotten when the tail ends */
  finished: boolean
  /** members whose joining made this member publish about the job again (at most once each) */
  readonly rejoined: Set<string>
}

export interface AgreementState<P extends ProposalHeader> {
  readonly self: string
  readonly members: readonly string[]
  readonly memberSet: ReadonlySet<string>
  readonly startTimeoutMs: number
  readonly limits: Readonly<AgreementLimits>
  /** jobs held here, in the order they were first seen */
  readonly jobs: Map<string, AgreementJob<P>>
  /** ids of jobs that ended, expired or were refused, oldest first, at most `limits.remembered` */
  readonly forgotten: Set<string>
  /** declines of jobs not held here, by id, oldest first, at most `limits.earlyDeclines` */
  readonly earlyDeclines: Map<string, { by: string, reason: string }>
  readonly counters: AgreementCounters
}

export interface AgreementStep<P extends ProposalHeader> {
  state: AgreementState<P>
  /** announcements to publish on the federation's topic, in order */
  outbox: Array<AgreementAnnouncement<P>>
  effects: Array<AgreementEffect<P>>
  log: LogRecord[]
}

function positiveInteger (field: string, value: number): void {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`agreement ${field} must be a positive integer, got ${value}`)
}

/** A new agreement machine for one member. Members and limits are the caller's to get right: a mistake throws RangeError. */
export function createAgreement<P extends ProposalHeader> (init: AgreementInit): AgreementState<P> {
  const limits: AgreementLimits = { ...AGREEMENT_LIMITS, ...init.limits }
  for (const [field, value] of Object.entries(limits)) positiveInteger(`limits.${field}`, value)
  if (limits.repeatMaxMs < limits.repeatFirstMs) throw new RangeError(`agreement limits.repeatMaxMs (${limits.repeatMaxMs}) is below limits.repeatFirstMs (${limits.repeatFirstMs})`)
  positiveInteger('startTimeoutMs', init.startTimeoutMs)
  const memberSet = new Set(init.members)
  if (memberSet.size !== init.members.length) throw new RangeError('agreement members must be distinct')
  if (!memberSet.has(init.self)) throw new RangeError(`agreement self ${excerpt(init.self)} is not one of the members`)
  return {
    self: init.self,
    members: [...init.members],
    memberSet,
    startTimeoutMs: init.startTimeoutMs,
    limits: Object.freeze(limits),
    jobs: new Map(),
    forgotten: new Set(),
    earlyDeclines: new Map(),
    counters: { proposalsSeen: 0, proposalsIgnored: 0, foreign: 0, started: 0, refused: 0, expired: 0, announcements: 0 }
  }
}

/**
 * One step: the machine updates `state` in place and returns it with what to publish, the effects for
 * the shell and log records. Inputs must come with a time that does not go backwards.
 */
export function stepAgreement<P extends ProposalHeader> (state: AgreementState<P>, input: AgreementInput<P>): AgreementStep<P> {
  const step: AgreementStep<P> = { state, outbox: [], effects: [], log: [] }
  switch (input.type) {
    case 'announcement':
      receive(step, input.from, input.announcement, input.now)
      break
    case 'propose':
      propose(step, input.proposal, input.now)
      break
    case 'checked':
      checked(step, input.job, input.verdict, input.now)
      break
    case 'tick':
      tick(step, input.now)
      break
    case 'abort':
      abort(step, input.job, input.reason ?? 'given up by this member', input.now)
      break
    case 'finished':
      finished(step, input.job)
      break
    case 'joined':
      joined(step, input.member)
      break
  }
  state.counters.announcements += step.outbox.length
  return step
}

/**
 * The earliest time at which a `tick` has something to do, or null while no job waits on time: a
 * shell may sleep until then instead of ticking at a fixed rate.
 */
export function nextWake<P extends ProposalHeader> (state: AgreementState<P>): number | null {
  let wake: number | null = null
  for (const job of state.jobs.values()) {
    let due = job.nextRepeat
    // expiry is strictly after the timeout, as a tick at exactly firstSeen + timeout does not expire it
    if (job.phase === 'pending') due = Math.min(due ?? Infinity, job.firstSeen + state.startTimeoutMs + 1)
    if (due !== null && (wake === null || due < wake)) wake = due
  }
  return wake
}

/** The members whose answer this member has not heard for a job it holds (itself included until its check is back). */
export function waitingFor<P extends ProposalHeader> (state: AgreementState<P>, job: AgreementJob<P>): string[] {
  return state.members.filter((member) => !job.answers.has(member))
}

/** Proposals of `proposer` (or of everyone) waiting to start: pending or refused but not yet forgotten. */
export function pendingCount<P extends ProposalHeader> (state: AgreementState<P>, proposer?: string): number {
  let count = 0
  for (const job of state.jobs.values()) if (job.phase !== 'started' && (proposer === undefined || job.proposal.proposer === proposer)) count++
  return count
}

function log (step: AgreementStep<ProposalHeader>, level: LogRecord['level'], event: string, fields: Record<string, unknown>): void {
  step.log.push({ level, event, fields })
}

/** A reason as the announcement schema accepts it: at most `max` UTF-16 units, no split surrogate pair. */
function boundedReason (reason: string, max: number): string {
  if (reason.length <= max) return reason
  let end = max - 1
  const last = reason.charCodeAt(end - 1)
  if (last >= 0xd800 && last <= 0xdbff) end--
  return `${reason.slice(0, end)}…`
}

/** A decline can overtake its proposal: kept for a while, it refuses the proposal when it comes. */
function keepEarlyDecline<P extends ProposalHeader> (state: AgreementState<P>, id: string, by: string, reason: string): void {
  if (state.earlyDeclines.has(id)) return
  state.earlyDeclines.set(id, { by, reason })
  while (state.earlyDeclines.size > state.limits.earlyDeclines) {
    const oldest = state.earlyDeclines.keys().next().value
    if (oldest === undefined) break
    state.earlyDeclines.delete(oldest)
  }
}

function forget<P extends ProposalHeader> (state: AgreementState<P>, id: string): void {
  state.jobs.delete(id)
  state.forgotten.delete(id)
  state.forgotten.add(id)
  while (state.forgotten.size > state.limits.remembered) {
    const oldest = state.forgotten.values().next().value
    if (oldest === undefined) break
    state.forgotten.delete(oldest)
  }
}

function hold<P extends ProposalHeader> (step: AgreementStep<P>, proposal: P, now: number): void {
  const { state } = step
  const job: AgreementJob<P> = {
    proposal,
    answers: new Map(),
    answer: null,
    phase: 'pending',
    firstSeen: now,
    nextRepeat: now + state.limits.repeatFirstMs,
    repeatInterval: state.limits.repeatFirstMs,
    tailLeft: 0,
    finished: false,
    rejoined: new Set()
  }
  state.jobs.set(proposal.id, job)
  const early = state.earlyDeclines.get(proposal.id)
  if (early === undefined) {
    step.effects.push({ type: 'check', proposal })
    return
  }
  // declined before it arrived here: no check needed
  state.earlyDeclines.delete(proposal.id)
  job.answers.set(early.by, { accept: false, reason: early.reason })
  log(step, 'warn', 'job.declined', { job: proposal.id, by: early.by, reason: excerpt(early.reason, 200) })
  refuse(step, job, early.by, early.reason, now)
}

function propose<P extends ProposalHeader> (step: AgreementStep<P>, proposal: P, now: number): void {
  const { state } = step
  if (proposal.proposer !== state.self) throw new RangeError(`a member proposes only in its own name: proposer ${excerpt(proposal.proposer)} is not ${excerpt(state.self)}`)
  if (state.jobs.has(proposal.id) || state.forgotten.has(proposal.id)) {
    const reason = 'this job id is already in use here'
    log(step, 'warn', 'job.proposal.refused', { job: proposal.id, reason })
    step.effects.push({ type: 'refused', job: proposal.id, by: state.self, reason })
    return
  }
  state.counters.proposalsSeen++
  // This member's own proposals are not limited: the limits bound what others can make it hold.
  hold(step, proposal, now)
  step.outbox.push(proposal)
}

function receive<P extends ProposalHeader> (step: AgreementStep<P>, from: string, announcement: AgreementAnnouncement<P>, now: number): void {
  const { state } = step
  // This member's own announcements coming back change nothing: it knows its own answers.
  if (from === state.self) return
  if (!state.memberSet.has(from)) {
    state.counters.foreign++
    log(step, 'debug', 'job.announcement.foreign', { job: announcement.id, from: excerpt(from) })
    return
  }
  if (announcement.type === 'job.propose') {
    receiveProposal(step, from, announcement, now)
    return
  }
  const job = state.jobs.get(announcement.id)
  if (job === undefined) {
    if (announcement.type === 'job.decline' && !state.forgotten.has(announcement.id)) keepEarlyDecline(state, announcement.id, from, announcement.reason)
    return
  }
  // A started or refused job has heard all it needs.
  if (job.phase !== 'pending') return
  if (announcement.type === 'job.accept') {
    job.answers.set(from, { accept: true })
    maybeStart(step, job, now)
  } else {
    job.answers.set(from, { accept: false, reason: announcement.reason })
    log(step, 'warn', 'job.declined', { job: announcement.id, by: from, reason: excerpt(announcement.reason, 200) })
    refuse(step, job, from, announcement.reason, now)
  }
}

function receiveProposal<P extends ProposalHeader> (step: AgreementStep<P>, from: string, proposal: P, now: number): void {
  const { state } = step
  if (state.jobs.has(proposal.id) || state.forgotten.has(proposal.id)) return
  state.counters.proposalsSeen++
  // A member proposes only in its own name, and cannot make the others hold more than a few of its
  // proposals at once.
  const reason = proposal.proposer !== from
    ? 'proposer is not the author'
    : pendingCount(state, from) >= state.limits.pendingPerMember
      ? 'too many pending proposals of this member'
      : pendingCount(state) >= state.limits.pending ? 'too many pending proposals' : null
  if (reason !== null) {
    state.counters.proposalsIgnored++
    log(step, 'debug', 'job.proposal.ignored', { job: proposal.id, from, reason })
    return
  }
  hold(step, proposal, now)
}

function checked<P extends ProposalHeader> (step: AgreementStep<P>, id: string, verdict: AgreementVerdict, now: number): void {
  const { state } = step
  const job = state.jobs.get(id)
  // expired, forgotten or given up while the check ran, or answered already
  if (job === undefined || job.answer !== null) return
  if (verdict.accept) {
    job.answer = { type: 'job.accept', id }
    job.answers.set(state.self, { accept: true })
    log(step, 'info', 'job.accepted', { job: id })
    step.outbox.push(job.answer)
    maybeStart(step, job, now)
    return
  }
  const reason = boundedReason(verdict.reason, state.limits.reasonLength)
  job.answer = { type: 'job.decline', id, reason }
  job.answers.set(state.self, { accept: false, reason })
  log(step, 'warn', 'job.declined', { job: id, by: state.self, reason: excerpt(reason, 200) })
  step.outbox.push(job.answer)
  if (job.phase === 'pending') refuse(step, job, state.self, reason, now)
}

function maybeStart<P extends ProposalHeader> (step: AgreementStep<P>, job: AgreementJob<P>, now: number): void {
  const { state } = step
  if (job.phase !== 'pending') return
  for (const member of state.members) if (job.answers.get(member)?.accept !== true) return
  job.phase = 'started'
  state.counters.started++
  job.nextRepeat = now + state.limits.startEchoMs
  job.repeatInterval = state.limits.repeatFirstMs
  job.tailLeft = state.limits.startEchoes
  log(step, 'info', 'job.agreed', { job: job.proposal.id, members: state.members.length })
  step.effects.push({ type: 'start', proposal: job.proposal })
}

function refuse<P extends ProposalHeader> (step: AgreementStep<P>, job: AgreementJob<P>, by: string, reason: string, now: number): void {
  const { state } = step
  job.phase = 'refused'
  state.counters.refused++
  // The decline just published (if it is this member's) is the first of the tail's announcements.
  job.nextRepeat = now + state.limits.repeatFirstMs
  job.repeatInterval = state.limits.repeatFirstMs
  job.tailLeft = state.limits.refusedAnnouncements - 1
  step.effects.push({ type: 'refused', job: job.proposal.id, by, reason })
}

function tick<P extends ProposalHeader> (step: AgreementStep<P>, now: number): void {
  const { state } = step
  const { limits } = state
  for (const job of [...state.jobs.values()]) {
    const id = job.proposal.id
    if (job.phase === 'pending' && now - job.firstSeen > state.startTimeoutMs) {
      const waiting = waitingFor(state, job)
      state.counters.expired++
      log(step, 'warn', 'job.expired', { job: id, afterMs: now - job.firstSeen, waitingFor: waiting })
      forget(state, id)
      step.effects.push({ type: 'expired', job: id, waitingFor: waiting, afterMs: now - job.firstSeen })
      continue
    }
    if (job.nextRepeat === null || now < job.nextRepeat) continue
    if (job.phase !== 'pending') {
      if (job.tailLeft <= 0) {
        endTail(state, job)
        continue
      }
      job.tailLeft--
    }
    // What this member published about the job goes out again: its proposal (until the job starts)
    // and its answer.
    if (job.phase !== 'started' && job.proposal.proposer === state.self) step.outbox.push(job.proposal)
    if (job.answer !== null) step.outbox.push(job.answer)
    if (job.phase === 'started' && job.tailLeft === 0) {
      endTail(state, job)
      continue
    }
    job.nextRepeat = now + job.repeatInterval
    job.repeatInterval = Math.min(limits.repeatMaxMs, 2 * job.repeatInterval)
  }
}

/** After its tail a refused job, or a started one that finished, is forgotten; a running one waits for `finished`. */
function endTail<P extends ProposalHeader> (state: AgreementState<P>, job: AgreementJob<P>): void {
  if (job.phase === 'refused' || job.finished) forget(state, job.proposal.id)
  else job.nextRepeat = null
}

function abort<P extends ProposalHeader> (step: AgreementStep<P>, id: string, reason: string, now: number): void {
  const { state } = step
  const job = state.jobs.get(id)
  if (job === undefined) {
    log(step, 'debug', 'job.abort.unknown', { job: id })
    return
  }
  if (job.phase === 'started') {
    log(step, 'info', 'job.aborted', { job: id, started: true })
    forget(state, id)
    return
  }
  if (job.phase === 'refused') return
  // A waiting job is declined, so that the others learn at once rather than when it expires.
  const bounded = boundedReason(reason, state.limits.reasonLength)
  job.answer = { type: 'job.decline', id, reason: bounded }
  job.answers.set(state.self, { accept: false, reason: bounded })
  log(step, 'info', 'job.aborted', { job: id, started: false, reason: excerpt(bounded, 200) })
  step.outbox.push(job.answer)
  refuse(step, job, state.self, bounded, now)
}

function joined<P extends ProposalHeader> (step: AgreementStep<P>, member: string): void {
  const { state } = step
  if (member === state.self || !state.memberSet.has(member)) return
  for (const job of state.jobs.values()) {
    if (job.phase !== 'pending' || job.answers.has(member) || job.rejoined.has(member)) continue
    const before = step.outbox.length
    if (job.proposal.proposer === state.self) step.outbox.push(job.proposal)
    if (job.answer !== null) step.outbox.push(job.answer)
    if (step.outbox.length > before) job.rejoined.add(member)
  }
}

function finished<P extends ProposalHeader> (step: AgreementStep<P>, id: string): void {
  const { state } = step
  const job = state.jobs.get(id)
  if (job === undefined || job.phase !== 'started') {
    log(step, 'debug', 'job.finished.unknown', { job: id })
    return
  }
  if (job.tailLeft > 0) job.finished = true
  else forget(state, id)
}
