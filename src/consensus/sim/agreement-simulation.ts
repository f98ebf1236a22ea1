import { createAgreement, stepAgreement, type AgreementAnnouncement, type AgreementEffect, type AgreementLimits, type AgreementState, type AgreementStep, type AgreementVerdict, type ProposalHeader } from '../jobs/agreement.ts'
import { createRng, forkRng } from '../rng.ts'
import { AnnouncementNetwork, type AnnouncementNetworkCounters } from './announcement-network.ts'

/**
 * The agreement of several members, each running its own agreement machine, over an in-memory
 * announcement topic with seeded loss and delay, in steps of `tickMs`. It plays the shell's part for
 * every member: publishes what the machine asks, answers its checks after a delay, reports a started
 * job finished after `runMs`. Members listed in `scripted` run no machine: they publish only what the
 * script makes them (a silent member, or a hostile one flooding proposals).
 *
 * Order within a step, which makes a run a pure function of its options: script events due, in script
 * order; announcements due, earliest first; check answers due, earliest first; jobs due to finish;
 * then a tick for every machine, in member order.
 */
export type AgreementScriptEvent<P extends ProposalHeader> =
  /** a member that runs a machine proposes a job */
  | { at: number, member: string, propose: P }
  /** any member publishes an announcement as it is, past its machine (how a hostile member floods) */
  | { at: number, member: string, publish: AgreementAnnouncement<P> }
  /** a member that runs a machine gives a job up */
  | { at: number, member: string, abort: string, reason?: string }
  /** a member is cut off from the topic, or comes back */
  | { at: number, member: string, isolate: boolean }

export interface AgreementSimulationOptions<P extends ProposalHeader> {
  members: readonly string[]
  /** members that run no machine */
  scripted?: readonly string[]
  seed: number
  /** probability that one copy of an announcement is lost */
  loss?: number
  /** each copy's delay, uniform in [min, max] ms */
  delayMs?: { min: number, max: number }
  startTimeoutMs: number
  limits?: Partial<AgreementLimits>
  /** a member's verdict on a proposal: its data and disclosure policy */
  check: (member: string, proposal: P) => AgreementVerdict
  /** how long a check takes, uniform in [min, max] ms (default 0..200) */
  checkMs?: { min: number, max: number }
  /** a started job finishes this long after its start; by default it runs to the end of the simulation */
  runMs?: number
  /** the time step (default 50 ms) */
  tickMs?: number
  durationMs: number
  script?: ReadonlyArray<AgreementScriptEvent<P>>
  /** after every time step, with the machines' states (for invariants) */
  onStep?: (now: number, states: ReadonlyMap<string, AgreementState<P>>) => void
}

export interface AgreementSimulationRun<P extends ProposalHeader> {
  /** each machine's final state */
  states: Map<string, AgreementState<P>>
  /** every effect of every machine, in order */
  effects: Array<{ at: number, member: string, effect: AgreementEffect<P> }>
  /** every announcement a member published, machines and script alike, in order */
  published: Array<{ at: number, member: string, type: AgreementAnnouncement<ProposalHeader>['type'], job: string }>
  network: AnnouncementNetworkCounters
}

interface Timed { at: number, order: number, member: string, job: string }

export function simulateAgreement<P extends ProposalHeader> (options: AgreementSimulationOptions<P>): AgreementSimulationRun<P> {
  const tickMs = options.tickMs ?? 50
  if (!(Number.isInteger(tickMs) && tickMs >= 1)) throw new RangeError(`tickMs must be a positive integer, got ${tickMs}`)
  const checkMs = options.checkMs ?? { min: 0, max: 200 }
  if (!(checkMs.min >= 0 && checkMs.max >= checkMs.min)) throw new RangeError(`checkMs must be 0 <= min <= max, got ${checkMs.min}..${checkMs.max}`)
  const root = createRng(options.seed)
  const network = new AnnouncementNetwork<AgreementAnnouncement<P>>({
    members: options.members,
    rng: forkRng(root, 'network'),
    ...(options.loss === undefined ? {} : { loss: options.loss }),
    ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs })
  })
  const checkRng = forkRng(root, 'checks')
  const scripted = new Set(options.scripted ?? [])
  for (const member of scripted) if (!options.members.includes(member)) throw new RangeError(`scripted member ${member} is not a member`)
  const states = new Map<string, AgreementState<P>>()
  for (const member of options.members) {
    if (scripted.has(member)) continue
    states.set(member, createAgreement<P>({ self: member, members: options.members, startTimeoutMs: options.startTimeoutMs, ...(options.limits === undefined ? {} : { limits: options.limits }) }))
  }
  const run: AgreementSimulationRun<P> = { states, effects: [], published: [], network: network.counters() }
  const script = [...(options.script ?? [])].map((event, order) => ({ event, order })).sort((a, b) => a.event.at - b.event.at || a.order - b.order)
  let nextEvent = 0
  let checks: Array<Timed & { verdict: AgreementVerdict }> = []
  let finishes: Timed[] = []
  let order = 0

  const publish = (member: string, announcement: AgreementAnnouncement<P>, now: number): void => {
    network.publish(member, announcement, now)
    run.published.push({ at: now, member, type: announcement.type, job: announcement.id })
  }
  const machine = (member: string): AgreementState<P> => {
    const state = states.get(member)
    if (state === undefined) throw new RangeError(`${member} runs no agreement machine`)
    return state
  }
  const apply = (member: string, step: AgreementStep<P>, now: number): void => {
    states.set(member, step.state)
    for (const announcement of step.outbox) publish(member, announcement, now)
    for (const effect of step.effects) {
      run.effects.push({ at: now, member, effect })
      if (effect.type === 'check') {
        const delay = checkMs.min + Math.floor(checkRng() * (checkMs.max - checkMs.min + 1))
        checks.push({ at: now + delay, order: order++, member, job: effect.proposal.id, verdict: options.check(member, effect.proposal) })
      } else if (effect.type === 'start' && options.runMs !== undefined) {
        finishes.push({ at: now + options.runMs, order: order++, member, job: effect.proposal.id })
      }
    }
  }
  const takeDue = <T extends Timed>(items: T[], now: number): { due: T[], later: T[] } => {
    const due = items.filter((item) => item.at <= now).sort((a, b) => a.at - b.at || a.order - b.order)
    return { due, later: items.filter((item) => item.at > now) }
  }

  for (let now = 0; now <= options.durationMs; now += tickMs) {
    while (nextEvent < script.length && (script[nextEvent]?.event.at as number) <= now) {
      const event = (script[nextEvent++] as { event: AgreementScriptEvent<P> }).event
      if ('propose' in event) apply(event.member, stepAgreement(machine(event.member), { type: 'propose', proposal: event.propose, now }), now)
      else if ('publish' in event) publish(event.member, event.publish, now)
      else if ('abort' in event) apply(event.member, stepAgreement(machine(event.member), { type: 'abort', job: event.abort, ...(event.reason === undefined ? {} : { reason: event.reason }), now }), now)
      else if (event.isolate) network.isolate(event.member)
      else network.rejoin(event.member)
    }
    for (const delivery of network.deliverDue(now)) {
      const state = states.get(delivery.to)
      if (state !== undefined) apply(delivery.to, stepAgreement(state, { type: 'announcement', from: delivery.from, announcement: delivery.announcement, now }), now)
    }
    const dueChecks = takeDue(checks, now)
    checks = dueChecks.later
    for (const answer of dueChecks.due) apply(answer.member, stepAgreement(machine(answer.member), { type: 'checked', job: answer.job, verdict: answer.verdict, now }), now)
    const dueFinishes = takeDue(finishes, now)
    finishes = dueFinishes.later
    for (const finish of dueFinishes.due) apply(finish.member, stepAgreement(machine(finish.member), { type: 'finished', job: finish.job, now }), now)
    for (const [member, state] of states) apply(member, stepAgreement(state, { type: 'tick', now }), now)
    options.onStep?.(now, states)
  }
  run.network = network.counters()
  return run
}
