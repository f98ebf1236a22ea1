import { relativeDistance } from '../../learning/linalg.ts'
import { fitModel } from '../../learning/fit.ts'
import { buildForecastDesign, forecastMeans, ForecastInputError, maxLag, type ForecastModelSpec, type PeriodForecast, type RegionHistory } from '../../learning/forecast.ts'
import { forecastPanel, panelDesigns, panelHistories, pooledDesign, type SeriesPanel } from '../../learning/forecast-panel.ts'
import type { CountDistribution } from '../../learning/negbin.ts'
import { addForecast, createSkillAccumulator, lastValueMean, seasonalNaiveMean, skillOf, type Skill } from '../../learning/forecast-skill.ts'
import { INTERCEPT } from '../../learning/design.ts'
import { EpimeshError } from '../../errors.ts'
import { riskHorizon, riskScore, type RiskParams } from '../../learning/risk.ts'
import { createFitJobParams, type Algorithm } from '../jobs/fit-job.ts'
import { simulateFit, type FitSimulationOutput } from './fit-simulation.ts'
import type { Graph } from '../graph.ts'
import type { JointRiskResult } from '../protocols/joint-risk.ts'
import { simulateJointRisk } from './joint-risk-simulation.ts'

/**
 * The forecasting product end to end in one process, for researchers: one peer per region on the
 * federation graph fits the shared model with the fit-job machines (exactly as real peers would, over
 * the in-memory network), every region forecasts and scores its risk, and the regions sum their risk
 * scores by the joint-risk machine. The pooled fit, the plain sum of h and the held-out skill are what
 * only a simulation can compute, to check the federation against.
 */
/** The simulated federation could not fit the forecasting model; `cause` holds why. */
export class ForecastFitError extends EpimeshError {
  static override readonly name = 'ForecastFitError'
  constructor (message: string, options?: { cause?: unknown }) { super('FORECAST_FIT_FAILED', message, options) }
}

export interface ForecastSimulationInput {
  panel: SeriesPanel
  /** over panel.regions, in the same order */
  graph: Graph
  spec: ForecastModelSpec
  /** periods held out at the end for the skill (0: no skill) */
  holdout: number
  /** periods forecast past the end of the series (default: the risk score's horizon) */
  horizon?: number
  risk: RiskParams
  algorithm: Algorithm
  tolerance: number
  maxRounds: number
  seed: number
  /** regions that publish h openly */
  openRegions?: readonly string[]
  /** prediction interval probability */
  level?: number
}

export interface FederatedFit {
  terms: string[]
  coefficients: Float64Array
  standardErrors: Float64Array
  pooled: Float64Array
  pooledStandardErrors: Float64Array
  /** max over peers of ||b_i - b_pooled|| / ||b_pooled|| */
  relativeError: number
  rounds: number
  converged: boolean
  messages: number
  bytes: number
  milliseconds: number | null
  rows: number
}

export interface SkillTable {
  model: Skill
  lastValue: Skill
  /** null when the series is too short for a value one season before the held-out periods */
  seasonalNaive: Skill | null
  /** the fit on the periods before the held-out ones */
  fit: FederatedFit
  /** the held-out periods' indices */
  from: number
  to: number
  /** per held-out period, summed over regions: observed and one-step forecast means (for plots) */
  /**
   * per held-out period, summed over the regions: the observed counts, the forecast means, and the
   * variance of the model's forecast of the sum (the regions' one-step forecasts are independent given
   * the past, so their variances add: mu for a Poisson, mu + mu^2 / size for a negative binomial)
   */
  totals: { observed: number[], model: number[], modelVariance: number[], lastValue: number[], seasonalNaive: number[] | null }
}

export interface RegionOutcome {
  region: string
  population: number
  h: number
  /** forecast cases per 100,000 per 7 days, which h maps */
  rate: number
  forecast: PeriodForecast[]
}

export interface ForecastSimulationOutput {
  fit: FederatedFit
  skill: SkillTable | null
  regions: RegionOutcome[]
  jointRisk: JointRiskResult & { plainSum: number, ticks: number, messages: number }
  horizon: number
}


/**
 * The federated fit of the model on periods [0, to) of every region, and the pooled fit of the same
 * rows. `clock` only times the run (pass null for none).
 */
export function federatedForecastFit (input: {
  spec: ForecastModelSpec
  histories: readonly RegionHistory[]
  graph: Graph
  to: number
  algorithm: Algorithm
  tolerance: number
  maxRounds: number
  seed: number
  clock?: { now(): number } | null
}): FederatedFit {
  const { spec, histories, graph } = input
  const range = { to: input.to }
  const { blocks, terms } = panelDesigns(spec, histories, range)
  const pooledBlock = pooledDesign(spec, histories, range).block
  const pooled = fitModel(pooledBlock, terms, { family: 'poisson', standardize: true, tolerance: 1e-12, maxIterations: 100 })
  const reference = Float64Array.from(pooled.coefficients.estimate)
  const started = input.clock?.now() ?? null
  let simulation: FitSimulationOutput
  try {
    simulation = simulateFit({
      family: 'poisson',
      terms,
      interceptColumn: terms.indexOf(INTERCEPT),
      blocks,
      graph,
      params: createFitJobParams({ algorithm: input.algorithm, tolerance: input.tolerance, maxRounds: input.maxRounds, standardize: true }),
      seed: input.seed
    })
  } catch (error) {
    // A Newton trial point far from the solution can make a peer's loss too large for the masked sum's
    // fixed-point range (|value| < 2^64); the fit job does not recover from that.
    if (error instanceof RangeError) throw new ForecastFitError(`the federated ${input.algorithm} fit failed: ${error.message}`, { cause: error })
    throw error
  }
  const milliseconds = started === null ? null : (input.clock as { now(): number }).now() - started
  const first = simulation.results[0]
  if (first === undefined) throw new ForecastInputError('regions', 'no regions')
  return {
    terms,
    coefficients: first.coefficients,
    standardErrors: first.standardErrors,
    pooled: reference,
    pooledStandardErrors: Float64Array.from(pooled.coefficients.standardError),
    relativeError: Math.max(...simulation.results.map((result) => relativeDistance(result.coefficients, reference))),
    rounds: simulation.rounds,
    converged: simulation.results.every((result) => result.converged),
    messages: simulation.messages,
    bytes: simulation.bytes,
    milliseconds,
    rows: pooledBlock.rows
  }
}

/**
 * One-step-ahead skill on periods [from, to) of every region: the model's forecast of each (a count
 * distribution, or a Poisson mean) against the last-value and seasonal-naive baselines (Poisson, with
 * their point values as means), from the observed counts before it.
 */
export function skillTable (counts: ReadonlyArray<ArrayLike<number>>, from: number, to: number, season: number, forecasts: ReadonlyArray<ReadonlyArray<{ time: number, forecast: number | CountDistribution }>>): Omit<SkillTable, 'fit'> {
  const model = createSkillAccumulator()
  const lastValue = createSkillAccumulator()
  const seasonal = from >= season ? createSkillAccumulator() : null
  const periods = to - from
  const totals = {
    observed: new Array<number>(periods).fill(0),
    model: new Array<number>(periods).fill(0),
    modelVariance: new Array<number>(periods).fill(0),
    lastValue: new Array<number>(periods).fill(0),
    seasonalNaive: seasonal === null ? null : new Array<number>(periods).fill(0)
  }
  counts.forEach((series, region) => {
    for (const { time, forecast } of forecasts[region] ?? []) {
      if (time < from || time >= to) continue
      const observed = series[time] as number
      const slot = time - from
      addForecast(model, observed, forecast)
      const last = lastValueMean(series, time)
      addForecast(lastValue, observed, last)
      totals.observed[slot] = (totals.observed[slot] as number) + observed
      totals.model[slot] = (totals.model[slot] as number) + (typeof forecast === 'number' ? forecast : forecast.mean)
      totals.modelVariance[slot] = (totals.modelVariance[slot] as number) + (typeof forecast === 'number' ? forecast : forecast.mean + (Number.isFinite(forecast.size) ? forecast.mean * forecast.mean / forecast.size : 0))
      totals.lastValue[slot] = (totals.lastValue[slot] as number) + last
      if (seasonal !== null && totals.seasonalNaive !== null) {
        const naive = seasonalNaiveMean(series, time, season)
        addForecast(seasonal, observed, naive)
        totals.seasonalNaive[slot] = (totals.seasonalNaive[slot] as number) + naive
      }
    }
  })
  return { model: skillOf(model), lastValue: skillOf(lastValue), seasonalNaive: seasonal === null ? null : skillOf(seasonal), from, to, totals }
}

/**
 * One-step-ahead skill on periods [from, to) of every region with the given coefficients of the
 * log-linear Poisson model (each forecast uses the observed lags), against the baselines.
 */
export function heldOutSkill (spec: ForecastModelSpec, coefficients: ArrayLike<number>, histories: readonly RegionHistory[], from: number, to: number): Omit<SkillTable, 'fit'> {
  const season = spec.seasonPeriod === null ? 52 : Math.round(spec.seasonPeriod)
  const forecasts = histories.map((history) => {
    const design = buildForecastDesign(spec, history, { from, to })
    const means = forecastMeans(design.block, coefficients)
    return design.times.map((time, row) => ({ time, forecast: means[row] as number }))
  })
  return skillTable(histories.map((history) => history.counts), from, to, season, forecasts)
}

export function simulateForecast (input: ForecastSimulationInput, clock: { now(): number } | null = null): ForecastSimulationOutput {
  const { panel, graph, spec } = input
  if (graph.names.length !== panel.regions.length || graph.names.some((name, index) => name !== panel.regions[index])) {
    throw new ForecastInputError('graph', 'the graph must list the panel\'s regions in the same order')
  }
  const periods = panel.counts[0]?.length ?? 0
  const holdout = input.holdout
  if (!(Number.isInteger(holdout) && holdout >= 0)) throw new ForecastInputError('holdout', `must be a non-negative integer, got ${holdout}`)
  const minimum = maxLag(spec) + 1
  if (periods - holdout < minimum + 1) throw new ForecastInputError('holdout', `${periods} periods leave ${periods - holdout} to fit on after holding out ${holdout}; the model needs at least ${minimum + 1}`)
  const histories = panelHistories(panel, graph.neighbours)
  const fitOptions = { spec, histories, graph, algorithm: input.algorithm, tolerance: input.tolerance, maxRounds: input.maxRounds, seed: input.seed, clock }
  const fit = federatedForecastFit({ ...fitOptions, to: periods })
  let skill: SkillTable | null = null
  if (holdout > 0) {
    const trainingFit = federatedForecastFit({ ...fitOptions, to: periods - holdout })
    skill = { ...heldOutSkill(spec, trainingFit.coefficients, histories, periods - holdout, periods), fit: trainingFit }
  }
  const horizon = Math.max(input.horizon ?? 0, riskHorizon(input.risk))
  const forecasts = forecastPanel(spec, fit.coefficients, histories, graph.neighbours, { horizon, ...(input.level === undefined ? {} : { level: input.level }) })
  return { fit, skill, horizon, ...riskOutcome(panel, graph, forecasts, input) }
}

/**
 * Each region's risk score h from its forecast means, and the joint risk by the masked-sum machine over
 * the federation graph (with the plain sum of h, which only a simulation can see, to check it).
 */
export function riskOutcome (panel: SeriesPanel, graph: Graph, forecasts: readonly PeriodForecast[][], input: { risk: RiskParams, seed: number, openRegions?: readonly string[] }): Pick<ForecastSimulationOutput, 'regions' | 'jointRisk'> {
  const regions: RegionOutcome[] = panel.regions.map((region, index) => {
    const forecast = forecasts[index] as PeriodForecast[]
    const population = panel.populations[index] as number
    const risk = riskScore(forecast.map((period) => period.mean), population, input.risk)
    return { region, population, h: risk.h, rate: risk.rate, forecast }
  })
  const joint = simulateJointRisk({ graph, h: regions.map((region) => region.h), seed: input.seed, ...(input.openRegions === undefined ? {} : { openRegions: input.openRegions }) })
  const result = joint.results[0] as JointRiskResult
  return { regions, jointRisk: { ...result, plainSum: regions.reduce((sum, region) => sum + region.h, 0), ticks: joint.ticks, messages: joint.messages } }
}
