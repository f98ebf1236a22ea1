import { jointRiskGraph } from '../../consensus/protocols/joint-risk.ts'
import { buildDesign, termNames, type DataBlock, type FeatureSpec, type ModelSpec } from '../../learning/design.ts'
import { buildTreeData, type TreeData, type TreeFeature } from '../../learning/gbdt.ts'
import { EpimeshError } from '../../errors.ts'
import { buildStatsData, StatsRequestError, type StatsData, type StatsRequest } from '../../learning/statistics.ts'
import { isInternalColumn, type CaseSchema } from '../../store/schema.ts'
import type { Cell } from '../data/dataset.ts'
import { federationGraph, regionOf, type Federation, type ModelSpec as FederationModel } from '../federation.ts'
import { parseForecastProposal, regionSeries } from './forecast-proposal.ts'
import type { JobProposal } from './proposal.ts'
import { statsRequestOf, type StatsProposal } from './stats-proposal.ts'

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

/**
 * DataSHIELD's default disclosure control: at least 3 cases of each outcome, parameters at most 0.33 x
 * rows; and for trees, a split only where each child holds at least 3 rows of the federation (its table
 * cell minimum, nfilter.tab), so that no leaf's value describes fewer people.
 */
export const DISCLOSURE = Object.freeze({ minimumPerOutcome: 3, maximumParameterRatio: 0.33, minimumNodeRows: 3 })

/** A region's records and series, read afresh from its store for every job. */
export interface JobData {
  rows: ReadonlyArray<Record<string, Cell>>
  series: ReadonlyArray<{ date: string, count: number, population?: number }>
  /** the schema the region's records were imported under (null for records read from a file) */
  schema?: CaseSchema | null
  /** the regression and forecasting models this region holds, by job: what a re-fit or a forecast's refresh starts from */
  previous?: ReadonlyMap<string, PreviousModel>
}

/** A shared model a re-fit can start from: its terms and coefficients, and this region's own ADMM duals at its end. */
export interface PreviousModel {
  /** a regression's model, or a forecasting job's shared model */
  kind: 'glm' | 'forecast'
  terms: readonly string[]
  coefficients: readonly number[]
  duals: ReadonlyArray<{ neighbour: string, values: readonly number[] }>
}

/** A re-fit's start, or a reason to decline: the previous model must be here, of the same terms. */
export function refitStart (proposal: JobProposal, data: JobData, terms: readonly string[]): PreviousModel | string | null {
  if (proposal.refit === undefined) return null
  if (proposal.forecast !== undefined) return 'a forecasting job cannot be a re-fit'
  const previous = data.previous?.get(proposal.refit)
  if (previous === undefined || previous.kind !== 'glm') return `this region holds no model of job ${proposal.refit} to re-fit from`
  if (previous.terms.length !== terms.length || previous.terms.some((term, index) => term !== terms[index])) return `the model of job ${proposal.refit} has other terms (${previous.terms.join(', ')}): a re-fit keeps the model's terms`
  return previous
}

/**
 * A forecast's refresh start (a forecasting job that names the job it refreshes), or a reason to
 * decline: every region starts from the same shared parameters, so every region must hold them.
 */
export function refreshStart (proposal: JobProposal, data: JobData): PreviousModel | string | null {
  if (proposal.refit === undefined) return null
  const previous = data.previous?.get(proposal.refit)
  if (previous === undefined || previous.kind !== 'forecast') return `this region holds no forecast of job ${proposal.refit} to refresh`
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
    if (feature.levels === undefined || feature.levels.length < 2) throw new JobRefusedError(`feature ${feature.name} is a category feature but the job lists no levels; every peer must code it the same way`)
    return { name: feature.name, type: 'categorical', levels: feature.levels }
  })
  return { outcome: model.outcome, features }
}

/** The columns a model reads that this region's rows lack, as a reason to decline (null when all are there). */
export function missingColumns (rows: ReadonlyArray<Record<string, Cell>>, model: FederationModel): string | null {
  if (rows.length === 0) return 'this region\'s store holds no records'
  const columns = new Set<string>()
  // the store's own fields (the hashed record id) are no column of the region's: neither listed nor usable
  for (const row of rows) for (const column in row) if (!isInternalColumn(column)) columns.add(column)
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
  const coded = complete.map((row) => codeOutcome(row, model))
  const block = buildDesign(coded, spec, { outcome: model.family === 'binomial' ? 'binary' : 'count' })
  return { block, terms: termNames(spec), dropped: rows.length - complete.length }
}

/** The outcome as 0/1 for a binary model (yes/no, true/false, positive/negative in any case), NaN when it is none of those. */
function codeOutcome (row: Record<string, Cell>, model: FederationModel): Record<string, Cell> {
  const outcome = row[model.outcome]
  if (model.family !== 'binomial' || typeof outcome === 'number') return row
  const lower = String(outcome).toLowerCase()
  return { ...row, [model.outcome]: POSITIVE.has(lower) ? 1 : NEGATIVE.has(lower) ? 0 : Number.NaN }
}

/**
 * The peer's rows for a tree job: every row with an outcome (trees take missing feature values as they
 * are, each split sending them the way that gains most), factors by the job's levels.
 */
export function localTreeData (rows: ReadonlyArray<Record<string, Cell>>, model: FederationModel): { data: TreeData, dropped: number } {
  const features: TreeFeature[] = learningSpec(model).features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' })
  const labelled = rows.filter((row) => row[model.outcome] !== null && row[model.outcome] !== undefined && row[model.outcome] !== '')
  const data = buildTreeData(labelled.map((row) => codeOutcome(row, model)), model.outcome, features, { family: model.family })
  return { data, dropped: rows.length - labelled.length }
}

/** A reason to decline a tree job, or null to accept: the model's columns, then at least 3 cases of each outcome. */
export function treeCheck (proposal: JobProposal, data: JobData): string | null {
  const model = proposal.model
  const missing = missingColumns(data.rows, model)
  if (missing !== null) return missing
  let trees: TreeData
  try {
    trees = localTreeData(data.rows, model).data
  } catch (error) {
    return `cannot build the trees' data from this region's records: ${(error as Error).message}`
  }
  if (model.family === 'binomial') {
    let positives = 0
    for (let row = 0; row < trees.rows; row++) positives += trees.y[row] as number
    if (positives < DISCLOSURE.minimumPerOutcome || trees.rows - positives < DISCLOSURE.minimumPerOutcome) {
      return `disclosure control: fewer than ${DISCLOSURE.minimumPerOutcome} cases of one outcome in this region`
    }
  }
  return null
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
  const refresh = refreshStart(proposal, data)
  if (typeof refresh === 'string') return refresh
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

const list = (values: readonly string[]): string => values.length === 0 ? '(none)' : values.map((value) => JSON.stringify(value)).join(', ')

/**
 * Whether this region's schema lines up with a statistics proposal, which carries the types and factor
 * levels of the schema of the region that proposed it: the same type for every column, and for a
 * factor the same levels. A reason naming both regions and the column, or null.
 */
export function schemaMismatch (stats: StatsProposal, schema: CaseSchema, region: string): string | null {
  for (const feature of stats.features) {
    const rule = schema.columns[feature.name]
    const theirs = `${stats.schemaOf}'s schema (the proposal's)`
    if (rule === undefined || 'action' in rule) return `column "${feature.name}": ${region}'s schema has no such column${rule === undefined ? '' : ' (it is dropped or hashed at import)'}; ${theirs} has it as ${feature.type}`
    if (feature.type === 'numeric' && rule.type !== 'number') return `column "${feature.name}": ${region}'s schema has it as ${rule.type}, ${theirs} as a number`
    if (feature.type === 'categorical') {
      if (rule.type !== 'category') return `column "${feature.name}": ${region}'s schema has it as ${rule.type}, ${theirs} as a category with levels ${list(feature.levels)}`
      const mine = [...rule.levels].sort()
      const proposed = [...feature.levels].sort()
      if (mine.length !== proposed.length || mine.some((level, index) => level !== proposed[index])) {
        const onlyMine = mine.filter((level) => !proposed.includes(level))
        const onlyTheirs = proposed.filter((level) => !mine.includes(level))
        return `column "${feature.name}": the factor levels differ between ${region} (${list(mine)}) and ${stats.schemaOf} (${list(proposed)})${onlyMine.length > 0 ? `; only ${region} has ${list(onlyMine)}` : ''}${onlyTheirs.length > 0 ? `; only ${stats.schemaOf} has ${list(onlyTheirs)}` : ''}: recode them alike (schema levels) before computing pooled statistics`
      }
    }
  }
  return null
}

/** The region's rows as the statistics job reads them: the outcome coded by the schema's positive level when it names one. */
export function localStatsData (rows: ReadonlyArray<Record<string, Cell>>, request: StatsRequest, schema: CaseSchema | null | undefined): StatsData {
  const outcome = request.outcome
  const positive = outcome !== null && schema?.outcome === outcome ? schema.positive : undefined
  const coded = positive === undefined || outcome === null
    ? rows
    : rows.map((row) => {
      const value = row[outcome]
      return value === null || value === undefined || value === '' ? row : { ...row, [outcome]: String(value) === positive ? 1 : 0 }
    })
  return buildStatsData(coded, request)
}

/** A reason to decline a statistics job, or null to accept: the schema's agreement, the columns, the values, the disclosure policy. */
export function statsCheck (proposal: JobProposal, data: JobData, context: CheckContext): string | null {
  const stats = proposal.stats
  if (stats === undefined) return 'not a statistics job'
  const region = regionOf(context.federation, context.peerId)
  if (stats.minimum < DISCLOSURE.minimumPerOutcome) return `disclosure control: the job's minimum cell count ${stats.minimum} is below this region's ${DISCLOSURE.minimumPerOutcome}`
  if (data.schema !== null && data.schema !== undefined) {
    const mismatch = schemaMismatch(stats, data.schema, region)
    if (mismatch !== null) return mismatch
  }
  if (data.rows.length === 0) return 'this region\'s store holds no records'
  const columns = new Set<string>()
  for (const row of data.rows) for (const column in row) if (!isInternalColumn(column)) columns.add(column)
  const used = [...stats.features.map((feature) => feature.name), ...(stats.outcome === null ? [] : [stats.outcome])]
  const absent = used.filter((column) => !columns.has(column))
  if (absent.length > 0) return `no column ${list(absent)} in ${region}'s records`
  try {
    localStatsData(data.rows, statsRequestOf(stats), data.schema)
  } catch (error) {
    if (error instanceof StatsRequestError) return `${region}'s records: ${error.message}`
    throw error
  }
  return null
}
