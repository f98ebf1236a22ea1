import { createReadStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { parse } from 'csv-parse'
import { ImportInvalidError, IdentifierRefusedError, SchemaMismatchError, type RowProblem } from './errors.ts'
import { inferSchema, isIsoDate, isMissing, isResidentIdNumber, looksLikeIdentifier, type CaseSchema } from './schema.ts'
import { Store, type CaseRow, type ImportRecord } from './store.ts'

/**
 * Validated, all-or-nothing import of case records from a CSV file, streamed: every row is checked
 * against the schema (the store's own, or the one given for its first import, or one inferred from the
 * file); every problem is reported with file, line, column and reason; direct identifiers are refused
 * unless the schema drops or hashes them; record ids are stored only as salted hashes; a record id
 * already in the store is reported as a duplicate and not stored again. Rows go in under a fresh import
 * id and become visible in one atomic write at the end, or never.
 */
export interface ImportOptions {
  file: string
  schema?: CaseSchema
  /** problems reported before "... and N more" */
  problemLimit?: number
  /** rows per write batch */
  batchRows?: number
  /** called every `batchRows` rows */
  onProgress?: (rows: number) => void
}

export interface ImportReport {
  importId: string
  rows: number
  duplicates: number
  schema: CaseSchema
  inferred: boolean
  droppedColumns: string[]
  hashedColumns: string[]
}

const INFER_SAMPLE = 1000

type Records = AsyncIterable<{ record: string[], info: { lines: number } }>

function openCsv (file: string): Records {
  return createReadStream(file).pipe(parse({ bom: true, info: true, relax_column_count: true, skip_empty_lines: true })) as unknown as Records
}

async function readHeaderAndSample (file: string): Promise<{ header: string[], sample: string[][] }> {
  const sample: string[][] = []
  let header: string[] | null = null
  for await (const { record } of openCsv(file)) {
    if (header === null) header = record.map((cell) => cell.trim())
    else sample.push(record)
    if (sample.length >= INFER_SAMPLE) break
  }
  if (header === null) throw new ImportInvalidError([{ file, line: 1, column: '(header)', reason: 'the file is empty' }], 0)
  return { header, sample }
}

/** The store's schema, checked for compatibility with the file's header. */
function checkHeader (file: string, header: string[], schema: CaseSchema): void {
  if (!header.includes(schema.id)) throw new SchemaMismatchError(`${file}: the record id column "${schema.id}" is missing`)
  const problems: RowProblem[] = []
  for (const column of Object.keys(schema.columns)) {
    const rule = schema.columns[column]
    if (rule !== undefined && 'type' in rule && rule.required === true && !header.includes(column)) problems.push({ file, line: 1, column, reason: 'a required column is missing' })
  }
  for (const column of header) {
    if (column === schema.id) continue
    if (!(column in schema.columns)) problems.push({ file, line: 1, column, reason: 'not in the store\'s schema (change the schema deliberately with epimesh schema)' })
  }
  if (problems.length > 0) throw new ImportInvalidError(problems, 0)
  const identifiers = header.filter((column) => column !== schema.id && looksLikeIdentifier(column) && !('action' in (schema.columns[column] ?? {})))
  if (identifiers.length > 0) throw new IdentifierRefusedError(file, identifiers)
}

function validateCell (schema: CaseSchema, column: string, raw: string | undefined, salt: string): { value: number | string | null, reason?: string } {
  const rule = schema.columns[column]
  if (rule === undefined) return { value: null }
  if ('action' in rule) return { value: rule.action === 'hash' && !isMissing(raw) ? Store.hashId(salt, (raw as string).trim()) : null }
  const required = rule.required === true
  if (isMissing(raw)) return required ? { value: null, reason: 'a value is required' } : { value: null }
  const text = (raw as string).trim()
  if (isResidentIdNumber(text)) return { value: null, reason: 'looks like a resident identity number; refused' }
  switch (rule.type) {
    case 'number': {
      const number = Number(text)
      if (!Number.isFinite(number)) return { value: null, reason: `"${text}" is not a number` }
      if (rule.min !== undefined && number < rule.min) return { value: null, reason: `${number} is below the minimum ${rule.min}` }
      if (rule.max !== undefined && number > rule.max) return { value: null, reason: `${number} is above the maximum ${rule.max}` }
      return { value: number }
    }
    case 'category':
      return rule.levels.includes(text) ? { value: text } : { value: null, reason: `"${text}" is not one of ${rule.levels.join(', ')}` }
    case 'date':
      return isIsoDate(text) ? { value: text } : { value: null, reason: `"${text}" is not a date (YYYY-MM-DD)` }
  }
}

export async function importCases (store: Store, options: ImportOptions): Promise<ImportReport> {
  const { file } = options
  const limit = options.problemLimit ?? 100
  const batchRows = options.batchRows ?? 5000
  const { header, sample } = await readHeaderAndSample(file)
  const stored = await store.schema()
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
    const identifiers = header.filter(looksLikeIdentifier)
    if (identifiers.length > 0) throw new IdentifierRefusedError(file, identifiers)
    schema = inferSchema(header, sample, {})
    inferred = true
  }
  checkHeader(file, header, schema)

  const salt = await store.salt()
  const importId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  const committed = await store.committedImports()
  const problems: RowProblem[] = []
  let more = 0
  const problem = (line: number, column: string, reason: string): void => {
    if (problems.length < limit) problems.push({ file, line, column, reason })
    else more++
  }
  const seenInFile = new Map<string, number>()
  let rows = 0
  let duplicates = 0
  let sequence = 0
  let batch = store.db.batch()
  let pending = 0
  const flush = async (): Promise<void> => {
    if (pending === 0) return
    await batch.write()
    batch = store.db.batch()
    pending = 0
    options.onProgress?.(rows)
  }
  const columnIndex = new Map(header.map((column, index) => [column, index]))
  let first = true
  for await (const { record, info } of openCsv(file)) {
    if (first) {
      first = false
      continue
    }
    const line = info.lines
    if (record.length !== header.length) {
      problem(line, '(row)', `${record.length} fields where the header has ${header.length}`)
      continue
    }
    const rawId = record[columnIndex.get(schema.id) as number]
    if (isMissing(rawId)) {
      problem(line, schema.id, 'the record id is missing')
      continue
    }
    const idHash = Store.hashId(salt, (rawId as string).trim())
    const row: CaseRow = {}
    let valid = true
    for (const column of Object.keys(schema.columns)) {
      const rule = schema.columns[column]
      if (rule !== undefined && 'action' in rule && rule.action === 'drop') continue
      const { value, reason } = validateCell(schema, column, record[columnIndex.get(column) ?? -1], salt)
      if (reason !== undefined) {
        problem(line, column, reason)
        valid = false
      }
      row[column] = value
    }
    if (!valid) continue
    const earlier = seenInFile.get(idHash)
    if (earlier !== undefined) {
      problem(line, schema.id, `duplicate record id (also on line ${earlier})`)
      continue
    }
    seenInFile.set(idHash, line)
    const owner = await store.ids.get(idHash) as string | undefined
    if (owner !== undefined && committed.has(owner)) {
      duplicates++
      continue
    }
    if (problems.length > 0) continue // a refused import writes nothing more
    row['__id'] = idHash
    batch.put(`${importId}!${String(sequence++).padStart(10, '0')}`, row, { sublevel: store.cases })
    batch.put(idHash, importId, { sublevel: store.ids })
    rows++
    if (++pending >= batchRows) await flush()
  }
  if (problems.length > 0) {
    // nothing becomes visible; the staged rows go now, or on the next open after a crash
    batch.close?.()
    await removeImport(store, importId)
    throw new ImportInvalidError(problems, more)
  }
  await flush()
  const record: ImportRecord = { id: importId, kind: 'cases', file, rows, duplicates, committedAt: new Date().toISOString() }
  // the switch: one atomic write makes the import visible (with the schema on a first import)
  const commit = store.db.batch()
  commit.put(`import!${importId}`, record, { sublevel: store.meta })
  if (stored === null) commit.put('schema', schema, { sublevel: store.meta })
  await commit.write()
  const droppedColumns = Object.entries(schema.columns).filter(([, rule]) => 'action' in rule && rule.action === 'drop').map(([column]) => column)
  const hashedColumns = Object.entries(schema.columns).filter(([, rule]) => 'action' in rule && rule.action === 'hash').map(([column]) => column)
  return { importId, rows, duplicates, schema, inferred, droppedColumns, hashedColumns }
}

async function removeImport (store: Store, importId: string): Promise<void> {
  let batch = store.db.batch()
  let size = 0
  for await (const key of store.cases.keys({ gte: `${importId}!`, lt: `${importId}!\uffff` })) {
    batch.del(key, { sublevel: store.cases })
    if (++size % 10_000 === 0) {
      await batch.write()
      batch = store.db.batch()
    }
  }
  for await (const [key, value] of store.ids.iterator()) {
    if (value === importId) batch.del(key, { sublevel: store.ids })
  }
  await batch.write()
}

/** Case counts by date (date, count, optionally population), validated and written in one batch. */
export async function importSeries (store: Store, file: string): Promise<{ points: number }> {
  const problems: RowProblem[] = []
  let header: string[] | null = null
  const points: Array<{ date: string, count: number, population?: number }> = []
  for await (const { record, info } of openCsv(file)) {
    if (header === null) {
      header = record.map((cell) => cell.trim())
      for (const column of ['date', 'count']) if (!header.includes(column)) problems.push({ file, line: 1, column, reason: 'a required column is missing' })
      if (problems.length > 0) break
      continue
    }
    const cell = (column: string): string | undefined => record[(header as string[]).indexOf(column)]?.trim()
    const date = cell('date') ?? ''
    const count = Number(cell('count'))
    if (!isIsoDate(date)) problems.push({ file, line: info.lines, column: 'date', reason: `"${date}" is not a date (YYYY-MM-DD)` })
    if (!Number.isInteger(count) || count < 0) problems.push({ file, line: info.lines, column: 'count', reason: `"${cell('count') ?? ''}" is not a non-negative whole number` })
    const populationText = header.includes('population') ? cell('population') : undefined
    const population = populationText === undefined || isMissing(populationText) ? undefined : Number(populationText)
    if (population !== undefined && !(Number.isFinite(population) && population > 0)) problems.push({ file, line: info.lines, column: 'population', reason: `"${populationText ?? ''}" is not a positive number` })
    points.push({ date, count, ...(population === undefined ? {} : { population }) })
  }
  if (problems.length > 0) throw new ImportInvalidError(problems.slice(0, 100), Math.max(0, problems.length - 100))
  const batch = store.db.batch()
  for (const point of points) batch.put(point.date, point, { sublevel: store.series })
  const importId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`
  batch.put(`import!${importId}`, { id: importId, kind: 'series', file, rows: points.length, duplicates: 0, committedAt: new Date().toISOString() } satisfies ImportRecord, { sublevel: store.meta })
  await batch.write()
  return { points: points.length }
}
