import { z } from 'zod'
import { SchemaInvalidError } from './errors.ts'

/**
 * The schema of a region's case records: the record id column, the outcome, the record date (for
 * retention), and each column's type and allowed values. It is validated with zod; the store keeps the
 * schema of its first import and checks every later import against it.
 */
const numberColumn = z.strictObject({ type: z.literal('number'), min: z.number().optional(), max: z.number().optional(), required: z.boolean().optional() })
const categoryColumn = z.strictObject({ type: z.literal('category'), levels: z.array(z.string().min(1)).min(1), required: z.boolean().optional() })
const dateColumn = z.strictObject({ type: z.literal('date'), required: z.boolean().optional() })
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
    throw new SchemaInvalidError(`${source}: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ')}`)
  }
  const schema = parsed.data
  const columns = schema.columns
  if (schema.outcome !== undefined && !(schema.outcome in columns)) throw new SchemaInvalidError(`${source}: the outcome "${schema.outcome}" is not among the columns`)
  if (schema.date !== undefined && (columns[schema.date] as { type?: string } | undefined)?.type !== 'date') throw new SchemaInvalidError(`${source}: the record date "${schema.date}" must be a date column`)
  if (schema.positive !== undefined) {
    const outcome = schema.outcome === undefined ? undefined : columns[schema.outcome]
    if (outcome === undefined || !('levels' in outcome) || !outcome.levels.includes(schema.positive)) throw new SchemaInvalidError(`${source}: "positive" must be one of the outcome's levels`)
  }
  return schema
}

/**
 * Direct identifiers by column name, as GB/T 35273 lists them: identity card and passport numbers,
 * phone numbers, names, addresses, precise locations and trajectories, e-mail.
 */
const IDENTIFIER_PATTERNS = [
  /^(id_?card|idcard|id_?number|national_?id|resident_?id|ssn|passport|shenfenzheng|sfz)/i,
  /(phone|mobile|telephone|^tel$|cellphone)/i,
  /^(name|full_?name|first_?name|last_?name|surname|given_?name|patient_?name|xingming)$/i,
  /(address|street|home_?addr|residence|dizhi)/i,
  /(trajectory|gps|latitude|longitude|^lat$|^lon$|^lng$|track|itinerary)/i,
  /(e-?mail)/i
]

export function looksLikeIdentifier (column: string): boolean {
  return IDENTIFIER_PATTERNS.some((pattern) => pattern.test(column))
}

/** An 18-character Chinese resident identity number with a valid check character. */
export function isResidentIdNumber (value: string): boolean {
  if (!/^\d{17}[\dXx]$/.test(value)) return false
  const weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
  const sum = weights.reduce((total, weight, index) => total + weight * Number(value[index]), 0)
  return '10X98765432'[sum % 11] === value[17]?.toUpperCase()
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/
const MISSING = new Set(['', 'NA', 'NaN', 'null', 'NULL'])

export function isMissing (value: string | undefined): boolean {
  return value === undefined || MISSING.has(value.trim())
}

export function isIsoDate (value: string): boolean {
  if (!ISO_DATE.test(value)) return false
  const date = new Date(`${value}T00:00:00Z`)
  return !Number.isNaN(date.getTime()) && date.toISOString().slice(0, 10) === value
}

/** Infers a schema from a sample of rows: numbers, ISO dates, or categories with the levels seen. */
export function inferSchema (header: string[], sample: string[][], options: { id?: string, outcome?: string }): CaseSchema {
  const columns: CaseSchema['columns'] = {}
  header.forEach((column, index) => {
    if (column === options.id) return
    const values = sample.map((row) => row[index] ?? '').filter((value) => !isMissing(value)).map((value) => value.trim())
    if (looksLikeIdentifier(column)) return
    if (values.length > 0 && values.every((value) => Number.isFinite(Number(value)))) columns[column] = { type: 'number' }
    else if (values.length > 0 && values.every(isIsoDate)) columns[column] = { type: 'date' }
    else columns[column] = { type: 'category', levels: [...new Set(values)].sort() }
  })
  // the record id is kept only as a salted hash and needs no rule
  const id = options.id ?? header.find((column) => /^(id|record_?id|case_?id)$/i.test(column)) ?? header[0] as string
  delete columns[id]
  const date = header.find((column) => columns[column] !== undefined && (columns[column] as { type?: string }).type === 'date')
  return {
    version: 1,
    id,
    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
    ...(date === undefined ? {} : { date }),
    columns
  }
}
