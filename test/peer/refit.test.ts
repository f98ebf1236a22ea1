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
import { loadFluBYBW } from '../helpers/forecast-data.ts'
import { relativeDistance } from '../../src/learning/linalg.ts'
import { toOriginalScale } from '../../src/learning/standardize.ts'
import { fitEndemicEpidemic, panelRegions } from '../../src/learning/endemic-epidemic.ts'
import { forecastEndemicEpidemicRegion } from '../../src/learning/endemic-epidemic-forecast.ts'
import { parseForecastProposal } from '../../src/peer/runtime/forecast-proposal.ts'
import { runScheduledRefit } from '../../src/peer/runtime/scheduled-refit.ts'

/**
 * The operator's day over real peers (libp2p on 127.0.0.1, three regions in this process): day one's
 * records imported and the model fitted (consensus ADMM), and a regional forecast made on each region's
 * weekly counts (three districts of fluBYBW); day two's new records (5% more) and the week's counts
 * imported while the peers run, then `propose --refit`, warm-started from day one's model, which
 * refreshes the forecast too, and a cold fit of the same data to compare; the day's cases scored after
 * each fit. The rounds each fit took to reach the pooled fit are read from the members' signed round logs.
 */
let base = ''
const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
const peers: Peer[] = []
const outcomes: JobOutcome[][] = [[], [], []]
let lines: string[] = []
let federationFile = ''

const FEATURES = ['age', 'parity', 'induced', 'spontaneous']
/** The three districts of fluBYBW with the most influenza cases, one a region, and the weeks of counts each holds on day one. */
const DISTRICTS = ['9162', '8111', '9184']
const WEEKS = 156
let flu: { counts: Float64Array[], populations: number[] } = { counts: [], populations: [] }

/** Weekly counts from Monday 2001-01-01, weeks [from, to) of the region's district. */
async function importWeeks (index: number, from: number, to: number): Promise<void> {
  const member = members[index] as (typeof members)[number]
  const file = join(base, `${member.region}-series-${to}.csv`)
  const weeks = Array.from({ length: to - from }, (_, offset) => from + offset)
  await writeFile(file, `date,count,population\n${weeks.map((week) => `${new Date(Date.UTC(2001, 0, 1) + week * 7 * 86_400_000).toISOString().slice(0, 10)},${flu.counts[index]?.[week] ?? 0},${flu.populations[index] ?? 0}`).join('\n')}\n`)
  const imported = await cli(['import', '--dir', member.dir, '--series', file])
  expect(imported.status, imported.stderr).toBe(0)
}

/**
 * From the members' exported round logs of a job: the first job round from which every consensus-ADMM
 * iterate any member logged (x_i^k, sent in round k, mapped to the original scale with the model's
 * standardisation) is within `threshold` of the pooled fit (relative distance, as the simulator
 * measures it), and the job round of the first ADMM round.
 */
async function roundsToPooled (files: readonly string[], scaling: { mean: number[], scale: number[] }, intercept: number, reference: readonly number[], threshold: number): Promise<{ rounds: number, admmStart: number, iterates: number }> {
  let lastAbove = Number.NEGATIVE_INFINITY
  let admmStart = Number.POSITIVE_INFINITY
  let iterates = 0
  const scaler = { mean: Float64Array.from(scaling.mean), scale: Float64Array.from(scaling.scale) }
  for (const file of files) {
    for (const line of (await readFile(file, 'utf8')).trim().split('\n')) {
      const entry = JSON.parse(line) as { type?: string, jobRound?: number, admm?: { x: number[] } }
      if (entry.type !== 'round' || entry.admm === undefined || typeof entry.jobRound !== 'number') continue
      iterates++
      admmStart = Math.min(admmStart, entry.jobRound)
      if (!(relativeDistance(toOriginalScale(entry.admm.x, scaler, intercept), reference) < threshold)) lastAbove = Math.max(lastAbove, entry.jobRound)
    }
  }
  return { rounds: Math.max(admmStart, lastAbove + 1), admmStart, iterates }
}
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
  const { panel } = await loadFluBYBW()
  flu = { counts: DISTRICTS.map((district) => panel.counts[panel.regions.indexOf(district)] as Float64Array), populations: DISTRICTS.map((district) => panel.populations[panel.regions.indexOf(district)] as number) }
  for (const region of ['alpha', 'beta', 'gamma']) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status, initialised.stderr).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
  }
  for (const index of [0, 1, 2]) {
    await importDay(index, 1)
    await importWeeks(index, 0, WEEKS)
  }
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
  it('imports, re-fits warm from the previous model in at most half the rounds, refreshes the forecast, and scores the new cases after each fit', async () => {
    const { rows } = await readDataset(fixture('infert.csv'))
    const spec = { outcome: 'case', features: FEATURES.map((name) => ({ name, type: 'numeric' as const })) }
    const pooled = (day: 1 | 2): number[] => fitModel(buildDesign(rows.filter((_, row) => day === 2 || !dayTwo(row)), spec), termNames(spec), { family: 'binomial', standardize: true, tolerance: 1e-13 }).coefficients.estimate
    const today = join(base, 'today.csv')
    await writeFile(today, `id,${lines[0]}\n${lines.slice(1, 6).map((line, row) => `new-${row + 1},${line}`).join('\n')}\n`)

    // day one: a cold fit and a regional forecast, and the day's cases scored
    await (peers[0] as Peer).propose({ id: 'day-1' })
    for (const outcome of await ranEverywhere('day-1')) {
      expect(relativeError(outcome.model!.coefficients.map((row) => row.estimate), pooled(1))).toBeLessThan(1e-6)
      expect(outcome.model!.duals?.length).toBe(2)
    }
    await (peers[2] as Peer).propose({ id: 'risk-1', forecast: { from: '2001-01-01', periods: WEEKS, period: 'week' } })
    const dayOneForecasts = await ranEverywhere('risk-1')
    for (const outcome of dayOneForecasts) expect(outcome.forecast?.settings?.periods).toBe(WEEKS)
    const first = await cli(['predict', '--dir', members[2]?.dir as string, '--cases', today, '--json'])
    expect(first.status, first.stderr).toBe(0)

    // day two: the new records and the week's counts, then the re-fit an operator proposes, which
    // refreshes the forecast beside it, and a cold fit to compare
    for (const index of [0, 1, 2]) {
      await importDay(index, 2)
      await importWeeks(index, WEEKS, WEEKS + 1)
    }
    const proposed = await cli(['propose', '--dir', members[1]?.dir as string, '--federation', federationFile, '--job-id', 'day-2', '--refit'])
    expect(proposed.status, proposed.stderr).toBe(0)
    expect(proposed.stdout).toContain('a re-fit from job day-1')
    expect(proposed.stdout).toContain(`proposed job day-2-forecast, the forecast of job risk-1 refreshed: ${WEEKS + 1} weeks from 2001-01-01`)
    const warm = await ranEverywhere('day-2')
    const refreshed = await ranEverywhere('day-2-forecast')
    await (peers[0] as Peer).propose({ id: 'day-2-cold' })
    const cold = await ranEverywhere('day-2-cold')
    for (const outcome of [...warm, ...cold]) expect(relativeError(outcome.model!.coefficients.map((row) => row.estimate), pooled(2))).toBeLessThan(1e-6)
    for (const outcome of warm) expect(outcome.model!.lineage?.parent).toBe('day-1')
    expect(cold[0]?.model?.lineage?.parent).toBeNull()

    // the refreshed forecast is the pooled endemic-epidemic fit of the series with the new week (hhh4's
    // model, which no region could fit alone), and so each region's forecast and h moved
    const plan = parseForecastProposal({ from: '2001-01-01', periods: WEEKS + 1, period: 'week' })
    if (plan.endemicEpidemic === null) throw new Error('expected the endemic-epidemic model by default')
    const series = panelRegions({ counts: flu.counts.map((counts) => counts.slice(0, WEEKS + 1)), populations: flu.populations }, [[1, 2], [0, 2], [0, 1]]).map((region) => ({ ...region, start: plan.start }))
    const pooledForecast = fitEndemicEpidemic(plan.endemicEpidemic, series)
    for (const [index, outcome] of refreshed.entries()) {
      const forecast = outcome.forecast!
      expect(forecast.settings?.periods).toBe(WEEKS + 1)
      expect(forecast.model.lineage?.parent).toBe('risk-1')
      expect(relativeError(forecast.model.coefficients.map((row) => row.estimate), pooledForecast.shared)).toBeLessThan(1e-6)
      const own = forecastEndemicEpidemicRegion({ spec: plan.endemicEpidemic, shared: pooledForecast.shared, local: null }, series[index]!, { horizon: 1 })
      expect(forecast.forecast[0]?.mean).toBeCloseTo(own[0]!.mean, 4)
      expect(forecast.h).not.toBe(dayOneForecasts[index]?.forecast?.h)
      expect(forecast.joint.regions).toBe(3)
    }
    // `forecast` and `status` show the refreshed one
    const shown = await cli(['forecast', '--dir', members[0]?.dir as string])
    expect(shown.status, shown.stderr).toBe(0)
    expect(shown.stdout).toContain('job day-2-forecast')
    expect(shown.stdout).toContain(`on ${WEEKS + 1} weeks of the series from 2001-01-01, refreshing the forecast of job risk-1`)
    await vi.waitFor(async () => {
      const status = await cli(['status', '--dir', members[0]?.dir as string, '--json'])
      expect((JSON.parse(status.stdout) as { lastForecast?: { job: string, parent: string | null } }).lastForecast).toMatchObject({ job: 'day-2-forecast', parent: 'risk-1' })
    }, { timeout: 10_000, interval: 250 })
    expect((await cli(['status', '--dir', members[0]?.dir as string])).stdout).toContain('latest forecast: job day-2-forecast over 157 periods, refreshing job risk-1')

    // the registry shows the lineage, and the day's cases are scored with the new model
    const registry = await cli(['models', '--dir', members[0]?.dir as string, '--json'])
    const listed = JSON.parse(registry.stdout) as Array<{ job: string, version: number, lineage: { parent: string | null } }>
    expect(listed.filter((entry) => entry.job.startsWith('day-') && !entry.job.endsWith('-forecast')).map((entry) => [entry.job, entry.version, entry.lineage.parent])).toEqual([['day-1', 1, null], ['day-2', 2, 'day-1'], ['day-2-cold', 3, null]])
    expect(listed.find((entry) => entry.job === 'day-2-forecast')?.lineage.parent).toBe('risk-1')
    const second = await cli(['predict', '--dir', members[2]?.dir as string, '--cases', today, '--job', 'day-2', '--json'])
    expect(second.status, second.stderr).toBe(0)
    const before = (JSON.parse(first.stdout) as { predictions: Array<{ fit: number }> }).predictions
    const after = (JSON.parse(second.stdout) as { predictions: Array<{ fit: number }> }).predictions
    expect(after).toHaveLength(5)
    // the new records moved the model, and so the scores
    expect(after.some((prediction, index) => Math.abs(prediction.fit - (before[index]?.fit as number)) > 1e-6)).toBe(true)

    // the fits' signed round logs verify (the re-fit's duals start where day one's ended: the checks read
    // each dual update from the logged vectors), once every member's log is closed; and from the ADMM
    // iterates they hold, the rounds each fit took to come within 1e-6 of the pooled fit of all records
    for (const job of ['day-2', 'day-2-cold']) {
      await vi.waitFor(async () => {
        for (const member of members) expect((await Store.use(member.dir, async (store) => await store.getModel(job)))?.lineage?.auditHead).not.toBeNull()
      }, { timeout: 30_000, interval: 250 })
      for (const member of members) expect((await cli(['audit', 'export', '--dir', member.dir, '--job', job, '--out', join(base, `${member.region}-${job}.jsonl`)])).status).toBe(0)
      const verified = await cli(['audit', 'verify', ...members.map((member) => join(base, `${member.region}-${job}.jsonl`))])
      expect(verified.status, verified.stdout).toBe(0)
    }
    const model = warm[0]?.model
    const scaling = model?.specification?.kind === 'glm' ? model.specification.scaling : null
    if (scaling === null || scaling === undefined) throw new Error('expected a standardised model')
    const reached = async (job: string): Promise<Awaited<ReturnType<typeof roundsToPooled>>> => await roundsToPooled(members.map((member) => join(base, `${member.region}-${job}.jsonl`)), scaling, 0, pooled(2), 1e-6)
    const warmReached = await reached('day-2')
    const coldReached = await reached('day-2-cold')
    expect(warmReached.iterates).toBeGreaterThan(0)
    expect(coldReached.rounds).toBeGreaterThan(coldReached.admmStart)
    console.info(`over libp2p, 3 peers: rounds to 1e-6 of the pooled fit cold ${coldReached.rounds}, warm ${warmReached.rounds} (its ADMM began at round ${warmReached.admmStart}); to the stop cold ${cold[0]?.model?.rounds}, warm ${warm[0]?.model?.rounds}`)
    expect(warmReached.rounds).toBeLessThanOrEqual(coldReached.rounds / 2)
    expect(warm[0]?.model?.rounds).toBeLessThanOrEqual((cold[0]?.model?.rounds as number) / 2)

    // a re-fit from a model a member lacks is declined
    const stored = await Store.use(members[0]?.dir as string, async (store) => await store.getModel('day-2'))
    expect(stored?.lineage?.parent).toBe('day-1')
    await expect((peers[0] as Peer).propose({ id: 'day-3', refit: 'no-such-job' })).rejects.toMatchObject({ code: 'JOB_REFUSED' })

    // day three, by the schedule (start --refit-at): the week's counts imported, then the re-fit from the
    // latest regression model and the refresh of the latest forecast, one after the other
    for (const index of [0, 1, 2]) await importWeeks(index, WEEKS + 1, WEEKS + 2)
    const events: string[] = []
    const proposer = peers[1] as Peer
    await runScheduledRefit({
      dir: members[1]?.dir as string,
      id: 'refit-20261203-023000',
      proposer: proposer.peerId,
      model: JSON.parse(await readFile(federationFile, 'utf8')).model,
      propose: async (proposal) => await proposer.propose({ id: proposal.id, ...(proposal.forecast === undefined ? {} : { forecast: proposal.forecast }), ...(proposal.refit === undefined ? {} : { refit: proposal.refit }) }),
      log: (_level, event) => { events.push(event) },
      signal: new AbortController().signal
    })
    expect(events).toEqual(['refit.proposed', 'forecast.refresh.proposed'])
    for (const outcome of await ranEverywhere('refit-20261203-023000')) expect(outcome.model?.lineage?.parent).toBe('day-2-cold')
    const scheduled = await ranEverywhere('refit-20261203-023000-forecast')
    for (const outcome of scheduled) {
      expect(outcome.forecast?.settings?.periods).toBe(WEEKS + 2)
      expect(outcome.forecast?.model.lineage?.parent).toBe('day-2-forecast')
    }
    // a refresh starts from the shared parameters of the forecast it refreshes: the same model as a cold
    // forecasting job of the same series, in fewer Newton steps
    await (peers[0] as Peer).propose({ id: 'day-3-forecast-cold', forecast: { from: '2001-01-01', periods: WEEKS + 2, period: 'week' } })
    const coldForecast = await ranEverywhere('day-3-forecast-cold')
    for (const [index, outcome] of scheduled.entries()) {
      expect(relativeError(outcome.forecast!.model.coefficients.map((row) => row.estimate), coldForecast[index]!.forecast!.model.coefficients.map((row) => row.estimate))).toBeLessThan(1e-6)
    }
    console.info(`the forecast's refresh over libp2p: ${scheduled[0]?.forecast?.model.rounds} rounds, a cold forecast of the same series ${coldForecast[0]?.forecast?.model.rounds}`)
    expect(scheduled[0]?.forecast?.model.rounds).toBeLessThan(coldForecast[0]?.forecast?.model.rounds as number)
    // a refresh of a forecast a member lacks is declined
    await expect((peers[0] as Peer).propose({ id: 'day-3-forecast-orphan', forecast: { from: '2001-01-01', periods: WEEKS + 2, period: 'week' }, refit: 'no-such-forecast' })).rejects.toMatchObject({ code: 'JOB_REFUSED' })
  }, 240_000)
})
