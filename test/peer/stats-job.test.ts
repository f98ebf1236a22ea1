import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createPeer, type JobOutcome, type Peer } from '../../src/index.ts'
import { buildStatsData, pooledStats, type NumericSummary, type StatsRequest } from '../../src/learning/statistics.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { fixture } from '../helpers/data.ts'
import { freePort } from '../helpers/process.ts'
import { cli } from '../helpers/cli.ts'

/**
 * The statistics job between three regions' real peers (libp2p over 127.0.0.1, LevelDB stores made by
 * the commands): wnv's cases dealt over them, a job proposed with `epimesh propose --stats` and its
 * result read with `epimesh stats`; and a proposal whose regions code a factor differently refused
 * before any round, naming both regions and the column.
 */
let base = ''
const regions = ['alpha', 'beta', 'gamma'] as const
const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
let federationFile = ''
const peers: Peer[] = []
const outcomes: JobOutcome[][] = [[], [], []]

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-stats-'))
  const lines = (await readFile(fixture('wnv.csv'), 'utf8')).trim().split('\n')
  const schema = JSON.parse(await readFile(fixture('schemas/wnv.schema.json'), 'utf8')) as { columns: Record<string, { levels?: string[] }> }
  for (const [index, region] of regions.entries()) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status, initialised.stderr).toBe(0)
    const file = join(base, `${region}.csv`)
    await writeFile(file, `${lines[0]}\n${lines.slice(1).filter((_, row) => row % 3 === index).join('\n')}\n`)
    // gamma codes sex with a third level: its schema does not line up with the others'
    const own = structuredClone(schema)
    if (region === 'gamma') own.columns.sex = { ...own.columns.sex, levels: ['F', 'M', 'U'] }
    const schemaFile = join(base, `${region}.schema.json`)
    await writeFile(schemaFile, JSON.stringify(own))
    const imported = await cli(['import', '--dir', dir, '--cases', file, '--schema', schemaFile])
    expect(imported.status, imported.stderr).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
  }
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify({
    version: 1,
    federationId: 'stats-test',
    members: members.map(({ region, peerId, address }) => ({ region, peerId, addresses: [address] })),
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'death', features: [{ name: 'age', type: 'numeric' }], lambda: 0, algorithm: 'newton', tolerance: 1e-8, maxRounds: 100, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }))
  peers.push(...await Promise.all(members.map(async (member, index) => await createPeer({ dir: member.dir, federation: federationFile, listen: [member.address], onJob: (outcome) => { outcomes[index]?.push(outcome) } }, { signal: AbortSignal.timeout(30_000) }))))
}, 60_000)

afterAll(async () => {
  await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the statistics job between real peers', () => {
  it('refuses, before any round, a job on a factor the regions code differently, naming both regions and the column', async () => {
    const refused = peers[0]!.propose({ id: 'stats-mismatch', stats: { features: [{ name: 'age', type: 'numeric' }, { name: 'sex', type: 'categorical', levels: ['F', 'M'] }], outcome: 'death', schemaOf: 'alpha' } })
    await expect(refused).rejects.toMatchObject({ code: 'JOB_REFUSED' })
    const message = await refused.catch((error: Error) => error.message)
    expect(message).toMatch(/column "sex"/)
    expect(message).toMatch(/gamma/)
    expect(message).toMatch(/alpha/)
    // no member started it: no journal of it anywhere, no outcome
    for (const member of members) await expect(stat(join(member.dir, 'jobs', 'stats-mismatch'))).rejects.toMatchObject({ code: 'ENOENT' })
    expect(outcomes.flat().some((outcome) => outcome.job === 'stats-mismatch')).toBe(false)
  }, 30_000)

  it('computes the pooled statistics by masked sums: every region stores the same, equal to the pooled computation to 1e-10; `epimesh stats` shows them', async () => {
    const proposed = await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--stats', '--features', 'age,syndrome', '--outcome', 'death', '--bins', '8', '--job-id', 'stats-live'])
    expect(proposed.status, proposed.stderr).toBe(0)
    await vi.waitFor(() => { expect(outcomes.every((list) => list.some((outcome) => outcome.job === 'stats-live'))).toBe(true) }, { timeout: 60_000, interval: 100 })
    const results = outcomes.map((list) => list.find((outcome) => outcome.job === 'stats-live')!.stats!)
    for (const result of results) expect(result.stats).toEqual(results[0]!.stats)
    const stats = results[0]!.stats
    expect(stats.peers).toBe(3)
    // the pooled computation on every row, with the same request (the schema's bounds 0..120 for age)
    const request: StatsRequest = { features: [{ name: 'age', type: 'numeric', low: 0, high: 120 }, { name: 'syndrome', type: 'categorical', levels: ['Unknown', 'WNF', 'WNND'] }], outcome: 'death', bins: 8, minimum: 3 }
    const rows = (await readDataset(fixture('wnv.csv'))).rows.map((row) => ({ ...row, death: row.death === null ? null : row.death === 'Yes' ? 1 : 0 }))
    const pooled = pooledStats(request, buildStatsData(rows, request))
    expect(stats.rows).toBe(pooled.rows)
    const age = stats.features.age as NumericSummary
    const pooledAge = pooled.features.age as NumericSummary
    expect([age.count, age.missing]).toEqual([pooledAge.count, pooledAge.missing])
    for (const field of ['mean', 'sd'] as const) expect(Math.abs(age[field]! - pooledAge[field]!) / pooledAge[field]!).toBeLessThan(1e-10)
    // R 4.2.2 (test/fixtures/stats-reference.json)
    expect(Math.abs(age.mean! - 52.53020134228188) / 52.53020134228188).toBeLessThan(1e-10)
    expect(Math.abs(age.sd! - 18.470536348385806) / 18.470536348385806).toBeLessThan(1e-10)
    expect(age.quantiles).toEqual(pooledAge.quantiles)
    expect(Math.abs(stats.correlation.matrix[0]![1]! - 0.2483093667691994)).toBeLessThan(1e-10)
    expect(stats.woe).toEqual(pooled.woe)
    for (const name of ['age', 'syndrome']) expect(Math.abs(stats.iv![name]! - pooled.iv![name]!)).toBeLessThan(1e-10)
    expect(Math.abs(stats.crossTables!.syndrome!.chiSquare! - 21.8389217106241) / 21.8389217106241).toBeLessThan(1e-10)
    // the command shows what the store holds
    const shown = await cli(['stats', '--dir', members[2]!.dir, '--json'])
    expect(shown.status, shown.stderr).toBe(0)
    expect(JSON.parse(shown.stdout)).toMatchObject({ job: 'stats-live', stats: { rows: 766, peers: 3 } })
    const text = await cli(['stats', '--dir', members[0]!.dir])
    expect(text.stdout).toMatch(/766 rows in 3 regions/)
    // each region sees its own standing against the pooled figures, and only its own
    const mine = rows.filter((_, row) => row % 3 === 0)
    const ownAges = mine.map((row) => (row as Record<string, unknown>).age).filter((age): age is number => typeof age === 'number')
    expect(results[0]!.own).toMatchObject({ rows: mine.length, features: { age: { count: ownAges.length, missing: mine.length - ownAges.length } } })
    expect(Math.abs(results[0]!.own!.features.age!.mean! - ownAges.reduce((sum, age) => sum + age, 0) / ownAges.length)).toBeLessThan(1e-12)
    expect(text.stdout).toMatch(/this region \(\d+ records\) against the federation \(766\)/)
    // the signed round log is written (after the job lingers a round deadline for laggards)
    const logs: string[] = []
    for (const member of members) {
      const out = join(base, `${member.region}-stats.log`)
      await vi.waitFor(async () => {
        const exported = await cli(['audit', 'export', '--dir', member.dir, '--job', 'stats-live', '--out', out])
        expect(exported.status, exported.stderr).toBe(0)
      }, { timeout: 20_000, interval: 500 })
      logs.push(out)
    }
    const alpha = await readFile(logs[0] as string, 'utf8')
    expect(alpha).toMatch(/"type":"final"/)
    // the final entries carry a digest of the published figures, which every member must share
    expect(alpha).toMatch(/"resultDigest":"[0-9a-f]{64}"/)
    const verified = await cli(['audit', 'verify', '--json', ...logs])
    expect(verified.status, verified.stdout + verified.stderr).toBe(0)
    const report = JSON.parse(verified.stdout) as { checks: Array<{ name: string, checked: number }> }
    expect(report.checks.find((check) => check.name === 'final models agree')?.checked).toBe(3)
  }, 90_000)
})
