import { DEFAULT_TREE_SETTINGS, JOB_BOUNDS } from '../job-bounds.ts'
import { excerpt } from '../../consensus/ids.ts'
import { readFile, writeFile } from 'node:fs/promises'
import { type Command, Option } from 'commander'
import { parse } from 'csv-parse/sync'
import { createFitJobParams, type Algorithm } from '../../consensus/jobs/fit-job.ts'
import { DEFAULT_DATA_FIT_SIMULATION, simulateDataFit } from '../../consensus/sim/data-fit-simulation.ts'
import type { SplitKind } from '../../consensus/partition.ts'
import { parseTopologySpec } from '../../consensus/topology.ts'
import { DatasetError, prepareModel, readDataset, type Cell } from '../data/dataset.ts'

interface SimulateOptions {
  data: string
  outcome?: string
  stats: boolean
  /** --stats: 10 by default; gbdt: DEFAULT_TREE_SETTINGS.bins */
  bins?: number
  minimum: number
  features?: string
  factors?: string
  family: 'binomial' | 'poisson'
  offset?: string
  peers: number
  split: SplitKind
  partitionBy?: string
  seed: number
  topology: string
  algorithm: Algorithm
  lambda: number
  standardize: boolean
  tolerance: number
  maxRounds: number
  linkLoss: number
  penalty?: number
  newtonSteps: number
  clip: number | null
  json: boolean
  plot?: string
  model: 'glm' | 'gbdt'
  trees: number
  depth: number
  learningRate: number
  gamma: number
  minChildWeight: number
  test?: string
}

const list = (value: string): string[] => value.split(',').map((item) => item.trim()).filter((item) => item.length > 0)

function numberOption (name: string, integer = false) {
  return (value: string): number => {
    const parsed = Number(value)
    if (!Number.isFinite(parsed) || (integer && !Number.isInteger(parsed))) throw new DatasetError(`--${name} must be ${integer ? 'an integer' : 'a number'}, got "${value}"`)
    return parsed
  }
}

function clipOption (value: string): number | null {
  if (value === 'off') return null
  const parsed = Number(value)
  if (!(Number.isFinite(parsed) && parsed >= JOB_BOUNDS.clipRadius.min && parsed <= JOB_BOUNDS.clipRadius.max)) throw new DatasetError(`--clip must be "off" or a number from ${JOB_BOUNDS.clipRadius.min} to ${JOB_BOUNDS.clipRadius.max}, got ${JSON.stringify(excerpt(value))}`)
  return parsed
}

async function readEdgeFile (path: string): Promise<Array<[string, string]>> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new DatasetError(`cannot read the edge list ${path}: ${(error as Error).message}`, { cause: error })
  }
  const records = parse(text, { bom: true, skip_empty_lines: true, info: true }) as unknown as Array<{ record: string[], info: { lines: number } }>
  const edges: Array<[string, string]> = []
  records.forEach(({ record, info }, index) => {
    if (index === 0 && record[0]?.trim() === 'a' && record[1]?.trim() === 'b') return
    if (record.length < 2 || record[0]?.trim() === '' || record[1]?.trim() === '') throw new DatasetError(`${path}, line ${info.lines}: an edge needs two node names (columns a,b)`)
    edges.push([(record[0] as string).trim(), (record[1] as string).trim()])
  })
  return edges
}

export async function runSimulate (options: SimulateOptions): Promise<Record<string, unknown>> {
  if (options.outcome === undefined) throw new DatasetError('simulate needs --outcome COLUMN to fit a model (or --stats for descriptive statistics)')
  const dataset = await readDataset(options.data)
  const prepared = prepareModel(dataset, {
    outcome: options.outcome,
    family: options.family,
    ...(options.features === undefined ? {} : { features: list(options.features) }),
    ...(options.factors === undefined ? {} : { factors: list(options.factors) }),
    ...(options.offset === undefined ? {} : { offset: options.offset }),
    ...(options.partitionBy === undefined ? {} : { exclude: [options.partitionBy] })
  })
  const topology = parseTopologySpec(options.topology)
  const groups = options.partitionBy === undefined
    ? undefined
    : prepared.kept.map((index) => {
      const value: Cell | undefined = dataset.rows[index]?.[options.partitionBy as string]
      if (value === null || value === undefined) throw new DatasetError(`${options.data}, line ${dataset.lines[index]}: missing value in the partition column "${options.partitionBy}"`)
      return String(value)
    })
  const edges = topology.kind === 'file' ? await readEdgeFile(topology.path) : undefined
  const params = createFitJobParams({
    algorithm: options.algorithm,
    lambda: options.lambda,
    standardize: options.standardize,
    tolerance: options.tolerance,
    maxRounds: options.maxRounds,
    penalty: options.penalty ?? null,
    newtonSteps: options.newtonSteps,
    clip: options.clip
  })
  const progressEvery = 100
  const { errorByRound, rounds, converged, algorithm, peers, rows, ...fit } = simulateDataFit({
    rows: prepared.rows,
    spec: prepared.spec,
    family: options.family,
    ...(groups === undefined ? {} : { groups }),
    peers: options.peers,
    split: options.split,
    topology: options.topology,
    ...(edges === undefined ? {} : { edges }),
    params,
    seed: options.seed,
    linkLoss: options.linkLoss,
    onRound: (round, error) => {
      if (round > 0 && round % progressEvery === 0) process.stderr.write(`simulate: round ${round}, max relative error ${error.toExponential(2)}\n`)
    }
  })
  const { topology: _topology, ...rest } = fit
  const summary = { rounds, converged, algorithm, topology: options.topology, peers, rows, droppedRows: prepared.dropped, ...rest }
  if (options.plot !== undefined) {
    // vega loads only for a plot
    const { lineChartSvg } = await import('./plot.ts')
    const svg = await lineChartSvg([{ name: `${options.algorithm} on ${options.topology}, ${peers} peers`, points: errorByRound.map((error, index) => [index + 1, error] as const) }], {
      title: `max relative distance to the pooled fit (seed ${options.seed})`,
      xTitle: 'round',
      yTitle: 'max over peers of ||x_i - x*|| / ||x*||',
      logY: true
    })
    await writeFile(options.plot, svg)
  }
  return summary
}

function printText (summary: Record<string, any>): void {
  const out = (line = ''): void => { process.stdout.write(`${line}\n`) }
  out(`${summary.algorithm} on ${summary.topology}: ${summary.peers} peers, ${summary.rows} rows, diameter ${summary.diameter}, spectral gap ${Number(summary.spectralGap).toFixed(4)}, seed ${summary.seed}`)
  out(`${summary.converged ? 'converged' : 'NOT converged'} in ${summary.rounds} rounds (${Object.entries(summary.phaseRounds as Record<string, number>).map(([phase, rounds]) => `${phase} ${rounds}`).join(', ')}); ${summary.messages} messages, ${summary.bytes} bytes`)
  out()
  out(`${'term'.padEnd(24)} ${'federated'.padStart(14)} ${'std. error'.padStart(12)} ${'pooled'.padStart(14)} ${'std. error'.padStart(12)}`)
  for (const term of Object.keys(summary.coefficients as Record<string, number>)) {
    const fmt = (value: number, width: number): string => value.toPrecision(8).padStart(width)
    out(`${term.padEnd(24)} ${fmt(summary.coefficients[term], 14)} ${fmt(summary.standardErrors[term], 12)} ${fmt(summary.pooled.coefficients[term], 14)} ${fmt(summary.pooled.standardErrors[term], 12)}`)
  }
  out()
  out(`max relative error against the pooled fit: coefficients ${Number(summary.relativeError).toExponential(2)}, standard errors ${Number(summary.standardErrorRelativeError).toExponential(2)}`)
  const reached = summary.roundsToRelativeError as Record<string, number | null>
  out(`rounds to relative error: ${Object.entries(reached).map(([threshold, rounds]) => `${threshold}: ${rounds ?? 'not reached'}`).join(', ')}`)
  printTest(summary)
}

function printTrees (summary: Record<string, any>): void {
  const out = (line = ''): void => { process.stdout.write(`${line}\n`) }
  const params = summary.params as Record<string, number | string>
  out(`boosted trees on ${summary.topology}: ${summary.peers} peers, ${summary.rows} rows, diameter ${summary.diameter}, seed ${summary.seed}`)
  out(`${summary.trees} trees (${params.family}, depth ${params.depth}, learning rate ${params.learningRate}, lambda ${params.lambda}, gamma ${params.gamma}, min child weight ${params.minChildWeight}, ${params.bins} bins) in ${summary.rounds} rounds; ${summary.messages} messages, ${summary.bytes} bytes, ${Number(summary.seconds).toFixed(1)} s`)
  out(`${summary.sameTreesAsPooled ? 'the same trees as the pooled fit with the same bin edges' : 'trees that DIFFER from the pooled fit'}; largest leaf difference ${Number(summary.maxLeafDifference).toExponential(2)}`)
  out()
  out(`${'feature'.padEnd(24)} ${'gain'.padStart(12)} ${'splits'.padStart(8)}`)
  for (const entry of summary.importance as Array<{ feature: string, gain: number, splits: number }>) out(`${entry.feature.padEnd(24)} ${entry.gain.toPrecision(6).padStart(12)} ${String(entry.splits).padStart(8)}`)
  if (summary.metrics !== null) out(`training rows, by masked sums: AUC ${Number(summary.metrics.auc).toFixed(4)}, Brier ${Number(summary.metrics.brier).toFixed(4)}`)
  printTest(summary)
}

function printTest (summary: Record<string, any>): void {
  const test = summary.test as Record<string, number> | undefined
  if (test === undefined) return
  const shown = Object.entries(test).filter(([name]) => name !== 'rows' && name !== 'droppedRows').map(([name, value]) => `${name} ${value.toFixed(4)}`).join(', ')
  process.stdout.write(`held-out rows (${test.rows}${test.droppedRows !== undefined && test.droppedRows > 0 ? `, ${test.droppedRows} incomplete left out` : ''}): ${shown}\n`)
}

export function registerSimulate (program: Command): void {
  program.command('simulate')
    .description('fit a model over a simulated federation: any topology, the same consensus code as a real peer')
    .requiredOption('--data <file>', 'CSV data set')
    .option('--outcome <column>', 'outcome column (for --stats: a binary outcome, optional)')
    .option('--features <list>', 'feature columns, comma-separated (default: all other columns)')
    .option('--factors <list>', 'columns to treat as categorical even if numeric')
    .addOption(new Option('--family <family>', 'model family').choices(['binomial', 'poisson']).default('binomial'))
    .option('--offset <column>', 'offset column (Poisson), used as given, e.g. log population')
    .option('--peers <n>', 'number of peers', numberOption('peers', true), DEFAULT_DATA_FIT_SIMULATION.peers)
    .addOption(new Option('--split <kind>', 'how rows are spread over peers').choices(['even', 'skewed']).default(DEFAULT_DATA_FIT_SIMULATION.split))
    .option('--partition-by <column>', 'one peer per value of this column (instead of --peers)')
    .option('--seed <n>', 'seed of every random choice', numberOption('seed', true), DEFAULT_DATA_FIT_SIMULATION.seed)
    .option('--topology <spec>', 'ring, line, star, complete, grid[:RxC], er:p, regular:k, smallworld:k,p, file:edges.csv', DEFAULT_DATA_FIT_SIMULATION.topology)
    .addOption(new Option('--algorithm <name>', 'admm, newton (exact, masked sums) or gossip (Newton with averaged sums)').choices(['admm', 'newton', 'gossip']).default('admm'))
    .option('--lambda <l>', 'L2 penalty (intercept not penalised)', numberOption('lambda'), 0)
    .option('--standardize', 'fit on standardised features and report the original scale (the default)', true)
    .option('--no-standardize', 'fit on the original feature scales')
    .option('--tolerance <t>', 'stopping tolerance', numberOption('tolerance'), 1e-8)
    .option('--max-rounds <r>', 'round limit', numberOption('max-rounds', true), 5000)
    .option('--link-loss <p>', 'probability that a link fails in a round', numberOption('link-loss'), DEFAULT_DATA_FIT_SIMULATION.linkLoss)
    .option('--penalty <c>', 'ADMM penalty (default: from the mean Hessian and the graph)', numberOption('penalty'))
    .option('--newton-steps <k>', 'ADMM: local Newton steps per round', numberOption('newton-steps', true), 1)
    .option('--clip <r>', 'ADMM: clip a neighbour\'s iterate to r x max(1, |start|) from a peer\'s own, or "off"', clipOption, 1)
    .addOption(new Option('--model <kind>', 'glm (a regression) or gbdt (gradient-boosted trees, XGBoost\'s objective)').choices(['glm', 'gbdt']).default('glm'))
    .option('--trees <n>', 'gbdt: trees', numberOption('trees', true), DEFAULT_TREE_SETTINGS.trees)
    .option('--depth <d>', 'gbdt: the deepest level', numberOption('depth', true), DEFAULT_TREE_SETTINGS.depth)
    .option('--learning-rate <eta>', 'gbdt: shrinkage of each tree', numberOption('learning-rate'), DEFAULT_TREE_SETTINGS.learningRate)
    .option('--gamma <g>', 'gbdt: the least gain a split must make', numberOption('gamma'), DEFAULT_TREE_SETTINGS.gamma)
    .option('--min-child-weight <w>', 'gbdt: the least Hessian sum in each child', numberOption('min-child-weight'), DEFAULT_TREE_SETTINGS.minChildWeight)
    .option('--bins <n>', `gbdt: bins per numeric feature (default ${DEFAULT_TREE_SETTINGS.bins}); --stats: bins of the weights of evidence before merging (default 10)`, numberOption('bins', true))
    .option('--test <file.csv>', 'score the federated model on these rows, which no peer holds (adds "test" to the output)')
    .option('--stats', 'descriptive statistics instead of a fit: counts, means, SDs, quantiles, correlations, and with a binary --outcome WOE, IV and cross-tables', false)
    .option('--minimum <n>', '--stats: the disclosure minimum (no count from 1 to n - 1 is published or derivable)', numberOption('minimum', true), 3)
    .option('--json', 'one JSON object on stdout', false)
    .option('--plot <file.svg>', 'write a convergence plot')
    .action(async (options: SimulateOptions, command: Command) => {
      if (options.stats) {
        const { runSimulateStats, printStats } = await import('./simulate-stats.ts')
        const stats = await runSimulateStats({
          data: options.data,
          ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
          ...(options.features === undefined ? {} : { features: list(options.features) }),
          ...(options.factors === undefined ? {} : { factors: list(options.factors) }),
          bins: options.bins ?? 10,
          minimum: options.minimum,
          peers: options.peers,
          split: options.split,
          seed: options.seed,
          topology: options.topology
        })
        if (options.json) process.stdout.write(`${JSON.stringify(stats)}\n`)
        else printStats(stats as unknown as Parameters<typeof printStats>[0], (line) => { process.stdout.write(`${line}\n`) })
        return
      }
      const trees = options.model === 'gbdt'
      const outcome = options.outcome
      if (outcome === undefined) throw new DatasetError('simulate needs --outcome COLUMN to fit a model (or --stats for descriptive statistics)')
      if (trees) {
        if (options.plot !== undefined) throw new DatasetError('--plot draws a regression\'s convergence; boosted trees are exact at every level (no plot)')
        if (options.offset !== undefined) throw new DatasetError('--offset applies to a regression (--model glm)')
      }
      const { runSimulateTrees, scoreRegression } = await import('./simulate-trees.ts')
      // for trees, --lambda is the L2 penalty on leaf weights, 1 by default as in XGBoost
      const lambda = trees && command.getOptionValueSource('lambda') === 'default' ? 1 : options.lambda
      const summary = trees ? await runSimulateTrees({ ...options, outcome, lambda, bins: options.bins ?? DEFAULT_TREE_SETTINGS.bins }) : await runSimulate(options)
      if (!trees && options.test !== undefined) summary.test = await scoreRegression(options.test, { ...options, outcome }, summary.coefficients as Record<string, number>)
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
      else if (trees) printTrees(summary)
      else printText(summary)
    })
}
