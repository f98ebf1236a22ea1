/**
 * epimesh as a library: the pooled fit one analyst would make (`fitGlm`), the same fit by a simulated
 * federation over any graph (`simulate`), the regional forecasting product in the simulator
 * (`simulateForecast`), boosted trees grown by a simulated federation (`simulateTrees`, `predictTrees`),
 * and a region's real peer (`createPeer`). The simulations run the very machines
 * a peer runs; they are synchronous and pure. Reading files and running a peer are asynchronous and
 * take an AbortSignal. Failures are EpimeshError subclasses with a stable `code`, as in the commands.
 *
 * Loading this module does not load libp2p: `createPeer` loads the peer's runtime when first called.
 */
import { createFitJobParams, type Algorithm } from './consensus/jobs/fit-job.ts'
import type { SplitKind } from './consensus/partition.ts'
import { simulateDataFit, type DataFitSimulation } from './consensus/sim/data-fit-simulation.ts'
import { simulateGbdtData, type GbdtDataSimulation } from './consensus/sim/gbdt-simulation.ts'
import { buildTreeData, createGbdtParams, featureImportance, predictGbdt, type GbdtModel, type TreeFeature } from './learning/gbdt.ts'
import { DEFAULT_TREE_SETTINGS } from './peer/job-bounds.ts'
import { simulateForecast as simulateForecastPanel, type ForecastSimulationOutput } from './consensus/sim/forecast-simulation.ts'
import { simulateStatsOnRows } from './consensus/sim/stats-simulation.ts'
import type { StatsResult } from './learning/statistics.ts'
import { statsRequestFromDataset } from './peer/data/stats-request.ts'
import { simulateEndemicEpidemicForecast } from './consensus/sim/endemic-epidemic-simulation.ts'
import { createEndemicEpidemicSpec, type EndemicEpidemicSpec } from './learning/endemic-epidemic.ts'
import { graphFromEdges, isConnected } from './consensus/graph.ts'
import { buildDesign, termNames, type DataBlock, type ModelSpec } from './learning/design.ts'
import type { FamilyName } from './learning/family.ts'
import { fitModel, type FitMetrics } from './learning/fit.ts'
import { createForecastModelSpec, ForecastInputError, type ForecastModelSpec } from './learning/forecast.ts'
import { createRiskParams, type RiskParams } from './learning/risk.ts'
import { datasetFromRows, DatasetError, prepareModel, readDataset, type Cell, type Dataset } from './peer/data/dataset.ts'
import { readForecastInputs } from './peer/data/forecast-files.ts'
import type { Peer, PeerOptions } from './peer/runtime/peer.ts'

export { EpimeshError } from './errors.ts'
export type { Dataset, DataBlock, FitMetrics, ForecastModelSpec, RiskParams, ForecastSimulationOutput }
export type { DataFitSimulation } from './consensus/sim/data-fit-simulation.ts'
export type { GbdtDataSimulation } from './consensus/sim/gbdt-simulation.ts'
export type { GbdtModel, GbdtModelJson } from './learning/gbdt.ts'
export { gbdtModelFromJson, gbdtModelToJson } from './learning/gbdt.ts'
export type { StatsResult, NumericSummary, CategoricalSummary, WoeBin, CrossTable } from './learning/statistics.ts'
export type { FederatedFit, RegionOutcome, SkillTable } from './consensus/sim/forecast-simulation.ts'
export type { EndemicEpidemicSpec } from './learning/endemic-epidemic.ts'
export type { Peer, PeerOptions, PeerStatus, JobRequest, JobOutcome } from './peer/runtime/peer.ts'
export type { StoredModel as SharedModel, StoredForecast as RegionForecast } from './store/store.ts'

/** A record: column name to value; null, undefined or NaN is missing. */
export type Row = Readonly<Record<string, Cell | undefined>>

function throwIfAborted (signal: AbortSignal | undefined): void {
  signal?.throwIfAborted()
}

/** Reads a CSV data set (clean UTF-8, decimal numbers; see the README's "What an import accepts"). */
export async function readCsv (path: string, options: { signal?: AbortSignal } = {}): Promise<Dataset> {
  throwIfAborted(options.signal)
  const dataset = await readDataset(path)
  throwIfAborted(options.signal)
  return dataset
}

/** Which columns a model uses, as the commands' --outcome, --features, --factors and --offset. */
export interface ModelColumns {
  outcome: string
  /** default: every other column */
  features?: string[]
  /** columns to treat as categorical although numeric (text columns always are; the first level in sorted order is the reference) */
  factors?: string[]
  /** Poisson: a column added to the linear predictor as it is, e.g. log population */
  offset?: string
}

export interface GlmOptions {
  /** default binomial (logistic regression) */
  family?: FamilyName
  /** L2 penalty on the standardised coefficients, the intercept never penalised (default 0) */
  lambda?: number
  /** fit on standardised columns, reported on the original scale (default true; without a penalty the fit is the same) */
  standardize?: boolean
  /** on the relative change of the objective (default 1e-12) */
  tolerance?: number
  /** default 100 */
  maxIterations?: number
}

export type GlmInput =
  | (ModelColumns & GlmOptions & { data: Dataset | readonly Row[] })
  | (GlmOptions & { design: DataBlock, terms: string[] })

/** One term of a fitted model, as R's summary(glm(...)) prints it. */
export interface CoefficientRow {
  term: string
  estimate: number
  standardError: number
  z: number
  pValue: number
}

export interface GlmFit {
  family: FamilyName
  terms: string[]
  coefficients: Record<string, number>
  standardErrors: Record<string, number>
  /** estimates, standard errors, z and two-sided p-values, one row per term */
  table: CoefficientRow[]
  /** covariance of the estimates, p x p */
  covariance: number[][]
  logLikelihood: number
  iterations: number
  converged: boolean
  rows: number
  /** rows left out for a missing value in a column the model uses (as R's na.omit) */
  droppedRows: number
  /** binomial: AUC, log loss, Brier score, Hosmer-Lemeshow on the rows fitted */
  metrics: FitMetrics | null
}

function asDataset (data: Dataset | readonly Row[]): Dataset {
  return Array.isArray(data) ? datasetFromRows(data as readonly Row[]) : data as Dataset
}

const byTerm = (terms: readonly string[], values: ArrayLike<number>): Record<string, number> =>
  Object.fromEntries(terms.map((term, index) => [term, values[index] as number]))

/**
 * The pooled GLM fit (canonical link, Newton's method): the coefficients, standard errors, z and
 * p-values R's `glm` gives on the same rows, from rows (or a data set from readCsv) and the model's
 * columns, or from a design matrix and its term names.
 */
export function fitGlm (input: GlmInput): GlmFit {
  const family = input.family ?? 'binomial'
  let design: DataBlock
  let terms: string[]
  let droppedRows = 0
  if ('design' in input) {
    design = input.design
    terms = [...input.terms]
  } else {
    const prepared = prepareModel(asDataset(input.data), {
      outcome: input.outcome,
      family,
      ...(input.features === undefined ? {} : { features: input.features }),
      ...(input.factors === undefined ? {} : { factors: input.factors }),
      ...(input.offset === undefined ? {} : { offset: input.offset })
    })
    terms = termNames(prepared.spec)
    design = buildDesign(prepared.rows, prepared.spec, { outcome: family === 'binomial' ? 'binary' : 'count' })
    droppedRows = prepared.dropped
  }
  const fit = fitModel(design, terms, {
    family,
    standardize: input.standardize ?? true,
    ...(input.lambda === undefined ? {} : { lambda: input.lambda }),
    ...(input.tolerance === undefined ? {} : { tolerance: input.tolerance }),
    ...(input.maxIterations === undefined ? {} : { maxIterations: input.maxIterations })
  })
  const p = terms.length
  const table = fit.coefficients
  return {
    family,
    terms,
    coefficients: byTerm(terms, table.estimate),
    standardErrors: byTerm(terms, table.standardError),
    table: terms.map((term, index) => ({ term, estimate: table.estimate[index] as number, standardError: table.standardError[index] as number, z: table.z[index] as number, pValue: table.pValue[index] as number })),
    covariance: Array.from({ length: p }, (_, row) => Array.from(fit.covariance.subarray(row * p, row * p + p))),
    logLikelihood: fit.logLikelihood,
    iterations: fit.iterations,
    converged: fit.converged,
    rows: fit.rows,
    droppedRows,
    metrics: fit.metrics
  }
}

/** A simulated federation's fit, as `epimesh simulate`: the same options, the same defaults. */
export interface SimulateOptions extends ModelColumns {
  data: Dataset | readonly Row[]
  /** default binomial */
  family?: FamilyName
  /** how many peers hold the rows (default 16) */
  peers?: number
  /** how the rows are dealt: even, or skewed (peer i holds a share proportional to (i + 1)^2) (default even) */
  split?: SplitKind
  /** one peer per value of this column, instead of `peers` and `split` */
  groupBy?: string
  /** ring, line, star, complete, grid[:RxC], er:p, regular:k, smallworld:k,p, or an edge list between peer names (default ring) */
  topology?: string | { edges: ReadonlyArray<readonly [string, string]> }
  /** admm, newton (exact, by masked sums) or gossip (Newton with averaged sums) (default admm) */
  algorithm?: Algorithm
  lambda?: number
  standardize?: boolean
  /** default 1e-8 */
  tolerance?: number
  /** default 5000 */
  maxRounds?: number
  /** ADMM penalty (default: from the mean Hessian and the graph) */
  penalty?: number
  /** ADMM: local Newton steps per round (default 1) */
  newtonSteps?: number
  /** ADMM: clip a neighbour's iterate to clip x max(1, |start|) from a peer's own; null turns it off (default 1) */
  clip?: number | null
  /** probability that a link fails in a round (default 0) */
  linkLoss?: number
  /** seed of every random choice (default 1) */
  seed?: number
  /** called after every round with the largest relative distance of a peer's model from the pooled fit */
  onRound?: (round: number, maxRelativeError: number) => void
  /** keep a row per round and peer in `trace` (residuals, distance to the pooled fit, messages, bytes), as `simulate --trace` writes it */
  trace?: boolean
}

/** `epimesh simulate --json`'s fields, and the error after every round. */
export type SimulationResult = DataFitSimulation & { droppedRows: number }

/** Each kept row's value of the `groupBy` column (one simulated peer per value), or undefined without one. */
function groupsOf (dataset: Dataset, kept: readonly number[], groupBy: string | undefined): string[] | undefined {
  if (groupBy === undefined) return undefined
  return kept.map((index) => {
    const value = dataset.rows[index]?.[groupBy]
    if (value === null || value === undefined) throw new DatasetError(`${dataset.path}, line ${dataset.lines[index]}: missing value in the groupBy column "${groupBy}"`)
    return String(value)
  })
}

/**
 * Fits a model by a simulated federation: the rows dealt to peers, the graph built, every peer's
 * fit-job machine run over an in-memory network, and the result compared with the pooled fit.
 */
export function simulate (options: SimulateOptions): SimulationResult {
  const family = options.family ?? 'binomial'
  const dataset = asDataset(options.data)
  const prepared = prepareModel(dataset, {
    outcome: options.outcome,
    family,
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.factors === undefined ? {} : { factors: options.factors }),
    ...(options.offset === undefined ? {} : { offset: options.offset }),
    ...(options.groupBy === undefined ? {} : { exclude: [options.groupBy] })
  })
  const groups = groupsOf(dataset, prepared.kept, options.groupBy)
  const topology = options.topology ?? 'ring'
  const params = createFitJobParams({
    ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm }),
    ...(options.lambda === undefined ? {} : { lambda: options.lambda }),
    ...(options.standardize === undefined ? {} : { standardize: options.standardize }),
    ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
    ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds }),
    ...(options.penalty === undefined ? {} : { penalty: options.penalty }),
    ...(options.newtonSteps === undefined ? {} : { newtonSteps: options.newtonSteps }),
    ...(options.clip === undefined ? {} : { clip: options.clip })
  })
  const result = simulateDataFit({
    rows: prepared.rows,
    spec: prepared.spec,
    family,
    ...(groups === undefined ? {} : { groups }),
    ...(options.peers === undefined ? {} : { peers: options.peers }),
    ...(options.split === undefined ? {} : { split: options.split }),
    ...(typeof topology === 'string' ? { topology } : { topology: 'edges', edges: topology.edges }),
    params,
    ...(options.seed === undefined ? {} : { seed: options.seed }),
    ...(options.linkLoss === undefined ? {} : { linkLoss: options.linkLoss }),
    ...(options.onRound === undefined ? {} : { onRound: options.onRound }),
    ...(options.trace === true ? { trace: true } : {})
  })
  return { ...result, droppedRows: prepared.dropped }
}

/** Boosted trees grown by a simulated federation, as `epimesh simulate --model gbdt`: the same options and defaults. */
export interface SimulateTreesOptions extends Omit<ModelColumns, 'offset'> {
  data: Dataset | readonly Row[]
  /** default binomial */
  family?: FamilyName
  /** default 16 */
  peers?: number
  split?: SplitKind
  groupBy?: string
  /** a topology spec (default ring), or an edge list between peer names */
  topology?: string | { edges: ReadonlyArray<readonly [string, string]> }
  /** trees (default 50), depth (4), learningRate (0.3), lambda (L2 on leaf weights, 1), gamma (0), minChildWeight (1), bins per numeric feature (32) */
  trees?: number
  depth?: number
  learningRate?: number
  lambda?: number
  gamma?: number
  minChildWeight?: number
  bins?: number
  /** the least rows of the federation in each child of a split (default 3, the peers' disclosure minimum) */
  minNodeRows?: number
  seed?: number
  linkLoss?: number
}

export type TreeSimulationResult = GbdtDataSimulation & { droppedRows: number, importance: Array<{ feature: string, gain: number, splits: number }> }

/**
 * Grows boosted trees by a simulated federation (every peer runs the tree job's machine over an
 * in-memory network), beside the pooled forest grown with the same bin edges. Predict with
 * `predictTrees(result.model, rows)`.
 */
export function simulateTrees (options: SimulateTreesOptions): TreeSimulationResult {
  const family = options.family ?? 'binomial'
  const dataset = asDataset(options.data)
  const prepared = prepareModel(dataset, {
    outcome: options.outcome,
    family,
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.factors === undefined ? {} : { factors: options.factors }),
    ...(options.groupBy === undefined ? {} : { exclude: [options.groupBy] })
  })
  const groups = groupsOf(dataset, prepared.kept, options.groupBy)
  const features = treeFeaturesOf(prepared.spec)
  const data = buildTreeData(prepared.rows, options.outcome, features, { family })
  const params = createGbdtParams({
    family,
    ...DEFAULT_TREE_SETTINGS,
    ...Object.fromEntries(Object.entries({ trees: options.trees, depth: options.depth, learningRate: options.learningRate, lambda: options.lambda, gamma: options.gamma, minChildWeight: options.minChildWeight, bins: options.bins }).filter(([, value]) => value !== undefined)),
    minNodeRows: options.minNodeRows ?? 3
  })
  const topology = options.topology ?? 'ring'
  const result = simulateGbdtData({
    data,
    params,
    peers: options.peers ?? 16,
    split: options.split ?? 'even',
    topology: typeof topology === 'string' ? topology : 'edges',
    ...(typeof topology === 'string' ? {} : { edges: topology.edges }),
    ...(groups === undefined ? {} : { groups }),
    seed: options.seed ?? 1,
    linkLoss: options.linkLoss ?? 0
  })
  return { ...result, droppedRows: prepared.dropped, importance: featureImportance(result.model).sort((a, b) => b.gain - a.gain) }
}

/** A forest's predictions (probabilities, or means for counts) for records with the model's feature columns. */
export function predictTrees (model: GbdtModel, rows: readonly Row[]): Float64Array {
  const outcome = '__no_outcome__'
  const data = buildTreeData(rows.map((row) => ({ ...row, [outcome]: 0 })), outcome, model.features, { family: model.params.family })
  return predictGbdt(model, data)
}

function treeFeaturesOf (spec: ModelSpec): TreeFeature[] {
  return spec.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' })
}

/** A simulated federation's descriptive statistics, as `epimesh simulate --stats`. */
export interface SimulateStatsOptions {
  data: Dataset | readonly Row[]
  /** default: every column but the outcome */
  features?: string[]
  /** columns to treat as factors although numeric */
  factors?: string[]
  /** a binary outcome: point-biserial correlations, WOE, IV and cross-tables */
  outcome?: string
  /** WOE bins before merging (default 10) */
  bins?: number
  /** the disclosure minimum (default 3) */
  minimum?: number
  /** default 16 */
  peers?: number
  split?: SplitKind
  /** default ring */
  topology?: string
  /** default 1 */
  seed?: number
}

/**
 * Counts, missing counts, means, SDs, quantiles, pairwise-complete correlations and, with a binary
 * outcome, WOE, IV and cross-tables with chi-square tests, by a simulated federation's masked sums;
 * no count below the minimum published or derivable.
 */
export function simulateStats (options: SimulateStatsOptions): StatsResult & { rounds: number, messages: number, bytes: number } {
  const { request, rows } = statsRequestFromDataset(asDataset(options.data), {
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.factors === undefined ? {} : { factors: options.factors }),
    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
    bins: options.bins ?? 10,
    minimum: options.minimum ?? 3
  })
  const run = simulateStatsOnRows({ rows, request, peers: options.peers ?? 16, split: options.split ?? 'even', topology: options.topology ?? 'ring', seed: options.seed ?? 1 })
  return { ...run.stats, rounds: run.rounds, messages: run.messages, bytes: run.bytes }
}

/** Regions' case-count series side by side, and the graph between the regions. */
export interface ForecastPanel {
  /** each region's counts per period (all of one length, from the same first period), and its residents */
  regions: Array<{ name: string, population: number, counts: ArrayLike<number> }>
  /** the federation graph, which is also the neighbourhood of the model's neighbour term */
  edges: ReadonlyArray<readonly [string, string]>
}

/**
 * The three files `epimesh simulate-forecast` reads (a wide counts file, a population file, an
 * adjacency list), as a panel; `periods` are the counts file's period labels.
 */
export async function readForecastFiles (paths: { counts: string, population: string, adjacency: string, totalPopulation?: number }, options: { signal?: AbortSignal } = {}): Promise<ForecastPanel & { periods: string[] }> {
  throwIfAborted(options.signal)
  const { panel, periods, graph } = await readForecastInputs(paths, paths.totalPopulation === undefined ? {} : { totalPopulation: paths.totalPopulation })
  throwIfAborted(options.signal)
  return {
    regions: panel.regions.map((name, index) => ({ name, population: panel.populations[index] as number, counts: panel.counts[index] as Float64Array })),
    edges: graph.neighbours.flatMap((others, node) => others.filter((other) => other > node).map((other) => [graph.names[node] as string, graph.names[other] as string] as const)),
    periods
  }
}

/** The forecasting simulation's settings, as `epimesh simulate-forecast`'s options, with its defaults. */
export interface ForecastSimulationOptions {
  panel: ForecastPanel
  /** the model: hhh4's endemic-epidemic model (the default) or the log-linear Poisson GLM */
  kind?: 'endemic-epidemic' | 'loglinear'
  /** endemic-epidemic: family, harmonics, season period, unit intercepts (default negbin1, 1, 52, false) */
  endemicEpidemic?: Partial<EndemicEpidemicSpec>
  /** loglinear: own lags, neighbour lags, own scale, season period, harmonics (default 2, 1, count, 52, 1) */
  model?: Partial<ForecastModelSpec>
  /** days per period, horizon, rate-to-h mapping (default 7 days, 7 days ahead, h = 1 - 2^(-rate / 10)) */
  risk?: Partial<RiskParams>
  /** periods held out at the end for the one-step-ahead skill; 0 for none (default 52) */
  holdout?: number
  /** periods forecast (default: those the risk score averages) */
  horizon?: number
  /** loglinear: default newton (the endemic-epidemic model is always fitted by exact Newton) */
  algorithm?: 'admm' | 'newton'
  /** loglinear: default 1e-10 */
  tolerance?: number
  /** loglinear: default 5000 */
  maxRounds?: number
  /** default 1 */
  seed?: number
  /** regions that publish their h openly */
  openRegions?: string[]
  /** prediction interval probability (default 0.9) */
  level?: number
}

/**
 * The regional forecasting product by a simulated federation, one peer per region: the shared model
 * (hhh4's endemic-epidemic model by exact Newton over masked sums, or the log-linear Poisson GLM by the
 * fit-job machines), each region's forecast and risk score h, the joint risk by a masked sum, and what
 * only a simulation can add: the pooled fit and the held-out skill.
 */
export function simulateForecast (options: ForecastSimulationOptions): ForecastSimulationOutput {
  const regions = options.panel.regions
  const names = regions.map((region) => region.name)
  const graph = graphFromEdges(names, options.panel.edges)
  if (!isConnected(graph)) throw new ForecastInputError('edges', 'the regions do not form a connected graph, so a federation over it cannot reach one model')
  for (const region of options.openRegions ?? []) if (!names.includes(region)) throw new ForecastInputError('openRegions', `"${region}" is not a region of the panel`)
  const risk = createRiskParams(options.risk ?? {})
  const panel = { regions: names, counts: regions.map((region) => Float64Array.from(region.counts)), populations: regions.map((region) => region.population) }
  const common = {
    panel,
    graph,
    holdout: options.holdout ?? 52,
    ...(options.horizon === undefined ? {} : { horizon: options.horizon }),
    risk,
    seed: options.seed ?? 1,
    openRegions: options.openRegions ?? [],
    level: options.level ?? 0.9
  }
  const kind = options.kind ?? 'endemic-epidemic'
  if (kind !== 'endemic-epidemic' && kind !== 'loglinear') throw new ForecastInputError('kind', `must be endemic-epidemic or loglinear, got ${String(kind)}`)
  if (kind === 'endemic-epidemic') return simulateEndemicEpidemicForecast({ ...common, spec: createEndemicEpidemicSpec(options.endemicEpidemic ?? {}) })
  return simulateForecastPanel({
    ...common,
    spec: createForecastModelSpec(options.model ?? {}),
    algorithm: options.algorithm ?? 'newton',
    tolerance: options.tolerance ?? 1e-10,
    maxRounds: options.maxRounds ?? 5000
  })
}

/**
 * Starts this region's peer in this process, as `epimesh start` does, once its graph neighbours are
 * reachable; it holds the data folder until `stop()`. Aborting `signal` cancels the start.
 */
export async function createPeer (options: PeerOptions, { signal }: { signal?: AbortSignal } = {}): Promise<Peer> {
  // libp2p loads here, and only here: the runtime installs what it needs on Node 20 first
  const runtime = await import('./peer/runtime/peer.ts')
  return await runtime.createPeer(options, signal === undefined ? {} : { signal })
}
