import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createPeer, type JobOutcome, type Peer } from '../../src/index.ts'
import { buildDesign, termNames } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { Store } from '../../src/store/store.ts'
import { fixture, relativeError } from '../helpers/data.ts'
import { freePort } from '../helpers/process.ts'
import { cli } from '../helpers/cli.ts'

/**
 * The operator's day over real peers (libp2p on 127.0.0.1, three regions in this process): day one's
 * records imported and the model fitted (consensus ADMM); day two's new records (5% more) imported while
 * the peers run, then `propose --refit`, warm-started from day one's model, and a cold fit of the same
 * data to compare; the day's cases scored after each fit.
 */
let base = ''
const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
const peers: Peer[] = []
const outcomes: JobOutcome[][] = [[], [], []]
let lines: string[] = []
let federationFile = ''

const FEATURES = ['age', 'parity', 'induced', 'spontaneous']
/** the records of infert that arrive on day two: every twentieth (5%) */
const dayTwo = (row: number): boolean => row % 20 === 7

async function importDay (index: number, day: 1 | 2): Promise<void> {
  const member = members[index] as (typeof members)[number]
  const file = join(base, `${member.region}-day${day}.csv`)
  const rows = lines.slice(1).map((line, row) => ({ line: `${row + 1},${line}`, row })).filter(({ row }) => row % 3 === index && dayTwo(row) === (day === 2))
  await writeFile(file, `id,${lines[0]}\n${rows.map(({ line }) => line).join('\n')}\n`)
  const imported = await cli(['import', '--dir', member.dir, '--cases', file])
  expect(imported.status, imported.stderr).toBe(0)
}

const ranEverywhere = async (job: string): Promise<JobOutcome[]> => {
  await vi.waitFor(() => { expect(outcomes.every((list) => list.some((entry) => entry.job === job))).toBe(true) }, { timeout: 90_000, interval: 100 })
  return outcomes.map((list) => list.find((entry) => entry.job === job) as JobOutcome)
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-refit-'))
  lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
  for (const region of ['alpha', 'beta', 'gamma']) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status, initialised.stderr).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
  }
  for (const index of [0, 1, 2]) await importDay(index, 1)
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify({
    version: 1,
    federationId: 'refit-test',
    members: members.map(({ region, peerId, address }) => ({ region, peerId, addresses: [address] })),
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'case', features: FEATURES.map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }))
  peers.push(...await Promise.all(members.map(async (member, index) => await createPeer({ dir: member.dir, federation: federationFile, listen: [member.address], onJob: (outcome) => { outcomes[index]?.push(outcome) } }))))
}, 120_000)

afterAll(async () => {
  await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the daily cycle', () => {
  it('imports, re-fits warm from the previous model, and scores the new cases after each fit', async () => {
    const { rows } = await readDataset(fixture('infert.csv'))
    const spec = { outcome: 'case', features: FEATURES.map((name) => ({ name, type: 'numeric' as const })) }
    const pooled = (day: 1 | 2): number[] => fitModel(buildDesign(rows.filter((_, row) => day === 2 || !dayTwo(row)), spec), termNames(spec), { family: 'binomial', standardize: true, tolerance: 1e-13 }).coefficients.estimate
    const today = join(base, 'today.csv')
    await writeFile(today, `id,${lines[0]}\n${lines.slice(1, 6).map((line, row) => `new-${row + 1},${line}`).join('\n')}\n`)

    // day one: a cold fit, and the day's cases scored
    await (peers[0] as Peer).propose({ id: 'day-1' })
    for (const outcome of await ranEverywhere('day-1')) {
      expect(relativeError(outcome.model!.coefficients.map((row) => row.estimate), pooled(1))).toBeLessThan(1e-6)
      expect(outcome.model!.duals?.length).toBe(2)
    }
    const first = await cli(['predict', '--dir', members[2]?.dir as string, '--cases', today, '--json'])
    expect(first.status, first.stderr).toBe(0)

    // day two: the new records, then the re-fit an operator proposes, and a cold fit to compare
    for (const index of [0, 1, 2]) await importDay(index, 2)
    const proposed = await cli(['propose', '--dir', members[1]?.dir as string, '--federation', federationFile, '--job-id', 'day-2', '--refit'])
    expect(proposed.status, proposed.stderr).toBe(0)
    expect(proposed.stdout).toContain('a re-fit from job day-1')
    const warm = await ranEverywhere('day-2')
    await (peers[0] as Peer).propose({ id: 'day-2-cold' })
    const cold = await ranEverywhere('day-2-cold')
    for (const outcome of [...warm, ...cold]) expect(relativeError(outcome.model!.coefficients.map((row) => row.estimate), pooled(2))).toBeLessThan(1e-6)
    for (const outcome of warm) expect(outcome.model!.lineage?.parent).toBe('day-1')
    expect(cold[0]?.model?.lineage?.parent).toBeNull()
    console.info(`over libp2p, 3 peers: rounds of the whole job, cold ${cold[0]?.model?.rounds}, warm ${warm[0]?.model?.rounds}`)
    expect(warm[0]?.model?.rounds).toBeLessThan(cold[0]?.model?.rounds as number)

    // the registry shows the lineage, and the day's cases are scored with the new model
    const registry = await cli(['models', '--dir', members[0]?.dir as string, '--json'])
    const listed = JSON.parse(registry.stdout) as Array<{ job: string, version: number, lineage: { parent: string | null } }>
    expect(listed.map((entry) => [entry.job, entry.version, entry.lineage.parent])).toEqual([['day-1', 1, null], ['day-2', 2, 'day-1'], ['day-2-cold', 3, null]])
    const second = await cli(['predict', '--dir', members[2]?.dir as string, '--cases', today, '--job', 'day-2', '--json'])
    expect(second.status, second.stderr).toBe(0)
    const before = (JSON.parse(first.stdout) as { predictions: Array<{ fit: number }> }).predictions
    const after = (JSON.parse(second.stdout) as { predictions: Array<{ fit: number }> }).predictions
    expect(after).toHaveLength(5)
    // the new records moved the model, and so the scores
    expect(after.some((prediction, index) => Math.abs(prediction.fit - (before[index]?.fit as number)) > 1e-6)).toBe(true)

    // the re-fit's signed round logs verify (its duals start where day one's ended: the checks read each
    // dual update from the logged vectors), once every member's log is closed
    await vi.waitFor(async () => {
      for (const member of members) expect((await Store.use(member.dir, async (store) => await store.getModel('day-2')))?.lineage?.auditHead).not.toBeNull()
    }, { timeout: 30_000, interval: 250 })
    for (const member of members) expect((await cli(['audit', 'export', '--dir', member.dir, '--job', 'day-2', '--out', join(base, `${member.region}-day-2.jsonl`)])).status).toBe(0)
    const verified = await cli(['audit', 'verify', ...members.map((member) => join(base, `${member.region}-day-2.jsonl`))])
    expect(verified.status, verified.stdout).toBe(0)

    // a re-fit from a model a member lacks is declined
    const stored = await Store.use(members[0]?.dir as string, async (store) => await store.getModel('day-2'))
    expect(stored?.lineage?.parent).toBe('day-1')
    await expect((peers[0] as Peer).propose({ id: 'day-3', refit: 'no-such-job' })).rejects.toMatchObject({ code: 'JOB_REFUSED' })
  }, 240_000)
})
