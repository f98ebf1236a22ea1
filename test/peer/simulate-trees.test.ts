import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { buildDesign, termNames } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { buildTreeData, fitGbdt, predictGbdt, type TreeFeature } from '../../src/learning/gbdt.ts'
import { auc, brierScore, logLoss, predictMeans } from '../../src/learning/metrics.ts'
import { main } from '../../src/peer/cli/main.ts'
import { prepareModel, readDataset } from '../../src/peer/data/dataset.ts'
import { fixture } from '../helpers/data.ts'

/** `simulate --model gbdt` and `simulate --test`: the held-out scores of the federated model, trees or regression. */
let folder = ''
let train = ''
let test = ''
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'epimesh-simulate-trees-'))
  const lines = (await readFile(fixture('infert.csv'), 'utf8')).trimEnd().split('\n')
  const body = lines.slice(1)
  train = join(folder, 'train.csv')
  test = join(folder, 'test.csv')
  await writeFile(train, [lines[0], ...body.filter((_, index) => index % 5 !== 4)].join('\n') + '\n')
  await writeFile(test, [lines[0], ...body.filter((_, index) => index % 5 === 4)].join('\n') + '\n')
})
afterAll(async () => { await rm(folder, { recursive: true, force: true }) })

async function simulate (args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    return { status: await main(['simulate', '--data', train, '--outcome', 'case', '--features', 'age,parity,induced,spontaneous,education', '--peers', '6', ...args]), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

describe('epimesh simulate --model gbdt and --test', () => {
  it('trees: the same forest as the pooled fit, and held-out AUC, log-loss and Brier equal to the pooled forest\'s', async () => {
    const { status, stdout, stderr } = await simulate(['--model', 'gbdt', '--trees', '5', '--depth', '3', '--bins', '16', '--test', test, '--json'])
    expect(status, stderr).toBe(0)
    const summary = JSON.parse(stdout) as { trees: number, sameTreesAsPooled: boolean, maxLeafDifference: number, params: { lambda: number }, test: { auc: number, logLoss: number, brier: number, rows: number } }
    expect(summary.trees).toBe(5)
    expect(summary.sameTreesAsPooled).toBe(true)
    expect(summary.maxLeafDifference).toBeLessThan(1e-9)
    // lambda defaults to XGBoost's 1 for trees
    expect(summary.params.lambda).toBe(1)
    expect(summary.test.rows).toBe(49)

    // the pooled forest, grown here with the federation's edges, scores the held-out rows the same
    const dataset = await readDataset(train)
    const prepared = prepareModel(dataset, { outcome: 'case', family: 'binomial', features: ['age', 'parity', 'induced', 'spontaneous', 'education'] })
    const features = prepared.spec.features.map((feature): TreeFeature => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: feature.levels } : { name: feature.name, type: 'numeric' })
    const simulated = JSON.parse((await simulate(['--model', 'gbdt', '--trees', '5', '--depth', '3', '--bins', '16', '--json'])).stdout) as { importance: Array<{ feature: string }> }
    expect(simulated.importance.map((entry) => entry.feature).sort()).toEqual(['age', 'education', 'induced', 'parity', 'spontaneous'])
    const data = buildTreeData(prepared.rows, 'case', features)
    const held = (await readDataset(test)).rows.map((row) => ({ ...row, education: String(row.education) }))
    const heldData = buildTreeData(held, 'case', features)
    const { simulateGbdtData } = await import('../../src/consensus/sim/gbdt-simulation.ts')
    const { createGbdtParams } = await import('../../src/learning/gbdt.ts')
    const params = createGbdtParams({ trees: 5, depth: 3, bins: 16, lambda: 1 })
    const federated = simulateGbdtData({ data, params, peers: 6, split: 'even', topology: 'ring', seed: 1 })
    const pooled = fitGbdt(data, federated.model.bins, params)
    const p = predictGbdt(pooled, heldData)
    expect(summary.test.auc).toBeCloseTo(auc(heldData.y, p), 10)
    expect(summary.test.logLoss).toBeCloseTo(logLoss(heldData.y, p), 10)
    expect(summary.test.brier).toBeCloseTo(brierScore(heldData.y, p), 10)
  })

  it('a regression: held-out scores of the federated coefficients equal the pooled fit\'s to 1e-6', async () => {
    const { status, stdout, stderr } = await simulate(['--algorithm', 'newton', '--test', test, '--json'])
    expect(status, stderr).toBe(0)
    const summary = JSON.parse(stdout) as { test: { auc: number, logLoss: number, brier: number, rows: number } }
    const dataset = await readDataset(train)
    const prepared = prepareModel(dataset, { outcome: 'case', family: 'binomial', features: ['age', 'parity', 'induced', 'spontaneous', 'education'] })
    const fit = fitModel(buildDesign(prepared.rows, prepared.spec, { outcome: 'binary' }), termNames(prepared.spec), { family: 'binomial', standardize: true })
    const held = (await readDataset(test)).rows.map((row) => ({ ...row, education: String(row.education) }))
    const block = buildDesign(held, prepared.spec, { outcome: 'binary' })
    const p = predictMeans('binomial', block, fit.coefficients.estimate)
    expect(summary.test.rows).toBe(49)
    expect(Math.abs(summary.test.logLoss - logLoss(block.y, p))).toBeLessThan(1e-6)
    expect(Math.abs(summary.test.brier - brierScore(block.y, p))).toBeLessThan(1e-6)
    expect(summary.test.auc).toBeCloseTo(auc(block.y, p), 6)
  })

  it('refuses a held-out file with a level the training rows never had, naming the line and field, and tree settings out of range', async () => {
    const bad = join(folder, 'bad.csv')
    const lines = (await readFile(test, 'utf8')).trimEnd().split('\n')
    const header = (lines[0] as string).split(',')
    const cells = (lines[3] as string).split(',')
    cells[header.indexOf('"education"')] = '99+yrs'
    await writeFile(bad, [lines[0], lines[1], lines[2], cells.join(','), ...lines.slice(4)].join('\n') + '\n')
    const refused = await simulate(['--model', 'gbdt', '--trees', '2', '--test', bad])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/bad\.csv, line 4, field education: level "99\+yrs" never occurs/)
    const zero = await simulate(['--model', 'gbdt', '--trees', '0'])
    expect(zero.status).toBe(2)
    expect(zero.stderr).toMatch(/--trees must be an integer from 1 to 1000/)
  })
})
