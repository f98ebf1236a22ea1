import '../../../src/peer/polyfill.ts'
import { spawn } from 'node:child_process'
import { Script } from 'node:vm'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges } from '../../../src/consensus/graph.ts'
import { splitRows } from '../../../src/consensus/partition.ts'
import { createRng } from '../../../src/consensus/rng.ts'
import { selectRows } from '../../../src/learning/design.ts'
import { createGlmProblem } from '../../../src/learning/problem.ts'
import { simulateAuditedFit } from '../../../src/peer/audit/simulation.ts'
import type { AuditFileText } from '../../../src/peer/audit/verify.ts'
import { serveAudit, type AuditServer } from '../../../src/peer/web/audit-server.ts'
import { auditPageHtml } from '../../../src/peer/web/audit-page.ts'
import { AUDIT_VIEW_LIMITS, buildAuditView, collectAuditFiles, roundAt, type AuditView, type RoundView } from '../../../src/peer/web/audit-view.ts'
import { browserSkipReason, launchBrowser } from '../../helpers/browser.ts'
import { cli } from '../../helpers/cli.ts'
import { loadModel } from '../../helpers/data.ts'

/**
 * The auditor's web page (`audit serve`) on the signed logs of a consensus-ADMM fit on a ring of four
 * regions, written by the simulator with the code a peer runs. Two region names are hostile (markup,
 * a bidi override): the page must show them as text. A tampered copy changes one field of one round
 * entry; the page must name that file and line as the root cause.
 */
const REGIONS = ['Alpha', 'Beta<img src=x onerror="window.pwned=1">', 'Gamma', 'Delta "&\u202e']
const TAMPERED_LINE = 20
let dir: string
let honest: AuditFileText[]
let tampered: AuditFileText[]
let neighbours: string[][]

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'epimesh-audit-web-'))
  const keys = await Promise.all(REGIONS.map(async () => await generateKeyPair('Ed25519')))
  const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
  const graph = graphFromEdges(ids, ids.map((id, index) => [id, ids[(index + 1) % ids.length] as string] as [string, string]))
  neighbours = graph.neighbours.map((list) => list.map((node) => REGIONS[node] as string))
  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
  const parts = splitRows(block.rows, ids.length, 'even', createRng(5))
  const run = await simulateAuditedFit({
    job: 'job-web',
    graph,
    keys,
    regions: REGIONS,
    problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(block, rows), terms, interceptColumn: 0 })),
    params: createFitJobParams({ algorithm: 'admm', tolerance: 1e-6, lambda: 0.5 }),
    seed: 7
  })
  await mkdir(join(dir, 'honest'))
  await mkdir(join(dir, 'tampered'))
  honest = run.files.map((file, index) => ({ name: join(dir, 'honest', `job-web.r${index}.jsonl`), text: file.text }))
  // one field of one round entry changed: the line stays canonical JSON, the entry no longer hashes to its hash
  const lines = (honest[1] as AuditFileText).text.split('\n')
  const line = lines[TAMPERED_LINE - 1] as string
  expect(line).toContain('"type":"round"')
  expect(line).toContain('"deadline":false')
  lines[TAMPERED_LINE - 1] = line.replace('"deadline":false', '"deadline":true')
  tampered = honest.map((file, index) => ({ name: join(dir, 'tampered', `job-web.r${index}.jsonl`), text: index === 1 ? lines.join('\n') : file.text }))
  for (const file of [...honest, ...tampered]) await writeFile(file.name, file.text)
}, 60_000)
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('the page data', () => {
  let view: AuditView
  beforeAll(async () => { view = await buildAuditView(honest) }, 30_000)

  it('verifies honest logs and lists each peer\'s chain: entries, head hash, the heads it published and who countersigned them', () => {
    expect(view.report.ok).toBe(true)
    expect(view.peers.map((peer) => peer.region)).toEqual(REGIONS.map((region) => region.replace('\u202e', '?')))
    for (const [index, peer] of view.peers.entries()) {
      const entries = (honest[index] as AuditFileText).text.split('\n').slice(1).filter((line) => /"type":"(start|round|final)"/.test(line))
      expect(peer.entries).toBe(entries.length)
      expect(peer.headHash).toBe((JSON.parse(entries.at(-1) as string) as { hash: string }).hash)
      expect(peer.intact).toBe(true)
      expect(peer.own.length).toBeGreaterThan(0)
      // the last head covers the whole log, and both ring neighbours countersigned every head
      expect(peer.own.at(-1)?.length).toBe(entries.length)
      for (const checkpoint of peer.own) {
        expect([...checkpoint.countersignedBy].sort()).toEqual((neighbours[index] as string[]).map((name) => name.replace('\u202e', '?')).sort())
        expect(checkpoint.failed).toBe(false)
      }
      expect(peer.witnessed).toBeGreaterThan(0)
    }
  })

  it('walks the rounds by phase and phase round, every peer shown at the same one, vectors bounded', () => {
    expect(view.phases.map((phase) => phase.phase)).toContain('admm')
    expect(view.positions.length).toBe(view.phases.reduce((sum, phase) => sum + phase.count, 0))
    const admm = view.phases.find((phase) => phase.phase === 'admm') as { first: number, count: number }
    const round = roundAt(view, admm.first + 5) as RoundView
    expect([round.phase, round.round]).toEqual(['admm', 5])
    expect(round.peers).toHaveLength(REGIONS.length)
    for (const [index, peer] of round.peers.entries()) {
      const entry = peer.entry as NonNullable<RoundView['peers'][number]['entry']>
      expect(entry).not.toBeNull()
      // what it logged: one vector to every neighbour, and one message received from each neighbour
      expect(entry.sent.some((sent) => sent.kind === 'admm' && sent.round === 5 && sent.to === null && (sent.values?.length ?? 0) <= AUDIT_VIEW_LIMITS.valuesPerVector && sent.length > 0)).toBe(true)
      expect(entry.received.filter((received) => received.kind === 'admm' && received.round === 5).map((received) => received.from).sort()).toEqual((neighbours[index] as string[]).map((name) => name.replace('\u202e', '?')).sort())
      expect(entry.received.every((received) => received.confirmed === true)).toBe(true)
      expect(entry.admm?.heard.length).toBe(2)
      expect(entry.admm?.x.length).toBe(5)
    }
    expect(round.around.find((line) => line.round === 5)?.jobRounds.every((jobRound) => jobRound !== null)).toBe(true)
    expect(roundAt(view, view.positions.length)).toBeUndefined()
  })

  it('escapes what the logs say: hostile region names are text, and the page runs only its own script', () => {
    const html = auditPageHtml(view, { nonce: 'n0nce', generated: 'now' })
    expect(html).not.toContain('<img')
    expect(html).toContain('Beta&lt;img src=x onerror=&quot;window.pwned=1&quot;&gt;')
    expect(html).not.toContain('\u202e')
    expect(html.match(/<script/g)).toHaveLength(1)
    expect(html).toContain('<script nonce="n0nce">')
    expect(html).toContain('script-src \'nonce-n0nce\'')
    expect(html).toContain('<svg')
    // the one script is valid JavaScript (a quote left unescaped in it would stop the slider)
    const script = (/<script nonce="n0nce">([\s\S]*)<\/script>/.exec(html) as RegExpExecArray)[1] as string
    expect(() => new Script(script)).not.toThrow()
  })

  it('reports a tampered log as failed, root cause first, at its file and line', async () => {
    const broken = await buildAuditView(tampered)
    expect(broken.report.ok).toBe(false)
    const first = broken.report.failures.find((finding) => finding.rootCause === true)
    expect(first).toMatchObject({ file: (tampered[1] as AuditFileText).name, line: TAMPERED_LINE, field: 'hash' })
    expect(broken.peers[1]?.intact).toBe(false)
    // a receipt from the broken log's author cannot be confirmed from it; the others still are
    const round = roundAt(broken, (broken.phases.find((phase) => phase.phase === 'admm') as { first: number }).first + 5) as RoundView
    const receipts = round.peers.filter((_, index) => index !== 1).flatMap((peer) => peer.entry?.received ?? [])
    expect(receipts.filter((received) => received.from.startsWith('Beta')).map((received) => received.confirmed)).toEqual([null, null])
    expect(receipts.filter((received) => !received.from.startsWith('Beta')).every((received) => received.confirmed === true)).toBe(true)
    const html = auditPageHtml(broken, { nonce: 'n', generated: 'now' })
    expect(html).toContain(`NOT VERIFIED: ${broken.report.failures.length} failure`)
    expect(html).toMatch(new RegExp(`<tr class="cause"><td>root cause</td><td class="where">[^<]*job-web\\.r1\\.jsonl:${TAMPERED_LINE}</td>`))
    // the page's first failure row is the root cause
    expect(html.indexOf('class="cause"')).toBeLessThan(html.indexOf('follows from') < 0 ? Number.MAX_SAFE_INTEGER : html.indexOf('follows from'))
  })
})

describe('bounds on what a log makes the page show', () => {
  it('a round entry with hundreds of messages and a huge kind is listed cut, with a count of what was left out; a missing plot is explained, escaped', async () => {
    const lines = (honest[0] as AuditFileText).text.split('\n')
    const index = lines.findIndex((line) => line.includes('"type":"round"') && line.includes('"phase":"admm"') && line.includes('"round":5,'))
    expect(index).toBeGreaterThan(0)
    const entry = JSON.parse(lines[index] as string) as { received: unknown[], sent: Array<{ kind: string, values?: number[] }> }
    entry.received = Array.from({ length: 500 }, (_, item) => ({ kind: 'admm', round: 5, from: `x${item}`, digest: '0'.repeat(64) }))
    entry.sent = [{ kind: 'k'.repeat(5000), values: Array.from({ length: 1000 }, (_, item) => item) }]
    lines[index] = JSON.stringify(entry)
    const view = await buildAuditView([{ name: 'big.jsonl', text: lines.join('\n') }, ...honest.slice(1)])
    expect(view.report.ok).toBe(false)
    const admm = view.phases.find((phase) => phase.phase === 'admm') as { first: number }
    const shown = (roundAt(view, admm.first + 5) as RoundView).peers[0]?.entry as NonNullable<RoundView['peers'][number]['entry']>
    expect(shown.received).toHaveLength(AUDIT_VIEW_LIMITS.recordsPerList)
    expect(shown.leftOut).toBe(500 - AUDIT_VIEW_LIMITS.recordsPerList)
    expect(shown.sent[0]?.kind.length).toBeLessThanOrEqual(30)
    expect(shown.sent[0]?.values).toHaveLength(AUDIT_VIEW_LIMITS.valuesPerVector)
    expect(shown.sent[0]?.length).toBe(1000)
    const html = auditPageHtml({ ...view, plot: { note: 'no plot <b>here</b>' } }, { nonce: 'n', generated: 'now' })
    expect(html).toContain('<p id="plot-note">no plot &lt;b&gt;here&lt;/b&gt;</p>')
  })
})

describe('the files it serves', () => {
  it('takes folders, and with the logs of several jobs asks for --job', async () => {
    const files = await collectAuditFiles([join(dir, 'honest')])
    expect(files.map((file) => file.name)).toEqual(honest.map((file) => file.name))
    const mixed = join(dir, 'mixed')
    await mkdir(mixed)
    await writeFile(join(mixed, 'a.jsonl'), (honest[0] as AuditFileText).text)
    await writeFile(join(mixed, 'b.jsonl'), (honest[1] as AuditFileText).text.replace(/"job":"job-web"/, '"job":"job-other"'))
    await expect(collectAuditFiles([mixed])).rejects.toThrow(/2 jobs \(job-web, job-other\): choose one with --job/)
    expect((await collectAuditFiles([mixed], 'job-web')).map((file) => file.name)).toEqual([join(mixed, 'a.jsonl')])
    const refused = await cli(['audit', 'serve', mixed, '--port', '0'])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('choose one with --job')
    const badPort = await cli(['audit', 'serve', join(dir, 'honest'), '--port', '99999'])
    expect(badPort.status).toBe(2)
    expect(badPort.stderr).toContain('--port must be a port number')
    await expect(collectAuditFiles([join(dir, 'nothing-here')])).rejects.toThrow(/cannot be read/)
  })
})

describe('the server', () => {
  let served: AuditServer
  beforeAll(async () => { served = await serveAudit({ files: honest, host: '127.0.0.1', port: 0 }) }, 30_000)
  afterAll(async () => { await served.close() })

  it('answers 401 to every route without the token, and serves the page, the rounds and the report with it', async () => {
    for (const path of ['/', '/round.json?i=0', '/report.json', '/other']) {
      const response = await fetch(`${served.web.url}${path}`)
      expect(response.status, path).toBe(401)
      expect(await response.text()).not.toContain('job-web')
    }
    const auth = { authorization: `Bearer ${served.web.token}` }
    const page = await fetch(`${served.web.url}/`, { headers: auth })
    expect(page.status).toBe(200)
    expect(await page.text()).toContain('VERIFIED: every check holds')
    const round = await fetch(`${served.web.url}/round.json?i=3`, { headers: auth })
    expect(((await round.json()) as RoundView).index).toBe(3)
    expect((await fetch(`${served.web.url}/round.json?i=-1`, { headers: auth })).status).toBe(400)
    expect((await fetch(`${served.web.url}/round.json?i=${served.view.positions.length}`, { headers: auth })).status).toBe(404)
    expect(((await (await fetch(`${served.web.url}/report.json`, { headers: auth })).json()) as { ok: boolean }).ok).toBe(true)
  })

  it.skipIf(browserSkipReason !== undefined)('in a real browser: verified logs show as verified, the slider changes the round shown, a tampered set shows as failed at its file and line', async () => {
    const browser = await launchBrowser()
    const broken = await serveAudit({ files: tampered, host: '127.0.0.1', port: 0 })
    try {
      const page = await browser.newPage()
      const errors: string[] = []
      page.on('pageerror', (error) => { errors.push(error.message) })
      page.on('console', (message) => { if (message.type() === 'error') errors.push(message.text()) })
      await page.goto(served.web.loginUrl)
      expect(page.url()).toBe(`${served.web.url}/`)
      expect(await page.getAttribute('#verdict', 'data-ok')).toBe('true')
      expect(await page.textContent('#verdict')).toBe('VERIFIED: every check holds')
      await page.waitForSelector('#round-peers[data-index="0"]')
      const before = await page.locator('#round-peers h3').allTextContents()
      expect(before).toHaveLength(REGIONS.length)
      const label = await page.textContent('#round-label')
      // four steps with the keyboard, as a person moves the slider, to the curvature sum's first round
      // (the statistics' sum before it ends on each peer with its last round sent: what its neighbours
      // sent in that round arrives after the peer moved on, and shows as late in the next entry)
      await page.focus('#round')
      for (let step = 0; step < 4; step++) await page.keyboard.press('ArrowRight')
      await page.waitForSelector('#round-peers[data-index="4"]')
      const after = await page.locator('#round-peers h3').allTextContents()
      const position = served.view.positions[4] as { phase: string, round: number }
      expect(position).toEqual({ phase: 'curvature', round: 0 })
      expect(after).not.toEqual(before)
      for (const heading of after) expect(heading).toContain(`: ${position.phase} round ${position.round} (its job round`)
      expect(await page.textContent('#round-label')).not.toBe(label)
      // every message received is confirmed by its sender's log, row by row
      expect(await page.locator('#round-peers .messages td', { hasText: 'sent, same digest' }).count()).toBe(2 * REGIONS.length)
      // the hostile names are text: no element was injected, nothing ran
      expect(await page.locator('img').count()).toBe(0)
      expect(await page.evaluate(() => (globalThis as unknown as { pwned?: number }).pwned)).toBeUndefined()
      expect(after.some((heading) => heading.startsWith('Beta<img src=x'))).toBe(true)
      expect(await page.locator('#plot svg').count()).toBe(1)
      expect(errors).toEqual([])

      await page.goto(broken.web.loginUrl)
      expect(await page.getAttribute('#verdict', 'data-ok')).toBe('false')
      expect(await page.textContent('#verdict')).toContain('NOT VERIFIED')
      const cause = page.locator('#failures tr.cause').first()
      expect(await cause.locator('td.where').textContent()).toBe(`${(tampered[1] as AuditFileText).name}:${TAMPERED_LINE}`)
      expect(await cause.locator('td.field').textContent()).toBe('hash')
      // and it is the first failure listed
      expect(await page.locator('#failures tr').nth(1).getAttribute('class')).toBe('cause')
      await page.waitForSelector('#round-peers[data-index="0"]')
      expect(await page.locator('#round-peers .warn').first().textContent()).toContain('This log does not hold')
    } finally {
      await browser.close()
      await broken.close()
    }
  }, 60_000)
})

describe('npx epimesh audit serve', () => {
  it('prints the login address with its token, serves behind it, and stops on SIGTERM', async () => {
    const bin = fileURLToPath(new URL('../../../bin/epimesh.js', import.meta.url))
    const child = spawn(process.execPath, [bin, 'audit', 'serve', join(dir, 'honest'), '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    const exited = new Promise<number | null>((resolve) => { child.on('exit', (code) => { resolve(code) }) })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 40_000)
    try {
      const until = Date.now() + 35_000
      while (!/open http:\/\/\S+\n/.test(stdout) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50))
      expect(stdout).toMatch(/^job job-web: 4 log\(s\), \d+ entries: VERIFIED: every check holds\n/)
      const login = new URL((/open (http:\/\/\S+)\n/.exec(stdout) as RegExpExecArray)[1] as string)
      expect(login.hostname).toBe('127.0.0.1')
      const token = login.searchParams.get('token') as string
      expect(token.length).toBeGreaterThan(20)
      expect((await fetch(`${login.origin}/`)).status).toBe(401)
      const page = await fetch(`${login.origin}/`, { headers: { authorization: `Bearer ${token}` } })
      expect(page.status).toBe(200)
      expect(await page.text()).toContain('Each peer\'s chain and checkpoints')
    } finally {
      child.kill('SIGTERM')
      expect(await exited).toBe(0)
      clearTimeout(timer)
    }
  }, 60_000)
})
