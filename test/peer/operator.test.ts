import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createIdentity } from '../../src/peer/identity.ts'
import { Store } from '../../src/store/store.ts'
import { relativeError, R_INFERT } from '../helpers/data.ts'
import { filesUnder, notPrivate } from '../helpers/files.ts'
import { freePort, waitFor } from '../helpers/process.ts'
import { loadFluBYBW } from '../helpers/forecast-data.ts'
import { fitEndemicEpidemic, panelRegions } from '../../src/learning/endemic-epidemic.ts'
import { forecastEndemicEpidemicRegion } from '../../src/learning/endemic-epidemic-forecast.ts'
import { parseForecastProposal } from '../../src/peer/runtime/forecast-proposal.ts'

/** The three districts of fluBYBW with the most influenza cases (Munich city, Stuttgart, Munich county). */
const DISTRICTS = ['9162', '8111', '9184']

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const INFERT = fileURLToPath(new URL('../fixtures/infert.csv', import.meta.url))
const children: ChildProcess[] = []
let base = ''
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '') await rm(base, { recursive: true, force: true })
})



/** Whether every member's store holds the job's result (read between the peer's own brief uses of its store). */
async function allHold (dirs: readonly string[], job: string, kind: 'model' | 'forecast'): Promise<boolean> {
  for (const dir of dirs) {
    const held = await Store.use(dir, async (store) => kind === 'model' ? await store.getModel(job) : await store.getForecast(job))
    if (held === null) return false
  }
  return true
}

const cli = (args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('an operator runs a peer', () => {
  it('start, propose, status, model; a forecasting job with its risk scores; a clean stop on SIGTERM', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-operator-'))
    const { panel } = await loadFluBYBW()
    const flu = { counts: DISTRICTS.map((district) => panel.counts[panel.regions.indexOf(district)]!), populations: DISTRICTS.map((district) => panel.populations[panel.regions.indexOf(district)]!) }
    const lines = (await readFile(INFERT, 'utf8')).trim().split('\n')
    const regions = ['alpha', 'beta', 'gamma']
    const members: Array<{ region: string, peerId: string, addresses: string[], dir: string }> = []
    for (const [index, region] of regions.entries()) {
      const dir = join(base, region)
      const initialised = cli(['init', '--dir', dir, '--region', region])
      expect(initialised.status, initialised.stderr).toBe(0)
      const peerId = /peer id (\S+)/.exec(initialised.stdout)?.[1] as string
      // the region's records, with a record id, imported into its store (the schema inferred)
      const file = join(base, `${region}.csv`)
      await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
      const imported = cli(['import', '--dir', dir, '--cases', file])
      expect(imported.status, imported.stderr).toBe(0)
      // and its weekly case counts (a district of fluBYBW), with its population
      const seriesFile = join(base, `${region}-series.csv`)
      await writeFile(seriesFile, `date,count,population\n${Array.from(flu.counts[index]!, (count, week) => `${new Date(Date.UTC(2001, 0, 1) + week * 7 * 86_400_000).toISOString().slice(0, 10)},${count},${flu.populations[index]}`).join('\n')}\n`)
      const series = cli(['import', '--dir', dir, '--series', seriesFile])
      expect(series.status, series.stderr).toBe(0)
      members.push({ region, peerId, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`], dir })
    }
    // a second init of the same folder is refused: a peer keeps its identity
    expect(cli(['init', '--dir', members[0]?.dir as string, '--region', 'again']).status).toBe(2)
    await expect(createIdentity(members[0]?.dir as string)).rejects.toMatchObject({ code: 'IDENTITY_EXISTS' })
    const federation = join(base, 'federation.json')
    await writeFile(federation, JSON.stringify({
      version: 1, federationId: 'operator-test',
      members: members.map(({ region, peerId, addresses }) => ({ region, peerId, addresses })),
      graph: { topology: 'ring' }, bootstrap: members[0]?.addresses,
      model: { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }
    }))
    const exits = members.map((member) => {
      const child = spawn(process.execPath, [BIN, 'start', '--dir', member.dir, '--federation', federation, '--listen', member.addresses[0] as string, ...(member.region === 'beta' ? ['--publish-risk'] : [])], { stdio: ['ignore', 'ignore', 'pipe'] })
      child.stderr?.resume()
      children.push(child)
      return new Promise<number | null>((resolve) => { child.on('exit', (code) => { resolve(code) }) })
    })
    await waitFor(async () => await access(join(members[0]?.dir as string, 'status.json')).then(() => true, () => false), 30_000)
    const proposed = cli(['propose', '--dir', members[0]?.dir as string, '--federation', federation, '--job-id', 'newton-1', '--algorithm', 'newton'])
    expect(proposed.status, proposed.stderr).toBe(0)
    await waitFor(async () => await allHold(members.map((member) => member.dir), 'newton-1', 'model'), 60_000, 500)

    for (const member of members) {
      const model = cli(['model', '--dir', member.dir, '--json'])
      expect(model.status).toBe(0)
      const parsed = JSON.parse(model.stdout) as { job: string, coefficients: Array<{ estimate: number, standardError: number }> }
      expect(parsed.job).toBe('newton-1')
      expect(relativeError(parsed.coefficients.map((row) => row.estimate), R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(parsed.coefficients.map((row) => row.standardError), R_INFERT.standardError)).toBeLessThan(1e-6)
    }
    const status = cli(['status', '--dir', members[1]?.dir as string, '--json'])
    expect(status.status).toBe(0)
    const parsedStatus = JSON.parse(status.stdout) as { running: boolean, region: string, neighbours: { connected: string[] }, lastModel: string }
    expect(parsedStatus).toMatchObject({ running: true, region: 'beta', lastModel: 'newton-1' })
    expect(parsedStatus.neighbours.connected).toHaveLength(2)
    // in words: the job's phase by name and its own round, not the protocol's tags
    const statusText = cli(['status', '--dir', members[1]?.dir as string]).stdout
    expect(statusText).toMatch(/^job newton-1 \(regression\)/m)
    expect(statusText).toMatch(/round \d+ of this phase, \d+ since the job began/)
    expect(statusText).not.toMatch(/phase (admm|newton|done)/)
    const text = cli(['model', '--dir', members[2]?.dir as string])
    expect(text.stdout).toContain('spontaneous')
    // the live job kept this region's count of incomplete records: the footer says it
    expect(text.stdout).toMatch(/^records used: \d+, pooled over 3 regions; this region's: \d+ used, \d+ dropped \(incomplete: a missing value in the outcome or a feature\)/m)
    expect(text.stdout).toMatch(/^log-likelihood: -\d+\.\d{3} \(df = \d+\); AIC: \d+\.\d{2}$/m)
    expect(cli(['model', '--dir', base]).status).toBe(2)
    const unknown = cli(['model', '--dir', members[0]?.dir as string, '--job', 'never-ran', '--json'])
    expect(unknown.status).toBe(2)
    expect(unknown.stderr).toContain('[NOTHING_YET]')

    // The registry: the model with its lineage; once the job's round log is closed its head is in the
    // lineage, and it is the head of the log the peer exports, which verifies.
    const heads = await Promise.all(members.map(async (member) => {
      let head: { length: number, hash: string } | null = null
      await waitFor(async () => {
        head = (await Store.use(member.dir, async (store) => await store.getModel('newton-1')))?.lineage?.auditHead ?? null
        return head !== null
      }, 30_000, 250)
      return head as unknown as { length: number, hash: string }
    }))
    for (const [index, member] of members.entries()) {
      const registry = cli(['models', '--dir', member.dir, '--json'])
      expect(registry.status, registry.stderr).toBe(0)
      const [entry] = JSON.parse(registry.stdout) as Array<{ job: string, version: number, lineage: Record<string, unknown> }>
      expect(entry).toMatchObject({ job: 'newton-1', version: 1, lineage: { proposerRegion: 'alpha', algorithm: 'newton', regions: regions, parent: null, auditHead: heads[index] } })
      expect(entry?.lineage.ownRows).toBe(lines.slice(1).filter((_, row) => row % 3 === index).length)
      const exported = join(member.dir, 'newton-1.jsonl')
      expect(cli(['audit', 'export', '--dir', member.dir, '--job', 'newton-1', '--out', exported]).status).toBe(0)
      const entries = (await readFile(exported, 'utf8')).trim().split('\n').slice(1).map((line) => JSON.parse(line) as { type?: string, seq?: number, hash?: string }).filter((line) => line.type !== 'checkpoint')
      expect({ length: entries.length, hash: entries.at(-1)?.hash }).toEqual(heads[index])
    }
    const newtonLogs = cli(['audit', 'verify', ...members.map((member) => join(member.dir, 'newton-1.jsonl'))])
    expect(newtonLogs.status, newtonLogs.stdout).toBe(0)
    // and the day's new cases scored with it (the first five records of infert, as new ones)
    const today = join(base, 'today.csv')
    await writeFile(today, `id,${lines[0]}\n${lines.slice(1, 6).map((line, row) => `new-${row + 1},${line}`).join('\n')}\n`)
    const scored = cli(['predict', '--dir', members[1]?.dir as string, '--cases', today, '--json'])
    expect(scored.status, scored.stderr).toBe(0)
    const predictions = (JSON.parse(scored.stdout) as { predictions: Array<{ row: number, fit: number }> }).predictions
    expect(predictions.map((prediction) => prediction.row)).toEqual([1, 2, 3, 4, 5])
    lines.slice(1, 6).forEach((line, row) => {
      const cells = line.split(',').map((cell) => Number(cell))
      // infert: education, age, parity, induced, case, spontaneous, ...
      const eta = R_INFERT.estimate[0]! + R_INFERT.estimate[1]! * cells[1]! + R_INFERT.estimate[2]! * cells[2]! + R_INFERT.estimate[3]! * cells[3]! + R_INFERT.estimate[4]! * cells[5]!
      expect(predictions[row]?.fit).toBeCloseTo(1 / (1 + Math.exp(-eta)), 5)
    })

    // A regional forecasting job on each region's weekly influenza counts (three districts of fluBYBW),
    // imported into its store; beta agreed to publish its risk score (start --publish-risk).
    const forecast = cli(['propose', '--dir', members[0]?.dir as string, '--federation', federation, '--job-id', 'risk-1', '--forecast', '--from', '2001-01-01', '--periods', '416', '--open-regions', 'beta'])
    expect(forecast.status, forecast.stderr).toBe(0)
    await waitFor(async () => await allHold(members.map((member) => member.dir), 'risk-1', 'forecast'), 60_000, 500)
    const stored = members.map((member) => {
      const shown = cli(['forecast', '--dir', member.dir, '--json'])
      expect(shown.status, shown.stderr).toBe(0)
      return JSON.parse(shown.stdout) as { job: string, h: number, rate: number, forecast: Array<{ mean: number, lower: number, upper: number, start: string | null }>, joint: { sum: number, mean: number, regions: number, open: Array<{ region: string, h: number }> }, model: { coefficients: Array<{ estimate: number }> } }
    })
    // the pooled fit of the three series, which no region could compute: hhh4's endemic-epidemic model, the default
    const plan = parseForecastProposal({ from: '2001-01-01', periods: 416, period: 'week' })
    const spec = plan.endemicEpidemic
    if (spec === null) throw new Error('expected the endemic-epidemic model by default')
    const series = panelRegions({ counts: flu.counts, populations: flu.populations }, [[1, 2], [0, 2], [0, 1]]).map((region) => ({ ...region, start: plan.start }))
    const pooled = fitEndemicEpidemic(spec, series)
    const sum = stored.reduce((total, entry) => total + entry.h, 0)
    for (const [index, entry] of stored.entries()) {
      expect(entry.job).toBe('risk-1')
      expect(relativeError(entry.model.coefficients.map((row) => row.estimate), pooled.shared)).toBeLessThan(1e-6)
      const own = forecastEndemicEpidemicRegion({ spec, shared: pooled.shared, local: null }, series[index]!, { horizon: 1 })
      expect(entry.forecast[0]?.mean).toBeCloseTo(own[0]!.mean, 4)
      expect(entry.forecast[0]?.start).toBe('2008-12-22')
      expect(entry.h).toBeGreaterThan(0)
      expect(entry.h).toBeLessThan(1)
      expect(Math.abs(entry.joint.sum - sum)).toBeLessThan(1e-9)
      expect(entry.joint.regions).toBe(3)
      expect(entry.joint.open).toEqual([{ region: 'beta', h: expect.closeTo(stored[1]!.h, 9) }])
    }
    const forecastText = cli(['forecast', '--dir', members[0]?.dir as string]).stdout
    expect(forecastText).toContain('joint risk of the 3 regions')
    // periods by their dates: 416 weeks from Monday 2001-01-01, so the first forecast week begins 2008-12-22
    expect(forecastText).toMatch(/^ {2}week of 2008-12-22: +\d/m)
    expect(forecastText).not.toContain('period +')
    // every model and forecast the peer holds, oldest first
    const listed = cli(['model', '--dir', members[1]?.dir as string, '--list', '--json'])
    expect(listed.status, listed.stderr).toBe(0)
    expect((JSON.parse(listed.stdout) as Array<{ job: string }>)[0]?.job).toBe('newton-1')
    const forecasts = cli(['forecast', '--dir', members[1]?.dir as string, '--list', '--json'])
    expect((JSON.parse(forecasts.stdout) as Array<{ job: string }>).map((forecast) => forecast.job)).toEqual(['risk-1'])
    // the forecasting job's signed logs verify, and no entry holds a region's own h (beta's is published, the others' not)
    const logs = members.map((member) => ({ name: member.region, text: cli(['audit', 'export', '--dir', member.dir, '--job', 'risk-1', '--out', join(member.dir, 'risk-1.jsonl')]) }))
    for (const log of logs) expect(log.text.status, log.text.stderr).toBe(0)
    const verified = cli(['audit', 'verify', ...members.map((member) => join(member.dir, 'risk-1.jsonl'))])
    expect(verified.status, verified.stdout).toBe(0)
    for (const member of members) {
      const text = await readFile(join(member.dir, 'risk-1.jsonl'), 'utf8')
      for (const index of [0, 2]) expect(text.includes(String(stored[index]!.h))).toBe(false)
    }

    for (const child of children) child.kill('SIGTERM')
    expect(await Promise.all(exits)).toEqual([0, 0, 0])
    // every file the peers and the operator's commands wrote into the data folders (store, journal,
    // status, proposals, audit exports) is 0600, every folder 0700; models and forecasts are in the store only
    for (const member of members) {
      const files = await filesUnder(member.dir)
      expect(files).toEqual(expect.arrayContaining(['status.json', 'risk-1.jsonl', 'store.json']))
      expect(files.filter((file) => file.startsWith('models/') || file.startsWith('forecasts/'))).toEqual([])
      expect(await notPrivate(member.dir)).toEqual([])
    }
  }, 180_000)
})
