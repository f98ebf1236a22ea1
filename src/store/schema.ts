import { z } from 'zod'
import { cut, SchemaInvalidError, type FreeTextFinding } from './errors.ts'
import { MAX_COLUMNS } from './csv.ts'
import { isDecimal, isMissing, looksLikeDate, looksNumeric, trimCell } from './values.ts'

/**
 * The schema of a region's case records: the record id column, the outcome, the record date (for
 * retention), and each column's type and allowed values. It is validated with zod; the store keeps the
 * schema of its first import and checks every later import against it.
 */
const numberColumn = z.strictObject({ type: z.literal('number'), min: z.number().optional(), max: z.number().optional(), required: z.boolean().optional() })
/**
 * A category's levels: a list, or each level with the other spellings an import turns into it
 * (`{"F": ["f", "female", "女"]}`), kept as the list of levels and a map of aliases to their level.
 */
const levelAliases = (value: unknown): unknown => {
  if (typeof value !== 'object' || value === null || !('levels' in value)) return value
  const { levels, ...rest } = value as { levels: unknown }
  if (typeof levels !== 'object' || levels === null || Array.isArray(levels)) return value
  const aliases: Record<string, string> = {}
  for (const [level, spellings] of Object.entries(levels as Record<string, unknown>)) {
    if (Array.isArray(spellings)) for (const spelling of spellings) if (typeof spelling === 'string') aliases[spelling] = level
  }
  return { ...rest, levels: Object.keys(levels), aliases: { ...(('aliases' in rest && typeof rest.aliases === 'object') ? rest.aliases as object : {}), ...aliases } }
}
const categoryColumn = z.preprocess(levelAliases, z.strictObject({
  type: z.literal('category'),
  levels: z.array(z.string().min(1).max(200)).min(1).max(10_000),
  /** another spelling of a level: an import stores the level */
  aliases: z.record(z.string().min(1).max(200), z.string().min(1)).refine((record) => Object.keys(record).length <= 10_000, 'at most 10,000 aliases').optional(),
  required: z.boolean().optional()
}))
/** how the file writes its dates: YYYY, MM (or M), DD (or D) and the separators between them, such as YYYY/MM/DD or DD.MM.YYYY */
/**
 * The field under which the store keeps a record's hashed id beside its columns: the store's own, not
 * one of the region's columns; never listed as one, nor usable as a feature or outcome.
 */
export const RECORD_ID_COLUMN = '__id'

/** Whether a stored row's field is the store's own (the hashed record id), not one of the region's columns. */
export const isInternalColumn = (column: string): boolean => column === RECORD_ID_COLUMN

export const DATE_FORMAT = /^(?=.*YYYY)(?=.*M)(?=.*D)(YYYY|MM|M|DD|D|[./\- ])+$/
const onceEach = (format: string): boolean => {
  const tokens = format.match(/YYYY|MM|M|DD|D|./g) ?? []
  return tokens.filter((token) => token === 'YYYY').length === 1 && tokens.filter((token) => token === 'MM' || token === 'M').length === 1 && tokens.filter((token) => token === 'DD' || token === 'D').length === 1
}
const dateColumn = z.strictObject({ type: z.literal('date'), format: z.string().max(20).regex(DATE_FORMAT, 'a date format of YYYY, MM, DD and the separators . / - or a space, such as YYYY/MM/DD').refine(onceEach, 'a date format names the year, the month and the day once each').optional(), required: z.boolean().optional() })
const actionColumn = z.strictObject({ action: z.enum(['drop', 'hash']) })

export const schemaSchema = z.strictObject({
  version: z.literal(1),
  /** the record id column: stored only as a salted hash */
  id: z.string().min(1),
  /** the outcome column (a category with a positive level, or a number) */
  outcome: z.string().min(1).optional(),
  /** the level of a category outcome that counts as 1 */
  positive: z.string().min(1).optional(),
  /** the record date column used for retention */
  date: z.string().min(1).optional(),
  columns: z.record(z.string().min(1), z.union([numberColumn, categoryColumn, dateColumn, actionColumn]))
})

export type CaseSchema = z.infer<typeof schemaSchema>
export type ColumnRule = CaseSchema['columns'][string]

export function parseSchema (json: unknown, source: string): CaseSchema {
  const parsed = schemaSchema.safeParse(json)
  if (!parsed.success) {
    throw new SchemaInvalidError(`${source}: ${parsed.error.issues.slice(0, 10).map((issue) => `${cut(issue.path.join('.')) || '(root)'}: ${cut(issue.message)}`).join('; ')}`)
  }
  const schema = parsed.data
  const columns = schema.columns
  if (Object.keys(columns).length > MAX_COLUMNS) throw new SchemaInvalidError(`${source}: more than ${MAX_COLUMNS} columns`)
  if (schema.outcome === schema.id || schema.date === schema.id) throw new SchemaInvalidError(`${source}: the record id column "${cut(schema.id)}" is stored only as its salted hash; it cannot be the outcome or the record date`)
  if (schema.outcome !== undefined && !(schema.outcome in columns)) throw new SchemaInvalidError(`${source}: the outcome "${cut(schema.outcome)}" is not among the columns`)
  if (schema.date !== undefined && (columns[schema.date] as { type?: string } | undefined)?.type !== 'date') throw new SchemaInvalidError(`${source}: the record date "${cut(schema.date)}" must be a date column`)
  for (const [name, rule] of Object.entries(columns)) {
    if (!('type' in rule) || rule.type !== 'category' || rule.aliases === undefined) continue
    for (const [alias, level] of Object.entries(rule.aliases)) {
      if (!rule.levels.includes(level)) throw new SchemaInvalidError(`${source}: columns.${cut(name)}: the alias "${cut(alias)}" names "${cut(level)}", which is not a level`)
      if (rule.levels.includes(alias) && alias !== level) throw new SchemaInvalidError(`${source}: columns.${cut(name)}: "${cut(alias)}" is a level and an alias of "${cut(level)}"`)
    }
    const folded = new Map<string, string>()
    for (const [alias, level] of Object.entries(rule.aliases)) {
      const key = foldSpelling(alias)
      const other = folded.get(key)
      if (other !== undefined && other !== level) throw new SchemaInvalidError(`${source}: columns.${cut(name)}: the alias "${cut(alias)}" would stand for both "${cut(other)}" and "${cut(level)}"`)
      folded.set(key, level)
    }
  }
  if (schema.positive !== undefined) {
    const outcome = schema.outcome === undefined ? undefined : columns[schema.outcome]
    if (outcome === undefined || !('levels' in outcome) || !outcome.levels.includes(schema.positive)) throw new SchemaInvalidError(`${source}: "positive" must be one of the outcome's levels`)
  }
  return schema
}

/** How an alias is matched: case and Unicode composition do not matter. */
export function foldSpelling (text: string): string {
  return text.normalize('NFC').toLowerCase()
}

/** Text values longer than this are free text, never category levels, in an inferred schema. */
export const LONG_TEXT_CHARS = 64
/** An inferred text column needs at least this many values, of which at most UNIQUE_SHARE distinct. */
export const MIN_CATEGORY_VALUES = 20
export const UNIQUE_SHARE = 0.9

export interface Inference {
  schema: CaseSchema
  /** text columns that cannot be categories */
  freeText: FreeTextFinding[]
  /** columns without a single value in the sample */
  empty: string[]
}

/**
 * Infers a schema from a sample of rows. A column is a number column when some of its values are
 * numbers and the others at least look numeric (they are refused later, each with its line); a date
 * column when all look like YYYY-MM-DD; otherwise text. A text column becomes a category with the
 * levels seen only when it has at least 20 values, at most 90% of them distinct, none longer than
 * 64 characters: a column with nearly one value per row is a likely identifier (a name, a free-text
 * note), and its values must never become levels that `import` and `data summary` print.
 */
export function inferSchema (header: string[], sample: string[][], options: { id?: string, outcome?: string }): Inference {
  const columns: CaseSchema['columns'] = {}
  const freeText: FreeTextFinding[] = []
  const empty: string[] = []
  // the record id is kept only as a salted hash and needs no rule
  const id = options.id ?? header.find((column) => /^(id|record_?id|case_?id)$/i.test(column)) ?? header[0] as string
  header.forEach((column, index) => {
    if (column === id) return
    const values = sample.map((row) => row[index] ?? '').filter((value) => !isMissing(value)).map(trimCell)
    if (values.length === 0) {
      empty.push(column)
      return
    }
    if (values.some(isDecimal) && values.every((value) => isDecimal(value) || looksNumeric(value))) {
      columns[column] = { type: 'number' }
      return
    }
    if (values.every(looksLikeDate)) {
      columns[column] = { type: 'date' }
      return
    }
    const distinct = new Set(values)
    const finding = { column, values: values.length, distinct: distinct.size }
    if (values.length >= MIN_CATEGORY_VALUES && distinct.size / values.length > UNIQUE_SHARE) freeText.push({ ...finding, kind: 'UNIQUE_TEXT' })
    else if (values.some((value) => value.length > LONG_TEXT_CHARS)) freeText.push({ ...finding, kind: 'LONG_TEXT' })
    else if (values.length < MIN_CATEGORY_VALUES) freeText.push({ ...finding, kind: 'TOO_FEW_VALUES' })
    else columns[column] = { type: 'category', levels: [...distinct].sort() }
  })
  const date = header.find((column) => columns[column] !== undefined && (columns[column] as { type?: string }).type === 'date')
  return {
    schema: {
      version: 1,
      id,
      ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
      ...(date === undefined ? {} : { date }),
      columns
    },
    freeText,
    empty
  }
}
