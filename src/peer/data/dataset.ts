import { readFile } from 'node:fs/promises'
import { parse } from 'csv-parse/sync'
import type { FeatureSpec, ModelSpec } from '../../learning/design.ts'
import { EpimeshError } from '../../errors.ts'
import { ByteScreen } from '../../store/csv.ts'
import { cut, echo } from '../../store/errors.ts'
import { looksNumeric, parseDecimal, trimCell } from '../../store/values.ts'

/**
 * A CSV data set read whole into memory, for the researcher's commands (fit, simulate, demo). A
 * peer's own records go through the store's validated import instead.
 */
export type Cell = number | string | null

/** A data file that cannot be used as asked; unusable input, exit code 2. */
export class DatasetError extends EpimeshError {
  static override readonly name = 'DatasetError'
  readonly exitCode = 2
  /** the line of the file at fault, when there is one */
  readonly line: number | undefined
  constructor (message: string, options?: { cause?: unknown, line?: number }) {
    super('DATASET_INVALID', message, options)
    this.line = options?.line
  }
}

export interface Dataset {
  path: string
  columns: string[]
  rows: Array<Record<string, Cell>>
  /** the physical line of each row in the file, for error messages */
  lines: number[]
  /** columns whose every non-missing value is a number */
  numericColumns: Set<string>
}

const MISSING = new Set(['', 'NA', 'NaN', 'null', 'NULL', '.'])

/**
 * Reads a CSV data set. The file must be clean UTF-8 text with consistent line endings (the same
 * screen as an import, without its line-length bound); a number is written in decimal (an optional
 * sign, digits, optionally a point and digits: see src/store/values.ts), so a column whose values
 * all look numeric but include `0x1F`, `1e1`, `Infinity` or `1,234` is refused, naming the line.
 */
export async function readDataset (path: string): Promise<Dataset> {
  let bytes: Buffer
  try {
    bytes = await readFile(path)
  } catch (error) {
    throw new DatasetError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error })
  }
  const screen = new ByteScreen(Number.POSITIVE_INFINITY)
  const problem = screen.push(bytes) ?? screen.end()
  if (problem !== null) throw new DatasetError(`${path}, line ${problem.line}: ${problem.reason}`, { line: problem.line })
  const text = bytes.toString('utf8')
  let records: Array<{ record: string[], info: { lines: number } }>
  try {
    records = parse(text, { bom: true, info: true, relax_column_count: false, skip_empty_lines: true }) as unknown as Array<{ record: string[], info: { lines: number } }>
  } catch (error) {
    const lines = (error as { lines?: number }).lines
    throw new DatasetError(`${path}${lines === undefined ? '' : `, line ${lines}`}: ${cut((error as Error).message)}`, { cause: error, ...(lines === undefined ? {} : { line: lines }) })
  }
  const header = records[0]?.record
  if (header === undefined) throw new DatasetError(`${path}: the file is empty`)
  const columns = header.map(trimCell)
  const unnamed = columns.indexOf('')
  if (unnamed !== -1) throw new DatasetError(`${path}, line 1: column ${unnamed + 1} has no name`, { line: 1 })
  const duplicate = columns.find((name, index) => columns.indexOf(name) !== index)
  if (duplicate !== undefined) throw new DatasetError(`${path}, line 1: column ${echo(duplicate)} appears twice`, { line: 1 })
  const raw = records.slice(1)
  // a column is numeric when all its values look like numbers; then every one must be a decimal number
  const numericColumns = new Set(columns.filter((_, index) => raw.every(({ record }) => {
    const value = trimCell(record[index] as string)
    return MISSING.has(value) || looksNumeric(value)
  })))
  for (const { record, info } of raw) {
    record.forEach((value, index) => {
      const column = columns[index] as string
      const trimmed = trimCell(value)
      if (!numericColumns.has(column) || MISSING.has(trimmed)) return
      const parsed = parseDecimal(trimmed)
      if (!('value' in parsed)) throw new DatasetError(`${path}, line ${info.lines}, column ${echo(column)}: ${echo(trimmed)} ${parsed.reason}`, { line: info.lines })
    })
  }
  const rows = raw.map(({ record }) => {
    const row: Record<string, Cell> = {}
    record.forEach((value, index) => {
      const column = columns[index] as string
      const trimmed = trimCell(value)
      row[column] = MISSING.has(trimmed) ? null : numericColumns.has(column) ? Number(trimmed) : trimmed
    })
    return row
  })
  return { path, columns, rows, lines: raw.map(({ info }) => info.lines), numericColumns }
}

/**
 * Rows already in memory, as a data set (for the library's callers). A missing value is null,
 * undefined or NaN; a column is numeric when each of its other values is a finite number. `lines`
 * number the rows from 1, so that a message's "line N" is the Nth row.
 */
export function datasetFromRows (rows: ReadonlyArray<Readonly<Record<string, Cell | undefined>>>, name = 'rows'): Dataset {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))]
  const cells = rows.map((row) => {
    const cell: Record<string, Cell> = {}
    for (const column of columns) {
      const value = row[column]
      cell[column] = value === undefined || (typeof value === 'number' && Number.isNaN(value)) ? null : value
    }
    return cell
  })
  const numericColumns = new Set(columns.filter((column) => cells.every((row) => row[column] === null || (typeof row[column] === 'number' && Number.isFinite(row[column])))))
  return { path: name, columns, rows: cells, lines: cells.map((_, index) => index + 1), numericColumns }
}

const POSITIVE = new Set(['1', 'yes', 'true', 'y', 't', 'positive', 'case', 'dead', 'died'])
const NEGATIVE = new Set(['0', 'no', 'false', 'n', 'f', 'negative', 'control', 'alive', 'survived'])

export interface PreparedModel {
  spec: ModelSpec
  rows: Array<Record<string, Cell>>
  /** row numbers (0-based, in the data set) of the rows kept */
  kept: number[]
  /** rows dropped for a missing value in a used column, as R's na.omit does */
  dropped: number
  /** how a textual binary outcome was read, e.g. { Yes: 1, No: 0 } */
  outcomeMapping: Record<string, number> | null
}

/**
 * How a text outcome's two labels read as 0 and 1: yes/no, case/control, dead/alive and the like, or
 * else, for two other labels, the second in sorted order is the event (as R's glm treats a factor).
 */
export function binaryOutcomeMapping (dataset: Dataset, outcome: string, rows: ReadonlyArray<Record<string, Cell>>): Record<string, number> {
  const levels = [...new Set(rows.map((row) => row[outcome]).filter((value) => value !== null && value !== undefined).map(String))].sort()
  const mapping: Record<string, number> = {}
  for (const level of levels) {
    const lower = level.toLowerCase()
    if (POSITIVE.has(lower)) mapping[level] = 1
    else if (NEGATIVE.has(lower)) mapping[level] = 0
  }
  const unmapped = levels.filter((level) => !(level in mapping))
  if (unmapped.length === 0) return mapping
  if (levels.length !== 2) throw new DatasetError(`${dataset.path}: outcome ${echo(outcome)} has values ${cut(levels.join(', '))}; a binary outcome needs two`)
  return { [levels[0] as string]: 0, [levels[1] as string]: 1 }
}

/**
 * Chooses the model's columns and types from a data set: features default to every other column;
 * text columns and those named in `factors` become categorical with sorted levels (the first is the
 * reference, as R's factor() and treatment contrasts); rows with a missing value in a used column are
 * dropped and counted.
 */
export function prepareModel (dataset: Dataset, options: { outcome: string, features?: string[], factors?: string[], exclude?: string[], family: 'binomial' | 'poisson', offset?: string }): PreparedModel {
  const { outcome } = options
  const known = new Set(dataset.columns)
  const requireColumn = (name: string, role: string): void => {
    if (!known.has(name)) throw new DatasetError(`${dataset.path}: no column ${echo(name)} for the ${role} (columns: ${cut(dataset.columns.join(', '))})`)
  }
  requireColumn(outcome, 'outcome')
  if (options.offset !== undefined) requireColumn(options.offset, 'offset')
  const excluded = new Set([outcome, ...(options.exclude ?? []), ...(options.offset === undefined ? [] : [options.offset])])
  const featureNames = options.features ?? dataset.columns.filter((name) => !excluded.has(name))
  for (const name of featureNames) requireColumn(name, 'features')
  for (const name of options.factors ?? []) requireColumn(name, 'factors')
  const used = [outcome, ...featureNames, ...(options.offset === undefined ? [] : [options.offset])]
  const kept: number[] = []
  dataset.rows.forEach((row, index) => {
    if (used.every((name) => row[name] !== null && row[name] !== undefined)) kept.push(index)
  })
  const rows = kept.map((index) => ({ ...(dataset.rows[index] as Record<string, Cell>) }))
  if (rows.length === 0) throw new DatasetError(`${dataset.path}: no complete rows for ${cut(used.join(', '))}`)

  let outcomeMapping: Record<string, number> | null = null
  if (options.family === 'binomial' && !dataset.numericColumns.has(outcome)) {
    outcomeMapping = binaryOutcomeMapping(dataset, outcome, rows)
    for (const row of rows) row[outcome] = outcomeMapping[String(row[outcome])] as number
  }

  const factors = new Set(options.factors ?? [])
  const features: FeatureSpec[] = featureNames.map((name) => {
    if (!factors.has(name) && dataset.numericColumns.has(name)) return { name, type: 'numeric' }
    const levels = [...new Set(rows.map((row) => String(row[name])))].sort()
    for (const row of rows) row[name] = String(row[name])
    return { name, type: 'categorical', levels }
  })
  const spec: ModelSpec = { outcome, features, ...(options.offset === undefined ? {} : { offset: options.offset }) }
  return { spec, rows, kept, dropped: dataset.rows.length - rows.length, outcomeMapping }
}
