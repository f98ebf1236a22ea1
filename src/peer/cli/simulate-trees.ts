import type { SplitKind } from '../../consensus/partition.ts'
import { simulateGbdtData } from '../../consensus/sim/gbdt-simulation.ts'
import { buildDesign, termNames, type ModelSpec } from '../../learning/design.ts'
import { buildTreeData, createGbdtParams, featureImportance, predictGbdt, type GbdtModel, type TreeFeature } from '../../learning/gbdt.ts'
import { auc, brierScore, logLoss, predictMeans } from '../../learning/metrics.ts'
import { DatasetError, prepareModel, readDataset, type Cell, type Dataset, type PreparedModel } from '../data/dataset.ts'
import { JOB_BOUNDS } from '../job-bounds.ts'

/**
 * `simulate --model gbdt`: boosted trees grown by a simulated federation with the same job code a
 * peer runs, beside the pooled forest grown with the same bin edges; and `simulate --test FILE`, which
 * scores the federated model (trees or a regression) on rows no peer held.
 */

export interface TreeSimulateOptions {
  data: string
  outcome: string
  features?: string
  factors?: string
  family: 'binomial' | 'poisson'
  peers: number
  split: SplitKind
  partitionBy?: string
  seed: number
  topology: string
  linkLoss: number
  lambda: number
  trees: number
  depth: number
  learningRate: number
  gamma: number
  minChildWeight: number
  bins: number
  test?: string
}

const list = (value: string): string[] => value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)

function prepare (dataset: Dataset, options: Pick<TreeSimulateOptions, 'outcome' | 'family' | 'features' | 'factors' | 'partitionBy'>): PreparedModel {
  return prepareModel(dataset, {
    outcome: options.outcome,
    family: options.family,
    ...(options.features === undefined ? {} : { features: list(options.features) }),
    ...(options.factors === undefined ? {} : { factors: list(options.factors) }),
    ...(options.partitionBy === undefined ? {} : { exclude: [options.partitionBy] })
  })
}

function treeFeatures (spec: ModelSpec): TreeFeature[] {
  return spec.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' })
}

function checkRange (name: string, value: number, range: { min: number, max: number }, integer = false): void {
  if (!(Number.isFinite(value) && value >= range.min && value <= range.max) || (integer && !Number.isInteger(value))) {
    throw new DatasetError(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${range.min} to ${range.max}, got ${value}`)
  }
}

export async function runSimulateTrees (options: TreeSimulateOptions): Promise<Record<string, unknown>> {
  checkRange('trees', options.trees, JOB_BOUNDS.trees, true)
  checkRange('depth', options.depth, JOB_BOUNDS.depth, true)
  checkRange('learning-rate', options.learningRate, JOB_BOUNDS.learningRate)
  checkRange('lambda', options.lambda, JOB_BOUNDS.lambda)
  checkRange('gamma', options.gamma, JOB_BOUNDS.gamma)
  checkRange('min-child-weight', options.minChildWeight, JOB_BOUNDS.minChildWeight)
  checkRange('bins', options.bins, JOB_BOUNDS.bins, true)
  const dataset = await readDataset(options.data)
  const prepared = prepare(dataset, options)
  const features = treeFeatures(prepared.spec)
  const data = buildTreeData(prepared.rows, options.outcome, features, { family: options.family })
  const groups = options.partitionBy === undefined
    ? undefined
    : prepared.kept.map((index) => {
      const value: Cell | undefined = dataset.rows[index]?.[options.partitionBy as string]
      if (value === null || value === undefined) throw new DatasetError(`${options.data}, line ${dataset.lines[index]}: missing value in the partition column "${options.partitionBy}"`)
      return String(value)
    })
  const params = createGbdtParams({ family: options.family, trees: options.trees, depth: options.depth, learningRate: options.learningRate, lambda: options.lambda, gamma: options.gamma, minChildWeight: options.minChildWeight, bins: options.bins })
  const started = performance.now()
  const simulation = simulateGbdtData({ data, params, peers: options.peers, split: options.split, topology: options.topology, ...(groups === undefined ? {} : { groups }), seed: options.seed, linkLoss: options.linkLoss })
  const seconds = (performance.now() - started) / 1000
  const importance = featureImportance(simulation.model).sort((a, b) => b.gain - a.gain)
  const summary: Record<string, unknown> = {
    model: 'gbdt',
    params: { ...params },
    topology: options.topology,
    peers: simulation.peers,
    diameter: simulation.diameter,
    rows: simulation.rows,
    droppedRows: prepared.dropped,
    seed: options.seed,
    rounds: simulation.rounds,
    phaseRounds: simulation.result.phaseRounds,
    messages: simulation.messages,
    bytes: simulation.bytes,
    seconds,
    trees: simulation.model.trees.length,
    sameTreesAsPooled: simulation.sameTrees,
    maxLeafDifference: simulation.maxLeafDifference,
    logLikelihood: simulation.result.logLikelihood,
    metrics: simulation.result.metrics === null ? null : { auc: simulation.result.metrics.auc, brier: simulation.result.metrics.brier, hosmerLemeshow: simulation.result.metrics.hosmerLemeshow },
    importance
  }
  if (options.test !== undefined) summary.test = await scoreTrees(options.test, prepared, features, simulation.model)
  return summary
}

/** The held-out file's rows as the training rows were read: the outcome coded the same way, factors as text; incomplete rows left out and counted. */
async function testRows (path: string, prepared: PreparedModel): Promise<{ rows: Array<Record<string, Cell>>, dropped: number }> {
  const dataset = await readDataset(path)
  const { spec, outcomeMapping } = prepared
  const used = [spec.outcome, ...spec.features.map((feature) => feature.name), ...(spec.offset === undefined ? [] : [spec.offset])]
  const known = new Set(dataset.columns)
  const missing = used.filter((column) => !known.has(column))
  if (missing.length > 0) throw new DatasetError(`${path}: no column ${missing.map((column) => `"${column}"`).join(', ')} (the model uses ${used.join(', ')})`)
  const rows: Array<Record<string, Cell>> = []
  dataset.rows.forEach((original, index) => {
    if (!used.every((column) => original[column] !== null && original[column] !== undefined)) return
    const row: Record<string, Cell> = { ...original }
    if (outcomeMapping !== null) {
      const coded = outcomeMapping[String(row[spec.outcome])]
      if (coded === undefined) throw new DatasetError(`${path}, line ${dataset.lines[index]}, field ${spec.outcome}: ${JSON.stringify(String(row[spec.outcome]).slice(0, 40))} is not one of the training outcome's values (${Object.keys(outcomeMapping).join(', ')})`)
      row[spec.outcome] = coded
    }
    for (const feature of spec.features) {
      if (feature.type !== 'categorical') continue
      const level = String(row[feature.name])
      if (!feature.levels.includes(level)) throw new DatasetError(`${path}, line ${dataset.lines[index]}, field ${feature.name}: level ${JSON.stringify(level.slice(0, 40))} never occurs in the training data (levels: ${feature.levels.join(', ')})`)
      row[feature.name] = level
    }
    rows.push(row)
  })
  if (rows.length === 0) throw new DatasetError(`${path}: no complete rows to score`)
  return { rows, dropped: dataset.rows.length - rows.length }
}

/** Held-out scores: AUC, log-loss and Brier for a binary outcome; mean absolute error and Poisson deviance per row for counts. */
export function heldOutScores (family: 'binomial' | 'poisson', y: Float64Array, fitted: Float64Array, rows: number, dropped: number): Record<string, number> {
  if (family === 'binomial') return { auc: auc(y, fitted), logLoss: logLoss(y, fitted), brier: brierScore(y, fitted), rows, droppedRows: dropped }
  let absolute = 0
  let deviance = 0
  for (let row = 0; row < y.length; row++) {
    const observed = y[row] as number
    const mean = fitted[row] as number
    absolute += Math.abs(observed - mean)
    deviance += 2 * ((observed > 0 ? observed * Math.log(observed / mean) : 0) - (observed - mean))
  }
  return { mae: absolute / y.length, poissonDeviance: deviance / y.length, rows, droppedRows: dropped }
}

async function scoreTrees (path: string, prepared: PreparedModel, features: TreeFeature[], model: GbdtModel): Promise<Record<string, number>> {
  const { rows, dropped } = await testRows(path, prepared)
  const data = buildTreeData(rows, prepared.spec.outcome, features, { family: model.params.family })
  return heldOutScores(model.params.family, data.y, predictGbdt(model, data), data.rows, dropped)
}

/** A regression's held-out scores, from the federated coefficients by term. */
export async function scoreRegression (path: string, options: Pick<TreeSimulateOptions, 'data' | 'outcome' | 'family' | 'features' | 'factors' | 'partitionBy'> & { offset?: string }, coefficients: Record<string, number>): Promise<Record<string, number>> {
  const dataset = await readDataset(options.data)
  const prepared = prepareModel(dataset, {
    outcome: options.outcome,
    family: options.family,
    ...(options.features === undefined ? {} : { features: list(options.features) }),
    ...(options.factors === undefined ? {} : { factors: list(options.factors) }),
    ...(options.offset === undefined ? {} : { offset: options.offset }),
    ...(options.partitionBy === undefined ? {} : { exclude: [options.partitionBy] })
  })
  const { rows, dropped } = await testRows(path, prepared)
  const block = buildDesign(rows, prepared.spec, { outcome: options.family === 'binomial' ? 'binary' : 'count' })
  const beta = termNames(prepared.spec).map((term) => {
    const value = coefficients[term]
    if (value === undefined) throw new DatasetError(`the federated model has no term ${term}`)
    return value
  })
  return heldOutScores(options.family, block.y, predictMeans(options.family, block, beta), block.rows, dropped)
}
