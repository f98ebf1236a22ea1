import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges } from '../../src/consensus/graph.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
import { buildDesign, INTERCEPT, termNames, type ModelSpec } from '../../src/learning/design.ts'
import { main } from '../../src/peer/cli/main.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import type { FeatureSpec as FederationFeature } from '../../src/peer/federation.ts'
import { toStoredModel } from '../../src/peer/runtime/peer.ts'
import type { JobProposal } from '../../src/peer/runtime/proposal.ts'
import { importCases } from '../../src/store/import.ts'
import { Store, type StoredModel } from '../../src/store/store.ts'
import { fixture } from '../helpers/data.ts'
import { readFileSync } from 'node:fs'
import { storedModel } from '../helpers/results.ts'

/** The command line's entry point in this process: exit code, stdout, and the code of its error. */
async function run (args: string[]): Promise<{ status: number, stdout: string, stderr: string, code: string | undefined }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    process.exitCode = undefined
    const status = await main(args)
    return { status, stdout, stderr, code: /\[([A-Z_]+)\]\s*$/.exec(stderr)?.[1] }
  } finally {
    process.exitCode = undefined
    out.mockRestore()
    err.mockRestore()
  }
}

type Run = Awaited<ReturnType<typeof run>>

/** Runs one after the other (the runs share the process's stdout). */
async function sequentially (runs: string[][]): Promise<Run[]> {
  const results: Run[] = []
  for (const args of runs) results.push(await run(args))
  return results
}

const EDUCATION = ['0-5yrs', '6-11yrs', '12+ yrs']
const FEATURES = ['age', 'parity', 'education', 'spontaneous', 'induced']
const COLUMNS = ['id', 'education', 'age', 'parity', 'induced', 'case', 'spontaneous']
// the schema knows a level ("unknown") that the model's job never listed
const SCHEMA = {
  version: 1 as const,
  id: 'id',
  outcome: 'case',
  columns: {
    education: { type: 'category' as const, levels: [...EDUCATION, 'unknown'] },
    age: { type: 'number' as const, min: 0, max: 120 },
    parity: { type: 'number' as const },
    induced: { type: 'number' as const },
    case: { type: 'number' as const },
    spontaneous: { type: 'number' as const }
  }
}

let base = ''
let dir = ''
let model: StoredModel
let second: StoredModel
let heldOut: Array<Record<string, unknown>> = []

const csv = (rows: ReadonlyArray<Record<string, unknown>>, columns: readonly string[] = COLUMNS): string =>
  `${columns.join(',')}\n${rows.map((row) => columns.map((column) => String(row[column] ?? '')).join(',')).join('\n')}\n`

/** The federation's fit job over three simulated regions, stored as a peer stores its result. */
function fitted (job: string, rows: ReadonlyArray<Record<string, unknown>>, lambda: number, createdAt: string): StoredModel {
  const features: FederationFeature[] = FEATURES.map((name) => name === 'education' ? { name, type: 'categorical', levels: EDUCATION } : { name, type: 'numeric' })
  const spec: ModelSpec = { outcome: 'case', features: features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: EDUCATION } : { name: feature.name, type: 'numeric' }) }
  const terms = termNames(spec)
  const blocks = [0, 1, 2].map((part) => buildDesign(rows.filter((_, index) => index % 3 === part), spec))
  const graph = graphFromEdges(['a', 'b', 'c'], [['a', 'b'], ['b', 'c'], ['c', 'a']])
  const simulation = simulateFit({ family: 'binomial', terms, interceptColumn: terms.indexOf(INTERCEPT), blocks, graph, params: createFitJobParams({ algorithm: 'newton', lambda, tolerance: 1e-12 }), seed: 3 })
  const proposal: JobProposal = { type: 'job.propose', id: job, proposer: 'a', model: { family: 'binomial', outcome: 'case', features, lambda, algorithm: 'newton', tolerance: 1e-12, maxRounds: 400, roundDeadlineMs: 1000, dropAfterRounds: 0 } }
  const stored = toStoredModel(job, simulation.results[0] as never, { proposal, input: { rows: blocks[0]?.rows ?? 0, dropped: 3, digest: 'ab'.repeat(32) }, members: [{ region: 'Anhui', peerId: 'a' }, { region: 'Jiangsu', peerId: 'b' }, { region: 'Zhejiang', peerId: 'c' }] })
  return { ...stored, createdAt }
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-predict-'))
  dir = join(base, 'peer')
  const { rows } = await readDataset(fixture('infert.csv'))
  const withIds = rows.map((row, index) => ({ ...row, id: `r${index + 1}` }))
  const train = withIds.filter((_, index) => (index + 1) % 5 !== 0)
  heldOut = withIds.filter((_, index) => (index + 1) % 5 === 0)
  model = fitted('day-1', train.slice(0, 150), 0, '2024-03-01T02:00:00.000Z')
  second = fitted('day-2', train, 0, '2024-03-02T02:00:00.000Z')
  const store = await Store.open(dir)
  try {
    await store.configure({ region: 'Anhui' })
    await writeFile(join(base, 'train.csv'), csv(train))
    await importCases(store, { file: join(base, 'train.csv'), schema: SCHEMA })
    await store.putModel(model)
    await store.putModel(second)
    await store.putModel(storedModel('old-1', undefined, '2023-01-01T00:00:00.000Z'))
    // a forecasting job's model: its specification says so
    await store.putModel({ ...storedModel('risk-1', [['(Intercept)', 0.5]], '2024-03-01T12:00:00.000Z'), specification: { kind: 'forecast', family: 'poisson' }, covariance: [[0.01]] })
  } finally {
    await store.close()
  }
}, 60_000)
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

describe('epimesh predict', () => {
  it('scores records in input order with the latest regression model, as the stored model says', async () => {
    const file = join(base, 'new.csv')
    // today's cases have no outcome yet
    await writeFile(file, csv(heldOut, COLUMNS.filter((column) => column !== 'case')))
    const result = await run(['predict', '--dir', dir, '--cases', file, '--json'])
    expect(result.status).toBe(0)
    const output = JSON.parse(result.stdout) as { job: string, predictions: Array<Record<string, number>> }
    expect(output.job).toBe('day-2')
    expect(output.predictions).toHaveLength(heldOut.length)
    output.predictions.forEach((prediction, index) => {
      expect(prediction.row).toBe(index + 1)
      expect(Object.keys(prediction)).toEqual(expect.arrayContaining(['row', 'link', 'linkSe', 'fit', 'se', 'lower', 'upper']))
      expect(prediction.lower).toBeLessThan(prediction.fit as number)
      expect(prediction.upper).toBeGreaterThan(prediction.fit as number)
    })
    // the same model as the R reference (every training row, no penalty): R's predict on the held-out rows
    const reference = JSON.parse(await readFile(fixture('predict-reference.json'), 'utf8')) as { factors: { fit: number[], se: number[] } }
    output.predictions.forEach((prediction, index) => {
      expect(Math.abs((prediction.fit as number) - (reference.factors.fit[index] as number))).toBeLessThan(1e-8)
      expect(Math.abs((prediction.se as number) - (reference.factors.se[index] as number))).toBeLessThan(1e-8)
    })
    // --job picks another; --out writes a CSV (0600) with the same values
    const out = join(base, 'scored.csv')
    expect((await run(['predict', '--dir', dir, '--cases', file, '--job', 'day-1', '--out', out])).status).toBe(0)
    const lines = (await readFile(out, 'utf8')).trim().split('\n')
    expect(lines[0]).toBe('row,line,id,link,linkSe,fit,se,lower,upper,error')
    expect(lines).toHaveLength(heldOut.length + 1)
    expect(lines[1]).toMatch(/^1,2,r5,/)
    expect((await stat(out)).mode & 0o077).toBe(0)
  })

  it('gives each record it cannot score its reason: a level the model never saw, a missing value, a value of the wrong type', async () => {
    const file = join(base, 'mixed.csv')
    const good = heldOut[0] as Record<string, unknown>
    await writeFile(file, csv([good, { ...good, id: 'x1', education: 'unknown' }, { ...good, id: 'x2', age: '' }, { ...good, id: 'x3', parity: 'two' }, { ...good, id: 'x4', education: 'college' }, good]))
    const result = await run(['predict', '--dir', dir, '--cases', file, '--json'])
    expect(result.status).toBe(0)
    const predictions = (JSON.parse(result.stdout) as { predictions: Array<Record<string, unknown>> }).predictions
    expect(predictions.map((prediction) => prediction.row)).toEqual([1, 2, 3, 4, 5, 6])
    expect(predictions[0]).toHaveProperty('fit')
    const { row: _row, line: _line, ...first } = predictions[0] as Record<string, unknown>
    expect(predictions[5]).toEqual({ ...first, row: 6, line: 7 })
    expect(predictions[1]).toMatchObject({ row: 2, id: 'x1', kind: 'LEVEL_UNKNOWN', column: 'education' })
    expect(String(predictions[1]?.error)).toContain('"unknown" is a level the model never saw')
    expect(predictions[2]).toMatchObject({ row: 3, kind: 'VALUE_MISSING', column: 'age' })
    expect(predictions[3]).toMatchObject({ row: 4, kind: 'NOT_DECIMAL', column: 'parity' })
    expect(String(predictions[3]?.error)).toMatch(/line 5, column parity: "two"/)
    expect(predictions[4]).toMatchObject({ row: 5, kind: 'NOT_A_LEVEL', column: 'education' })
    for (const refused of predictions.slice(1, 5)) expect(refused).not.toHaveProperty('fit')
  })

  it('refuses files it cannot read at all, and exits 2 when not one record can be scored', async () => {
    const empty = join(base, 'empty.csv')
    await writeFile(empty, '')
    const headerOnly = join(base, 'header.csv')
    await writeFile(headerOnly, `${COLUMNS.join(',')}\n`)
    const missing = join(base, 'missing.csv')
    await writeFile(missing, csv(heldOut.slice(0, 3), ['id', 'age', 'parity', 'induced', 'spontaneous']))
    const unknown = join(base, 'unknown.csv')
    await writeFile(unknown, csv(heldOut.slice(0, 3), [...COLUMNS, 'stratum']))
    const allBad = join(base, 'all-bad.csv')
    await writeFile(allBad, csv(heldOut.slice(0, 3).map((row) => ({ ...row, age: 'old' }))))
    const [a, b, c, d, e] = await sequentially([empty, headerOnly, missing, unknown, allBad].map((file) => ['predict', '--dir', dir, '--cases', file, '--json']))
    expect([a?.status, a?.code]).toEqual([2, 'CASES_INVALID'])
    expect(a?.stderr).toContain('the file is empty')
    expect([b?.status, b?.code]).toEqual([2, 'CASES_INVALID'])
    expect(b?.stderr).toContain('a header and no records')
    expect([c?.status, c?.code]).toEqual([2, 'CASES_INVALID'])
    expect(c?.stderr).toMatch(/line 1, column education: the model of job day-2 reads this column \[COLUMN_MISSING\]/)
    expect([d?.status, d?.code]).toEqual([2, 'CASES_INVALID'])
    expect(d?.stderr).toMatch(/column stratum: not in the store's schema/)
    expect([e?.status, e?.code]).toEqual([2, 'NOTHING_SCORED'])
    // the reasons are still printed, one per record
    expect((JSON.parse(e?.stdout ?? '') as { predictions: unknown[] }).predictions).toHaveLength(3)
    for (const result of [a, b, c, d, e]) expect(result?.stderr).not.toMatch(/^\s+at /m)
  })

  it('refuses a model it cannot score with: one of an earlier version, a forecasting job, none of that job; and bad options', async () => {
    const file = join(base, 'new.csv')
    const [old, risk, none, both] = await sequentially([
      ['predict', '--dir', dir, '--cases', file, '--job', 'old-1'],
      ['predict', '--dir', dir, '--cases', file, '--job', 'risk-1'],
      ['predict', '--dir', dir, '--cases', file, '--job', 'nope'],
      ['predict', '--dir', dir, '--cases', file, '--json', '--out', join(base, 'x.csv')]
    ]) as [Run, Run, Run, Run]
    expect(risk.stderr).toContain('regional forecasting job')
    expect([old.status, old.code]).toEqual([2, 'MODEL_UNUSABLE'])
    expect(old.stderr).toContain('stored by an earlier version')
    expect([risk.status, risk.code]).toEqual([2, 'MODEL_UNUSABLE'])
    expect([none.status, none.code]).toEqual([2, 'MODEL_UNUSABLE'])
    expect([both.status, both.code]).toEqual([2, 'OPTION_INVALID'])
  })
})

describe('the model registry', () => {
  it('lists every model with its version and lineage', async () => {
    const result = await run(['models', '--dir', dir, '--json'])
    expect(result.status).toBe(0)
    const models = JSON.parse(result.stdout) as Array<{ job: string, version: number, series: string, lineage: Record<string, unknown> | null }>
    expect(models.map((entry) => [entry.job, entry.version])).toEqual([['old-1', 1], ['day-1', 1], ['risk-1', 1], ['day-2', 2]])
    expect(models[3]?.series).toBe('binomial case ~ age + parity + education + spontaneous + induced')
    expect(models[3]?.lineage).toMatchObject({ proposer: 'a', proposerRegion: 'Anhui', algorithm: 'newton', regions: ['Anhui', 'Jiangsu', 'Zhejiang'], dataDigest: 'ab'.repeat(32), auditHead: null, parent: null })
    expect(models[0]?.lineage).toBeNull()
    const text = await run(['models', '--dir', dir])
    expect(text.stdout).toMatch(/binomial case ~ age \+ parity \+ education \+ spontaneous \+ induced v2: job day-2/)
  })

  it('shows one model with Wald intervals and odds ratios (confint.default, exp(coef))', async () => {
    const result = await run(['model', '--dir', dir, '--job', 'day-2'])
    expect(result.status).toBe(0)
    const age = second.coefficients.find((row) => row.term === 'age')
    if (age === undefined || age.standardError === null) throw new Error('no age')
    const line = result.stdout.split('\n').filter((entry) => entry.startsWith('age ')).at(-1) ?? ''
    const numbers = (line.match(/-?\d+\.\d+(e-?\d+)?/g) ?? []).map(Number)
    const expected = [age.estimate, age.estimate - 1.959963984540054 * age.standardError, age.estimate + 1.959963984540054 * age.standardError]
    expected.push(Math.exp(expected[0] as number), Math.exp(expected[1] as number), Math.exp(expected[2] as number))
    expect(numbers).toHaveLength(6)
    numbers.forEach((value, index) => { expect(Math.abs(value / (expected[index] as number) - 1)).toBeLessThan(1e-5) })
    expect(result.stdout).toContain('proposed by Anhui (a); newton;')
  })

  it('prints p-values and the footer as R\'s summary() does: the same strings, deviance and AIC as R\'s glm on the same records', async () => {
    // R's glm of the same model on the same 199 records (scripts/reference/pvalues-reference.R)
    const r = (JSON.parse(readFileSync(fixture('pvalues-reference.json'), 'utf8')) as { infert: { rows: number, deviance: number, dfResidual: number, logLik: number, aic: number, p: string[] } }).infert
    const result = await run(['model', '--dir', dir, '--job', 'day-2'])
    expect(result.status).toBe(0)
    const lines = result.stdout.split('\n')
    const header = lines.findIndex((line) => /^term .* p$/.test(line))
    const pColumn = lines.slice(header + 1, header + 1 + second.coefficients.length).map((line) => line.trim().split(/\s+/).at(-1))
    expect(pColumn).toEqual(r.p)
    expect(second.rows).toBe(r.rows)
    expect(result.stdout).toContain(`records used: ${r.rows}, pooled over 3 regions; this region's: ${second.lineage?.ownRows} used, 3 dropped (incomplete: a missing value in the outcome or a feature)`)
    expect(result.stdout).toContain(`residual deviance: ${r.deviance.toFixed(2)} on ${r.dfResidual} degrees of freedom`)
    expect(result.stdout).toContain(`log-likelihood: ${r.logLik.toFixed(3)} (df = 7); AIC: ${r.aic.toFixed(2)}`)
    expect(result.stdout).toContain('lambda: 0 (no penalty, as glm fits it)')
    expect(result.stdout).toMatch(new RegExp(`^algorithm: newton; converged in ${second.rounds} rounds$`, 'm'))
  })

  it('prints a p-value below the machine epsilon as R does: "<2e-16", or "< 2e-16" in a wide column', async () => {
    const tinyDir = join(base, 'tiny')
    const coefficients = second.coefficients.map((row, index) => index === 1 ? { ...row, pValue: 1e-20 } : index === 2 ? { ...row, pValue: 0.000123 } : row)
    const store = await Store.open(tinyDir)
    try {
      await store.configure({ region: 'Anhui' })
      await store.putModel({ ...second, job: 'tiny-1', coefficients })
    } finally {
      await store.close()
    }
    const result = await run(['model', '--dir', tinyDir])
    expect(result.status).toBe(0)
    const term = coefficients[1]?.term as string
    const line = result.stdout.split('\n').find((entry) => entry.startsWith(`${term} `)) ?? ''
    expect(line.endsWith('   < 2e-16')).toBe(true)
    expect(result.stdout).toMatch(/ 0\.000123\n/)
  })

  it('shows how the coefficients moved between two models', async () => {
    const result = await run(['models', 'diff', 'day-1', 'day-2', '--dir', dir, '--json'])
    expect(result.status).toBe(0)
    const diff = JSON.parse(result.stdout) as { sameSeries: boolean, coefficients: Array<{ term: string, a: number, b: number, difference: number, inStandardErrors: number }> }
    expect(diff.sameSeries).toBe(true)
    expect(diff.coefficients.map((row) => row.term)).toEqual(model.coefficients.map((row) => row.term))
    diff.coefficients.forEach((row, index) => {
      expect(row.difference).toBeCloseTo((second.coefficients[index]?.estimate as number) - (model.coefficients[index]?.estimate as number), 12)
      expect(row.inStandardErrors).toBeCloseTo(row.difference / (model.coefficients[index]?.standardError as number), 10)
    })
    const other = await run(['models', 'diff', 'day-1', 'old-1', '--dir', dir])
    expect(other.stdout).toContain('NOT the same model')
    expect((await run(['models', 'diff', 'day-1', '--dir', dir])).status).toBe(2)
    expect((await run(['models', '--dir', dir, 'diff', 'day-1', 'day-2'])).stdout).toContain('from job day-1')
    expect((await run(['models', 'diff', 'day-1', 'gone', '--dir', dir])).code).toBe('MODEL_UNUSABLE')
  })
})
