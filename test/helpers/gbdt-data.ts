import { readFile } from 'node:fs/promises'
import { buildTreeData, type TreeData, type TreeFeature } from '../../src/learning/gbdt.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { fixture } from './data.ts'

/**
 * The held-out comparison with XGBoost (test/fixtures/xgboost-reference.json, made by
 * scripts/reference/xgboost-reference.py): each data set's complete rows in file order, row i held out
 * when i % 5 == 4, factors' levels sorted, the outcome coded 1 for the positive label.
 */
export interface XgboostReference {
  xgboost: string
  params: { trees: number, depth: number, learningRate: number, lambda: number, gamma: number, minChildWeight: number, bins: number }
  datasets: Record<string, { outcome: string, numeric: string[], factors: string[], trainRows: number, testRows: number, auc: number, logLoss: number, brier: number }>
}

export const HOLDOUT_DATASETS = [
  { name: 'infert', file: 'infert.csv', positive: null },
  { name: 'wnv', file: 'wnv.csv', positive: 'Yes' },
  { name: 'breast_cancer', file: 'breast_cancer.csv', positive: null }
] as const

export async function xgboostReference (): Promise<XgboostReference> {
  return JSON.parse(await readFile(fixture('xgboost-reference.json'), 'utf8')) as XgboostReference
}

/** A data set's training and held-out rows as tree data, coded as the reference script codes them. */
export async function holdoutSplit (name: (typeof HOLDOUT_DATASETS)[number]['name'], reference: XgboostReference): Promise<{ train: TreeData, test: TreeData, trainRows: Array<Record<string, unknown>>, testRows: Array<Record<string, unknown>> }> {
  const spec = HOLDOUT_DATASETS.find((entry) => entry.name === name) as (typeof HOLDOUT_DATASETS)[number]
  const expected = reference.datasets[name] as XgboostReference['datasets'][string]
  const dataset = await readDataset(fixture(spec.file))
  const used = [expected.outcome, ...expected.numeric, ...expected.factors]
  const complete = dataset.rows.filter((row) => used.every((column) => row[column] !== null && row[column] !== undefined && row[column] !== '' && row[column] !== 'NA'))
  const coded = complete.map((row) => ({ ...row, [expected.outcome]: spec.positive === null ? Number(row[expected.outcome]) : (row[expected.outcome] === spec.positive ? 1 : 0) }))
  const features: TreeFeature[] = [
    ...expected.numeric.map((name): TreeFeature => ({ name, type: 'numeric' })),
    ...expected.factors.map((name): TreeFeature => ({ name, type: 'categorical', levels: [...new Set(complete.map((row) => String(row[name])))].sort() }))
  ]
  const trainRows = coded.filter((_, index) => index % 5 !== 4)
  const testRows = coded.filter((_, index) => index % 5 === 4)
  return { train: buildTreeData(trainRows, expected.outcome, features), test: buildTreeData(testRows, expected.outcome, features), trainRows, testRows }
}
