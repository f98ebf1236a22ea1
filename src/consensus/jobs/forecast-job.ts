import { withMaskSeeds } from './phases.ts'
import type { MaskSeeds } from '../protocols/mask-seeds.ts'
import { sharedTerms, type EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { forecastEndemicEpidemicRegion } from '../../learning/endemic-epidemic-forecast.ts'
import { buildForecastDesign, forecastRegion, incidencePer100k, neighbourMeanIncidence, type ForecastModelSpec, type PeriodForecast, type RegionHistory } from '../../learning/forecast.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import { riskScore, riskHorizon, type RegionRisk, type RiskParams } from '../../learning/risk.ts'
import type { MessageVerifier } from '../audit/evidence.ts'
import { ByteWriter } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { createExchange, exchangeProtocol } from '../protocols/exchange.ts'
import { createJointRisk, jointRiskProtocol, type JointRiskResult } from '../protocols/joint-risk.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { fitJobRules, fitJobScript, judgeAdmmEvidence, modelDigest, newFitProgress, type FitJobParams, type FitJobResult, type FitProgress } from './fit-job.ts'
import { endemicEpidemicScript, type EndemicEpidemicJobResult, type EndemicEpidemicProgress } from './endemic-epidemic-job.ts'
import { createJob, jobProtocol, phase, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { modelChoiceScript } from './model-choice-job.ts'

/**
 * A regional forecasting job on one peer, from its own case-count series to the federation's joint
 * risk, as one script the real peer and the simulator both run (see job.ts):
 *
 *   incidence   each region sends its graph neighbours its incidence per 100,000 over the job's
 *               periods (the aggregate the neighbour term needs) and waits for theirs;
 *   the fit     the shared Poisson model of learning/forecast.ts, fitted by the fit job's script
 *               (federated standardisation, ADMM or exact Newton, standard errors), each region's rows
 *               its own;
 *               then each region forecasts its next periods and computes its risk score h, locally;
 *   joint-risk  the sum and mean of h, and the federation's total forecast per period (each region's
 *               forecast means fused), by one exact masked sum (joint-risk.ts): no message carries a
 *               region's h, and no other region learns it;
 *
 * With `endemicEpidemic` set, the model is instead the endemic-epidemic one of R's hhh4 (learning/
 * endemic-epidemic.ts): incidence and fit are replaced by its own phases (endemic-epidemic-job.ts:
 * counts exchanged with the neighbours, exact Newton by masked sums, a region's own intercept never
 * sent), and the forecast is its negative binomial one;
 *
 * and the job's closing over the model and the joint risk.
 */
export const INCIDENCE_KIND = 'incidence'
export const JOINT_RISK_KIND = 'joint-risk'

export interface ForecastJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  spec: ForecastModelSpec
  /** the endemic-epidemic model to fit instead of `spec` (null or absent: the log-linear Poisson model) */
  endemicEpidemic?: EndemicEpidemicSpec | null
  /**
   * endemic-epidemic designs for the federation to choose from first (model-choice-job.ts): each is
   * scored on the last `validation` periods, fitted on the ones before, and the best one is then fitted
   * on every period in place of `endemicEpidemic` (null or absent: no choice)
   */
  candidates?: readonly EndemicEpidemicSpec[] | null
  /** periods of the validation window at the end of the series (default 26) */
  validation?: number
  /** this region's counts over the job's periods */
  counts: ArrayLike<number>
  population: number
  /** the federation's period index of counts[0] (the season's phase) */
  start: number
  /** periods forecast (at least the risk score's horizon) */
  horizon: number
  risk: RiskParams
  /** regions (graph names) that publish their h openly */
  openRegions: readonly string[]
  params: FitJobParams
  rng: Rng
  /** the job's per-edge mask seeds, shared by its masked sums (see mask-seeds.ts); created at the job's start */
  maskSeeds?: MaskSeeds
  /** checks other members' signatures on alarms and closing statements (see FitJobPeer) */
  verifier?: MessageVerifier | null
  /**
   * a refresh of an earlier forecast: its shared terms and parameters, which every region holds alike;
   * the endemic-epidemic fit starts there when the design it fits (after any choice) has those terms
   */
  warm?: { terms: readonly string[], coefficients: readonly number[] } | null
}

export interface ForecastJobResult {
  /** the shared model; for the endemic-epidemic model, its shared parameters as a fit's coefficients */
  fit: FitJobResult
  /** the endemic-epidemic fit (with this region's own intercept, which no other region holds), or null */
  endemicEpidemic: EndemicEpidemicJobResult | null
  forecast: PeriodForecast[]
  risk: RegionRisk
  joint: JointRiskResult
  /** periods of this region's series used by the fit */
  rows: number
  /** the federation's choice among the proposal's candidate designs (every region the same), or null */
  choice: ModelChoice | null
}

/** What the forecasting job reports of the model choice: the candidates, their validation log scores (totals over the regions), the chosen one. */
export interface ModelChoice {
  candidates: string[]
  scores: number[]
  counts: number[]
  chosen: number
  /** the window [from, to) in federation period indices */
  validation: { from: number, to: number }
}


/** What the forecasting job has so far: the fit's progress, and the region's forecast once made. */
export interface ForecastProgress {
  fit: FitProgress
  endemicEpidemic: EndemicEpidemicProgress
  history: RegionHistory | null
  forecast: PeriodForecast[] | null
  risk: RegionRisk | null
}

export type ForecastJobState = JobState<ForecastJobResult> & { readonly forecast: ForecastProgress }

/** The endemic-epidemic fit as a fit job's result, for the store, the audit log and the closing digest (shared parts only). */
function asFitResult (result: EndemicEpidemicJobResult, peers: number, ctx: JobContext): FitJobResult {
  return {
    terms: result.terms,
    coefficients: result.shared,
    standardErrors: result.standardErrors,
    covariance: result.covariance,
    standardizedCoefficients: result.shared,
    logLikelihood: result.logLikelihood,
    objective: -result.logLikelihood,
    rounds: ctx.round(),
    phaseRounds: ctx.phaseRounds(),
    converged: result.converged,
    peers,
    rows: result.rows,
    penalty: null,
    newtonIterations: result.iterations,
    dropped: [],
    metrics: null,
    staleMessages: 0,
    rejectedMessages: 0,
    // the endemic-epidemic model is fitted on its own scale, by exact Newton: no scaling, no ADMM duals
    scaling: null,
    duals: []
  }
}

function * endemicEpidemicForecastScript (peer: ForecastJobPeer, proposed: EndemicEpidemicSpec, progress: ForecastProgress, ctx: JobContext): JobScript<ForecastJobResult> {
  let spec = proposed
  let choice: ModelChoice | null = null
  const candidates = peer.candidates ?? null
  if (candidates !== null && candidates.length > 0) {
    const end = peer.start + peer.counts.length
    const validation = { from: end - (peer.validation ?? 26), to: end }
    const chosen = yield * modelChoiceScript({
      job: peer.job,
      graph: peer.graph,
      self: peer.self,
      diameter: peer.diameter,
      candidates,
      validation,
      counts: peer.counts,
      population: peer.population,
      start: peer.start,
      maxIterations: 2 * peer.params.maxNewtonIterations,
      rng: peer.rng,
      ...(peer.maskSeeds === undefined ? {} : { maskSeeds: peer.maskSeeds }),
      verifier: peer.verifier ?? null
    }, { progress: progress.endemicEpidemic, candidate: 0 }, ctx)
    spec = candidates[chosen.chosen] as EndemicEpidemicSpec
    choice = { candidates: chosen.candidates, scores: chosen.scores, counts: chosen.counts, chosen: chosen.chosen, validation }
  }
  const warm = peer.warm ?? null
  const terms = sharedTerms(spec)
  const warmShared = warm !== null && warm.terms.length === terms.length && warm.terms.every((term, index) => term === terms[index]) ? warm.coefficients : null
  const fitted = yield * endemicEpidemicScript({
    warmShared,
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    spec,
    counts: peer.counts,
    population: peer.population,
    start: peer.start,
    maxIterations: 2 * peer.params.maxNewtonIterations,
    rng: peer.rng,
    ...(peer.maskSeeds === undefined ? {} : { maskSeeds: peer.maskSeeds }),
    verifier: peer.verifier ?? null
  }, progress.endemicEpidemic, ctx)
  const fit = asFitResult(fitted, peer.graph.names.length, ctx)
  const forecast = forecastEndemicEpidemicRegion({ spec, shared: fitted.shared, local: fitted.local?.estimate ?? null }, fitted.region, { horizon: peer.horizon })
  const risk = riskScore(forecast.map((period) => period.mean), peer.population, peer.risk)
  progress.forecast = forecast
  progress.risk = risk
  const joint = yield * run(phase(JOINT_RISK_KIND, jointRiskProtocol, createJointRisk({ graph: peer.graph, self: peer.self, h: risk.h, job: peer.job, rng: peer.rng, ...(peer.maskSeeds === undefined ? {} : { seeds: peer.maskSeeds }), openRegions: peer.openRegions, kind: JOINT_RISK_KIND, fused: forecast.map((period) => period.mean) })))
  ctx.log('info', 'job.joint-risk', { job: peer.job, regions: joint.regions, sum: joint.sum, mean: joint.mean })
  return { fit, endemicEpidemic: fitted, forecast, risk, joint, rows: Math.max(0, fitted.region.counts.length - 1), choice }
}

function * forecastScript (peer: ForecastJobPeer, progress: ForecastProgress, ctx: JobContext): JobScript<ForecastJobResult> {
  const endemicEpidemic = peer.endemicEpidemic ?? null
  if (endemicEpidemic !== null) return yield * endemicEpidemicForecastScript(peer, endemicEpidemic, progress, ctx)
  const incidence = incidencePer100k(peer.counts, peer.population)
  const accept = (values: Float64Array): boolean => values.length === incidence.length && values.every((value) => Number.isFinite(value) && value >= 0)
  const heard = yield * run(phase(INCIDENCE_KIND, exchangeProtocol, createExchange({ graph: peer.graph, self: peer.self, job: peer.job, kind: INCIDENCE_KIND, value: incidence, accept })))
  const neighbourIncidence = neighbourMeanIncidence(heard.map((series) => series as Float64Array), incidence.length)
  const history: RegionHistory = { counts: peer.counts, population: peer.population, neighbourIncidence, start: peer.start }
  progress.history = history
  const design = buildForecastDesign(peer.spec, history)
  ctx.log('info', 'forecast.design', { neighbours: heard.length, rows: design.block.rows })
  const fit = yield * fitJobScript({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    problem: createGlmProblem({ family: 'poisson', block: design.block, terms: design.terms, interceptColumn: 0 }),
    params: peer.params,
    rng: peer.rng,
    ...(peer.maskSeeds === undefined ? {} : { maskSeeds: peer.maskSeeds }),
    verifier: peer.verifier ?? null
  }, progress.fit, ctx)
  const forecast = forecastRegion(peer.spec, fit.coefficients, history, { horizon: peer.horizon })
  const risk = riskScore(forecast.map((period) => period.mean), peer.population, peer.risk)
  progress.forecast = forecast
  progress.risk = risk
  const joint = yield * run(phase(JOINT_RISK_KIND, jointRiskProtocol, createJointRisk({ graph: peer.graph, self: peer.self, h: risk.h, job: peer.job, rng: peer.rng, ...(peer.maskSeeds === undefined ? {} : { seeds: peer.maskSeeds }), openRegions: peer.openRegions, kind: JOINT_RISK_KIND, fused: forecast.map((period) => period.mean) })))
  ctx.log('info', 'job.joint-risk', { job: peer.job, regions: joint.regions, sum: joint.sum, mean: joint.mean })
  return { fit, endemicEpidemic: null, forecast, risk, joint, rows: design.block.rows, choice: null }
}

/** What every region must agree on: the shared model and the joint risk (each region's own forecast and h stay its own). */
function forecastDigest (result: ForecastJobResult): Uint8Array {
  const writer = new ByteWriter()
  writer.blob(modelDigest(result.fit))
  writer.floats([result.joint.sum, result.joint.mean, result.joint.regions, ...result.joint.open.map((entry) => entry.h), ...result.joint.fused])
  for (const entry of result.joint.open) writer.string(entry.region)
  if (result.choice !== null) {
    for (const label of result.choice.candidates) writer.string(label)
    writer.floats([...result.choice.scores, ...result.choice.counts, result.choice.chosen, result.choice.validation.from, result.choice.validation.to])
  }
  return sha256(writer.bytes())
}

export function createForecastJobState (peer: ForecastJobPeer): ForecastJobState {
  if (peer.horizon < riskHorizon(peer.risk)) throw new RangeError(`the forecast horizon ${peer.horizon} is shorter than the risk score's ${riskHorizon(peer.risk)} periods`)
  const progress: ForecastProgress = { fit: newFitProgress(), endemicEpidemic: { iteration: null }, history: null, forecast: null, risk: null }
  const verifier = peer.verifier ?? null
  // the design's width is the spec's, the same for every region: the rules need only its dimension
  const dimension = buildForecastDesign(peer.spec, { counts: peer.counts, population: peer.population, neighbourIncidence: new Float64Array(peer.counts.length), start: peer.start }).block.cols
  const rules = fitJobRules({ graph: peer.graph, diameter: peer.diameter, params: peer.params, problem: { dimension } })
  const state = createJob<ForecastJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => forecastScript(withMaskSeeds(peer), progress, ctx),
    verifier,
    judge: (evidence) => verifier === null ? 'no verifier' : (peer.endemicEpidemic ?? null) !== null ? 'this model\'s job has no round-message rules' : judgeAdmmEvidence(rules, peer.job, verifier, evidence),
    closing: { digest: forecastDigest, exact: peer.params.algorithm !== 'gossip' }
  })
  return Object.assign(state, { forecast: progress })
}

export const forecastJobProtocol = jobProtocol as unknown as Protocol<ForecastJobState, ForecastJobResult>
