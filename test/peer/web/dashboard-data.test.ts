import { describe, expect, it } from 'vitest'
import { parseFederation } from '../../../src/peer/federation.ts'
import { federationView, forecastView, parseViewStatus, parseWarningLevels, phaseName, residualsFromLog, ResidualHistory, warningLevel, type ViewStatus } from '../../../src/peer/web/dashboard-data.ts'
import { graphSvg, mapSvg } from '../../../src/peer/web/dashboard-charts.ts'
import { parseHttpAddress } from '../../../src/peer/web/dashboard.ts'
import { changedSections } from '../../../src/peer/web/dashboard-page.ts'

/** The operator's view's pieces that need no peer: levels, phase names, the federation file's outlines, what is shown of whom. */

const IDS = ['12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo', '12D3KooWJWoaqZhDaoEFshF7Rh1bpY9ohihFhzcW6d69Lr2NASuq', '12D3KooWHFrmLWTTDD4NodngtRMEVYgxrsDMp4F9XqLkbxzB2dqH']

function federation (extra: Record<string, unknown> = {}, geometry: unknown = undefined): unknown {
  return {
    version: 1,
    federationId: 'view-test',
    members: ['a', 'b', 'c'].map((region, index) => ({ region, peerId: IDS[index], ...(index === 0 && geometry !== undefined ? { geometry } : {}) })),
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'y', features: [{ name: 'x', type: 'numeric' }], lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 100, roundDeadlineMs: 1000, dropAfterRounds: 0 },
    ...extra
  }
}

const square = { type: 'Polygon', coordinates: [[[10, 40], [11, 40], [11, 41], [10, 41], [10, 40]]] }

describe('warning levels', () => {
  it('parses three increasing numbers in (0, 1), and refuses anything else', () => {
    expect(parseWarningLevels('0.25,0.5,0.75')).toEqual([0.25, 0.5, 0.75])
    expect(parseWarningLevels(' .1, .2 ,.9')).toEqual([0.1, 0.2, 0.9])
    for (const bad of ['', '0.1,0.2', '0.1,0.2,0.3,0.4', '0.5,0.4,0.6', '0,0.5,0.7', '0.2,0.5,1', 'a,b,c', '0.1,0.1,0.2', '1e-1,0.2,0.3', '-0.1,0.2,0.3', `${'1'.repeat(200)}`]) {
      expect(() => parseWarningLevels(bad), bad).toThrow(expect.objectContaining({ code: 'WARNING_LEVELS_INVALID' }))
    }
  })

  it('gives green below the first, red from the third', () => {
    const levels = [0.25, 0.5, 0.75] as const
    expect([0, 0.2499, 0.25, 0.4999, 0.5, 0.75, 0.99].map((h) => warningLevel(h, levels))).toEqual(['green', 'green', 'yellow', 'yellow', 'orange', 'red', 'red'])
  })

  it('may come from the federation file, checked', () => {
    expect(parseFederation(federation({ warningLevels: [0.1, 0.2, 0.3] })).warningLevels).toEqual([0.1, 0.2, 0.3])
    expect(() => parseFederation(federation({ warningLevels: [0.3, 0.2, 0.1] }))).toThrow(expect.objectContaining({ code: 'FEDERATION_INVALID' }))
    expect(() => parseFederation(federation({ warningLevels: [0.1, 0.2] }))).toThrow(expect.objectContaining({ code: 'FEDERATION_INVALID' }))
  })
})

describe('region outlines in the federation file', () => {
  it('accepts a GeoJSON Polygon or MultiPolygon per member', () => {
    expect(parseFederation(federation({}, square)).members[0]?.geometry).toEqual(square)
    const multi = { type: 'MultiPolygon', coordinates: [square.coordinates, [[[12, 40], [13, 40], [13, 41], [12, 40]]]] }
    expect(parseFederation(federation({}, multi)).members[0]?.geometry).toEqual(multi)
    expect(parseFederation(federation()).members[0]?.geometry).toBeUndefined()
  })

  it('refuses open rings, coordinates out of range, other types and outlines over the bound, naming the field', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ type: 'Polygon', coordinates: [[[10, 40], [11, 40], [11, 41], [10, 41]]] }, /members\[0\]\.geometry\.coordinates\[0\].*closed/],
      [{ type: 'Polygon', coordinates: [[[10, 40], [11, 40], [10, 40]]] }, /at least four/],
      [{ type: 'Polygon', coordinates: [[[200, 40], [11, 40], [11, 41], [200, 40]]] }, /longitude/],
      [{ type: 'Polygon', coordinates: [[[10, 95], [11, 40], [11, 41], [10, 95]]] }, /latitude/],
      [{ type: 'Point', coordinates: [10, 40] }, /members\[0\]\.geometry/],
      [{ type: 'Polygon', coordinates: [[[10, 40], [11, 40], [11, 41], [10, 40]]], extra: 1 }, /members\[0\]\.geometry/],
      [{ type: 'Polygon', coordinates: [[...Array.from({ length: 20_001 }, (_, index) => [10 + index / 1e5, 40]), [10, 40]]] }, /members\[0\]\.geometry/]
    ]
    for (const [geometry, message] of cases) {
      let caught: unknown
      try { parseFederation(federation({}, geometry)) } catch (error) { caught = error }
      expect(caught, JSON.stringify(geometry).slice(0, 80)).toMatchObject({ code: 'FEDERATION_INVALID' })
      expect(String((caught as Error).message), JSON.stringify(geometry).slice(0, 80)).toMatch(message)
    }
  })
})

describe('what the view shows of whom', () => {
  const status: ViewStatus = {
    peerId: IDS[0] as string, region: 'a', updatedAt: '2026-01-01T00:00:00Z', neighbours: { connected: [IDS[1] as string], missing: [IDS[2] as string] }, job: null,
    transport: { received: 0, accepted: 0, sent: 0, sendFailures: 0, bytesSent: 0, bytesReceived: 0, rejected: {} }
  }
  const model = { job: 'r', createdAt: '2026-01-01T00:00:00.000Z', rounds: 3, converged: true, peers: 3, rows: 9, logLikelihood: null, penalty: null, coefficients: [], metrics: null, dropped: [], lineage: { proposer: IDS[0] as string, proposerRegion: 'a', algorithm: 'newton', parameters: { from: '2020-01-06', periods: 4, period: 'week' }, regions: ['a', 'b', 'c'], ownRows: 3, dataDigest: '0'.repeat(64), auditHead: null, parent: null } }
  const stored = { job: 'r', region: 'a', createdAt: '2026-01-01T00:00:00.000Z', forecast: [{ step: 1, mean: 5, lower: 2, upper: 9 }], rate: 3, h: 0.6, joint: { sum: 1.2, mean: 0.4, regions: 3, open: [{ region: 'b', h: 0.1 }] }, model }
  const series = ['2019-12-30', '2020-01-06', '2020-01-13', '2020-01-20', '2020-01-27', '2020-02-03'].map((date, index) => ({ date, count: index }))

  it('this region\'s own h and the h others published, nobody else\'s; its own links by state', () => {
    const forecast = forecastView(stored, series, [0.25, 0.5, 0.75])
    // the job's window: four weeks from 2020-01-06; the forecast one week after its last
    expect(forecast.observed.map((point) => point.date)).toEqual(['2020-01-06', '2020-01-13', '2020-01-20', '2020-01-27'])
    expect(forecast.forecast[0]?.date).toBe('2020-02-03')
    expect(forecast.level).toBe('orange')
    const view = federationView(parseFederation(federation({}, square)), status, forecast, [0.25, 0.5, 0.75])
    expect(view.members.map((member) => [member.region, member.self, member.link, member.h, member.level])).toEqual([['a', true, null, 0.6, 'orange'], ['b', false, 'connected', 0.1, 'green'], ['c', false, 'missing', null, null]])
    expect(view.links).toEqual([{ a: 'a', b: 'b', state: 'connected' }, { a: 'b', b: 'c', state: 'not seen from here' }, { a: 'c', b: 'a', state: 'missing' }])
    const graph = graphSvg(view.members, view.links)
    expect(graph.match(/class="link connected"/g)).toHaveLength(1)
    expect(graph.match(/class="link missing"/g)).toHaveLength(1)
    const map = mapSvg(view.members)
    expect(map.match(/<g class="region/g)).toHaveLength(1)
    expect(mapSvg(federationView(parseFederation(federation()), status, forecast, [0.25, 0.5, 0.75]).members)).toBe('')
  })

  it('reads a status whose residuals are not defined yet (NaN live, null in status.json)', () => {
    for (const undefinedResidual of [Number.NaN, Infinity, null]) {
      const parsed = parseViewStatus({ ...status, job: { job: 'j', kind: 'glm', state: 'running', phase: 'admm', round: 0, jobRound: 3, primalResidual: undefinedResidual, dualResidual: 0.5 } })
      expect(parsed?.job).toMatchObject({ job: 'j', primalResidual: undefined, dualResidual: 0.5 })
      expect(parsed?.neighbours.connected).toEqual([IDS[1]])
    }
    expect(parseViewStatus({ peerId: 1 })).toBeNull()
  })

  it('escapes names in the SVG', () => {
    const view = federationView(null, { ...status, region: '<script>x</script>' }, null, [0.25, 0.5, 0.75])
    const graph = graphSvg(view.members, view.links)
    expect(graph).not.toContain('<script>')
    expect(graph).toContain('&lt;script&gt;')
  })
})

describe('residuals and phases', () => {
  it('reads the ADMM rounds of a round log and keeps a bounded history', () => {
    const lines = [
      JSON.stringify({ type: 'start', job: 'j' }),
      JSON.stringify({ type: 'round', jobRound: 1, admm: { primalResidual: null, dualResidual: null } }),
      JSON.stringify({ type: 'round', jobRound: 2, admm: { primalResidual: 0.5, dualResidual: 0.25 } }),
      JSON.stringify({ type: 'round', jobRound: 3 }),
      'not json "admm"',
      JSON.stringify({ type: 'round', jobRound: 4, admm: { primalResidual: 0.1, dualResidual: 0.05 } })
    ]
    expect(residualsFromLog(lines)).toEqual([{ round: 2, primal: 0.5, dual: 0.25 }, { round: 4, primal: 0.1, dual: 0.05 }])
    const history = new ResidualHistory()
    for (let round = 0; round < 10_000; round++) history.add('j', { round, primal: 1, dual: 1 })
    history.add('j', { round: 5, primal: 1, dual: 1 })
    const kept = history.of('j')
    expect(kept.length).toBeLessThanOrEqual(4000)
    expect(kept.at(-1)?.round).toBe(9999)
    expect(kept.every((point, index) => index === 0 || point.round > (kept[index - 1]?.round ?? -1))).toBe(true)
  })

  it('names phases for an operator', () => {
    expect(phaseName('admm')).toBe('consensus ADMM fit')
    expect(phaseName('ee-newton.2')).toBe('Newton step 3 (masked sum)')
    expect(phaseName('joint-risk')).toBe('joint risk of the regions (masked sum)')
    expect(phaseName('something-new')).toBe('something-new')
  })

  it('takes --http PORT on 127.0.0.1, HOST:PORT when given, and refuses names', () => {
    expect(parseHttpAddress('8080')).toEqual({ host: '127.0.0.1', port: 8080 })
    expect(parseHttpAddress('0.0.0.0:8080')).toEqual({ host: '0.0.0.0', port: 8080 })
    expect(() => parseHttpAddress('example.org:80')).toThrow(expect.objectContaining({ code: 'HTTP_ADDRESS' }))
  })

  it('sends the page only the sections that changed since the versions it has', () => {
    const sections = { header: 'h', federation: 'f', job: 'j', forecast: 'x', models: 'm' }
    const first = changedSections(sections, null)
    expect(Object.keys(first.sections)).toEqual(['header', 'federation', 'job', 'forecast', 'models'])
    const known = Object.entries(first.versions).map(([name, version]) => `${name}:${version}`).join(',')
    expect(changedSections(sections, known).sections).toEqual({})
    expect(changedSections({ ...sections, job: 'j2' }, known).sections).toEqual({ job: 'j2' })
    expect(Object.keys(changedSections(sections, 'garbage:::,,').sections)).toHaveLength(5)
  })
})
