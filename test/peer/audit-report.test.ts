import '../../src/peer/polyfill.ts'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges, type Graph } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { simulateAuditedFit } from '../../src/peer/audit/simulation.ts'
import type { Checkpoint } from '../../src/peer/audit/log.ts'
import { describeJob, summarizeJob } from '../../src/peer/audit/summary.ts'
import { formatReport, verifyAuditFiles, verifyAuditTexts, type AuditFileText } from '../../src/peer/audit/verify.ts'
import { loadIdentity } from '../../src/peer/identity.ts'
import { Store } from '../../src/store/store.ts'
import { main } from '../../src/peer/cli/main.ts'
import { loadModel } from '../helpers/data.ts'

/**
 * The auditor's report: a plain-language summary first, a broken chain reported by its first cause,
 * rounds shown aligned by phase, plots only for what a job's logs hold, and a self-contained HTML
 * report. The logs come from the simulator, which writes what real peers write, on a small ring.
 */
const PEERS = 4
let keys: PrivateKey[]
let graph: Graph
let admmFiles: Array<{ peer: string, text: string }>
let newtonFiles: Array<{ peer: string, text: string }>
let dir: string

async function simulate (algorithm: 'admm' | 'newton', job: string, linkLoss?: number): Promise<Array<{ peer: string, text: string }>> {
  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
  const parts = splitRows(block.rows, PEERS, 'even', createRng(5))
  const run = await simulateAuditedFit({
    job,
    graph,
    keys,
    problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(block, rows), terms, interceptColumn: 0 })),
    params: createFitJobParams({ algorithm, tolerance: 1e-8, lambda: 0.5 }),
    seed: 7,
    ...(linkLoss === undefined ? {} : { network: { linkLoss } })
  })
  return run.files
}

const texts = (list: ReadonlyArray<{ text: string }>, prefix: string): AuditFileText[] => list.map((file, index) => ({ name: `${prefix}-${index}.jsonl`, text: file.text }))

async function run (argv: string[]): Promise<{ code: number, out: string, err: string }> {
  let out = ''
  let err = ''
  const stdout = process.stdout.write
  const stderr = process.stderr.write
  process.stdout.write = ((chunk: string) => { out += chunk; return true }) as typeof process.stdout.write
  process.stderr.write = ((chunk: string) => { err += chunk; return true }) as typeof process.stderr.write
  try {
    process.exitCode = undefined
    const code = await main(argv)
    return { code, out, err }
  } finally {
    process.stdout.write = stdout
    process.stderr.write = stderr
    process.exitCode = undefined
  }
}

async function written (files: ReadonlyArray<{ text: string }>, prefix: string): Promise<string[]> {
  return await Promise.all(files.map(async (file, index) => {
    const path = join(dir, `${prefix}-${index}.jsonl`)
    await writeFile(path, file.text)
    return path
  }))
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'epimesh-audit-report-'))
  keys = await Promise.all(Array.from({ length: PEERS }, async () => await generateKeyPair('Ed25519')))
  const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
  graph = graphFromEdges(ids, ids.map((id, index) => [id, ids[(index + 1) % PEERS] as string] as [string, string]))
  admmFiles = await simulate('admm', 'job-admm')
  newtonFiles = await simulate('newton', 'job-newton')
}, 60_000)
afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

describe('audit verify: a broken chain by its first cause', () => {
  test('a byte flipped so that a line is no longer canonical JSON gives one root cause, first, at that line', async () => {
    const original = (admmFiles[1] as { text: string }).text
    const lines = original.split('\n')
    const target = 30
    // two flips of one bit each: one breaks the JSON, one leaves valid but non-canonical JSON (a key out of order)
    const broken = (lines[target] as string).replace('{', String.fromCharCode('{'.charCodeAt(0) ^ 1))
    const reordered = (lines[target] as string).replace('"job":', '"zob":')
    for (const line of [broken, reordered]) {
      const tampered = [...lines]
      tampered[target] = line
      const report = await verifyAuditTexts([{ name: 'tampered.jsonl', text: tampered.join('\n') }])
      expect(report.ok).toBe(false)
      const causes = report.failures.filter((finding) => finding.rootCause === true)
      expect(causes).toHaveLength(1)
      expect(report.failures[0]).toBe(causes[0])
      expect(causes[0]?.line).toBe(target + 1)
      // nothing was deleted, inserted or reordered: no failure may say so
      expect(report.failures.some((finding) => finding.message.includes('reordered'))).toBe(false)
      expect(report.failures.length).toBeLessThanOrEqual(3)
      const text = formatReport(report)
      const failureLines = text.split('\n').filter((item) => /ROOT CAUSE|failure/.test(item))
      expect(failureLines[0]).toMatch(new RegExp(`^ROOT CAUSE in tampered.jsonl: tampered.jsonl:${target + 1}, `))
      // verified with the other peers' logs: still that one cause and nothing else standing on its own
      const all = texts(admmFiles, 'peer')
      all[1] = { name: 'tampered.jsonl', text: tampered.join('\n') }
      const together = await verifyAuditTexts(all)
      expect(together.ok).toBe(false)
      expect(together.failures.filter((finding) => finding.followsFrom === undefined)).toEqual([expect.objectContaining({ rootCause: true, file: 'tampered.jsonl', line: target + 1 })])
      expect(together.notes.some((note) => note.startsWith('tampered.jsonl: its chain or signatures do not hold'))).toBe(true)
    }
  })

  test('any of 25 seeded random bit flips in the entries gives one failure that stands on its own, listed first, on the flipped line; every other failure follows from it', async () => {
    const original = Buffer.from((admmFiles[2] as { text: string }).text, 'utf8')
    const headerEnd = original.indexOf(10)
    const rng = createRng(1414)
    for (let trial = 0; trial < 25; trial++) {
      const position = headerEnd + 1 + Math.floor(rng() * (original.length - headerEnd - 2))
      const tampered = Buffer.from(original)
      tampered[position] = (tampered[position] as number) ^ (1 << Math.floor(rng() * 8))
      const report = await verifyAuditTexts([{ name: 'flipped.jsonl', text: tampered.toString('latin1') }])
      expect(report.ok).toBe(false)
      const line = original.subarray(0, position).toString('latin1').split('\n').length
      // one failure stands on its own: the first; all others (if any) follow from it
      const first = report.failures[0]
      expect(report.failures.filter((finding) => finding.followsFrom === undefined), `flip at byte ${position}`).toEqual([first])
      // a flipped newline splits or joins lines: the first failure is then on the line before or at it
      expect(Math.abs((first?.line ?? 0) - line), `flip at byte ${position}: ${first?.message}`).toBeLessThanOrEqual(1)
      expect(report.failures.filter((finding) => finding.message.includes('reordered')).length).toBeLessThanOrEqual(1)
    }
  })
})

describe('audit verify: a plain-language summary first', () => {
  test('the report opens with what was run (model, features, λ, algorithm, rounds, regions) and what was checked', async () => {
    const report = await verifyAuditTexts(texts(admmFiles, 'admm'))
    expect(report.ok).toBe(true)
    expect(report.summary).toMatchObject({ family: 'binomial', algorithm: 'admm', lambda: 0.5, tolerance: 1e-8, converged: true })
    expect(report.summary.terms).toEqual(['(Intercept)', 'age', 'parity', 'induced', 'spontaneous'])
    expect(report.summary.regions).toHaveLength(PEERS)
    const text = formatReport(report)
    const [first, ...rest] = text.split('\n')
    expect(first).toBe('What was run, as the regions\' signed logs state it:')
    const opening = rest.slice(0, 8).join('\n')
    expect(opening).toContain('a logistic regression (binomial GLM) on 4 terms: age, parity, induced, spontaneous, with an intercept')
    expect(opening).toContain('λ = 0.5')
    expect(opening).toContain('consensus ADMM')
    expect(opening).toMatch(new RegExp(`Outcome: ${report.summary.rounds as number} rounds, converged`))
    expect(opening).toContain(`Regions: ${PEERS}`)
    expect(text).toContain('no entry was removed, inserted or reordered since it was written (hash chain')
    expect(text).toContain('every consensus-ADMM update was recomputed from the logged numbers and matches')
    expect(text.trimEnd().split('\n').at(-1)).toBe('VERIFIED: every check holds')

    const newton = formatReport(await verifyAuditTexts(texts(newtonFiles, 'newton')))
    expect(newton).toContain('exact decentralised Newton')
    expect(newton).not.toContain('consensus-ADMM update')
  })
})


describe('audit show: peers aligned by phase round', () => {
  test('on honest logs of a lossy run, whose peers number their job rounds differently, every peer is shown at the same phase round', async () => {
    const lossy = await simulate('admm', 'job-lossy', 0.2)
    expect((await verifyAuditTexts(texts(lossy, 'lossy'))).ok).toBe(true)
    // find a round whose job round differs between peers: the old display mixed those
    const rounds = lossy.map((file) => file.text.split('\n').slice(1).filter((line) => line.includes('"type":"round"')).map((line) => JSON.parse(line) as { phase: string, round: number, jobRound: number }))
    const first = rounds[0] as Array<{ phase: string, round: number, jobRound: number }>
    // (a job round can name two entries: the last round of a phase and the first of the next)
    const misaligned = first.find((entry) => first.filter((other) => other.jobRound === entry.jobRound).length === 1 && rounds.some((list) => list.some((other) => other.phase === entry.phase && other.round === entry.round && other.jobRound !== entry.jobRound)))
    expect(misaligned, 'the lossy run numbers some round differently on some peer').toBeDefined()
    const { phase, round, jobRound } = misaligned as { phase: string, round: number, jobRound: number }
    const paths = await written(lossy, 'lossy')
    const shown = await run(['audit', 'show', ...paths, '--round', String(jobRound)])
    expect(shown.code).toBe(0)
    expect(shown.out.split('\n')[0]).toBe(`phase ${phase}, round ${round} of the phase (job round ${jobRound} in ${peerIdFromPrivateKey(keys[0] as PrivateKey).toString().slice(0, 39)}…'s log); every peer below is shown at this phase round`)
    const headers = [...shown.out.matchAll(/^(\S+): (\S+) round (\d+) \(its job round (\d+), entry \d+\)/gm)]
    expect(headers).toHaveLength(PEERS)
    for (const header of headers) expect([header[2], Number(header[3])]).toEqual([phase, round])
    expect(new Set(headers.map((header) => header[4])).size).toBeGreaterThan(1)
    // the asked round is marked in the aligned table, and the same round asked by phase gives the same peers
    expect(shown.out).toMatch(new RegExp(`^  ==> ${round} `, 'm'))
    // without --round: every phase, and per peer its rounds in it and the job round where it began
    const table = (await run(['audit', 'show', ...paths])).out.split('\n')
    expect(table[0]).toMatch(/^phase\s/)
    const row = table.find((line) => line.startsWith(`${phase} `)) as string
    expect(row.match(/\d+ from \d+/g)).toHaveLength(PEERS)
    const byPhase = await run(['audit', 'show', ...paths, '--phase', phase, '--round', String(round), '--json'])
    const parsed = JSON.parse(byPhase.out) as { phase: string, round: number, peers: Array<{ entry: { phase: string, round: number } | null }> }
    expect(parsed.peers.map(({ entry }) => [entry?.phase, entry?.round])).toEqual(Array.from({ length: PEERS }, () => [phase, round]))
  })
})

describe('audit show --plot: only what the logs hold', () => {
  test('an exact-Newton job has no ADMM residuals: no file, a clear message, exit 2; an ADMM job gets its plot with the tolerance line', async () => {
    const paths = await written(newtonFiles, 'newton')
    const svg = join(dir, 'newton.svg')
    const refused = await run(['audit', 'show', ...paths, '--plot', svg])
    expect(refused.code).toBe(2)
    expect(refused.err).toContain('no consensus-ADMM rounds (the job ran exact decentralised Newton), so there are no residuals to plot; no plot was written [AUDIT_NOTHING_TO_PLOT]')
    await expect(readFile(svg)).rejects.toThrow()
    const admmPaths = await written(admmFiles, 'admm')
    const admmSvg = join(dir, 'admm.svg')
    const drawn = await run(['audit', 'show', ...admmPaths, '--plot', admmSvg])
    expect(drawn.code).toBe(0)
    const text = await readFile(admmSvg, 'utf8')
    expect(text).toMatch(/^<svg/)
    expect(text).toContain('tolerance 1e-8')
    expect(text).toContain('admm2 starts')
  })
})

describe('audit verify --html', () => {
  test('writes one self-contained page: the summary, the checks, the failures root cause first, the plot inline', async () => {
    const paths = await written(admmFiles, 'html')
    const page = join(dir, 'report.html')
    const result = await run(['audit', 'verify', ...paths, '--html', page])
    expect(result.code).toBe(0)
    const html = await readFile(page, 'utf8')
    expect(html).toMatch(/^<!DOCTYPE html>/)
    expect(html).toContain('VERIFIED: every check holds')
    expect(html).toContain('a logistic regression (binomial GLM) on 4 terms: age, parity, induced, spontaneous')
    expect(html).toContain('every consensus-ADMM update was recomputed from the logged numbers and matches')
    expect(html).toContain('<svg')
    // nothing is fetched: no script, no stylesheet link, no image or frame source, no remote URL in style
    expect(html).not.toMatch(/<script|<link|<img|<iframe|\ssrc=|url\(/i)

    const lines = (admmFiles[0] as { text: string }).text.split('\n')
    lines[12] = (lines[12] as string).replace('"job":', '"zob":')
    await writeFile(paths[0] as string, lines.join('\n'))
    const broken = await run(['audit', 'verify', ...paths, '--html', page])
    expect(broken.code).toBe(1)
    const brokenHtml = await readFile(page, 'utf8')
    expect(brokenHtml).toContain('NOT VERIFIED')
    expect(brokenHtml).toMatch(/<tr class="cause"><td>root cause<\/td><td>[^<]*html-0\.jsonl:13<\/td>/)

    // an exact-Newton job: the page says why there is no residual plot
    const newtonPage = join(dir, 'newton.html')
    expect((await run(['audit', 'verify', ...(await written(newtonFiles, 'newton-html')), '--html', newtonPage])).code).toBe(0)
    const newtonHtml = await readFile(newtonPage, 'utf8')
    expect(newtonHtml).toContain('exact decentralised Newton')
    expect(newtonHtml).toContain('these logs hold no consensus-ADMM rounds')
    expect(newtonHtml).not.toContain('<svg')
  })
})

describe('audit export --all', () => {
  test('every job of every data folder given, into one folder, one command; each job verifies from it', async () => {
    const regions = ['Alpha', 'Beta', 'Gamma']
    const dirs = regions.map((region) => join(dir, `peer-${region}`))
    for (const [index, region] of regions.entries()) expect((await run(['init', '--dir', dirs[index] as string, '--region', region])).code).toBe(0)
    const identities = await Promise.all(dirs.map(async (folder) => await loadIdentity(folder)))
    const ids = identities.map((identity) => identity.peerId)
    const triangle = graphFromEdges(ids, [[ids[0] as string, ids[1] as string], [ids[1] as string, ids[2] as string], [ids[2] as string, ids[0] as string]])
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity'] })
    const parts = splitRows(block.rows, 3, 'even', createRng(9))
    for (const [job, algorithm] of [['job-one', 'admm'], ['job-two', 'newton']] as const) {
      const simulated = await simulateAuditedFit({
        job,
        graph: triangle,
        keys: identities.map((identity) => identity.privateKey),
        problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(block, rows), terms, interceptColumn: 0 })),
        params: createFitJobParams({ algorithm, tolerance: 1e-8 }),
        seed: 3
      })
      for (const [index, file] of simulated.files.entries()) {
        const lines = file.text.trimEnd().split('\n').slice(1)
        const store = await Store.openWhenFree(dirs[index] as string)
        try {
          await store.appendAudit({
            entries: lines.filter((line) => !line.includes('"type":"checkpoint"')),
            checkpoints: lines.filter((line) => line.includes('"type":"checkpoint"')).map((line) => JSON.parse(line) as Checkpoint)
          })
        } finally {
          await store.close()
        }
      }
    }
    const out = join(dir, 'exported')
    const exported = await run(['audit', 'export', '--all', ...dirs.flatMap((folder) => ['--dir', folder]), '--out', out])
    expect(exported.code).toBe(0)
    expect(exported.out).toContain('job job-one: 3 log(s) (Alpha, Beta, Gamma)')
    expect(exported.out).toContain('job job-two: 3 log(s) (Alpha, Beta, Gamma)')
    expect(exported.out).toContain('6 file(s) written to')
    expect((await readdir(out)).sort()).toEqual(['job-one.Alpha.jsonl', 'job-one.Beta.jsonl', 'job-one.Gamma.jsonl', 'job-two.Alpha.jsonl', 'job-two.Beta.jsonl', 'job-two.Gamma.jsonl'])
    for (const job of ['job-one', 'job-two']) {
      const report = await verifyAuditFiles(regions.map((region) => join(out, `${job}.${region}.jsonl`)))
      expect(report.ok, job).toBe(true)
      expect(report.files.map((file) => file.region)).toEqual(ids)
    }
    // one --dir without --all still exports one job, and says how to get them all
    const many = await run(['audit', 'export', '--dir', dirs[0] as string, '--out', join(dir, 'one.jsonl')])
    expect(many.code).toBe(2)
    expect(many.err).toContain('export them all with --all')
  })
})

describe('the summary reads untrusted logs', () => {
  test('control characters are replaced, long strings cut, objects shown as JSON, missing fields left out', () => {
    const start = {
      type: 'start',
      algorithm: 'admm\u001b[2J',
      params: { lambda: 'one', tolerance: 1e-6 },
      model: { family: 'binomial', outcome: `severe\u001b[31m${'x'.repeat(500)}`, features: [{ name: { toString: 1 } }, { name: 'age\u202e' }] },
      graph: { names: ['a', 'b'], neighbours: [[1], [0]], regions: ['North\r\nVERIFIED', 'South'] }
    } as unknown as Parameters<typeof summarizeJob>[0]
    const summary = summarizeJob(start, undefined)
    expect(summary.lambda).toBeNull()
    expect(summary.links).toBe(1)
    const text = describeJob(summary, 'job\u0007').join('\n')
    expect(text).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f\u202e]/)
    expect(text).toContain('North??VERIFIED')
    expect(text).toContain('{"toString":1}')
    expect(text.length).toBeLessThan(2000)
  })
})

test('a forecasting job is described by its series: the period, how many and from when, and rows as region-periods', () => {
  const start = { type: 'start', algorithm: 'newton', params: { lambda: 0, tolerance: 1e-10, maxRounds: 5000 }, model: { kind: 'forecast', from: '2023-01-02', period: 'week', periods: 156, algorithm: 'newton' }, graph: { names: ['a', 'b'], neighbours: [[1], [0]], regions: ['North', 'South'] } } as unknown as Parameters<typeof summarizeJob>[0]
  const final = { type: 'final', terms: ['(Intercept)', 'log1p(y[t-1])'], rounds: 29, converged: true, rows: 308, dropped: [] } as unknown as Parameters<typeof summarizeJob>[1]
  const text = describeJob(summarizeJob(start, final), 'risk-1').join('\n')
  expect(text).toContain('Job risk-1: a regional forecast of weekly case counts over 156 weeks from 2023-01-02, a Poisson regression (log link)')
  expect(text).toContain('exact decentralised Newton')
  expect(text).toContain('Outcome: 29 rounds, converged (the stop rule was met), 308 region-weeks used in all')
})
