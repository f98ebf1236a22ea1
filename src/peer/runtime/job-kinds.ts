import { createHash } from 'node:crypto'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobResult, type FitProgress } from '../../consensus/jobs/fit-job.ts'
import { createGbdtJobState, gbdtJobProtocol, type GbdtJobResult } from '../../consensus/jobs/gbdt-job.ts'
import { finalRecord, type FinalRecord } from '../../consensus/audit/recorder.ts'
import { createGbdtParams, gbdtModelToJson, type GbdtParams, type TreeData } from '../../learning/gbdt.ts'
import type { AuditParams } from '../audit/service.ts'
import { createForecastJobState, forecastJobProtocol, type ForecastJobResult } from '../../consensus/jobs/forecast-job.ts'
import { createStatsJobState, statsJobProtocol, type StatsJobResult } from '../../consensus/jobs/stats-job.ts'
import { jobPosition, jobRound, type JobState } from '../../consensus/jobs/job.ts'
import { diameter, type Graph } from '../../consensus/graph.ts'
import type { Protocol } from '../../consensus/machine.ts'
import type { MessageVerifier } from '../../consensus/audit/evidence.ts'
import type { Rng } from '../../consensus/types.ts'
import { INTERCEPT, type DataBlock } from '../../learning/design.ts'
import { ownSummary, type OwnSummary } from '../../learning/statistics.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import { DEFAULT_TREE_SETTINGS, memberByRegion, type ModelSpec as FederationModel } from '../federation.ts'
import { DISCLOSURE, fitCheck, forecastCheck, JobRefusedError, localDesign, localStatsData, localTreeData, refitStart, refreshStart, statsCheck, treeCheck, type CheckContext, type JobData } from './checks.ts'
import { parseForecastProposal, regionSeries } from './forecast-proposal.ts'
import type { JobProposal } from './proposal.ts'
import { statsRequestOf } from './stats-proposal.ts'

/**
 * The kinds of job a peer runs, each in one place: how a region checks a proposal of that kind
 * against its data and policy, and how it builds the job's machine (a script on the job combinator,
 * src/consensus/jobs/job.ts). The coordinator drives every kind the same way (journal, audit log,
 * progress, lingering); a new kind is an entry here and its script in src/consensus/jobs.
 */

/** What this region put into a job: how many of its own rows, and a digest of them (for the model's lineage). */
export interface JobInput {
  rows: number
  /** records left out as incomplete (a missing value in the outcome or a feature), where the job kind drops them */
  dropped?: number
  /** SHA-256, hex, of what the job read of this region's data */
  digest: string
}

/** What a job left on this peer, by kind, with the proposal it ran and what this region put in. */
export type JobOutput =
  | { kind: 'glm', fit: FitJobResult, proposal: JobProposal, input: JobInput }
  | { kind: 'forecast', fit: FitJobResult, forecast: ForecastJobResult, proposal: JobProposal, input: JobInput }
  | { kind: 'gbdt', trees: GbdtJobResult, proposal: JobProposal, input: JobInput }
  | { kind: 'stats', stats: StatsJobResult, own: OwnSummary }

/** SHA-256 of a design block as a job reads it: its terms, then the rows of x, y and the offset as float64. */
export function designDigest (block: DataBlock, terms: readonly string[]): string {
  const hash = createHash('sha256')
  hash.update(`${JSON.stringify(terms)}\n${block.rows}\n`)
  hash.update(new Uint8Array(block.x.buffer, block.x.byteOffset, block.rows * block.cols * 8))
  hash.update(new Uint8Array(block.y.buffer, block.y.byteOffset, block.rows * 8))
  if (block.offset !== undefined) hash.update(new Uint8Array(block.offset.buffer, block.offset.byteOffset, block.rows * 8))
  return hash.digest('hex')
}

export type JobKindName = JobOutput['kind']

/** Where a running job stands, for status: its phase, its round, and ADMM's residuals while it runs. */
export interface JobProgress {
  job: string
  kind: JobKindName
  /** running, or how it ended (a peer's status shows its last job until the next one starts) */
  state: 'running' | 'finished' | 'failed'
  phase: string
  /** the round within the phase */
  round: number
  /** rounds since the job began, all phases together */
  jobRound: number
  primalResidual?: number
  dualResidual?: number
  /** trees grown so far (a tree job) */
  trees?: number
}

/** What building a job needs beyond the proposal and the region's data. */
export interface KindContext extends CheckContext {
  graph: Graph
  /** this peer's node in the graph */
  self: number
  verifier: MessageVerifier | null
  /** keep the iterates each step, for the audit log's recomputation */
  recordVectors: boolean
  rng: Rng
}

/** A job ready to run: its machine, what the audit log records of it, and how to read its result. */
export interface JobPlan<R> {
  protocol: Protocol<JobState<R>, R>
  state: JobState<R>
  /** the parameters the audit log records (and, for ADMM, recomputes its dual updates with) */
  params: AuditParams
  /** the job's specification, as the audit log's header records it */
  spec: Record<string, unknown>
  /** log fields for the job's start */
  startFields: Record<string, unknown>
  progress: (state: JobState<R>) => JobProgress
  /** the output, what the audit log's final entry records, and log fields for the job's end */
  finish: (result: R, state: JobState<R>) => { output: JobOutput, final: FinalRecord, fields: Record<string, unknown> }
}

export interface JobKind {
  readonly name: JobKindName
  /** a reason for this region to decline the proposal, or null to accept */
  check: (proposal: JobProposal, data: JobData, context: CheckContext) => string | null
  /** builds the job and hands it to `use` (whatever its result type): the coordinator drives it */
  plan: <T>(proposal: JobProposal, data: JobData, context: KindContext, use: <R>(plan: JobPlan<R>) => T) => T
}

function fitProgress<R> (job: string, kind: JobKindName, state: JobState<R>, fit: FitProgress): JobProgress {
  const position = jobPosition(state)
  const admm = (position.phase === 'admm' || position.phase === 'admm2') ? fit.admmState : null
  return { job, kind, state: 'running', phase: position.phase, round: position.round, jobRound: jobRound(state), ...(admm === null ? {} : { primalResidual: admm.primalResidual, dualResidual: admm.dualResidual }) }
}

/** A regression on the regions' records (logistic or Poisson), by consensus ADMM or exact Newton. */
const glm: JobKind = {
  name: 'glm',
  check: (proposal, data) => fitCheck(proposal, data),
  plan (proposal, data, context, use) {
    const model = proposal.model
    const { block, terms, dropped } = localDesign(data.rows, model)
    const previous = refitStart(proposal, data, terms)
    if (typeof previous === 'string') throw new JobRefusedError(previous)
    const params = createFitJobParams({
      algorithm: model.algorithm,
      lambda: model.lambda,
      tolerance: model.tolerance,
      maxRounds: model.maxRounds,
      dropAfterRounds: model.dropAfterRounds,
      ...(model.clip === undefined ? {} : { clip: model.clip }),
      recordVectors: context.recordVectors
    })
    const state = createFitJobState({
      job: proposal.id,
      graph: context.graph,
      self: context.self,
      diameter: diameter(context.graph),
      problem: createGlmProblem({ family: model.family, block, terms, interceptColumn: terms.indexOf(INTERCEPT) >= 0 ? terms.indexOf(INTERCEPT) : null }),
      params,
      rng: context.rng,
      verifier: context.verifier,
      warmStart: previous === null ? null : { coefficients: previous.coefficients, duals: previous.duals }
    })
    return use<FitJobResult>({
      protocol: fitJobProtocol,
      state,
      params,
      spec: { ...model, ...(proposal.refit === undefined ? {} : { refit: proposal.refit }) },
      startFields: { peers: context.graph.names.length, rows: block.rows, algorithm: model.algorithm },
      progress: (current) => fitProgress(proposal.id, 'glm', current, state.fit),
      finish: (fit) => ({ output: { kind: 'glm', fit, proposal, input: { rows: block.rows, dropped, digest: designDigest(block, terms) } }, final: finalRecord(fit, params.tolerance), fields: { rounds: fit.rounds, converged: fit.converged } })
    })
  }
}

/**
 * A regional forecast: the shared model (hhh4's endemic-epidemic model by default, counts exchanged with
 * the neighbours; or the log-linear Poisson GLM, incidence exchanged), each region's forecast and h,
 * the joint risk.
 */
const forecast: JobKind = {
  name: 'forecast',
  check: (proposal, data, context) => forecastCheck(proposal, data, context),
  plan (proposal, data, context, use) {
    const plan = parseForecastProposal(proposal.forecast)
    const series = regionSeries(plan, data.series)
    if (typeof series === 'string') throw new JobRefusedError(series)
    const previous = refreshStart(proposal, data)
    if (typeof previous === 'string') throw new JobRefusedError(previous)
    const params = createFitJobParams({
      algorithm: plan.proposal.algorithm,
      tolerance: plan.proposal.tolerance,
      maxRounds: plan.proposal.maxRounds,
      dropAfterRounds: 0,
      recordVectors: context.recordVectors
    })
    const state = createForecastJobState({
      job: proposal.id,
      graph: context.graph,
      self: context.self,
      diameter: diameter(context.graph),
      spec: plan.spec,
      endemicEpidemic: plan.endemicEpidemic,
      candidates: plan.candidates,
      validation: plan.validation,
      counts: series.counts,
      population: series.population,
      start: plan.start,
      horizon: plan.horizon,
      risk: plan.risk,
      openRegions: plan.proposal.openRegions.map((region) => memberByRegion(context.federation, region)?.peerId as string),
      params,
      rng: context.rng,
      verifier: context.verifier,
      warm: previous === null ? null : { terms: previous.terms, coefficients: previous.coefficients }
    })
    return use<ForecastJobResult>({
      protocol: forecastJobProtocol,
      state,
      params,
      spec: { ...plan.proposal, kind: 'forecast', forecastModel: plan.proposal.kind },
      startFields: { kind: 'forecast', model: plan.proposal.kind, peers: context.graph.names.length, periods: plan.proposal.periods, algorithm: plan.endemicEpidemic === null ? params.algorithm : 'newton' },
      progress: (current) => fitProgress(proposal.id, 'forecast', current, state.forecast.fit),
      finish: (result, finished) => ({
        output: { kind: 'forecast', fit: result.fit, forecast: result, proposal, input: { rows: series.counts.length, digest: createHash('sha256').update(JSON.stringify({ counts: Array.from(series.counts), population: series.population })).digest('hex') } },
        final: finalRecord(result.fit, params.tolerance),
        fields: { kind: 'forecast', rounds: forecastJobProtocol.round(finished as typeof state), jointRiskMean: result.joint.mean, ...(result.choice === null ? {} : { chosen: result.choice.candidates[result.choice.chosen], candidateScores: result.choice.scores }) }
      })
    })
  }
}

/** The trees' settings a proposal's model states (DEFAULT_TREE_SETTINGS for those it leaves out), as the learning core takes them. */
export function treeParams (model: FederationModel): GbdtParams {
  const settings = model.trees ?? DEFAULT_TREE_SETTINGS
  return createGbdtParams({ family: model.family, lambda: model.lambda, ...settings, minNodeRows: DISCLOSURE.minimumNodeRows })
}

/** Gradient-boosted trees on the regions' records: every split and leaf from masked sums of histograms. */
const gbdt: JobKind = {
  name: 'gbdt',
  check: (proposal, data) => treeCheck(proposal, data),
  plan (proposal, data, context, use) {
    const model = proposal.model
    const params = treeParams(model)
    const { data: trees } = localTreeData(data.rows, model)
    const state = createGbdtJobState({
      job: proposal.id,
      graph: context.graph,
      self: context.self,
      diameter: diameter(context.graph),
      data: trees,
      params,
      rng: context.rng,
      verifier: context.verifier
    })
    const auditParams = { algorithm: 'gbdt', ...params }
    return use<GbdtJobResult>({
      protocol: gbdtJobProtocol,
      state,
      params: auditParams,
      spec: { ...model },
      startFields: { kind: 'gbdt', peers: context.graph.names.length, rows: trees.rows, trees: params.trees, depth: params.depth },
      progress: (current) => {
        const position = jobPosition(current)
        return { job: proposal.id, kind: 'gbdt', state: 'running', phase: position.phase, round: position.round, jobRound: jobRound(current), trees: state.gbdt.trees }
      },
      finish: (result) => ({
        output: { kind: 'gbdt', trees: result, proposal, input: { rows: trees.rows, digest: treeDigest(trees) } },
        final: treeFinalRecord(result),
        fields: { kind: 'gbdt', rounds: result.rounds, trees: result.model.trees.length, ...(result.metrics === null ? {} : { auc: result.metrics.auc }) }
      })
    })
  }
}

/**
 * Descriptive statistics by masked sums: counts, means, SDs, quantiles, correlations, and with a binary
 * outcome WOE, IV and cross-tables, no count below the job's minimum published or derivable.
 */
const stats: JobKind = {
  name: 'stats',
  check: (proposal, data, context) => statsCheck(proposal, data, context),
  plan (proposal, data, context, use) {
    if (proposal.stats === undefined) throw new JobRefusedError('not a statistics job')
    const request = statsRequestOf(proposal.stats)
    const local = localStatsData(data.rows, request, data.schema)
    const params = createFitJobParams({ dropAfterRounds: 0 })
    const state = createStatsJobState({ job: proposal.id, graph: context.graph, self: context.self, diameter: diameter(context.graph), request, data: local, rng: context.rng, verifier: context.verifier })
    return use<StatsJobResult>({
      protocol: statsJobProtocol,
      state,
      params,
      spec: { kind: 'stats', ...proposal.stats },
      startFields: { kind: 'stats', peers: context.graph.names.length, rows: local.rows, features: request.features.length },
      progress: (current) => {
        const position = jobPosition(current)
        return { job: proposal.id, kind: 'stats', state: 'running', phase: position.phase, round: position.round, jobRound: jobRound(current) }
      },
      finish: (result) => ({
        output: { kind: 'stats', stats: result, own: ownSummary(request, local) },
        // the audit's final entry: no model, the job's size and rounds
        final: { terms: [], coefficients: [], standardErrors: [], standardizedCoefficients: [], logLikelihood: 0, rounds: result.rounds, converged: true, peers: result.stats.peers, rows: result.stats.rows, penalty: null, tolerance: 0, dropped: [], resultDigest: createHash('sha256').update(JSON.stringify(result.stats)).digest('hex') },
        fields: { kind: 'stats', rounds: result.rounds, rows: result.stats.rows }
      })
    })
  }
}

/** SHA-256 of a tree job's rows as it reads them: the features, then the columns, outcome and offset as float64. */
function treeDigest (data: TreeData): string {
  const hash = createHash('sha256')
  hash.update(`${JSON.stringify(data.features)}\n${data.rows}\n`)
  for (const column of [...data.columns, data.y, ...(data.offset === undefined ? [] : [data.offset])]) hash.update(new Uint8Array(column.buffer, column.byteOffset, data.rows * 8))
  return hash.digest('hex')
}

/** A tree job's final entry: no coefficients, the whole forest. */
function treeFinalRecord (result: GbdtJobResult): FinalRecord {
  return {
    terms: [],
    coefficients: [],
    standardErrors: [],
    standardizedCoefficients: [],
    logLikelihood: result.logLikelihood,
    rounds: result.rounds,
    converged: true,
    peers: result.peers,
    rows: result.rows,
    penalty: result.model.params.lambda,
    tolerance: 0,
    dropped: [],
    trees: gbdtModelToJson(result.model)
  }
}

const KINDS: Readonly<Record<JobKindName, JobKind>> = Object.freeze({ glm, forecast, gbdt, stats })

/** The kind of a proposal: a forecasting job when it carries a forecast, statistics when it carries stats, else the kind its model states (a regression by default). */
export function kindOf (proposal: JobProposal): JobKind {
  if (proposal.forecast !== undefined) return KINDS.forecast
  if (proposal.stats !== undefined) return KINDS.stats
  return proposal.model.kind === 'gbdt' ? KINDS.gbdt : KINDS.glm
}

