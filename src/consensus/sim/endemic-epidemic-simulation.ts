import { fitEndemicEpidemic, panelRegions, type EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { forecastEndemicEpidemicPanel, oneStepDistributions } from '../../learning/endemic-epidemic-forecast.ts'
import { ForecastInputError } from '../../learning/forecast.ts'
import type { SeriesPanel } from '../../learning/forecast-panel.ts'
import { relativeDistance } from '../../learning/linalg.ts'
import { riskHorizon, type RiskParams } from '../../learning/risk.ts'
import { riskOutcome, skillTable, type FederatedFit, type ForecastSimulationOutput, type SkillTable } from './forecast-simulation.ts'
import { createEndemicEpidemicJobState, endemicEpidemicJobProtocol, type EndemicEpidemicJobResult } from '../jobs/endemic-epidemic-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import type { LogRecord } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'
import { MemoryNetwork, ObservedNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { finishedResults, runSynchronous } from './simulation.ts'
import { simulateModelChoice } from './model-choice-simulation.ts'
import type { ModelChoiceJobResult } from '../jobs/model-choice-job.ts'

/**
 * The federated endemic-epidemic fit in one process: one job machine per region on the federation
 * graph, over the in-memory network. `observe` sees every message as it is sent (for tests of what
 * travels), and the machines' log records are returned with `keepLog`.
 */
export interface EndemicEpidemicSimulationInput {
  spec: EndemicEpidemicSpec
  /** each region's counts, aligned with graph.names, all starting at period 0 */
  counts: readonly Float64Array[]
  populations: readonly number[]
  graph: Graph
  /** fit on periods before this one; default all */
  to?: number
  seed: number
  tolerance?: number
  maxIterations?: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  observe?: (from: number, message: ConsensusMessage) => void
  keepLog?: boolean
}

export interface EndemicEpidemicSimulationOutput {
  results: EndemicEpidemicJobResult[]
  rounds: number
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

export function simulateEndemicEpidemic (input: EndemicEpidemicSimulationInput): EndemicEpidemicSimulationOutput {
  const { graph, seed } = input
  if (input.counts.length !== graph.names.length || input.populations.length !== graph.names.length) throw new RangeError(`${input.counts.length} series and ${input.populations.length} populations for ${graph.names.length} peers`)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const maxIterations = input.maxIterations ?? 100
  const states = input.counts.map((counts, self) => createEndemicEpidemicJobState({
    job: `ee-${seed}`,
    graph,
    self,
    diameter,
    spec: input.spec,
    counts,
    population: input.populations[self] as number,
    start: 0,
    ...(input.to === undefined ? {} : { to: input.to }),
    ...(input.tolerance === undefined ? {} : { tolerance: input.tolerance }),
    maxIterations,
    rng: forkRng(rng, `peer-${self}`)
  }))
  const options: MemoryNetworkOptions = { ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') }
  const network = input.observe === undefined ? new MemoryNetwork(options) : new ObservedNetwork(options, input.observe)
  const run = runSynchronous({ protocol: endemicEpidemicJobProtocol, states, network, keepLog: input.keepLog === true, maxRounds: (2 * maxIterations + 10) * 4 * (diameter + 4) })
  return {
    results: finishedResults(run, graph.names),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    log: run.log
  }
}

/**
 * The federated fit on periods [0, to) of every region, with the pooled fit of the same periods (what
 * only a simulation can compute) to compare it with. `clock` only times the run.
 */
export function federatedEndemicEpidemicFit (input: { spec: EndemicEpidemicSpec, panel: SeriesPanel, graph: Graph, to: number, seed: number, clock?: { now(): number } | null }): { fit: FederatedFit, results: EndemicEpidemicJobResult[] } {
  const { spec, panel, graph } = input
  const pooled = fitEndemicEpidemic(spec, panelRegions(panel, graph.neighbours), { range: { to: input.to } })
  const started = input.clock?.now() ?? null
  const simulation = simulateEndemicEpidemic({ spec, counts: panel.counts, populations: panel.populations, graph, to: input.to, seed: input.seed })
  const milliseconds = started === null ? null : (input.clock as { now(): number }).now() - started
  const first = simulation.results[0]
  if (first === undefined) throw new ForecastInputError('regions', 'no regions')
  return {
    results: simulation.results,
    fit: {
      terms: first.terms,
      coefficients: first.shared,
      standardErrors: first.standardErrors,
      pooled: pooled.shared,
      pooledStandardErrors: pooled.sharedStandardErrors,
      relativeError: Math.max(...simulation.results.map((result) => relativeDistance(result.shared, pooled.shared))),
      rounds: simulation.rounds,
      converged: simulation.results.every((result) => result.converged),
      messages: simulation.messages,
      bytes: simulation.bytes,
      milliseconds,
      rows: first.rows
    }
  }
}

export interface EndemicEpidemicForecastInput {
  panel: SeriesPanel
  /** over panel.regions, in the same order */
  graph: Graph
  spec: EndemicEpidemicSpec
  /** periods held out at the end for the skill (0: no skill) */
  holdout: number
  /** periods forecast past the end of the series (default: the risk score's horizon) */
  horizon?: number
  risk: RiskParams
  seed: number
  openRegions?: readonly string[]
  /** prediction interval probability */
  level?: number
  /**
   * candidate designs to choose from by the federation (model-choice-job.ts) before fitting: scored on
   * the `validation` periods just before the held-out tail, the best one replaces `spec`
   */
  candidates?: readonly EndemicEpidemicSpec[]
  /** periods of the validation window (default 26) */
  validation?: number
}

/** The federation's model choice, as every region holds it. */
export interface ModelChoiceOutcome {
  candidates: string[]
  specs: EndemicEpidemicSpec[]
  /** each candidate's total log score over the window (sum over regions and periods of log P(y)) */
  scores: number[]
  /** periods scored per candidate, over all regions */
  counts: number[]
  chosen: number
  /** the window [from, to) in period indices */
  validation: { from: number, to: number }
  rounds: number
  messages: number
}

/**
 * The forecasting product with the endemic-epidemic model, as simulateForecast (forecast-simulation.ts)
 * with the log-linear one: the federated fit on every period (each region's forecasts and h, the
 * joint risk) and on the periods before the held-out tail (the one-step-ahead skill, from each
 * region's negative binomial predictive distribution).
 */
export function simulateEndemicEpidemicForecast (input: EndemicEpidemicForecastInput, clock: { now(): number } | null = null): ForecastSimulationOutput & { choice: ModelChoiceOutcome | null } {
  const { panel, graph } = input
  if (graph.names.length !== panel.regions.length || graph.names.some((name, index) => name !== panel.regions[index])) {
    throw new ForecastInputError('graph', 'the graph must list the panel\'s regions in the same order')
  }
  const periods = panel.counts[0]?.length ?? 0
  const holdout = input.holdout
  if (!(Number.isInteger(holdout) && holdout >= 0)) throw new ForecastInputError('holdout', `must be a non-negative integer, got ${holdout}`)
  if (periods - holdout < 3) throw new ForecastInputError('holdout', `${periods} periods leave ${periods - holdout} to fit on after holding out ${holdout}; the model needs at least 3`)
  let spec = input.spec
  let choice: ModelChoiceOutcome | null = null
  if (input.candidates !== undefined && input.candidates.length > 0) {
    const validation = input.validation ?? 26
    if (!(Number.isInteger(validation) && validation >= 1)) throw new ForecastInputError('validation', `must be a positive integer, got ${validation}`)
    const window = { from: periods - holdout - validation, to: periods - holdout }
    if (window.from < 3) throw new ForecastInputError('validation', `${periods} periods leave ${window.from} to fit the candidates on before a validation window of ${validation} and a held-out tail of ${holdout}; at least 3 are needed`)
    const chosen = simulateModelChoice({ candidates: input.candidates, counts: panel.counts, populations: panel.populations, graph, validation: window, seed: input.seed })
    const first = chosen.results[0] as ModelChoiceJobResult
    spec = input.candidates[first.chosen] as EndemicEpidemicSpec
    choice = { candidates: first.candidates, specs: [...input.candidates], scores: first.scores, counts: first.counts, chosen: first.chosen, validation: window, rounds: chosen.rounds, messages: chosen.messages }
  }
  const full = federatedEndemicEpidemicFit({ spec, panel, graph, to: periods, seed: input.seed, clock })
  let skill: SkillTable | null = null
  if (holdout > 0) {
    const from = periods - holdout
    const training = federatedEndemicEpidemicFit({ spec, panel, graph, to: from, seed: input.seed, clock })
    const forecasts = training.results.map((result) => oneStepDistributions({ spec, shared: result.shared, local: result.local?.estimate ?? null }, result.region, { from, to: periods })
      .map(({ time, distribution }) => ({ time, forecast: distribution })))
    skill = { ...skillTable(panel.counts, from, periods, Math.round(spec.period), forecasts), fit: training.fit }
  }
  const horizon = Math.max(input.horizon ?? 0, riskHorizon(input.risk))
  const first = full.results[0] as EndemicEpidemicJobResult
  const forecasts = forecastEndemicEpidemicPanel(spec, first.shared, full.results.map((result) => result.local?.estimate ?? null), full.results.map((result) => result.region), graph.neighbours, { horizon, ...(input.level === undefined ? {} : { level: input.level }) })
  return { fit: full.fit, skill, horizon, ...riskOutcome(panel, graph, forecasts, input), choice }
}
