import { DEFAULT_TREE_SETTINGS, JOB_BOUNDS } from '../job-bounds.ts'
import { excerpt } from '../../consensus/ids.ts'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { type Command, Option } from 'commander'
import { parse } from 'csv-parse/sync'
import { createFitJobParams, type Algorithm } from '../../consensus/jobs/fit-job.ts'
import { DEFAULT_DATA_FIT_SIMULATION, simulateDataFit } from '../../consensus/sim/data-fit-simulation.ts'
import type { SplitKind } from '../../consensus/partition.ts'
import { parseTopologySpec } from '../../consensus/topology.ts'
import { DatasetError, prepareModel, readDataset, type Cell } from '../data/dataset.ts'
import type { FitTraceRow } from '../../consensus/sim/fit-simulation.ts'
import type { PlotBand, PlotRule, PlotSeries } from './plot.ts'

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
  seeds?: number[]
  trace?: string
  /** topologies to run one after the other and overlay (their summaries side by side, one curve each) */
  compare?: string[]
}

/** At most this many seeds in one `--seeds` run. */
export const MAX_SEEDS = 200

/** `--seeds 1..8` (a range) or `--seeds 3,5,8` (a list): distinct non-negative integers. */
export function seedsOption (value: string): number[] {
  const text = value.trim()
  const range = /^(\d{1,9})\.\.(\d{1,9})$/.exec(text)
  let seeds: number[]
  if (range !== null) {
    const from = Number(range[1])
    const to = Number(range[2])
    if (to < from) throw new DatasetError(`--seeds ${text}: the range ends before it starts`)
    if (to - from + 1 > MAX_SEEDS) throw new DatasetError(`--seeds ${text}: at most ${MAX_SEEDS} seeds`)
    seeds = Array.from({ length: to - from + 1 }, (_, index) => from + index)
  } else if (/^\d{1,9}(,\d{1,9})*$/.test(text)) {
    seeds = text.split(',').map(Number)
    if (new Set(seeds).size !== seeds.length) throw new DatasetError(`--seeds ${excerpt(text)}: a seed is repeated`)
    if (seeds.length > MAX_SEEDS) throw new DatasetError(`--seeds: at most ${MAX_SEEDS} seeds`)
  } else {
    throw new DatasetError(`--seeds must be a range FROM..TO or a list of seeds a,b,c, got ${JSON.stringify(excerpt(text))}`)
  }
  return seeds
}

/** The median and range of some numbers (nulls, such as a threshold never reached, counted apart). */
export interface Spread { median: number | null, min: number | null, max: number | null, missing: number }

export function spread (values: ReadonlyArray<number | null>): Spread {
  const present = values.filter((value): value is number => value !== null && Number.isFinite(value)).sort((a, b) => a - b)
  const missing = values.length - present.length
  if (present.length === 0) return { median: null, min: null, max: null, missing }
  const middle = Math.floor(present.length / 2)
  const median = present.length % 2 === 1 ? present[middle] as number : ((present[middle - 1] as number) + (present[middle] as number)) / 2
  return { median, min: present[0] as number, max: present.at(-1) as number, missing }
}

const TRACE_HEADER = 'seed,round,peer,phase,phase_round,primal_residual,dual_residual,distance_to_pooled,messages,bytes'

function traceLines (seed: number, rows: readonly FitTraceRow[]): string[] {
  const cell = (value: number | null): string => value === null ? '' : String(value)
  return rows.map((row) => `${seed},${row.round},${row.peer},${row.phase},${row.phaseRound},${cell(row.primalResidual)},${cell(row.dualResidual)},${cell(row.distance)},${row.messages},${row.bytes}`)
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

interface SeedRun { summary: Record<string, any>, errorByRound: number[], phaseStarts: Array<{ phase: string, round: number }>, trace?: FitTraceRow[] }

async function runSeeds (options: SimulateOptions, seeds: readonly number[]): Promise<SeedRun[]> {
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
  return seeds.map((seed) => {
    const { errorByRound, phaseStarts, trace, rounds, converged, algorithm, peers, rows, ...fit } = simulateDataFit({
      rows: prepared.rows,
      spec: prepared.spec,
      family: options.family,
      ...(groups === undefined ? {} : { groups }),
      peers: options.peers,
      split: options.split,
      topology: options.topology,
      ...(edges === undefined ? {} : { edges }),
      params,
      seed,
      linkLoss: options.linkLoss,
      trace: options.trace !== undefined,
      onRound: (round, error) => {
        if (round > 0 && round % progressEvery === 0) process.stderr.write(`simulate: ${seeds.length > 1 ? `seed ${seed}, ` : ''}round ${round}, max relative error ${error.toExponential(2)}\n`)
      }
    })
    const { topology: _topology, ...rest } = fit
    const summary = { rounds, converged, algorithm, topology: options.topology, peers, rows, droppedRows: prepared.dropped, ...rest, phaseStarts }
    return { summary, errorByRound, phaseStarts, ...(trace === undefined ? {} : { trace }) }
  })
}

/** Each round's value of every run, a finished run holding its last value (its model no longer changes). */
function carried (runs: ReadonlyArray<readonly number[]>): number[][] {
  const length = Math.max(0, ...runs.map((run) => run.length))
  return Array.from({ length }, (_, round) => runs.map((run) => run[Math.min(round, run.length - 1)] ?? Number.NaN))
}

const THRESHOLDS = [1e-4, 1e-6, 1e-8] as const

async function writePlot (path: string, options: SimulateOptions, runs: readonly SeedRun[]): Promise<void> {
  const first = runs[0] as SeedRun
  const peers = first.summary.peers as number
  const label = `${options.algorithm} on ${options.topology}, ${peers} peers`
  const series: PlotSeries[] = []
  const bands: PlotBand[] = []
  if (runs.length === 1) {
    series.push({ name: label, points: first.errorByRound.map((error, index) => [index + 1, error] as const) })
  } else {
    for (const run of runs) series.push({ name: `seed ${run.summary.seed as number}`, legend: `each of ${runs.length} seeds`, faint: true, points: run.errorByRound.map((error, index) => [index + 1, error] as const) })
    const byRound = carried(runs.map((run) => run.errorByRound))
    series.push({ name: `median over ${runs.length} seeds`, points: byRound.map((values, index) => [index + 1, spread(values).median ?? Number.NaN] as const) })
    bands.push({ name: 'range over the seeds', points: byRound.map((values, index) => { const { min, max } = spread(values); return [index + 1, min ?? Number.NaN, max ?? Number.NaN] as const }) })
  }
  // phase marks from the first run, left out where a label would sit on the one before
  const span = Math.max(1, ...runs.map((run) => run.errorByRound.length))
  const marks: PlotRule[] = []
  for (const start of first.phaseStarts.slice(1)) {
    if (start.phase === 'done') continue
    if (marks.length > 0 && start.round - (marks.at(-1) as PlotRule).value < span / 12) continue
    marks.push({ axis: 'x', value: start.round, label: start.phase })
  }
  const rules: PlotRule[] = [...marks, ...THRESHOLDS.map((threshold) => ({ axis: 'y' as const, value: threshold, label: `relative error ${threshold.toExponential(0)}` }))]
  // vega loads only for a plot
  const { lineChartSvg } = await import('./plot.ts')
  const svg = await lineChartSvg(series, {
    title: runs.length === 1 ? `max relative distance to the pooled fit: ${label} (seed ${first.summary.seed as number})` : `max relative distance to the pooled fit: ${label}, ${runs.length} seeds`,
    xTitle: 'round (dashed marks: phase starts, first seed)',
    yTitle: 'max over peers of ||x_i - x*|| / ||x*||',
    logY: true,
    bands,
    rules
  })
  await writeFile(path, svg)
}

/** At most this many topologies in one `--compare`. */
export const MAX_COMPARED = 8

/**
 * `--compare ring,star,complete`: topology specs, separated by ';' when one of them holds a comma
 * (smallworld:4,0.1), each checked as --topology is; at least two, at most MAX_COMPARED, no repeats.
 */
export function compareOption (value: string): string[] {
  const specs = (value.includes(';') ? value.split(';') : value.split(',')).map((spec) => spec.trim()).filter((spec) => spec !== '')
  if (specs.length < 2) throw new DatasetError(`--compare needs at least two topologies, such as ring,star,complete (';' between them when one holds a comma), got ${JSON.stringify(excerpt(value))}`)
  if (specs.length > MAX_COMPARED) throw new DatasetError(`--compare: at most ${MAX_COMPARED} topologies`)
  if (new Set(specs).size !== specs.length) throw new DatasetError(`--compare ${excerpt(value)}: a topology is repeated`)
  for (const spec of specs) {
    try {
      parseTopologySpec(spec)
    } catch (error) {
      throw new DatasetError(`--compare: ${(error as Error).message}`)
    }
  }
  return specs
}

/** Each topology's runs (one per seed): the summary, or with several seeds every seed's and their median and range. */
export async function runCompare (options: SimulateOptions, topologies: readonly string[]): Promise<{ topologies: Array<Record<string, unknown>>, runs: SeedRun[][] }> {
  const seeds = options.seeds ?? [options.seed]
  const runs: SeedRun[][] = []
  for (const topology of topologies) runs.push(await runSeeds({ ...options, topology }, seeds))
  if (options.plot !== undefined) await writeComparePlot(options.plot, options, topologies, runs)
  return {
    topologies: topologies.map((topology, index) => {
      const summaries = (runs[index] as SeedRun[]).map((run) => run.summary)
      return options.seeds === undefined ? { topology, ...(summaries[0] as Record<string, unknown>) } : { topology, seeds: summaries, overSeeds: overSeeds(summaries) }
    }),
    runs
  }
}

/** One curve per topology (with several seeds, its median and the range over the seeds), the tolerance lines. */
async function writeComparePlot (path: string, options: SimulateOptions, topologies: readonly string[], runs: readonly SeedRun[][]): Promise<void> {
  const series: PlotSeries[] = []
  const bands: PlotBand[] = []
  topologies.forEach((topology, index) => {
    const own = runs[index] as SeedRun[]
    if (own.length === 1) {
      series.push({ name: topology, points: (own[0] as SeedRun).errorByRound.map((error, round) => [round + 1, error] as const) })
      return
    }
    const byRound = carried(own.map((run) => run.errorByRound))
    series.push({ name: `${topology}: median`, points: byRound.map((values, round) => [round + 1, spread(values).median ?? Number.NaN] as const) })
    bands.push({ name: `${topology}: range`, points: byRound.map((values, round) => { const { min, max } = spread(values); return [round + 1, min ?? Number.NaN, max ?? Number.NaN] as const }) })
  })
  const peers = (runs[0]?.[0]?.summary.peers as number | undefined) ?? options.peers
  const seeds = runs[0]?.length ?? 1
  const { lineChartSvg } = await import('./plot.ts')
  const svg = await lineChartSvg(series, {
    title: `max relative distance to the pooled fit: ${options.algorithm}, ${peers} peers, ${topologies.length} topologies${seeds > 1 ? `, ${seeds} seeds each` : ''}`,
    xTitle: 'round',
    yTitle: 'max over peers of ||x_i - x*|| / ||x*||',
    logY: true,
    bands,
    rules: THRESHOLDS.map((threshold) => ({ axis: 'y' as const, value: threshold, label: `relative error ${threshold.toExponential(0)}` }))
  })
  await writeFile(path, svg)
}

function printCompare (result: { topologies: Array<Record<string, any>> }): void {
  const out = (line = ''): void => { process.stdout.write(`${line}\n`) }
  const several = result.topologies[0]?.overSeeds !== undefined
  const first = several ? result.topologies[0]?.seeds[0] : result.topologies[0]
  out(`${first?.algorithm} on ${result.topologies.length} topologies: ${first?.peers} peers, ${first?.rows} rows${several ? `, ${result.topologies[0]?.overSeeds.seeds} seeds each (medians)` : `, seed ${first?.seed}`}`)
  out()
  out(`${'topology'.padEnd(20)} ${'diameter'.padStart(8)} ${'gap'.padStart(7)} ${'rounds'.padStart(7)} ${'converged'.padStart(9)} ${'rel. error'.padStart(10)} ${'to 1e-4'.padStart(8)} ${'to 1e-6'.padStart(8)} ${'to 1e-8'.padStart(8)} ${'messages'.padStart(9)} ${'bytes'.padStart(11)}`)
  for (const entry of result.topologies) {
    const one = several ? entry.seeds[0] : entry
    const median = (key: string): number | null => several ? entry.overSeeds[key].median : entry[key]
    const reached = (threshold: string): string => String((several ? entry.overSeeds.roundsToRelativeError[threshold].median : entry.roundsToRelativeError?.[threshold]) ?? '-').padStart(8)
    const converged = several ? `${entry.overSeeds.converged}/${entry.overSeeds.seeds}` : entry.converged ? 'yes' : 'NO'
    const error = median('relativeError')
    out(`${String(entry.topology).slice(0, 20).padEnd(20)} ${String(one.diameter).padStart(8)} ${Number(one.spectralGap).toFixed(4).padStart(7)} ${String(median('rounds')).padStart(7)} ${converged.padStart(9)} ${(error === null ? '-' : error.toExponential(2)).padStart(10)} ${reached('1e-4')} ${reached('1e-6')} ${reached('1e-8')} ${String(median('messages')).padStart(9)} ${String(median('bytes')).padStart(11)}`)
  }
}

/** Over the seeds: the median and range of the rounds, errors, messages and bytes, and how many converged. */
export function overSeeds (summaries: ReadonlyArray<Record<string, any>>): Record<string, unknown> {
  const of = (pick: (summary: Record<string, any>) => number | null): Spread => spread(summaries.map(pick))
  return {
    seeds: summaries.length,
    converged: summaries.filter((summary) => summary.converged === true).length,
    rounds: of((summary) => summary.rounds),
    relativeError: of((summary) => summary.relativeError),
    standardErrorRelativeError: of((summary) => summary.standardErrorRelativeError),
    roundsToRelativeError: Object.fromEntries(THRESHOLDS.map((threshold) => {
      const key = threshold.toExponential(0)
      return [key, of((summary) => summary.roundsToRelativeError?.[key] ?? null)]
    })),
    messages: of((summary) => summary.messages),
    bytes: of((summary) => summary.bytes)
  }
}

export async function runSimulate (options: SimulateOptions): Promise<Record<string, unknown>> {
  const seeds = options.seeds ?? [options.seed]
  const runs = await runSeeds(options, seeds)
  if (options.trace !== undefined) {
    const lines = [TRACE_HEADER, ...runs.flatMap((run) => traceLines(run.summary.seed as number, run.trace ?? []))]
    await writeFile(`${options.trace}.tmp`, `${lines.join('\n')}\n`)
    await rename(`${options.trace}.tmp`, options.trace)
  }
  if (options.plot !== undefined) await writePlot(options.plot, options, runs)
  if (options.seeds === undefined) return (runs[0] as SeedRun).summary
  return { seeds: runs.map((run) => run.summary), overSeeds: overSeeds(runs.map((run) => run.summary)) }
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

function printSeeds (result: { seeds: Array<Record<string, any>>, overSeeds: Record<string, any> }): void {
  const out = (line = ''): void => { process.stdout.write(`${line}\n`) }
  const first = result.seeds[0] as Record<string, any>
  out(`${first.algorithm} on ${first.topology}: ${first.peers} peers, ${first.rows} rows, ${result.seeds.length} seeds (each seed deals the rows, draws the graph where it is random, and drives the network and the masks)`)
  out()
  out(`${'seed'.padStart(6)} ${'rounds'.padStart(7)} ${'converged'.padStart(9)} ${'rel. error'.padStart(10)} ${'to 1e-4'.padStart(8)} ${'to 1e-6'.padStart(8)} ${'to 1e-8'.padStart(8)} ${'messages'.padStart(9)} ${'bytes'.padStart(11)}`)
  for (const summary of result.seeds) {
    const reached = summary.roundsToRelativeError as Record<string, number | null>
    const to = (key: string): string => String(reached[key] ?? '-').padStart(8)
    out(`${String(summary.seed).padStart(6)} ${String(summary.rounds).padStart(7)} ${(summary.converged ? 'yes' : 'NO').padStart(9)} ${Number(summary.relativeError).toExponential(2).padStart(10)} ${to('1e-4')} ${to('1e-6')} ${to('1e-8')} ${String(summary.messages).padStart(9)} ${String(summary.bytes).padStart(11)}`)
  }
  const over = result.overSeeds
  const show = (value: Spread, digits?: number): string => {
    const fmt = (number: number | null): string => number === null ? '-' : digits === undefined ? String(number) : number.toExponential(digits)
    return `median ${fmt(value.median)} (range ${fmt(value.min)} to ${fmt(value.max)})${value.missing > 0 ? `, not reached in ${value.missing}` : ''}`
  }
  out()
  out(`over ${over.seeds} seeds: converged in ${over.converged} of ${over.seeds}`)
  out(`  rounds ${show(over.rounds as Spread)}`)
  out(`  relative error against the pooled fit ${show(over.relativeError as Spread, 2)}`)
  for (const [threshold, value] of Object.entries(over.roundsToRelativeError as Record<string, Spread>)) out(`  rounds to relative error ${threshold}: ${show(value)}`)
  out(`  messages ${show(over.messages as Spread)}; bytes ${show(over.bytes as Spread)}`)
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
    .option('--plot <file.svg>', 'write a convergence plot (with --seeds: every run, their median and range)')
    .option('--compare <topologies>', `run each topology in turn and compare them: ring,star,complete (';' between specs that hold a comma; at most ${MAX_COMPARED}); a table side by side, --plot one curve each (with --seeds their medians and ranges), --json {topologies: [...]}; instead of --topology`, compareOption)
    .option('--seeds <list>', `run several seeds, FROM..TO or a,b,c (at most ${MAX_SEEDS}), and summarise them: median and range (instead of --seed)`, seedsOption)
    .option('--trace <file.csv>', 'write a row per round and peer: phase, residuals, distance to the pooled fit, messages, bytes')
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
        if (options.seeds !== undefined || options.trace !== undefined) throw new DatasetError('--seeds and --trace follow a regression\'s rounds (--model glm)')
      }
      if (options.seeds !== undefined && options.test !== undefined) throw new DatasetError('--test scores one model: give one --seed, not --seeds')
      if (options.compare !== undefined) {
        if (trees || options.test !== undefined || options.trace !== undefined) throw new DatasetError('--compare follows a regression\'s rounds on each topology: it does not go with --model gbdt, --test or --trace')
        if (command.getOptionValueSource('topology') !== 'default') throw new DatasetError('give --compare or --topology, not both')
        const compared = await runCompare(options, options.compare)
        if (options.json) process.stdout.write(`${JSON.stringify({ topologies: compared.topologies })}\n`)
        else printCompare(compared)
        if (options.plot !== undefined && !options.json) process.stdout.write(`plot written to ${options.plot}\n`)
        return
      }
      const { runSimulateTrees, scoreRegression } = await import('./simulate-trees.ts')
      // for trees, --lambda is the L2 penalty on leaf weights, 1 by default as in XGBoost
      const lambda = trees && command.getOptionValueSource('lambda') === 'default' ? 1 : options.lambda
      const summary = trees ? await runSimulateTrees({ ...options, outcome, lambda, bins: options.bins ?? DEFAULT_TREE_SETTINGS.bins }) : await runSimulate(options)
      if (!trees && options.test !== undefined) summary.test = await scoreRegression(options.test, { ...options, outcome }, summary.coefficients as Record<string, number>)
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
      else if (trees) printTrees(summary)
      else if (options.seeds !== undefined) printSeeds(summary as { seeds: Array<Record<string, any>>, overSeeds: Record<string, any> })
      else printText(summary)
      if (options.trace !== undefined && !options.json) process.stdout.write(`trace written to ${options.trace}\n`)
    })
}
