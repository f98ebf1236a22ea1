import { jointRiskGraph } from '../../consensus/protocols/joint-risk.ts'
import { buildDesign, termNames, type DataBlock, type FeatureSpec, type ModelSpec } from '../../learning/design.ts'
import { EpimeshError } from '../../errors.ts'
import type { Cell } from '../data/dataset.ts'
import { federationGraph, regionOf, type Federation, type ModelSpec as FederationModel } from '../federation.ts'
import { parseForecastProposal, regionSeries } from './forecast-proposal.ts'
import type { JobProposal } from './proposal.ts'

/**
 * What a region checks before it accepts a job: that its own data can take part (the model's columns,
 * its levels) and that its disclosure policy allows it. Each check gives a reason to decline, in words
 * an operator can act on, or null to accept.
 */

/** A job this region declined, or one another member declined. */
export class JobRefusedError extends EpimeshError {
  static override readonly name = 'JobRefusedError'
  constructor (message: string, options?: { cause?: unknown }) { super('JOB_REFUSED', message, options) }
}

/** DataSHIELD's default disclosure control: at least 3 cases of each outcome, parameters at most 0.33 x rows. */
export const DISCLOSURE = Object.freeze({ minimumPerOutcome: 3, maximumParameterRatio: 0.33 })

/** A region's records and series, read afresh from its store for every job. */
export interface JobData {
  rows: ReadonlyArray<Record<string, Cell>>
  series: ReadonlyArray<{ date: string, count: number, population?: number }>
  /** the regression models this region holds, by job: what a re-fit starts from */
  previous?: ReadonlyMap<string, PreviousModel>
}

/** A shared model a re-fit can start from: its terms and coefficients, and this region's own ADMM duals at its end. */
export interface PreviousModel {
  terms: readonly string[]
  coefficients: readonly number[]
  duals: ReadonlyArray<{ neighbour: string, values: readonly number[] }>
}

/** A re-fit's start, or a reason to decline: the previous model must be here, of the same terms. */
export function refitStart (proposal: JobProposal, data: JobData, terms: readonly string[]): PreviousModel | string | null {
  if (proposal.refit === undefined) return null
  if (proposal.forecast !== undefined) return 'a forecasting job cannot be a re-fit'
  const previous = data.previous?.get(proposal.refit)
  if (previous === undefined) return `this region holds no model of job ${proposal.refit} to re-fit from`
  if (previous.terms.length !== terms.length || previous.terms.some((term, index) => term !== terms[index])) return `the model of job ${proposal.refit} has other terms (${previous.terms.join(', ')}): a re-fit keeps the model's terms`
  return previous
}

/** What a check knows of the federation and of this peer. */
export interface CheckContext {
  federation: Federation
  /** this peer's id */
  peerId: string
  /** this region agrees to publish its risk score openly when a forecasting job lists it */
  publishRisk: boolean
}

const POSITIVE = new Set(['1', 'yes', 'true', 'y', 't', 'positive'])
const NEGATIVE = new Set(['0', 'no', 'false', 'n', 'f', 'negative'])

export function learningSpec (model: FederationModel): ModelSpec {
  const features: FeatureSpec[] = model.features.map((feature) => {
    if (feature.type !== 'categorical') return { name: feature.name, type: 'numeric' }
    if (feature.levels === undefined || feature.levels.length < 2) throw new JobRefusedError(`feature ${feature.name} is categorical but the job lists no levels; every peer must code it the same way`)
    return { name: feature.name, type: 'categorical', levels: feature.levels }
  })
  return { outcome: model.outcome, features }
}

/** The columns a model reads that this region's rows lack, as a reason to decline (null when all are there). */
export function missingColumns (rows: ReadonlyArray<Record<string, Cell>>, model: FederationModel): string | null {
  if (rows.length === 0) return 'this region\'s store holds no records'
  const columns = new Set<string>()
  for (const row of rows) for (const column in row) columns.add(column)
  const used = [model.outcome, ...model.features.map((feature) => feature.name)]
  const missing = used.filter((column) => !columns.has(column))
  if (missing.length === 0) return null
  const known = [...columns].slice(0, 20).map((column) => `"${column}"`).join(', ')
  return `no column ${missing.map((column) => `"${column}"`).join(', ')} in this region's records (columns: ${known}${columns.size > 20 ? ', ...' : ''})`
}

/** The peer's rows as a design block for the job's model: complete cases, outcome coded 0/1. */
export function localDesign (rows: ReadonlyArray<Record<string, Cell>>, model: FederationModel): { block: DataBlock, terms: string[], dropped: number } {
  const spec = learningSpec(model)
  const used = [model.outcome, ...model.features.map((feature) => feature.name)]
  const complete = rows.filter((row) => used.every((column) => row[column] !== null && row[column] !== undefined && row[column] !== ''))
  const coded = complete.map((row) => {
    const outcome = row[model.outcome]
    if (model.family !== 'binomial' || typeof outcome === 'number') return row
    const lower = String(outcome).toLowerCase()
    return { ...row, [model.outcome]: POSITIVE.has(lower) ? 1 : NEGATIVE.has(lower) ? 0 : Number.NaN }
  })
  const block = buildDesign(coded, spec, { outcome: model.family === 'binomial' ? 'binary' : 'count' })
  return { block, terms: termNames(spec), dropped: rows.length - complete.length }
}

/** A reason to decline, or null to accept. */
export function disclosureCheck (block: DataBlock, model: FederationModel): string | null {
  if (model.family === 'binomial') {
    let positives = 0
    for (let row = 0; row < block.rows; row++) positives += block.y[row] as number
    const negatives = block.rows - positives
    if (positives < DISCLOSURE.minimumPerOutcome || negatives < DISCLOSURE.minimumPerOutcome) {
      return `disclosure control: fewer than ${DISCLOSURE.minimumPerOutcome} cases of one outcome in this region`
    }
  }
  if (block.cols > DISCLOSURE.maximumParameterRatio * block.rows) {
    return `disclosure control: ${block.cols} parameters for ${block.rows} rows (at most ${DISCLOSURE.maximumParameterRatio} x rows)`
  }
  return null
}

/** A reason to decline a regression job, or null to accept: the model's columns, then the disclosure policy. */
export function fitCheck (proposal: JobProposal, data: JobData): string | null {
  const missing = missingColumns(data.rows, proposal.model)
  if (missing !== null) return missing
  try {
    const { block, terms } = localDesign(data.rows, proposal.model)
    const refit = refitStart(proposal, data, terms)
    if (typeof refit === 'string') return refit
    return disclosureCheck(block, proposal.model)
  } catch (error) {
    return `cannot build the model from this region's data: ${(error as Error).message}`
  }
}

/** A reason to decline a forecasting job, or null to accept. */
export function forecastCheck (proposal: JobProposal, data: JobData, context: CheckContext): string | null {
  const { federation } = context
  let plan
  try {
    plan = parseForecastProposal(proposal.forecast)
  } catch (error) {
    return (error as Error).message
  }
  const series = regionSeries(plan, data.series)
  if (typeof series === 'string') return series
  const graph = federationGraph(federation)
  // The joint risk's masked sum hides a region's h only from a peer that lacks one of its masks: a
  // region with a single neighbour would show its h to that neighbour.
  const augmented = jointRiskGraph(graph)
  const exposed = graph.names.filter((_, node) => (graph.neighbours[node] ?? []).length < 2 || (augmented.neighbours[node] ?? []).length !== (graph.neighbours[node] ?? []).length)
  if (exposed.length > 0) {
    const regions = exposed.map((peer) => regionOf(federation, peer))
    return `the joint risk needs every region to have at least two graph neighbours (${regions.join(', ')} ${regions.length === 1 ? 'has' : 'have'} one): add an edge to the federation's graph, or set graph.maskPartners to true in the federation file`
  }
  const me = federation.members.find((member) => member.peerId === context.peerId)?.region
  const known = new Set(federation.members.map((member) => member.region))
  const unknown = plan.proposal.openRegions.filter((region) => !known.has(region))
  if (unknown.length > 0) return `the job lists regions that are not members as publishing their risk: ${unknown.join(', ')}`
  if (me !== undefined && plan.proposal.openRegions.includes(me) && !context.publishRisk) return 'the job lists this region as publishing its risk score openly, and this region does not agree to (start --publish-risk)'
  if (plan.proposal.openRegions.length === known.size - 1) return 'the job lists all regions but one as publishing their risk: the joint risk would give away the last one\'s'
  return null
}
