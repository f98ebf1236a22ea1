import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { cli } from '../../helpers/cli.ts'
import { serveDashboard } from '../../../src/peer/cli/dashboard.ts'
import { Store } from '../../../src/store/store.ts'
import { warningLevel, type DashboardSnapshot } from '../../../src/peer/web/dashboard-data.ts'
import { fixture } from '../../helpers/data.ts'
import { loadFluBYBW } from '../../helpers/forecast-data.ts'
import { freePort, waitFor } from '../../helpers/process.ts'
import { browserSkipReason, launchBrowser } from '../../helpers/browser.ts'

/**
 * The operator's view of a peer of a running three-peer federation on loopback: alpha serves it
 * (start --http PORT), a regression job and a forecasting job run, and a real browser finds the
 * neighbours, the job's residual chart and the forecast with its warning level; every route answers
 * 401 without the token; only what alpha holds is shown (gamma's h, which it did not publish, is not).
 * Afterwards `epimesh dashboard` serves alpha's saved state. EPIMESH_SCREENSHOTS=DIR writes
 * DIR/dashboard.png.
 */

const BIN = fileURLToPath(new URL('../../../bin/epimesh.js', import.meta.url))
const DISTRICTS = ['9162', '8111', '9184']
const REGIONS = ['alpha', 'beta', 'gamma']
/** the federation file's warning levels; with --half-risk 0.1 alpha's h is about 0.40 (yellow) and beta's 0.71 (orange) */
const LEVELS = [0.3, 0.5, 0.8] as const

const children: ChildProcess[] = []
const exits: Array<Promise<number | null>> = []
let base = ''
let federationFile = ''
let login = ''
let origin = ''
let token = ''
const dirs: string[] = []

/** A square outline of one degree, the i-th in a row. */
function square (index: number): { type: 'Polygon', coordinates: number[][][] } {
  const x = 9 + index
  return { type: 'Polygon', coordinates: [[[x, 48], [x + 1, 48], [x + 1, 49], [x, 49], [x, 48]]] }
}

async function held (job: string, kind: 'model' | 'forecast'): Promise<boolean> {
  for (const dir of dirs) {
    const value = await Store.use(dir, async (store) => kind === 'model' ? await store.getModel(job) : await store.getForecast(job))
    if (value === null) return false
  }
  return true
}

const authorised = { authorization: '' }

async function state (): Promise<DashboardSnapshot> {
  const response = await fetch(`${origin}/api/state`, { headers: authorised })
  expect(response.status).toBe(200)
  return await response.json() as DashboardSnapshot
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-dashboard-'))
  const { panel } = await loadFluBYBW()
  const lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
  const members: Array<{ region: string, peerId: string, addresses: string[], geometry: ReturnType<typeof square> }> = []
  for (const [index, region] of REGIONS.entries()) {
    const dir = join(base, region)
    dirs.push(dir)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status).toBe(0)
    const cases = join(base, `${region}.csv`)
    await writeFile(cases, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
    expect((await cli(['import', '--dir', dir, '--cases', cases])).status).toBe(0)
    const district = panel.regions.indexOf(DISTRICTS[index] as string)
    const counts = panel.counts[district] as ArrayLike<number>
    const series = join(base, `${region}-series.csv`)
    await writeFile(series, `date,count,population\n${Array.from(counts, (value, week) => `${new Date(Date.UTC(2001, 0, 1) + week * 7 * 86_400_000).toISOString().slice(0, 10)},${value},${panel.populations[district]}`).slice(0, 156).join('\n')}\n`)
    expect((await cli(['import', '--dir', dir, '--series', series])).status).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`], geometry: square(index) })
  }
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify({
    version: 1,
    federationId: 'dashboard-test',
    members,
    graph: { topology: 'ring' },
    bootstrap: members[0]?.addresses,
    warningLevels: LEVELS,
    model: { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 3000, roundDeadlineMs: 5000, dropAfterRounds: 0 }
  }))
  const port = await freePort()
  for (const [index, member] of members.entries()) {
    const args = ['start', '--dir', dirs[index] as string, '--federation', federationFile, '--listen', member.addresses[0] as string,
      ...(index === 0 ? ['--http', String(port)] : []), ...(member.region === 'beta' ? ['--publish-risk'] : [])]
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout?.on('data', (chunk: Buffer) => { stdout += chunk.toString(); const found = /operator's view: (\S+)/.exec(stdout); if (found !== null && index === 0) login = found[1] as string })
    child.stderr?.resume()
    children.push(child)
    exits.push(new Promise((resolve) => { child.on('exit', (code) => { resolve(code) }) }))
  }
  await waitFor(async () => login !== '', 60_000, 100)
  origin = new URL(login).origin
  token = new URL(login).searchParams.get('token') ?? ''
  authorised.authorization = `Bearer ${token}`
}, 120_000)

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  await Promise.race([Promise.all(exits), new Promise((resolve) => setTimeout(resolve, 5000))])
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the operator\'s view of a running peer', () => {
  it('prints its address with the token, writes the token for its user only, and is bound to 127.0.0.1 by default', async () => {
    expect(login).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{20,}$/)
    const file = join(dirs[0] as string, 'http.token')
    expect((await readFile(file, 'utf8')).trim()).toBe(token)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
  })

  it('answers 401 to every route without the token', async () => {
    for (const path of ['/', '/dashboard.js', '/api/fragments', '/api/state', '/metrics', '/nothing']) {
      for (const headers of [{}, { authorization: `Bearer ${token}x` }, { cookie: `epimesh_token=${token.slice(1)}` }] as Array<Record<string, string>>) {
        const response = await fetch(`${origin}${path}`, { headers })
        expect(response.status, `${path} ${JSON.stringify(headers)}`).toBe(401)
        expect(await response.text()).not.toContain('alpha')
      }
    }
    const metrics = await fetch(`${origin}/metrics`, { headers: authorised })
    expect(metrics.status).toBe(200)
    expect(await metrics.text()).toMatch(/^epimesh_neighbours_connected 2$/m)
  })

  it('shows the neighbours, a job\'s residuals, the models and the forecast with its warning level', async () => {
    const before = await state()
    expect(before.members.map((member) => [member.region, member.self, member.link])).toEqual([['alpha', true, null], ['beta', false, 'connected'], ['gamma', false, 'connected']])
    // its own two links connected; the third, between beta and gamma, is not seen from here
    expect(before.links.map((link) => [link.a, link.b, link.state])).toEqual([['alpha', 'beta', 'connected'], ['beta', 'gamma', 'not seen from here'], ['gamma', 'alpha', 'connected']])

    expect((await cli(['propose', '--dir', dirs[0] as string, '--federation', federationFile, '--job-id', 'fit-1'])).status).toBe(0)
    await waitFor(async () => (await state()).job?.job === 'fit-1', 30_000, 100)
    // while it runs, its residuals are sampled from the peer
    let sampled = 0
    let last: DashboardSnapshot['job'] = null
    await waitFor(async () => {
      const running = await state()
      last = running.job
      if (running.job?.state === 'running' && running.residuals?.source === 'live') sampled = Math.max(sampled, running.residuals.points.length)
      return running.job?.state !== 'running'
    }, 60_000, 100)
    expect(sampled, JSON.stringify(last)).toBeGreaterThanOrEqual(2)
    await waitFor(async () => await held('fit-1', 'model'), 60_000, 250)
    const fitted = await vi.waitFor(async () => {
      const snapshot = await state()
      expect(snapshot.job?.state).toBe('finished')
      expect(snapshot.residuals?.source).toBe('round log')
      return snapshot
    }, { timeout: 20_000, interval: 250 })
    const stored = await Store.use(dirs[0] as string, async (store) => await store.getModel('fit-1'))
    expect(fitted.residuals?.points.length).toBeGreaterThan(10)
    expect(fitted.residuals?.points.at(-1)?.round).toBeLessThanOrEqual(fitted.job?.jobRound ?? 0)
    expect(fitted.models[0]?.job).toBe('fit-1')
    expect(fitted.models[0]?.terms.map((term) => term.estimate)).toEqual(stored?.coefficients.map((row) => row.estimate))
    expect(fitted.counters?.sent).toBeGreaterThan(2 * 10)
    expect(fitted.counters?.rounds).toBeGreaterThan(10)

    const browser = browserSkipReason === undefined ? await launchBrowser() : null
    try {
      const page = browser === null ? null : await browser.newPage({ viewport: { width: 1280, height: 1000 } })
      if (page !== null) {
        await page.goto(login)
        expect(page.url()).toBe(`${origin}/`)
        // the neighbours, and this peer's links to them as connected
        expect(await page.locator('tr.member-row').evaluateAll((rows) => rows.map((row) => row.textContent ?? ''))).toEqual([
          expect.stringMatching(/^alpha \(this peer\)/), expect.stringMatching(/^beta.*connected/), expect.stringMatching(/^gamma.*connected/)
        ])
        expect(await page.locator('svg.graph line.link.connected').count()).toBe(2)
        // the job's residual chart: two lines drawn by Vega
        expect(await page.locator('#residual-chart svg').count()).toBe(1)
        expect(await page.locator('#residual-chart svg path').count()).toBeGreaterThan(2)
        expect(await page.textContent('#residual-chart')).toContain('primal residual')
        expect(await page.textContent('#forecast')).toContain('no forecast yet')
      }

      expect((await cli(['propose', '--dir', dirs[0] as string, '--federation', federationFile, '--job-id', 'risk-1', '--forecast', '--from', '2001-01-01', '--periods', '156', '--open-regions', 'beta', '--half-risk', '0.1'])).status).toBe(0)
      await waitFor(async () => await held('risk-1', 'forecast'), 90_000, 250)
      const forecasts = await Promise.all(dirs.map(async (dir) => await Store.use(dir, async (store) => await store.getForecast('risk-1'))))
      const [own, beta, gamma] = forecasts.map((forecast) => forecast?.h as number) as [number, number, number]
      const risk = await vi.waitFor(async () => {
        const snapshot = await state()
        expect(snapshot.forecast?.job).toBe('risk-1')
        return snapshot
      }, { timeout: 10_000, interval: 250 })
      expect(risk.levels).toEqual(LEVELS)
      expect(risk.forecast?.h).toBe(own)
      expect(risk.forecast?.level).toBe(warningLevel(own, LEVELS))
      expect(risk.forecast?.observed.at(-1)?.date).toBe('2003-12-22')
      expect(risk.forecast?.forecast[0]?.date).toBe('2003-12-29')
      // beta's h came through the masked sum's published part: equal to its own to rounding
      expect(risk.members.map((member) => [member.region, member.h, member.hSource])).toEqual([['alpha', own, 'own'], ['beta', expect.closeTo(beta, 12), 'published'], ['gamma', null, null]])
      expect(risk.forecast?.level).toBe('yellow')
      expect(risk.members[1]?.level).toBe('orange')
      // gamma did not publish its h: it is nowhere in what alpha serves
      const everything = `${JSON.stringify(risk)}${await (await fetch(`${origin}/api/fragments`, { headers: authorised })).text()}`
      expect(everything).not.toContain(String(gamma))
      expect(everything).not.toContain(gamma.toPrecision(8))

      if (page !== null) {
        // the open page picks the forecast up by itself (its script polls the sections every second)
        await page.waitForSelector('#own-risk .level', { timeout: 20_000 })
        const level = warningLevel(own, LEVELS)
        expect(await page.getAttribute('#own-risk .level', 'data-level')).toBe(level)
        expect(await page.textContent('#own-risk')).toContain(own.toFixed(4))
        expect(await page.textContent('#joint-risk')).toContain('joint risk of the 3 regions')
        expect(await page.locator('#forecast-chart svg').count()).toBe(1)
        expect(await page.locator('svg.map g.region').count()).toBe(3)
        expect(await page.getAttribute('svg.map g.region[data-region="gamma"] path', 'fill')).toBe('#d0d0d0')
        expect(await page.getAttribute('svg.map g.region[data-region="beta"] path', 'fill')).not.toBe('#d0d0d0')
        expect(await page.getAttribute('body', 'data-stale')).toBeNull()
        const shots = process.env.EPIMESH_SCREENSHOTS
        if (shots !== undefined && shots !== '') {
          await mkdir(shots, { recursive: true })
          await page.screenshot({ path: join(shots, 'dashboard.png'), fullPage: true })
        }
      }
    } finally {
      await browser?.close()
    }
  }, 240_000)

  it('epimesh dashboard refuses a folder whose peer runs, and serves a stopped one\'s saved state', async () => {
    await expect(serveDashboard({ dir: dirs[1] as string, port: '0' })).rejects.toMatchObject({ code: 'PEER_ALREADY_RUNNING' })
    await expect(serveDashboard({ dir: dirs[1] as string, port: '0.0.0.0:x' })).rejects.toMatchObject({ code: 'HTTP_ADDRESS' })
    for (const child of children) child.kill('SIGTERM')
    expect(await Promise.all(exits)).toEqual([0, 0, 0])
    const view = await serveDashboard({ dir: dirs[0] as string, port: '0', federation: federationFile, warningLevels: '0.01,0.02,0.03' })
    try {
      expect(new URL(view.url).hostname).toBe('127.0.0.1')
      expect((await fetch(`${view.url}/api/state`)).status).toBe(401)
      expect((await fetch(`${view.url}/metrics`, { headers: { authorization: `Bearer ${view.token}` } })).status).toBe(404)
      const saved = await (await fetch(`${view.url}/api/state`, { headers: { authorization: `Bearer ${view.token}` } })).json() as DashboardSnapshot
      expect(saved.live).toBe(false)
      expect(saved.levels).toEqual([0.01, 0.02, 0.03])
      expect(saved.models.map((model) => model.job)).toEqual(['risk-1', 'fit-1'])
      expect(saved.forecast?.job).toBe('risk-1')
      expect(saved.residuals?.job).toBe('risk-1')
      const html = await (await fetch(`${view.url}/`, { headers: { authorization: `Bearer ${view.token}` } })).text()
      expect(html).toContain('saved state, read-only')
    } finally {
      await view.close()
    }
  }, 60_000)
})
