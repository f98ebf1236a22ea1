import { randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { EpimeshError } from '../errors.ts'
import { MAX_COLUMNS, readCsv, readCsvChunks } from './csv.ts'
import { cut, echo, FreeTextRefusedError, IdentifierRefusedError, ImportInvalidError, SchemaMismatchError, StoreIoError, storageFailure, type IdentifierFinding, type RowProblem } from './errors.ts'
import { identifierByName, identifierInValue } from './identifiers.ts'
import { IdFilter } from './id-filter.ts'
import { foldSpelling, inferSchema, RECORD_ID_COLUMN, type CaseSchema, type ColumnRule } from './schema.ts'
import type { AbstractBatchOperation } from 'abstract-level'
import { hashRecordId, layoutOf, StoreLayout, type CaseCell, type CaseChunk, type Database, type ImportRecord, type SeriesPoint } from './layout.ts'
import type { Store } from './store.ts'
import { EARLIEST_DATE, isIsoDate, isMissing, latestRecordDate, LATEST_DATE, MAX_INTEGER_DIGITS, parseDate, parseDecimal, textProblem, trimCell } from './values.ts'

/**
 * Validated, all-or-nothing import of case records from a CSV file, streamed. The file must be clean
 * UTF-8 CSV (see csv.ts) with a header of distinct names; every row is checked against the schema
 * (the store's own, or the one given for its first import, or one inferred from the file) with the
 * strict value rules of values.ts; every problem is reported with file, line, column, kind and
 * reason. Direct identifiers, found by column name or by content, are refused unless the schema
 * drops or hashes them; so is, under an inferred schema, a free-text column. Record ids are stored
 * only as salted hashes; a record id already in the store is reported as a duplicate and not stored
 * again. Rows go in under a fresh import id and become visible in one atomic write at the end, or never.
 */
export interface ImportOptions {
  file: string
  schema?: CaseSchema
  /** problems reported before "... and N more" */
  problemLimit?: number
  /** rows per write batch (the chunks of the pipeline; at most three are held at a time) */
  batchRows?: number
  /** called every `batchRows` rows */
  onProgress?: (rows: number) => void
  /** today, for refusing record dates in the future (default: the clock) */
  now?: Date
}

export interface ImportReport {
  importId: string
  rows: number
  duplicates: number
  schema: CaseSchema
  inferred: boolean
  droppedColumns: string[]
  hashedColumns: string[]
  /** what the import changed to fit the schema: per column, the values written another way (an alias, a date format) */
  normalised: Normalised[]
}

/** Values of one column an import wrote as the schema has them: each spelling read and what it became, with counts. */
export interface Normalised {
  column: string
  kind: 'level' | 'date'
  count: number
  /** for levels: the schema's spellings read and their level (for dates only the format: a date may be a person's) */
  changes: Array<{ from: string, to: string, count: number }>
  format?: string
}

const INFER_SAMPLE = 1000

/**
 * A filter of the record ids already stored, with room for the file's (estimated from its size and
 * the sample's lines), or null when the file is small beside the store: reading every stored id to
 * fill the filter would then cost more than looking each of the file's ids up.
 */
async function idFilterFor (layout: StoreLayout, committed: Map<string, ImportRecord>, file: string, sample: Sample): Promise<IdFilter | null> {
  let stored = 0
  for (const record of committed.values()) if (record.kind === 'cases') stored += record.rows
  const size = await stat(file).then((info) => info.size, () => 0)
  const sampleBytes = sample.rows.reduce((total, fields) => total + fields.reduce((length, field) => length + field.length + 1, 0), 0)
  const fileRows = Math.ceil(size / Math.max(1, sampleBytes / sample.rows.length))
  if (fileRows * 10 < stored) return null
  const filter = new IdFilter(stored + fileRows)
  for await (const key of layout.idOwners.keys()) filter.add(key)
  for await (const key of layout.ids.keys()) filter.add(key)
  return filter
}

/**
 * Problems collected up to a limit, the rest counted. The ones kept are the first by line, whatever
 * the order they are found in (a duplicate record id is found when its chunk is checked, after the
 * rows that follow it).
 */
export class Problems {
  readonly list: RowProblem[] = []
  more = 0
  private readonly file: string
  private readonly limit: number
  constructor (file: string, limit: number) {
    this.file = file
    this.limit = limit
  }

  /** The problem as kept (its reason may be completed later), or null when it only counts. */
  add (line: number, column: string, kind: string, reason: string): RowProblem | null {
    const problem = { file: this.file, line, column: cut(column), kind, reason }
    const last = this.list.at(-1)
    if (last === undefined || last.line <= line) {
      if (this.list.length < this.limit) {
        this.list.push(problem)
        return problem
      }
      this.more++
      return null
    }
    // found out of order: in its place by line, after those of the same line
    let at = this.list.length - 1
    while (at > 0 && (this.list[at - 1] as RowProblem).line > line) at--
    this.list.splice(at, 0, problem)
    if (this.list.length > this.limit) {
      this.list.pop()
      this.more++
    }
    return this.list.includes(problem) ? problem : null
  }

  get count (): number { return this.list.length + this.more }

  throwIfAny (): void {
    if (this.count > 0) throw new ImportInvalidError(this.list, this.more)
  }
}

/** The header's names (trimmed): none empty, none twice, no odd character, at most MAX_COLUMNS. */
export function checkHeaderNames (file: string, header: string[], line: number): void {
  const problems = new Problems(file, 100)
  if (header.length > MAX_COLUMNS) problems.add(line, '(header)', 'TOO_MANY_COLUMNS', `${header.length} columns; at most ${MAX_COLUMNS}`)
  const seen = new Map<string, number>()
  header.forEach((name, index) => {
    if (name === '') problems.add(line, `(column ${index + 1})`, 'HEADER_EMPTY', 'a column without a name')
    const odd = name === '' ? null : textProblem(name)
    if (odd !== null) problems.add(line, name, odd.kind, `the column name ${echo(name)} ${odd.reason}`)
    const earlier = seen.get(name)
    if (earlier !== undefined && name !== '') problems.add(line, name, 'HEADER_DUPLICATE', `the column name appears twice (columns ${earlier + 1} and ${index + 1})`)
    else seen.set(name, index)
  })
  problems.throwIfAny()
}

interface Sample {
  header: string[]
  headerLine: number
  rows: string[][]
  lines: number[]
}

async function readSample (file: string): Promise<Sample> {
  let header: string[] | null = null
  let headerLine = 1
  const rows: string[][] = []
  const lines: number[] = []
  for await (const { fields, line } of readCsv(file)) {
    if (header === null) {
      header = fields.map(trimCell)
      headerLine = line
      checkHeaderNames(file, header, line)
      continue
    }
    rows.push(fields)
    lines.push(line)
    if (rows.length >= INFER_SAMPLE) break
  }
  if (header === null) throw new ImportInvalidError([{ file, line: 1, column: '(header)', kind: 'NO_RECORDS', reason: 'the file is empty' }], 0)
  if (rows.length === 0) throw new ImportInvalidError([{ file, line: headerLine + 1, column: '(row)', kind: 'NO_RECORDS', reason: 'a header and no records' }], 0)
  return { header, headerLine, rows, lines }
}

export const isAction = (rule: ColumnRule | undefined): rule is { action: 'drop' | 'hash' } => rule !== undefined && 'action' in rule

/** Columns named like direct identifiers that the schema neither drops nor hashes (the record id is hashed). */
export function identifiersByName (header: string[], schema: { id: string, columns: CaseSchema['columns'] } | null, id: string): IdentifierFinding[] {
  return header
    .filter((column) => column !== id && !isAction(schema?.columns[column]) && identifierByName(column))
    .map((column) => ({ column: cut(column), kind: 'COLUMN_NAME' as const }))
}

/** Before a schema is inferred: the sample's columns whose values are direct identifiers. */
function identifiersInSample (sample: Sample, id: string): IdentifierFinding[] {
  const findings: IdentifierFinding[] = []
  sample.header.forEach((column, index) => {
    if (column === id) return
    for (const [row, fields] of sample.rows.entries()) {
      const kind = identifierInValue(fields[index] ?? '')
      if (kind !== null) {
        findings.push({ column: cut(column), kind, line: sample.lines[row] as number })
        return
      }
    }
  })
  return findings
}

/** The header against the schema: the id column, required columns, no column the schema does not know. */
function checkHeader (file: string, sample: Sample, schema: CaseSchema): void {
  const { header, headerLine: line } = sample
  const problems = new Problems(file, 100)
  if (!header.includes(schema.id)) problems.add(line, schema.id, 'COLUMN_MISSING', 'the record id column is missing')
  for (const [column, rule] of Object.entries(schema.columns)) {
    if (column !== schema.id && !isAction(rule) && rule.required === true && !header.includes(column)) problems.add(line, column, 'COLUMN_MISSING', 'a required column is missing')
  }
  for (const column of header) {
    if (column !== schema.id && !(column in schema.columns)) problems.add(line, column, 'COLUMN_UNKNOWN', 'not in the schema (declare it, or drop it with "action": "drop"; change a store\'s schema deliberately with epimesh schema)')
  }
  problems.throwIfAny()
  const identifiers = identifiersByName(header, schema, schema.id)
  if (identifiers.length > 0) throw new IdentifierRefusedError(file, identifiers)
}

type CellResult = { value: number | string | null, normalised?: { from: string, to: string } } | { kind: string, reason: string }

/** A date written in `format` (YYYY, MM or M, DD or D, separators) as YYYY-MM-DD, or null when it does not fit. */
export function dateFromFormat (text: string, format: string): string | null {
  const tokens = format.match(/YYYY|MM|M|DD|D|./g) ?? []
  const pattern = tokens.map((token) => token === 'YYYY' ? '(?<year>\\d{4})' : token === 'MM' ? '(?<month>\\d{2})' : token === 'M' ? '(?<month>\\d{1,2})' : token === 'DD' ? '(?<day>\\d{2})' : token === 'D' ? '(?<day>\\d{1,2})' : token.replace(/[.\\/-]/g, (character) => `\\${character}`)).join('')
  const groups = new RegExp(`^${pattern}$`).exec(text)?.groups
  if (groups === undefined) return null
  return `${groups.year as string}-${(groups.month as string).padStart(2, '0')}-${(groups.day as string).padStart(2, '0')}`
}

export function validateCell (rule: Exclude<ColumnRule, { action: string }>, text: string, latest: string): CellResult {
  switch (rule.type) {
    case 'number': {
      const parsed = parseDecimal(text)
      if (!('value' in parsed)) return { kind: parsed.kind, reason: `${echo(text)} ${parsed.reason}` }
      if (rule.min !== undefined && parsed.value < rule.min) return { kind: 'OUT_OF_RANGE', reason: `${parsed.value} is below the minimum ${rule.min}` }
      if (rule.max !== undefined && parsed.value > rule.max) return { kind: 'OUT_OF_RANGE', reason: `${parsed.value} is above the maximum ${rule.max}` }
      return parsed
    }
    case 'category': {
      const problem = textProblem(text)
      if (problem !== null) return { kind: problem.kind, reason: `${echo(text)} ${problem.reason}` }
      if (rule.levels.includes(text)) return { value: text }
      const level = aliasOf(rule, text)
      if (level !== undefined) return { value: level, normalised: { from: text, to: level } }
      return { kind: 'NOT_A_LEVEL', reason: `${echo(text)} is not one of ${cut(rule.levels.join(', '))}${rule.aliases === undefined ? '' : ' nor an alias of one'}` }
    }
    case 'date': {
      if (rule.format !== undefined && !(rule.format === 'YYYY-MM-DD')) {
        const iso = dateFromFormat(text, rule.format)
        if (iso === null) return { kind: 'NOT_A_DATE', reason: `${echo(text)} is not a date written ${rule.format}` }
        const parsed = parseDate(iso, latest)
        return 'value' in parsed ? { value: parsed.value, normalised: { from: rule.format, to: 'YYYY-MM-DD' } } : { kind: parsed.kind, reason: `${echo(text)} (${iso}) ${parsed.reason}` }
      }
      const parsed = parseDate(text, latest)
      return 'value' in parsed ? parsed : { kind: parsed.kind, reason: `${echo(text)} ${parsed.reason}` }
    }
  }
}

/** The level an alias stands for: its exact spelling first, then regardless of case and Unicode composition. */
function aliasOf (rule: { aliases?: Record<string, string> | undefined }, text: string): string | undefined {
  if (rule.aliases === undefined) return undefined
  const exact = rule.aliases[text]
  if (exact !== undefined) return exact
  const folded = foldSpelling(text)
  for (const [alias, level] of Object.entries(rule.aliases)) if (foldSpelling(alias) === folded) return level
  return undefined
}

function countNormalised (normalised: Map<string, Normalised>, column: string, kind: Normalised['kind'], change: { from: string, to: string }): void {
  let entry = normalised.get(column)
  if (entry === undefined) {
    entry = { column, kind, count: 0, changes: [], ...(kind === 'date' ? { format: change.from } : {}) }
    normalised.set(column, entry)
  }
  entry.count++
  if (kind === 'date') return
  const known = entry.changes.find((item) => item.from === change.from)
  if (known !== undefined) known.count++
  else entry.changes.push({ ...change, count: 1 })
}

function newImportId (): string {
  return `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
}

/** A failure of the store itself (a full disk, an I/O error) during an import, as a coded error. */
function storeFailure (error: unknown): never {
  if (error instanceof EpimeshError) throw error
  // a full disk, a denied permission: what the operator can fix, coded as such (exit 2)
  const system = storageFailure(error)
  if (system !== null) throw system
  const message = error instanceof Error ? error.message : String(error)
  throw new StoreIoError(`writing the store failed, and nothing of this import is visible: ${cut(message)}`, { cause: error })
}

/** How one column of the schema is read from each row, decided once for the import. */
interface ColumnPlan {
  column: string
  /** its position in the file's rows (undefined: the file lacks the column, which then is missing in every row) */
  index: number | undefined
  rule: ColumnRule
  kind: 'hash' | 'number' | 'category' | 'date'
  required: boolean
  /** the latest date the column takes */
  latest: string
  /** the value of a trimmed cell that passes as written, or undefined for validateCell to decide (and explain) */
  quick: (text: string) => CaseCell | undefined
}

const DIGIT_0 = 48
const DIGIT_9 = 57

/** A decimal number as values.ts has it (sign, at most 15 integer digits, optional fraction), in [min, max], or undefined: what validateCell takes, without its result object. */
export function quickNumber (text: string, min: number | undefined, max: number | undefined): number | undefined {
  let at = 0
  const length = text.length
  const first = text.charCodeAt(0)
  if (first === 43 || first === 45) at++ // + or -
  let digits = 0
  let significant = 0
  for (; at < length; at++) {
    const code = text.charCodeAt(at)
    if (code < DIGIT_0 || code > DIGIT_9) break
    digits++
    if (significant > 0 || code !== DIGIT_0) significant++
  }
  if (digits === 0 || significant > MAX_INTEGER_DIGITS) return undefined
  if (at < length) {
    if (text.charCodeAt(at) !== 46 || at === length - 1) return undefined // a point, and digits after it
    for (at++; at < length; at++) {
      const code = text.charCodeAt(at)
      if (code < DIGIT_0 || code > DIGIT_9) return undefined
    }
  }
  const value = Number(text)
  if ((min !== undefined && value < min) || (max !== undefined && value > max)) return undefined
  return value
}

function planColumn (column: string, rule: ColumnRule, index: number | undefined, latest: string): ColumnPlan {
  const plan = { column, index, rule, latest, required: !isAction(rule) && rule.required === true }
  if (isAction(rule)) return { ...plan, kind: 'hash', quick: () => undefined }
  switch (rule.type) {
    case 'number': {
      const { min, max } = rule
      return { ...plan, kind: 'number', quick: (text) => quickNumber(text, min, max) }
    }
    case 'category': {
      // a level written as the schema has it, which textProblem passes: taken as it is
      const clean = new Set(rule.levels.filter((level) => textProblem(level) === null))
      return { ...plan, kind: 'category', quick: (text) => clean.has(text) ? text : undefined }
    }
    case 'date': {
      const iso = rule.format === undefined || rule.format === 'YYYY-MM-DD'
      return { ...plan, kind: 'date', quick: (text) => iso && isIsoDate(text) && text >= EARLIEST_DATE && text <= latest ? text : undefined }
    }
  }
}

export async function importCases (store: Store, options: ImportOptions): Promise<ImportReport> {
  const layout = layoutOf(store)
  const { file } = options
  const batchRows = options.batchRows ?? 1000
  const latest = latestRecordDate(options.now ?? new Date())
  const sample = await readSample(file)
  const { header } = sample
  const stored = await layout.schema()
  let schema: CaseSchema
  let inferred = false
  if (stored !== null) {
    if (options.schema !== undefined && JSON.stringify(options.schema) !== JSON.stringify(stored)) {
      throw new SchemaMismatchError(`${file}: the store already has a schema, which differs from the one given; change it deliberately with epimesh schema`)
    }
    schema = stored
  } else if (options.schema !== undefined) {
    schema = options.schema
  } else {
    const inference = inferSchema(header, sample.rows, {})
    const named = identifiersByName(header, null, inference.schema.id)
    if (named.length > 0) throw new IdentifierRefusedError(file, named)
    const contained = identifiersInSample(sample, inference.schema.id)
    if (contained.length > 0) throw new IdentifierRefusedError(file, contained)
    if (inference.freeText.length > 0) throw new FreeTextRefusedError(file, inference.freeText)
    if (inference.empty.length > 0) {
      throw new ImportInvalidError(inference.empty.map((column) => ({ file, line: sample.headerLine, column: cut(column), kind: 'NO_VALUES', reason: `no value in the first ${INFER_SAMPLE} rows to infer a type from; declare the column in a schema` })), 0)
    }
    schema = inference.schema
    inferred = true
  }
  checkHeader(file, sample, schema)

  const salt = await layout.salt()
  const importId = newImportId()
  const committed = await layout.committedImports()
  const problems = new Problems(file, options.problemLimit ?? 100)
  const findings = new Map<string, IdentifierFinding>()
  const normalised = new Map<string, Normalised>()
  const columnIndex = new Map(header.map((column, index) => [column, index]))
  const idIndex = columnIndex.get(schema.id) as number
  // the record id is stored only as its hash, even when the schema lists it among its columns
  const columns = Object.entries(schema.columns).filter(([column, rule]) => column !== schema.id && !(isAction(rule) && rule.action === 'drop'))
  // each column's checks decided once, not per row: where its cell is, and what it takes
  const plans = columns.map(([column, rule]) => planColumn(column, rule, columnIndex.get(column), column === schema.date ? latest : LATEST_DATE))
  const filter = await idFilterFor(layout, committed, file, sample)
  const writer = new ImportWriter(layout, importId, committed, problems, findings, schema.id, [...columns.map(([column]) => column), RECORD_ID_COLUMN], batchRows, filter, options.onProgress)
  let first = true
  try {
    for await (const records of readCsvChunks(file)) for (const { fields, line } of records) {
      if (first) {
        first = false
        continue
      }
      if (fields.length !== header.length) {
        problems.add(line, '(row)', 'FIELD_COUNT', `${fields.length} fields where the header has ${header.length}`)
        continue
      }
      const rawId = fields[idIndex] as string
      if (isMissing(rawId)) {
        problems.add(line, schema.id, 'ID_MISSING', 'the record id is missing')
        continue
      }
      const id = trimCell(rawId)
      const idProblem = textProblem(id, { formula: false })
      if (idProblem !== null) {
        problems.add(line, schema.id, idProblem.kind, `the record id ${echo(id)} ${idProblem.reason}`)
        continue
      }
      // the row's cells in the order of `columns`, and its record-id hash last
      const cells = new Array<CaseCell>(plans.length + 1)
      let valid = true
      for (let at = 0; at < plans.length; at++) {
        const plan = plans[at] as ColumnPlan
        const { column } = plan
        const raw = plan.index === undefined ? undefined : fields[plan.index]
        if (isMissing(raw)) {
          if (plan.required) {
            problems.add(line, column, 'VALUE_REQUIRED', 'a value is required')
            valid = false
          }
          cells[at] = null
          continue
        }
        const text = trimCell(raw as string)
        if (plan.kind === 'hash') {
          const problem = textProblem(text, { formula: false })
          if (problem !== null) {
            problems.add(line, column, problem.kind, `${echo(text)} ${problem.reason}`)
            valid = false
          }
          cells[at] = hashRecordId(salt, text)
          continue
        }
        // a date that passes cannot be an identifier, and one that does not is refused anyway
        if (plan.kind !== 'date' && !findings.has(column)) {
          const kind = identifierInValue(text)
          if (kind !== null) findings.set(column, { column: cut(column), kind, line })
        }
        // the common cases without an object a cell: a plain number in range, a level as written, an ISO date
        const quick = plan.quick(text)
        if (quick !== undefined) {
          cells[at] = quick
          continue
        }
        const result = validateCell(plan.rule as Exclude<ColumnRule, { action: string }>, text, plan.latest)
        if ('value' in result) {
          cells[at] = result.value
          if (result.normalised !== undefined) countNormalised(normalised, column, plan.kind === 'date' ? 'date' : 'level', result.normalised)
        } else {
          problems.add(line, column, result.kind, result.reason)
          valid = false
        }
      }
      if (!valid) continue
      // waits while a full chunk is checked and written: the file is read no faster than the store takes it
      const full = writer.add(hashRecordId(salt, id), cells, line)
      if (full !== null) await full
    }
    await writer.finish()
    if (findings.size > 0 || problems.count > 0) {
      // nothing becomes visible; the staged rows go now, or on the next open after a crash
      await removeImport(layout, importId)
      if (findings.size > 0) throw new IdentifierRefusedError(file, [...findings.values()])
      await writer.placeDuplicates(file, salt, idIndex)
      problems.throwIfAny()
    }
  } catch (error) {
    // a file found unreadable or malformed half-way, or a failed write: take out what was staged
    if (!(error instanceof IdentifierRefusedError || error instanceof ImportInvalidError)) {
      await writer.settle()
      await removeImport(layout, importId).catch(() => {})
    }
    storeFailure(error)
  }
  const { rows, duplicates } = writer
  const record: ImportRecord = { id: importId, kind: 'cases', file, rows, duplicates, committedAt: new Date().toISOString() }
  // the switch: one atomic write makes the import visible (with the schema on a first import)
  const commit = layout.db.batch()
  commit.put(layout.importKey(importId), record, { sublevel: layout.meta })
  if (stored === null) commit.put(StoreLayout.schemaKey, schema, { sublevel: layout.meta })
  // the one write synced to disk: the chunks before it need not be (until it lands they are invisible, and
  // a crash before it leaves them to be removed), and syncing each would cost a disk flush a chunk
  await commit.write({ sync: true }).catch(storeFailure)
  // the marks of records already stored are invisible to readers; one left by a crash here goes on the next open
  if (writer.marked > 0) await removeRange(layout, layout.seenMarks(importId)).catch(() => {})
  const droppedColumns = Object.entries(schema.columns).filter(([, rule]) => isAction(rule) && rule.action === 'drop').map(([column]) => column)
  const hashedColumns = Object.entries(schema.columns).filter(([column, rule]) => column !== schema.id && isAction(rule) && rule.action === 'hash').map(([column]) => column)
  return { importId, rows, duplicates, schema, inferred, droppedColumns, hashedColumns, normalised: [...normalised.values()] }
}

interface ReadyRow {
  idHash: string
  /** the row's cells, the last one left for its record-id hash */
  cells: CaseCell[]
  line: number
}

/**
 * The writing half of an import, a pipeline of chunks of `chunkRows` valid rows: while the main
 * thread reads and checks chunk k+1, chunk k is checked against the store for record ids already
 * there and chunk k-1 is written in one batch (LevelDB writes on a thread of its own). A chunk waits
 * for the one before it at each step, so at most three are held, memory stays flat whatever the size
 * of the file, and the reader waits when the store falls behind.
 *
 * Record ids are looked up only when the filter (id-filter.ts) of the ids already stored and those
 * of the file so far may hold them, in one multi-get a chunk; a read a row, of a key that is mostly
 * not there, cost more than all the rest of an import of a large file.
 *
 * A record id given twice in the file is found without keeping the file's ids in memory: in the
 * chunk being filled (by a map of that chunk), in the chunk before it (by its map), and in earlier
 * chunks by the store itself, where the id's hash now names this import; a row whose id was already
 * stored by a committed import is not written, and leaves a mark (layout.seenMark) under this import
 * instead, so that a second copy of it is found too. The line of an earlier copy found in the store
 * is not known while reading; for a refused import, it is found by a second read of the file
 * (placeDuplicates).
 *
 * Once the import is refused (a problem or an identifier found), no row is written any more, only the
 * hashes that find later duplicates, so that every problem is still reported.
 */
class ImportWriter {
  rows = 0
  duplicates = 0
  /** rows that left a mark (already stored) */
  marked = 0
  private sequence = 0
  private filling: ReadyRow[] = []
  private fillingLines = new Map<string, number>()
  /** the ids of the chunk before the one filling */
  private previousLines = new Map<string, number>()
  /** the chunk before the one filling: checked, and its write started */
  private staged: Promise<void> = Promise.resolve()
  private writing: Promise<void> = Promise.resolve()
  /** ID_DUPLICATE problems whose earlier line is still to be found, by the id's hash */
  private readonly unplaced = new Map<string, RowProblem[]>()

  constructor (
    private readonly layout: StoreLayout,
    private readonly importId: string,
    private readonly committed: Map<string, ImportRecord>,
    private readonly problems: Problems,
    private readonly findings: Map<string, IdentifierFinding>,
    private readonly idColumn: string,
    /** the columns of every chunk written, the record-id hash (__id) last */
    private readonly columns: string[],
    private readonly chunkRows: number,
    /** the ids already stored and those of the file so far, or null to look every id up */
    private readonly filter: IdFilter | null,
    private readonly onProgress?: (rows: number) => void
  ) {}

  /** Adds a row to the chunk filling; when that fills it, the hand-over to await (null otherwise: no promise a row). */
  add (idHash: string, cells: CaseCell[], line: number): Promise<void> | null {
    const earlier = this.fillingLines.get(idHash) ?? this.previousLines.get(idHash)
    if (earlier !== undefined) {
      this.duplicate(idHash, line, earlier)
      return null
    }
    this.fillingLines.set(idHash, line)
    this.filling.push({ idHash, cells, line })
    return this.filling.length >= this.chunkRows ? this.flush() : null
  }

  private get refused (): boolean {
    return this.problems.count > 0 || this.findings.size > 0
  }

  /** A record id given twice: `earlier` is the line of its first copy, or null when only the store knows it was seen. */
  private duplicate (idHash: string, line: number, earlier: number | null): void {
    const problem = this.problems.add(line, this.idColumn, 'ID_DUPLICATE', `duplicate record id (also on line ${earlier ?? 'an earlier line'})`)
    if (problem === null || earlier !== null) return
    const list = this.unplaced.get(idHash) ?? []
    list.push(problem)
    this.unplaced.set(idHash, list)
  }

  /** Hands the filled chunk on: waits for the chunk before it to be checked and on its way to disk. */
  private async flush (): Promise<void> {
    const chunk = this.filling
    if (chunk.length === 0) return
    const lines = this.fillingLines
    this.filling = []
    this.fillingLines = new Map()
    await this.staged
    // The chunks before the one before this are on disk, and the read below finds their ids; the one
    // before this may not be yet, but its ids were in previousLines while this chunk was filled.
    this.previousLines = lines
    const { layout, importId } = this
    const hashes = chunk.map((ready) => ready.idHash)
    // only a hash the filter may have met is looked up: an id in the store, or earlier in the file
    const filter = this.filter
    const candidates: number[] = []
    hashes.forEach((idHash, index) => { if (filter === null || filter.addAndTest(idHash)) candidates.push(index) })
    const owners = new Array<string | undefined>(chunk.length)
    const found = candidates.length === 0 ? [] : await layout.idOwnersOf(candidates.map((index) => hashes[index] as string), [importId, ...this.committed.keys()])
    candidates.forEach((index, at) => { owners[index] = found[at] })
    const alreadyStored: number[] = []
    owners.forEach((owner, index) => { if (owner !== undefined && owner !== importId && this.committed.has(owner)) alreadyStored.push(index) })
    const marks = alreadyStored.length === 0 ? [] : await layout.cases.getMany(alreadyStored.map((index) => layout.seenMark(importId, hashes[index] as string)))
    const seenBefore = new Set(alreadyStored.filter((_, at) => marks[at] !== undefined))
    this.staged = this.stage(chunk, owners, seenBefore)
    this.staged.catch(() => {})
  }

  private async stage (chunk: ReadyRow[], owners: Array<string | undefined>, seenBefore: Set<number>): Promise<void> {
    const { layout, importId } = this
    await this.writing
    // An array of operations rather than a chained batch: LevelDB's copy of it is freed as soon as it is
    // written, where a chained batch's waits for the garbage collector (megabytes a chunk, unseen by it).
    const operations: Array<{ type: 'put', key: string, value: unknown, sublevel: unknown }> = []
    const tag = layout.importTag(importId)
    // the chunk's rows go in one value, sealed once (layout.ts): a seal a row cost more than the rest of the import
    const rows: CaseCell[][] = []
    for (const [index, { idHash, cells, line }] of chunk.entries()) {
      const owner = owners[index]
      if (owner === importId || seenBefore.has(index)) {
        this.duplicate(idHash, line, null)
        continue
      }
      if (owner !== undefined && this.committed.has(owner)) {
        this.duplicates++
        this.marked++
        operations.push({ type: 'put', key: layout.seenMark(importId, idHash), value: {}, sublevel: layout.cases })
        continue
      }
      operations.push({ type: 'put', key: idHash, value: tag, sublevel: layout.idOwners })
      // a refused import writes no more rows
      if (this.refused) continue
      cells[cells.length - 1] = idHash
      rows.push(cells)
    }
    if (rows.length > 0) {
      operations.push({ type: 'put', key: layout.caseKey(importId, this.sequence++), value: { columns: this.columns, rows } satisfies CaseChunk, sublevel: layout.cases })
      this.rows += rows.length
    }
    this.writing = operations.length === 0 ? Promise.resolve() : layout.db.batch(operations as unknown as Array<AbstractBatchOperation<Database, string, unknown>>)
    // its failure is met by the next await of it; until then it must not count as unhandled
    this.writing.catch(() => {})
    this.onProgress?.(this.rows)
  }

  /** The last chunk written, and every write done. */
  async finish (): Promise<void> {
    await this.flush()
    await this.staged
    await this.writing
  }

  /** Every step done or failed (after a failure). */
  async settle (): Promise<void> {
    await this.staged.catch(() => {})
    await this.writing.catch(() => {})
  }

  /** Reads the file again to name the earlier line of each duplicate found in the store. */
  async placeDuplicates (file: string, salt: string, idIndex: number): Promise<void> {
    if (this.unplaced.size === 0) return
    let first = true
    for await (const { fields, line } of readCsv(file)) {
      if (first) {
        first = false
        continue
      }
      const raw = fields[idIndex]
      if (raw === undefined || isMissing(raw)) continue
      const idHash = hashRecordId(salt, trimCell(raw))
      const waiting = this.unplaced.get(idHash)
      if (waiting === undefined) continue
      // the first copy names it for every later one
      for (const problem of waiting) problem.reason = `duplicate record id (also on line ${line})`
      this.unplaced.delete(idHash)
      if (this.unplaced.size === 0) return
    }
  }
}

async function removeRange (layout: StoreLayout, range: { gte: string, lt: string }): Promise<void> {
  let batch = layout.db.batch()
  let size = 0
  for await (const key of layout.cases.keys(range)) {
    batch.del(key, { sublevel: layout.cases })
    if (++size % 10_000 === 0) {
      await batch.write()
      batch = layout.db.batch()
    }
  }
  await batch.write()
}

async function removeImport (layout: StoreLayout, importId: string): Promise<void> {
  await removeRange(layout, layout.importCases(importId))
  await removeRange(layout, layout.seenMarks(importId))
  const tag = layout.importTag(importId)
  let batch = layout.db.batch()
  let size = 0
  for await (const [key, value] of layout.idOwners.iterator()) {
    if (value === tag) {
      batch.del(key, { sublevel: layout.idOwners })
      if (++size % 10_000 === 0) {
        await batch.write()
        batch = layout.db.batch()
      }
    }
  }
  await batch.write()
}

export interface SeriesReport {
  points: number
  /** dates already in the store, whose count this import replaced */
  replaced: number
}

const SERIES_COLUMNS = new Set(['date', 'count', 'population'])

/**
 * Case counts by date (date, count, optionally population), validated and written in one batch: every
 * date a real day, not in the future and given once; every count a whole number of at least 0, never
 * empty (an empty count is not 0); every population a positive number. A date already stored is
 * replaced (counts are revised as reports come in), and the report says how many were.
 */
export async function importSeries (store: Store, file: string, options: { now?: Date, problemLimit?: number } = {}): Promise<SeriesReport> {
  const latest = latestRecordDate(options.now ?? new Date())
  const problems = new Problems(file, options.problemLimit ?? 100)
  let header: string[] | null = null
  let headerLine = 1
  const index = new Map<string, number>()
  const points = new Map<string, SeriesPoint>()
  const lineOf = new Map<string, number>()
  let records = 0
  for await (const { fields, line } of readCsv(file)) {
    if (header === null) {
      header = fields.map(trimCell)
      headerLine = line
      checkHeaderNames(file, header, line)
      header.forEach((column, position) => { index.set(column, position) })
      for (const column of ['date', 'count']) if (!index.has(column)) problems.add(line, column, 'COLUMN_MISSING', 'a required column is missing')
      for (const column of header) if (!SERIES_COLUMNS.has(column)) problems.add(line, column, 'COLUMN_UNKNOWN', 'a series has the columns date, count and optionally population')
      problems.throwIfAny()
      continue
    }
    records++
    if (fields.length !== header.length) {
      problems.add(line, '(row)', 'FIELD_COUNT', `${fields.length} fields where the header has ${header.length}`)
      continue
    }
    const cell = (column: string): string | undefined => {
      const position = index.get(column)
      return position === undefined ? undefined : fields[position]
    }
    let valid = true
    const fail = (column: string, kind: string, reason: string): void => {
      problems.add(line, column, kind, reason)
      valid = false
    }
    let date = ''
    const rawDate = cell('date')
    if (isMissing(rawDate)) fail('date', 'VALUE_REQUIRED', 'a date is required')
    else {
      const parsed = parseDate(trimCell(rawDate as string), latest)
      if ('value' in parsed) date = parsed.value
      else fail('date', parsed.kind, `${echo(trimCell(rawDate as string))} ${parsed.reason}`)
    }
    let count = 0
    const rawCount = cell('count')
    if (isMissing(rawCount)) fail('count', 'VALUE_REQUIRED', 'a count is required (an empty count is not 0)')
    else {
      const text = trimCell(rawCount as string)
      const parsed = parseDecimal(text)
      if (!('value' in parsed)) fail('count', parsed.kind, `${echo(text)} ${parsed.reason}`)
      else if (!Number.isInteger(parsed.value) || parsed.value < 0) fail('count', 'NOT_A_COUNT', `${echo(text)} is not a whole number of at least 0`)
      else count = parsed.value
    }
    let population: number | undefined
    const rawPopulation = cell('population')
    if (!isMissing(rawPopulation)) {
      const text = trimCell(rawPopulation as string)
      const parsed = parseDecimal(text)
      if (!('value' in parsed)) fail('population', parsed.kind, `${echo(text)} ${parsed.reason}`)
      else if (!(parsed.value > 0)) fail('population', 'NOT_POSITIVE', `${echo(text)} is not a positive number`)
      else population = parsed.value
    }
    if (date !== '') {
      const earlier = lineOf.get(date)
      if (earlier !== undefined) fail('date', 'DATE_DUPLICATE', `${date} is given twice (also on line ${earlier})`)
      else lineOf.set(date, line)
    }
    if (valid) points.set(date, { date, count, ...(population === undefined ? {} : { population }) })
  }
  if (header === null) throw new ImportInvalidError([{ file, line: 1, column: '(header)', kind: 'NO_RECORDS', reason: 'the file is empty' }], 0)
  if (records === 0) throw new ImportInvalidError([{ file, line: headerLine + 1, column: '(row)', kind: 'NO_RECORDS', reason: 'a header and no records' }], 0)
  problems.throwIfAny()
  const layout = layoutOf(store)
  try {
    let replaced = 0
    for (const date of points.keys()) if (await layout.series.get(date) !== undefined) replaced++
    const batch = layout.db.batch()
    for (const point of points.values()) batch.put(point.date, point, { sublevel: layout.series })
    const importId = newImportId()
    batch.put(layout.importKey(importId), { id: importId, kind: 'series', file, rows: points.size, duplicates: 0, committedAt: new Date().toISOString() } satisfies ImportRecord, { sublevel: layout.meta })
    await batch.write()
    return { points: points.size, replaced }
  } catch (error) {
    storeFailure(error)
  }
}
