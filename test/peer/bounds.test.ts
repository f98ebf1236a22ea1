import { resolve, sep } from 'node:path'
import { describe, expect, it } from 'vitest'
import { excerpt, isJobId, isRegionName } from '../../src/consensus/ids.ts'
import { parseFederation } from '../../src/peer/federation.ts'
import { parseForecastProposal } from '../../src/peer/runtime/forecast-proposal.ts'
import { jobAnnouncementSchema } from '../../src/peer/runtime/proposal.ts'
import { JOB_BOUNDS } from '../../src/peer/job-bounds.ts'
import { checkJobId, dataPath } from '../../src/peer/paths.ts'
import { federationJson, makeMembers, TEST_MODEL } from './helpers.ts'

const codeOf = (run: () => unknown): string => {
  try {
    run()
    return 'OK'
  } catch (error) {
    return (error as { code?: string }).code ?? 'UNCODED'
  }
}

describe('identifiers that reach paths', () => {
  it('job ids: letters, digits, . _ -, never a separator, never `..`, never a name the peer uses itself', () => {
    for (const id of ['job-1', 'fit.2024-03', 'A', 'x'.repeat(64), 'risk_1']) expect(isJobId(id)).toBe(true)
    for (const id of ['', '..', '.', '../../federation', 'a/b', 'a\\b', '/etc/passwd', ' job', 'job ', 'x'.repeat(65), 'latest', 'LATEST', 'job\n', 'j\u0000b', 'é', '-x', '.hidden']) {
      expect(isJobId(id), JSON.stringify(id)).toBe(false)
      expect(codeOf(() => checkJobId(id))).toBe('NAME_INVALID')
    }
    expect(isJobId(12)).toBe(false)
  })

  it('dataPath stays inside its area whatever the name', () => {
    const dir = resolve('/data/jiangsu')
    expect(dataPath(dir, 'proposals', 'job-1', '.json')).toBe(`${dir}${sep}proposals${sep}job-1.json`)
    for (const name of ['../../federation', '..', 'a/../../b', '/abs', 'latest']) expect(codeOf(() => dataPath(dir, 'proposals', name, '.json'))).toBe('NAME_INVALID')
    // the models and forecasts live in the store, not in files
    for (const area of ['models', 'forecasts', 'elsewhere']) expect(() => dataPath(dir, area as 'proposals', 'job-1')).toThrow(TypeError)
  })

  it('region names of any script, without control characters or separators', () => {
    for (const name of ['Baden-Wuerttemberg', 'LK Aalen', '江苏', 'Mecklenburg-Western Pomerania', "Côte d'Or", 'SK München (Stadt)']) expect(isRegionName(name), name).toBe(true)
    for (const name of ['', ' x', 'x ', 'a/b', 'a\nb', '../x', 'x'.repeat(65)]) expect(isRegionName(name), JSON.stringify(name)).toBe(false)
  })

  it('values quoted in errors are cut and their control characters shown', () => {
    const long = excerpt('x'.repeat(10_000_000))
    expect([...long].length).toBe(80)
    expect(excerpt('a\u0000b\nc')).toBe('a\\x00b\\x0ac')
  })
})

describe('job parameters are bounded where they enter', () => {
  it('a federation file with a deadline of 3e9 ms, a tolerance of 0, a billion rounds, or a region with a slash is refused, naming the field', async () => {
    const members = await makeMembers(3)
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ roundDeadlineMs: 3e9 }, 'model.roundDeadlineMs'],
      [{ roundDeadlineMs: 1 }, 'model.roundDeadlineMs'],
      [{ tolerance: 0 }, 'model.tolerance'],
      [{ tolerance: 1e-20 }, 'model.tolerance'],
      [{ maxRounds: 1e9 }, 'model.maxRounds'],
      [{ lambda: 1e12 }, 'model.lambda'],
      [{ dropAfterRounds: 1e7 }, 'model.dropAfterRounds'],
      [{ outcome: 'x'.repeat(65) }, 'model.outcome']
    ]
    for (const [change, field] of cases) {
      const document = federationJson(members)
      document.model = { ...TEST_MODEL, ...change }
      let issues: Array<{ path: string }> = []
      try {
        parseFederation(document)
      } catch (error) {
        expect((error as { code: string }).code).toBe('FEDERATION_INVALID')
        expect((error as { exitCode: number }).exitCode).toBe(2)
        issues = (error as { issues: Array<{ path: string }> }).issues
      }
      expect(issues.map((issue) => issue.path), JSON.stringify(change)).toContain(field)
    }
    const renamed = federationJson(members)
    ;(renamed.members as Array<{ region: string }>)[0]!.region = '../federation'
    expect(codeOf(() => parseFederation(renamed))).toBe('FEDERATION_INVALID')
    // the bounds themselves are accepted
    const edge = federationJson(members)
    edge.model = { ...TEST_MODEL, roundDeadlineMs: JOB_BOUNDS.roundDeadlineMs.max, maxRounds: JOB_BOUNDS.maxRounds.max, tolerance: JOB_BOUNDS.tolerance.min }
    expect(codeOf(() => parseFederation(edge))).toBe('OK')
  })

  it('forecasting proposals: tolerance and rounds within the same bounds', () => {
    expect(codeOf(() => parseForecastProposal({ from: '2001-01-01', periods: 100, period: 'week', tolerance: 0 }))).toBe('FORECAST_PROPOSAL_INVALID')
    expect(codeOf(() => parseForecastProposal({ from: '2001-01-01', periods: 100, period: 'week', maxRounds: 1e9 }))).toBe('FORECAST_PROPOSAL_INVALID')
    expect(codeOf(() => parseForecastProposal({ from: '2001-01-01', periods: 100, period: 'week', openRegions: ['a/b'] }))).toBe('FORECAST_PROPOSAL_INVALID')
    expect(codeOf(() => parseForecastProposal({ from: '2001-01-01', periods: 100, period: 'week' }))).toBe('OK')
  })

  it('announcements off the network: a bad id, an unbounded parameter, an unknown field or an oversized reason is not a job announcement', () => {
    const model = { ...TEST_MODEL, features: [...TEST_MODEL.features] }
    const proposal = { type: 'job.propose', id: 'job-1', proposer: 'someone', model }
    expect(jobAnnouncementSchema.safeParse(proposal).success).toBe(true)
    for (const bad of [
      { ...proposal, id: '../../federation' },
      { ...proposal, model: { ...model, roundDeadlineMs: 3e9 } },
      { ...proposal, model: { ...model, maxRounds: -1 } },
      { ...proposal, extra: 1 },
      { type: 'job.decline', id: 'job-1', reason: 'x'.repeat(5000) },
      { type: 'job.accept', id: 'job-1', more: true },
      { type: 'job.start', id: 'job-1' }
    ]) expect(jobAnnouncementSchema.safeParse(bad).success, JSON.stringify(bad).slice(0, 80)).toBe(false)
  })
})
