import { EpimeshError } from '../learning/errors.ts'

/** Typed errors of the local store, with stable codes. Unusable input exits with 2. */
export interface RowProblem {
  file: string
  line: number
  column: string
  reason: string
}

export class ImportInvalidError extends EpimeshError {
  static override readonly name = 'ImportInvalidError'
  readonly exitCode = 2
  readonly problems: RowProblem[]
  readonly more: number
  constructor (problems: RowProblem[], more: number) {
    super('IMPORT_INVALID', [
      `the import was refused and nothing was written: ${problems.length + more} problem${problems.length + more === 1 ? '' : 's'}`,
      ...problems.map((problem) => `  ${problem.file}, line ${problem.line}, column ${problem.column}: ${problem.reason}`),
      ...(more > 0 ? [`  ... and ${more} more`] : [])
    ].join('\n'))
    this.problems = problems
    this.more = more
  }
}

export class IdentifierRefusedError extends EpimeshError {
  static override readonly name = 'IdentifierRefusedError'
  readonly exitCode = 2
  readonly columns: string[]
  constructor (file: string, columns: string[]) {
    super('IMPORT_DIRECT_IDENTIFIER', `${file}: column${columns.length === 1 ? '' : 's'} ${columns.map((column) => `"${column}"`).join(', ')} look${columns.length === 1 ? 's' : ''} like a direct identifier (ID number, phone, name, address, trajectory); refused. Drop or hash ${columns.length === 1 ? 'it' : 'them'} in the schema ("action": "drop" or "hash").`)
    this.columns = columns
  }
}

export class SchemaInvalidError extends EpimeshError {
  static override readonly name = 'SchemaInvalidError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('SCHEMA_INVALID', message, options) }
}

export class SchemaMismatchError extends EpimeshError {
  static override readonly name = 'SchemaMismatchError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('SCHEMA_MISMATCH', message, options) }
}

export class StoreNotInitializedError extends EpimeshError {
  static override readonly name = 'StoreNotInitializedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_NOT_INITIALIZED', message, options) }
}
