import { STATS_LIMITS, validateStatsRequest, StatsRequestError, type StatsFeature, type StatsRequest } from '../../learning/statistics.ts'
import { cut, echo } from '../../store/errors.ts'
import { binaryOutcomeMapping, DatasetError, type Cell, type Dataset } from './dataset.ts'

/**
 * A statistics request from a data set, as `simulate --stats` and the library make it: the features
 * named (default every column but the outcome), numeric when all their values are numbers unless named
 * among the factors, factors with their sorted levels; a text outcome read as 0/1 as a fit reads it.
 * Rows with missing values are kept: missing values are counted, not dropped.
 */
export function statsRequestFromDataset (dataset: Dataset, options: { features?: string[], factors?: string[], outcome?: string, bins: number, minimum: number }): { request: StatsRequest, rows: Array<Record<string, Cell>> } {
  const known = new Set(dataset.columns)
  const requireColumn = (name: string, role: string): void => {
    if (!known.has(name)) throw new DatasetError(`${dataset.path}: no column ${echo(name)} for the ${role} (columns: ${cut(dataset.columns.join(', '))})`)
  }
  const outcome = options.outcome ?? null
  if (outcome !== null) requireColumn(outcome, 'outcome')
  const names = options.features ?? dataset.columns.filter((name) => name !== outcome)
  for (const name of names) requireColumn(name, 'features')
  for (const name of options.factors ?? []) requireColumn(name, 'factors')
  const factors = new Set(options.factors ?? [])
  const features = names.map((name): StatsFeature => {
    if (!factors.has(name) && dataset.numericColumns.has(name)) return { name, type: 'numeric' }
    const levels = [...new Set(dataset.rows.map((row) => row[name]).filter((value) => value !== null && value !== undefined).map(String))].sort()
    if (levels.length > STATS_LIMITS.levels) throw new DatasetError(`${dataset.path}: column ${echo(name)} has ${levels.length} distinct values; a factor may have at most ${STATS_LIMITS.levels}`)
    return { name, type: 'categorical', levels }
  })
  let rows = dataset.rows
  if (outcome !== null) {
    const mapping = dataset.numericColumns.has(outcome) ? null : binaryOutcomeMapping(dataset, outcome, dataset.rows)
    rows = dataset.rows.map((row, index) => {
      const value = row[outcome]
      if (value === null || value === undefined) return row
      const coded = mapping === null ? value : mapping[String(value)]
      if (coded !== 0 && coded !== 1) throw new DatasetError(`${dataset.path}, line ${dataset.lines[index]}: outcome ${echo(outcome)} is ${echo(String(value))}; statistics need a binary outcome (0/1)`, { line: dataset.lines[index] as number })
      return { ...row, [outcome]: coded }
    })
  }
  // factors read their cells as text
  rows = rows.map((row) => {
    const copy: Record<string, Cell> = { ...row }
    for (const feature of features) if (feature.type === 'categorical' && copy[feature.name] !== null && copy[feature.name] !== undefined) copy[feature.name] = String(copy[feature.name])
    return copy
  })
  try {
    return { request: validateStatsRequest({ features, outcome, bins: options.bins, minimum: options.minimum }), rows }
  } catch (error) {
    if (error instanceof StatsRequestError) throw new DatasetError(`${dataset.path}: ${error.message}`, { cause: error })
    throw error
  }
}
