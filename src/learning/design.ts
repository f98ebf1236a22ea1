import { DimensionMismatchError, EmptyDataError, InvalidOutcomeError, NonFiniteError } from './errors.ts'

/** n rows and p columns of a design matrix, row-major, with the outcome and an optional offset. */
export interface DataBlock {
  x: Float64Array
  y: Float64Array
  offset?: Float64Array
  rows: number
  cols: number
}

/** levels[0] of a categorical feature is its reference level, as in R's treatment contrasts. */
export type FeatureSpec =
  | { name: string, type: 'numeric' }
  | { name: string, type: 'categorical', levels: string[] }

export interface ModelSpec {
  outcome: string
  features: FeatureSpec[]
  /** default true */
  intercept?: boolean
  /** a column added to the linear predictor as it is (for example log population) */
  offset?: string
}

export const INTERCEPT = '(Intercept)'

/** Coefficient names as R prints them: '(Intercept)', numeric names, and name + level for each non-reference level. */
export function termNames (spec: ModelSpec): string[] {
  const terms = spec.intercept === false ? [] : [INTERCEPT]
  for (const feature of spec.features) {
    if (feature.type === 'numeric') terms.push(feature.name)
    else for (const level of feature.levels.slice(1)) terms.push(`${feature.name}${level}`)
  }
  return terms
}

export function penaltyMask (spec: ModelSpec): boolean[] {
  return termNames(spec).map((term) => term !== INTERCEPT)
}

function toNumber (value: unknown): number {
  if (typeof value === 'number') return value
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'string' && value.trim() !== '') return Number(value)
  return Number.NaN
}

/**
 * Builds the design matrix of `rows` for `spec`. Every value is checked: a non-finite number, an unknown
 * category level, an outcome that is not 0/1 (binary) or a non-negative integer (count) raise a typed
 * error naming the row (0-based) and the column.
 */
export function buildDesign (rows: Iterable<Record<string, unknown>>, spec: ModelSpec, options: { outcome?: 'binary' | 'count' } = {}): DataBlock {
  const outcomeKind = options.outcome ?? 'binary'
  const list = Array.isArray(rows) ? rows as Array<Record<string, unknown>> : [...rows]
  const n = list.length
  if (n === 0) throw new EmptyDataError('the data have no rows')
  const p = termNames(spec).length
  const x = new Float64Array(n * p)
  const y = new Float64Array(n)
  const offset = spec.offset === undefined ? undefined : new Float64Array(n)
  const levelIndex = spec.features.map((feature) => feature.type === 'categorical' ? new Map(feature.levels.map((level, index) => [level, index])) : null)
  const intercept = spec.intercept !== false
  for (let row = 0; row < n; row++) {
    const record = list[row] as Record<string, unknown>
    const base = row * p
    let column = 0
    if (intercept) x[base + column++] = 1
    spec.features.forEach((feature, featureIndex) => {
      const value = record[feature.name]
      if (feature.type === 'numeric') {
        const number = toNumber(value)
        if (!Number.isFinite(number)) throw new NonFiniteError(`row ${row}, column "${feature.name}": ${String(value)} is not a finite number`)
        x[base + column++] = number
      } else {
        const index = (levelIndex[featureIndex] as Map<string, number>).get(String(value))
        if (index === undefined) throw new DimensionMismatchError(`row ${row}, column "${feature.name}": "${String(value)}" is not one of the levels ${feature.levels.join(', ')}`)
        for (let level = 1; level < feature.levels.length; level++) x[base + column++] = index === level ? 1 : 0
      }
    })
    const outcome = toNumber(record[spec.outcome])
    if (outcomeKind === 'binary' ? !(outcome === 0 || outcome === 1) : !(Number.isInteger(outcome) && outcome >= 0)) {
      throw new InvalidOutcomeError(`row ${row}, column "${spec.outcome}": ${String(record[spec.outcome])} is not ${outcomeKind === 'binary' ? '0 or 1' : 'a non-negative integer count'}`)
    }
    y[row] = outcome
    if (offset !== undefined) {
      const value = toNumber(record[spec.offset as string])
      if (!Number.isFinite(value)) throw new NonFiniteError(`row ${row}, offset column "${spec.offset}": ${String(record[spec.offset as string])} is not a finite number`)
      offset[row] = value
    }
  }
  return offset === undefined ? { x, y, rows: n, cols: p } : { x, y, offset, rows: n, cols: p }
}

/** The distinct values of a column in sorted order, as R's factor() orders them. */
export function inferLevels (rows: Iterable<Record<string, unknown>>, column: string): string[] {
  const values = new Set<string>()
  for (const row of rows) {
    const value = row[column]
    if (value !== null && value !== undefined && value !== '') values.add(String(value))
  }
  return [...values].sort()
}

export function concatBlocks (blocks: readonly DataBlock[]): DataBlock {
  const first = blocks[0]
  if (first === undefined) throw new EmptyDataError('no blocks to join')
  const p = first.cols
  const hasOffset = first.offset !== undefined
  for (const block of blocks) {
    if (block.cols !== p) throw new DimensionMismatchError(`blocks have ${p} and ${block.cols} columns`)
    if ((block.offset !== undefined) !== hasOffset) throw new DimensionMismatchError('some blocks have an offset and some do not')
  }
  const rows = blocks.reduce((sum, block) => sum + block.rows, 0)
  const x = new Float64Array(rows * p)
  const y = new Float64Array(rows)
  const offset = hasOffset ? new Float64Array(rows) : undefined
  let cursor = 0
  for (const block of blocks) {
    x.set(block.x.subarray(0, block.rows * p), cursor * p)
    y.set(block.y.subarray(0, block.rows), cursor)
    if (offset !== undefined) offset.set((block.offset as Float64Array).subarray(0, block.rows), cursor)
    cursor += block.rows
  }
  return offset === undefined ? { x, y, rows, cols: p } : { x, y, offset, rows, cols: p }
}

/** The rows of a block picked by index, for splitting a data set over simulated peers. */
export function selectRows (block: DataBlock, indices: readonly number[]): DataBlock {
  const p = block.cols
  const x = new Float64Array(indices.length * p)
  const y = new Float64Array(indices.length)
  const offset = block.offset === undefined ? undefined : new Float64Array(indices.length)
  indices.forEach((source, target) => {
    x.set(block.x.subarray(source * p, source * p + p), target * p)
    y[target] = block.y[source] as number
    if (offset !== undefined) offset[target] = (block.offset as Float64Array)[source] as number
  })
  return offset === undefined ? { x, y, rows: indices.length, cols: p } : { x, y, offset, rows: indices.length, cols: p }
}
