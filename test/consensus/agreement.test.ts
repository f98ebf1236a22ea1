import { describe, expect, it } from 'vitest'
import {
  AGREEMENT_LIMITS, createAgreement, nextWake, pendingCount, stepAgreement,
  type AgreementInput, type AgreementState, type AgreementStep, type ProposalHeader
} from '../../src/consensus/jobs/agreement.ts'
import { simulateAgreement, type AgreementScriptEvent, type AgreementSimulationOptions } from '../../src/consensus/sim/agreement-simulation.ts'

/** A proposal as the machine sees it, with a payload it never reads. */
interface Proposal extends ProposalHeader { model: { outcome: string } }

const START_TIMEOUT_MS = 120_000
const MEMBERS = ['a', 'b', 'c']

function proposal (id: string, proposer = 'a'): Proposal {
  return { type: 'job.propose', id, proposer, model: { outcome: 'case' } }
}

function machine (self = 'a', members: readonly string[] = MEMBERS, limits = {}): AgreementState<Proposal> {
  return createAgreement<Proposal>({ self, members, startTimeoutMs: START_TIMEOUT_MS, limits })
}

const step = (state: AgreementState<Proposal>, input: AgreementInput<Proposal>): AgreementStep<Proposal> => stepAgreement(state, input)
const accept = (id: string) => ({ type: 'job.accept' as const, id })
const decline = (id: string, reason: string) => ({ type: 'job.decline' as const, id, reason })
const effectTypes = (result: AgreementStep<Proposal>): string[] => result.effects.map((effect) => effect.type)

/** Ticks every 100 ms over [from, to] and records when something went out, and what. */
function ticks (state: AgreementState<Proposal>, from: number, to: number): Array<{ at: number, out: string[], effects: string[] }> {
  const seen: Array<{ at: number, out: string[], effects: string[] }> = []
  for (let now = from; now <= to; now += 100) {
    const result = step(state, { type: 'tick', now })
    if (result.outbox.length > 0 || result.effects.length > 0) seen.push({ at: now, out: result.outbox.map((item) => item.type), effects: effectTypes(result) })
  }
  return seen
}

describe('the agreement machine', () => {
  it('publishes its own proposal, asks for the check, and starts once every member accepted', () => {
    const state = machine()
    const proposed = step(state, { type: 'propose', proposal: proposal('j1'), now: 0 })
    expect(proposed.outbox).toEqual([proposal('j1')])
    expect(proposed.effects).toEqual([{ type: 'check', proposal: proposal('j1') }])
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 10 }))).toEqual([])
    const checked = step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 20 })
    expect(checked.outbox).toEqual([accept('j1')])
    expect(effectTypes(checked)).toEqual([])
    const last = step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 30 })
    expect(last.effects).toEqual([{ type: 'start', proposal: proposal('j1') }])
    // accepts that repeat afterwards start nothing again
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 40 }))).toEqual([])
    expect(state.counters.started).toBe(1)
  })

  it('answers another member\'s proposal only after its own check, and starts only then', () => {
    const state = machine()
    const heard = step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 0 })
    expect(heard.outbox).toEqual([])
    expect(effectTypes(heard)).toEqual(['check'])
    step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 5 })
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 6 }))).toEqual([])
    const checked = step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 50 })
    expect(checked.outbox).toEqual([accept('j1')])
    expect(effectTypes(checked)).toEqual(['start'])
  })

  it('stops a job that another member declines, with its reason, once, whatever comes after', () => {
    const state = machine()
    step(state, { type: 'propose', proposal: proposal('j1'), now: 0 })
    step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 10 })
    const declined = step(state, { type: 'announcement', from: 'b', announcement: decline('j1', 'too few cases'), now: 20 })
    expect(declined.effects).toEqual([{ type: 'refused', job: 'j1', by: 'b', reason: 'too few cases' }])
    expect(declined.log.map((record) => record.event)).toEqual(['job.declined'])
    // a second decline, and accepts from everyone, change nothing
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: decline('j1', 'other'), now: 30 }))).toEqual([])
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 40 }))).toEqual([])
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 41 }))).toEqual([])
    // what it published about the job goes out twice more (1 and 2 s after the refusal), then it forgets the job
    expect(ticks(state, 100, 10_000)).toEqual([
      { at: 1100, out: ['job.propose', 'job.accept'], effects: [] },
      { at: 2100, out: ['job.propose', 'job.accept'], effects: [] }
    ])
    expect(state.jobs.size).toBe(0)
    expect(state.forgotten.has('j1')).toBe(true)
    expect(state.counters.refused).toBe(1)
    expect(state.counters.started).toBe(0)
  })

  it('publishes its own decline three times (at the check, 1 and 2 s later), then forgets the job', () => {
    const state = machine()
    step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 0 })
    const checked = step(state, { type: 'checked', job: 'j1', verdict: { accept: false, reason: 'disclosure control' }, now: 300 })
    expect(checked.outbox).toEqual([decline('j1', 'disclosure control')])
    expect(checked.effects).toEqual([{ type: 'refused', job: 'j1', by: 'a', reason: 'disclosure control' }])
    expect(ticks(state, 400, 20_000)).toEqual([
      { at: 1300, out: ['job.decline'], effects: [] },
      { at: 2300, out: ['job.decline'], effects: [] }
    ])
    expect(state.jobs.has('j1')).toBe(false)
    // a repeat of the proposal is not answered again
    const again = step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 21_000 })
    expect(again.effects).toEqual([])
    expect(state.counters.proposalsSeen).toBe(1)
  })

  it('repeats proposals and answers at 1, 2 and 4 s and then every 8 s while the job waits', () => {
    const state = machine()
    step(state, { type: 'propose', proposal: proposal('mine'), now: 0 })
    step(state, { type: 'checked', job: 'mine', verdict: { accept: true }, now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: proposal('theirs', 'b'), now: 0 })
    step(state, { type: 'checked', job: 'theirs', verdict: { accept: true }, now: 0 })
    const seen = ticks(state, 100, 40_000)
    expect(seen.map((entry) => entry.at)).toEqual([1000, 2000, 4000, 8000, 16_000, 24_000, 32_000, 40_000])
    // its own proposal and its answer to it; only its answer to the other member's
    for (const entry of seen) expect(entry.out).toEqual(['job.propose', 'job.accept', 'job.accept'])
  })

  it('publishes again at once, once per member and job, to a member that joins the topic without having answered', () => {
    const state = machine('a', ['a', 'b', 'c', 'd'])
    step(state, { type: 'propose', proposal: proposal('mine'), now: 0 })
    step(state, { type: 'checked', job: 'mine', verdict: { accept: true }, now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('mine'), now: 10 })
    step(state, { type: 'announcement', from: 'b', announcement: proposal('theirs', 'b'), now: 20 })
    // before its own check nothing is published about b's job; its own proposal and answer go out to c
    const joined = step(state, { type: 'joined', member: 'c', now: 300 })
    expect(joined.outbox).toEqual([proposal('mine'), accept('mine')])
    expect(joined.effects).toEqual([])
    // once per member: re-subscribing does not make it publish more
    expect(step(state, { type: 'joined', member: 'c', now: 400 }).outbox).toEqual([])
    // b has answered 'mine', and its own 'theirs' is b's to repeat until this member has checked it
    expect(step(state, { type: 'joined', member: 'b', now: 500 }).outbox).toEqual([])
    step(state, { type: 'checked', job: 'theirs', verdict: { accept: true }, now: 600 })
    expect(step(state, { type: 'joined', member: 'd', now: 700 }).outbox).toEqual([proposal('mine'), accept('mine'), accept('theirs')])
    // itself and strangers change nothing; the repeats keep their schedule
    expect(step(state, { type: 'joined', member: 'a', now: 800 }).outbox).toEqual([])
    expect(step(state, { type: 'joined', member: 'mallory', now: 800 }).outbox).toEqual([])
    expect(nextWake(state)).toBe(1000)
    // a started job is not announced again to a member that joins late
    const started = machine('a', ['a', 'b'])
    step(started, { type: 'propose', proposal: proposal('j'), now: 0 })
    step(started, { type: 'checked', job: 'j', verdict: { accept: true }, now: 0 })
    expect(effectTypes(step(started, { type: 'announcement', from: 'b', announcement: accept('j'), now: 5 }))).toEqual(['start'])
    expect(step(started, { type: 'joined', member: 'b', now: 10 }).outbox).toEqual([])
  })

  it('expires a job not started within the start timeout, naming the members that never answered', () => {
    const state = machine()
    step(state, { type: 'propose', proposal: proposal('j1'), now: 0 })
    step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 10 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 20 })
    expect(nextWake(state)).toBe(1000)
    expect(effectTypes(step(state, { type: 'tick', now: START_TIMEOUT_MS }))).toEqual([])
    const expired = step(state, { type: 'tick', now: START_TIMEOUT_MS + 1 })
    expect(expired.effects).toEqual([{ type: 'expired', job: 'j1', waitingFor: ['c'], afterMs: START_TIMEOUT_MS + 1 }])
    expect(state.counters.expired).toBe(1)
    expect(nextWake(state)).toBeNull()
    // late answers and checks change nothing
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: START_TIMEOUT_MS + 2 }))).toEqual([])
    expect(step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: START_TIMEOUT_MS + 3 }).outbox).toEqual([])
  })

  it('waits for its own check too: without it, the job expires naming this member', () => {
    const state = machine()
    step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 1 })
    step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 2 })
    const expired = step(state, { type: 'tick', now: START_TIMEOUT_MS + 1 })
    expect(expired.effects).toEqual([{ type: 'expired', job: 'j1', waitingFor: ['a'], afterMs: START_TIMEOUT_MS + 1 }])
  })

  it('echoes its accept 0.5, 1.5 and 3.5 s after a start, then waits for the job to finish and forgets it', () => {
    const state = machine()
    step(state, { type: 'propose', proposal: proposal('j1'), now: 0 })
    step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 0 })
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 1000 }))).toEqual(['start'])
    expect(ticks(state, 1000, 60_000)).toEqual([
      { at: 1500, out: ['job.accept'], effects: [] },
      { at: 2500, out: ['job.accept'], effects: [] },
      { at: 4500, out: ['job.accept'], effects: [] }
    ])
    expect(state.jobs.get('j1')?.phase).toBe('started')
    expect(nextWake(state)).toBeNull()
    // a started job does not expire, and a member turning its accept into a decline changes nothing
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: decline('j1', 'changed my mind'), now: 200_000 }))).toEqual([])
    expect(effectTypes(step(state, { type: 'tick', now: 300_000 }))).toEqual([])
    step(state, { type: 'finished', job: 'j1', now: 300_001 })
    expect(state.jobs.size).toBe(0)
    expect(state.forgotten.has('j1')).toBe(true)
    expect(step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 300_002 }).effects).toEqual([])
  })

  it('keeps echoing a job that finished early until its echoes are out, then forgets it', () => {
    const state = machine()
    step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('j1'), now: 0 })
    step(state, { type: 'announcement', from: 'c', announcement: accept('j1'), now: 0 })
    expect(effectTypes(step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 0 }))).toEqual(['start'])
    step(state, { type: 'finished', job: 'j1', now: 50 })
    expect(state.jobs.has('j1')).toBe(true)
    expect(ticks(state, 100, 10_000).map((entry) => entry.at)).toEqual([500, 1500, 3500])
    expect(state.jobs.has('j1')).toBe(false)
  })

  it('keeps a decline that overtook its proposal, and refuses the proposal when it comes, without a check', () => {
    const state = machine()
    expect(step(state, { type: 'announcement', from: 'c', announcement: decline('j1', 'too few rows'), now: 0 }).effects).toEqual([])
    const arrived = step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 50 })
    expect(arrived.effects).toEqual([{ type: 'refused', job: 'j1', by: 'c', reason: 'too few rows' }])
    expect(state.earlyDeclines.size).toBe(0)
    // only the most recent ones are kept
    for (let index = 0; index < AGREEMENT_LIMITS.earlyDeclines + 5; index++) step(state, { type: 'announcement', from: 'c', announcement: decline(`early-${index}`, 'no'), now: 100 })
    expect(state.earlyDeclines.size).toBe(AGREEMENT_LIMITS.earlyDeclines)
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: proposal('early-0', 'b'), now: 200 }))).toEqual(['check'])
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: proposal(`early-${AGREEMENT_LIMITS.earlyDeclines + 4}`, 'b'), now: 200 }))).toEqual(['refused'])
  })

  it('takes a proposal only in its author\'s own name', () => {
    const state = machine()
    const forged = step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'c'), now: 0 })
    expect(forged.effects).toEqual([])
    expect(state.counters).toMatchObject({ proposalsSeen: 1, proposalsIgnored: 1 })
    expect(state.jobs.size).toBe(0)
    // this member's own proposal in another's name is a mistake of the caller
    expect(() => step(state, { type: 'propose', proposal: proposal('j2', 'b'), now: 0 })).toThrow(RangeError)
  })

  it('drops announcements from outside the federation and its own coming back', () => {
    const state = machine()
    expect(step(state, { type: 'announcement', from: 'stranger', announcement: proposal('j1', 'stranger'), now: 0 }).effects).toEqual([])
    expect(state.counters.foreign).toBe(1)
    step(state, { type: 'propose', proposal: proposal('j2'), now: 0 })
    step(state, { type: 'announcement', from: 'stranger', announcement: decline('j2', 'no'), now: 1 })
    step(state, { type: 'announcement', from: 'a', announcement: decline('j2', 'no'), now: 2 })
    expect(state.jobs.get('j2')?.phase).toBe('pending')
    expect(state.counters.foreign).toBe(2)
  })

  it('refuses at once a proposal of its own whose id is held or remembered', () => {
    const state = machine()
    step(state, { type: 'announcement', from: 'b', announcement: proposal('taken', 'b'), now: 0 })
    expect(step(state, { type: 'propose', proposal: proposal('taken'), now: 1 }).effects).toEqual([{ type: 'refused', job: 'taken', by: 'a', reason: 'this job id is already in use here' }])
    step(state, { type: 'tick', now: START_TIMEOUT_MS + 1 })
    expect(effectTypes(step(state, { type: 'propose', proposal: proposal('taken'), now: START_TIMEOUT_MS + 2 }))).toEqual(['refused'])
    expect(state.jobs.size).toBe(0)
  })

  it('holds at most 4 waiting proposals of one member and 32 in all, and never limits its own', () => {
    const members = ['self', ...Array.from({ length: 10 }, (_, index) => `m${index}`)]
    const state = machine('self', members)
    let checks = 0
    for (const member of members.slice(1)) {
      for (let index = 0; index < 6; index++) {
        checks += step(state, { type: 'announcement', from: member, announcement: proposal(`${member}-${index}`, member), now: 0 }).effects.length
        expect(pendingCount(state, member)).toBeLessThanOrEqual(AGREEMENT_LIMITS.pendingPerMember)
      }
    }
    expect(checks).toBe(AGREEMENT_LIMITS.pending)
    expect(pendingCount(state)).toBe(AGREEMENT_LIMITS.pending)
    expect(state.counters).toMatchObject({ proposalsSeen: 60, proposalsIgnored: 60 - AGREEMENT_LIMITS.pending })
    // the first 8 members hold 4 each; the ninth got none in
    expect(pendingCount(state, 'm0')).toBe(4)
    expect(pendingCount(state, 'm8')).toBe(0)
    // a slot freed by a decline is taken again once the refused job is forgotten
    step(state, { type: 'announcement', from: 'm0', announcement: decline('m0-0', 'withdrawn'), now: 10 })
    expect(step(state, { type: 'announcement', from: 'm0', announcement: proposal('m0-9', 'm0'), now: 20 }).effects).toEqual([])
    step(state, { type: 'tick', now: 1010 })
    step(state, { type: 'tick', now: 2010 })
    step(state, { type: 'tick', now: 4010 })
    expect(state.jobs.has('m0-0')).toBe(false)
    expect(effectTypes(step(state, { type: 'announcement', from: 'm0', announcement: proposal('m0-10', 'm0'), now: 4020 }))).toEqual(['check'])
    expect(pendingCount(state)).toBe(AGREEMENT_LIMITS.pending)
    // this member's own proposals go in beyond the limits
    for (let index = 0; index < 3; index++) expect(effectTypes(step(state, { type: 'propose', proposal: proposal(`own-${index}`, 'self'), now: 5000 }))).toEqual(['check'])
    expect(pendingCount(state)).toBe(AGREEMENT_LIMITS.pending + 3)
  })

  it('remembers a bounded number of forgotten ids, the oldest leaving first', () => {
    const state = machine('a', MEMBERS, { remembered: 3 })
    for (let index = 0; index < 5; index++) {
      const from = index < 3 ? 'b' : 'c'
      step(state, { type: 'announcement', from, announcement: proposal(`old-${index}`, from), now: index })
    }
    step(state, { type: 'tick', now: START_TIMEOUT_MS + 10 })
    expect([...state.forgotten]).toEqual(['old-2', 'old-3', 'old-4'])
    expect(effectTypes(step(state, { type: 'announcement', from: 'c', announcement: proposal('old-4', 'c'), now: START_TIMEOUT_MS + 11 }))).toEqual([])
    expect(effectTypes(step(state, { type: 'announcement', from: 'b', announcement: proposal('old-0', 'b'), now: START_TIMEOUT_MS + 12 }))).toEqual(['check'])
  })

  it('declines a waiting job it gives up, so that the others learn at once, and forgets a started one', () => {
    const state = machine()
    step(state, { type: 'propose', proposal: proposal('waiting'), now: 0 })
    const aborted = step(state, { type: 'abort', job: 'waiting', reason: 'the operator stopped it', now: 10 })
    expect(aborted.outbox).toEqual([decline('waiting', 'the operator stopped it')])
    expect(aborted.effects).toEqual([{ type: 'refused', job: 'waiting', by: 'a', reason: 'the operator stopped it' }])
    // the check that comes back afterwards changes nothing
    expect(step(state, { type: 'checked', job: 'waiting', verdict: { accept: true }, now: 20 }).outbox).toEqual([])
    const other = machine('b')
    step(other, { type: 'announcement', from: 'a', announcement: proposal('waiting'), now: 0 })
    expect(step(other, { type: 'announcement', from: 'a', announcement: aborted.outbox[0] as never, now: 15 }).effects).toEqual([{ type: 'refused', job: 'waiting', by: 'a', reason: 'the operator stopped it' }])

    step(state, { type: 'announcement', from: 'b', announcement: proposal('running', 'b'), now: 0 })
    step(state, { type: 'announcement', from: 'b', announcement: accept('running'), now: 0 })
    step(state, { type: 'announcement', from: 'c', announcement: accept('running'), now: 0 })
    expect(effectTypes(step(state, { type: 'checked', job: 'running', verdict: { accept: true }, now: 0 }))).toEqual(['start'])
    const stopped = step(state, { type: 'abort', job: 'running', now: 100 })
    expect(stopped.outbox).toEqual([])
    expect(state.jobs.has('running')).toBe(false)
    expect(step(state, { type: 'abort', job: 'never-heard-of', now: 200 }).effects).toEqual([])
  })

  it('cuts a decline\'s reason to the announcement schema\'s bound without splitting a character', () => {
    const state = machine()
    step(state, { type: 'announcement', from: 'b', announcement: proposal('j1', 'b'), now: 0 })
    const long = `${'x'.repeat(AGREEMENT_LIMITS.reasonLength - 2)}😀😀😀`
    const checked = step(state, { type: 'checked', job: 'j1', verdict: { accept: false, reason: long }, now: 1 })
    const reason = (checked.outbox[0] as { reason: string }).reason
    expect(reason.length).toBeLessThanOrEqual(AGREEMENT_LIMITS.reasonLength)
    expect(reason).not.toMatch(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/)
    expect(reason.startsWith('xxx')).toBe(true)
  })

  it('counts the announcements it asks to publish', () => {
    const state = machine()
    let published = 0
    const count = (result: AgreementStep<Proposal>): void => { published += result.outbox.length }
    count(step(state, { type: 'propose', proposal: proposal('j1'), now: 0 }))
    count(step(state, { type: 'checked', job: 'j1', verdict: { accept: true }, now: 0 }))
    for (let now = 0; now <= 10_000; now += 250) count(step(state, { type: 'tick', now }))
    expect(published).toBeGreaterThan(2)
    expect(state.counters.announcements).toBe(published)
  })

  it('refuses members and limits that cannot work', () => {
    expect(() => createAgreement({ self: 'z', members: MEMBERS, startTimeoutMs: 1000 })).toThrow(RangeError)
    expect(() => createAgreement({ self: 'a', members: ['a', 'a'], startTimeoutMs: 1000 })).toThrow(RangeError)
    expect(() => createAgreement({ self: 'a', members: MEMBERS, startTimeoutMs: 0 })).toThrow(RangeError)
    expect(() => createAgreement({ self: 'a', members: MEMBERS, startTimeoutMs: 1000, limits: { pending: -1 } })).toThrow(RangeError)
    expect(() => createAgreement({ self: 'a', members: MEMBERS, startTimeoutMs: 1000, limits: { repeatMaxMs: 10 } })).toThrow(RangeError)
  })
})

// ---------------------------------------------------------------------------------------------------
// Simulations: several members' machines over an announcement topic with seeded loss and delay.

const SIM_MEMBERS = ['m1', 'm2', 'm3', 'm4', 'm5', 'm6']
const LOSSY = { loss: 0.1, delayMs: { min: 20, max: 400 } }

type SimOptions = AgreementSimulationOptions<Proposal>

function honestScript (): Array<AgreementScriptEvent<Proposal>> {
  // eight jobs from four members, two of them proposed in the same instant
  return [
    { at: 0, member: 'm1', propose: proposal('job-1', 'm1') },
    { at: 0, member: 'm2', propose: proposal('job-2', 'm2') },
    { at: 1_500, member: 'm3', propose: proposal('job-3', 'm3') },
    { at: 4_000, member: 'm1', propose: proposal('job-4', 'm1') },
    { at: 7_250, member: 'm6', propose: proposal('job-5', 'm6') },
    { at: 9_000, member: 'm2', propose: proposal('job-6', 'm2') },
    { at: 15_000, member: 'm3', propose: proposal('job-7', 'm3') },
    { at: 20_000, member: 'm6', propose: proposal('job-8', 'm6') }
  ]
}

function simulate (overrides: Partial<SimOptions> & { seed: number }) {
  return simulateAgreement<Proposal>({
    members: SIM_MEMBERS,
    startTimeoutMs: START_TIMEOUT_MS,
    check: () => ({ accept: true }),
    durationMs: 60_000,
    ...LOSSY,
    ...overrides
  })
}

/** Effects of one type, grouped by member: job ids in the order they happened. */
function effectsBy (run: ReturnType<typeof simulate>, type: string): Map<string, string[]> {
  const byMember = new Map<string, string[]>()
  for (const { member, effect } of run.effects) {
    if (effect.type !== type) continue
    const job = effect.type === 'start' || effect.type === 'check' ? effect.proposal.id : effect.job
    byMember.set(member, [...(byMember.get(member) ?? []), job])
  }
  return byMember
}

describe('the agreement of six members over a lossy topic (10% of copies lost, 20 to 400 ms delay)', () => {
  it('starts the same jobs on every member, each once, and forgets them when they finish', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const run = simulate({ seed, script: honestScript(), runMs: 5_000 })
      const started = effectsBy(run, 'start')
      const ids = honestScript().map((event) => ('propose' in event ? event.propose.id : ''))
      expect(started.size, `seed ${seed}`).toBe(SIM_MEMBERS.length)
      for (const member of SIM_MEMBERS) expect([...(started.get(member) ?? [])].sort(), `seed ${seed} ${member}`).toEqual([...ids].sort())
      expect(run.effects.filter(({ effect }) => effect.type === 'refused' || effect.type === 'expired')).toEqual([])
      // the members start a job within a few announcement delays of each other
      let widest = 0
      for (const id of ids) {
        const times = run.effects.filter(({ effect }) => effect.type === 'start' && effect.proposal.id === id).map(({ at }) => at)
        widest = Math.max(widest, Math.max(...times) - Math.min(...times))
      }
      expect(widest).toBeLessThan(5_000)
      // a finished job leaves only its id behind
      for (const state of run.states.values()) {
        expect(state.jobs.size).toBe(0)
        expect(state.forgotten.size).toBe(ids.length)
      }
      console.log(`seed ${seed}: 8 jobs started on all 6 members, start times at most ${widest} ms apart; ${run.network.lost} of ${run.network.copies} copies lost`)
    }
  })

  it('starts a job on a member that was cut off when it was proposed, once it is back, with the others', () => {
    for (const seed of [31, 32, 33]) {
      const run = simulate({
        seed,
        script: [
          { at: 0, member: 'm5', isolate: true },
          { at: 1_000, member: 'm1', propose: proposal('job-1', 'm1') },
          { at: 20_000, member: 'm5', isolate: false }
        ]
      })
      const started = run.effects.filter(({ effect }) => effect.type === 'start')
      expect(started.map(({ member }) => member).sort()).toEqual(SIM_MEMBERS)
      // nobody starts before m5 answered, after it came back
      for (const { at } of started) expect(at).toBeGreaterThan(20_000)
    }
  })

  it('stops a declined job on every member with the decliner\'s reason, and starts the others', () => {
    const reason = 'disclosure control: fewer than 3 cases of one outcome in this region'
    for (const seed of [11, 12, 13, 14, 15]) {
      const run = simulate({
        seed,
        script: honestScript(),
        check: (member, job) => member === 'm4' && job.id === 'job-3' ? { accept: false, reason } : { accept: true }
      })
      for (const member of SIM_MEMBERS) {
        const refused = run.effects.filter((entry) => entry.member === member && entry.effect.type === 'refused').map(({ effect }) => effect)
        expect(refused, `seed ${seed} ${member}`).toEqual([{ type: 'refused', job: 'job-3', by: 'm4', reason }])
        expect(effectsBy(run, 'start').get(member)).toHaveLength(7)
        expect(effectsBy(run, 'start').get(member)).not.toContain('job-3')
      }
    }
  })

  it('never starts a declined job anywhere, over 100 seeds at 10% and at 30% loss', () => {
    for (const loss of [0.1, 0.3]) {
      const outcomes = { refused: 0, expired: 0, neverHeard: 0 }
      for (let seed = 100; seed < 200; seed++) {
        const run = simulate({
          seed,
          loss,
          durationMs: START_TIMEOUT_MS + 10_000,
          script: [{ at: 0, member: 'm1', propose: proposal('job-x', 'm1') }],
          check: (member) => member === 'm6' ? { accept: false, reason: 'no' } : { accept: true }
        })
        expect(run.effects.filter(({ effect }) => effect.type === 'start')).toEqual([])
        for (const member of SIM_MEMBERS) {
          const ends = run.effects.filter((entry) => entry.member === member && (entry.effect.type === 'refused' || entry.effect.type === 'expired')).map(({ effect }) => effect)
          expect(ends.length).toBeLessThanOrEqual(1)
          const end = ends[0]
          if (end === undefined) outcomes.neverHeard++
          else if (end.type === 'refused') {
            expect(end).toEqual({ type: 'refused', job: 'job-x', by: 'm6', reason: 'no' })
            outcomes.refused++
          } else {
            // it missed every copy of the decline: it waited for the decliner (and for members that
            // fell silent after the refusal before their answer got through), and nobody started
            expect(end.type === 'expired' && end.waitingFor.includes('m6')).toBe(true)
            outcomes.expired++
          }
        }
        for (const state of run.states.values()) expect(state.jobs.size).toBe(0)
      }
      console.log(`100 runs, ${loss * 100}% of copies lost: of 600 members, ${outcomes.refused} learned of the decline, ${outcomes.expired} missed every copy of it and saw the job expire, ${outcomes.neverHeard} never heard of the job; none started it`)
      if (loss === 0.1) expect(outcomes.refused).toBe(600)
      else expect(outcomes.refused).toBeGreaterThan(540)
    }
  })

  it('makes a proposal expire on every member when one member is silent, naming it', () => {
    for (const seed of [21, 22, 23]) {
      const run = simulate({
        seed,
        scripted: ['m6'],
        durationMs: START_TIMEOUT_MS + 10_000,
        script: [{ at: 0, member: 'm1', propose: proposal('job-1', 'm1') }, { at: 3_000, member: 'm3', propose: proposal('job-2', 'm3') }]
      })
      expect(run.effects.filter(({ effect }) => effect.type === 'start' || effect.type === 'refused')).toEqual([])
      for (const member of SIM_MEMBERS.slice(0, 5)) {
        const expired = run.effects.filter((entry) => entry.member === member && entry.effect.type === 'expired')
        expect(expired.map(({ effect }) => effect), `seed ${seed} ${member}`).toEqual([
          expect.objectContaining({ type: 'expired', job: 'job-1', waitingFor: ['m6'] }),
          expect.objectContaining({ type: 'expired', job: 'job-2', waitingFor: ['m6'] })
        ])
        for (const { at, effect } of expired) {
          // expired one step after the timeout, counted from when the member first saw the proposal
          expect(at).toBeGreaterThan(START_TIMEOUT_MS)
          expect(effect.type === 'expired' && effect.afterMs).toBeLessThanOrEqual(START_TIMEOUT_MS + 50)
        }
      }
      for (const state of run.states.values()) expect(state.jobs.size).toBe(0)
    }
  })

  it('keeps a member that floods 300 proposals to 4 held by each other member and bounded announcements, and an honest job still starts', () => {
    const members = [...SIM_MEMBERS.slice(0, 5), 'mallory']
    const flood: Array<AgreementScriptEvent<Proposal>> = Array.from({ length: 300 }, (_, index) => ({ at: 1_000, member: 'mallory', publish: proposal(`flood-${String(index).padStart(3, '0')}`, 'mallory') }))
    // it also proposes in another member's name, and accepts the honest job (a few times, as copies get lost)
    const script: Array<AgreementScriptEvent<Proposal>> = [
      ...flood,
      { at: 1_000, member: 'mallory', publish: proposal('in-m1s-name', 'm1') },
      { at: 3_000, member: 'm2', propose: proposal('honest', 'm2') },
      ...[4_000, 5_000, 7_000, 11_000, 19_000].map((at) => ({ at, member: 'mallory', publish: { type: 'job.accept' as const, id: 'honest' } }))
    ]
    let mostHeld = 0
    let mostPending = 0
    const run = simulateAgreement<Proposal>({
      members,
      scripted: ['mallory'],
      seed: 7,
      ...LOSSY,
      startTimeoutMs: START_TIMEOUT_MS,
      check: () => ({ accept: true }),
      durationMs: START_TIMEOUT_MS + 15_000,
      script,
      onStep: (_now, states) => {
        for (const state of states.values()) {
          mostHeld = Math.max(mostHeld, pendingCount(state, 'mallory'))
          mostPending = Math.max(mostPending, pendingCount(state))
        }
      }
    })
    expect(mostHeld).toBe(AGREEMENT_LIMITS.pendingPerMember)
    expect(mostPending).toBeLessThanOrEqual(AGREEMENT_LIMITS.pending)
    const honest = members.slice(0, 5)
    for (const member of honest) {
      const state = run.states.get(member) as AgreementState<Proposal>
      // what got through the loss was read, 4 of it held and the rest ignored
      expect(state.counters.proposalsSeen - state.counters.proposalsIgnored).toBe(AGREEMENT_LIMITS.pendingPerMember + 1)
      expect(state.counters.proposalsIgnored).toBeGreaterThan(200)
      expect(effectsBy(run, 'start').get(member)).toEqual(['honest'])
      expect(effectsBy(run, 'expired').get(member)).toHaveLength(AGREEMENT_LIMITS.pendingPerMember)
    }
    // A held proposal costs its answer at the check and repeats at 1, 2 and 4 s and then every 8 s
    // until it expires: 19 announcements over 120 s. So the flood costs each member at most 4 x 19,
    // and at most one announcement per held proposal in any 8 s once the first repeats are over.
    const perHeldJob = 1 + 3 + Math.floor((START_TIMEOUT_MS - 8_000) / 8_000) + 1
    for (const member of honest) {
      const flooded = run.published.filter((entry) => entry.member === member && entry.job.startsWith('flood-'))
      expect(flooded.length).toBeLessThanOrEqual(AGREEMENT_LIMITS.pendingPerMember * perHeldJob)
      for (let from = 10_000; from + 8_000 <= START_TIMEOUT_MS; from += 1_000) {
        expect(flooded.filter((entry) => entry.at >= from && entry.at < from + 8_000).length).toBeLessThanOrEqual(AGREEMENT_LIMITS.pendingPerMember)
      }
      expect(run.published.filter((entry) => entry.member === member && entry.at > START_TIMEOUT_MS + 2_000)).toEqual([])
    }
    const counts = honest.map((member) => run.published.filter((entry) => entry.member === member && entry.job.startsWith('flood-')).length)
    console.log(`flood of 300 proposals: each honest member held at most ${mostHeld}; announcements about them per honest member over ${(START_TIMEOUT_MS + 15_000) / 1000} s: ${counts.join(', ')} (bound ${AGREEMENT_LIMITS.pendingPerMember * perHeldJob})`)
  })

  it('is deterministic for a seed', () => {
    const once = simulate({ seed: 42, script: honestScript(), runMs: 5_000 })
    const again = simulate({ seed: 42, script: honestScript(), runMs: 5_000 })
    const other = simulate({ seed: 43, script: honestScript(), runMs: 5_000 })
    expect(again.effects).toEqual(once.effects)
    expect(again.published).toEqual(once.published)
    expect(again.network).toEqual(once.network)
    expect(other.published).not.toEqual(once.published)
  })
})
