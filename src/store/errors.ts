import { EpimeshError } from '../learning/errors.ts'

/**
 * Typed errors of the local store and of the operator's data commands, with stable codes. Unusable
 * input exits with 2; a run that fails for another reason (a store held by another process, a full
 * disk) with 1. A value taken from a file is never echoed whole: `echo` cuts it to 80 characters.
 */
export const ECHO_LIMIT = 80

// characters a terminal would hide or show as a plain space: escaped as \uXXXX in messages
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}]|(?! )\p{Zs}/gu

/** Up to 80 characters of `value`, escaped (quotes, control and invisible characters) and quoted, for a message. */
export function echo (value: string): string {
  const escaped = JSON.stringify(value.slice(0, 4 * ECHO_LIMIT)).slice(1, -1)
    .replace(INVISIBLE, (character) => `\\u${(character.codePointAt(0) as number).toString(16).padStart(4, '0')}`)
  return `"${cut(escaped)}"`
}

/** Up to 80 characters of `text`, with an ellipsis when it is longer. */
export function cut (text: string): string {
  const characters = [...text.slice(0, 4 * ECHO_LIMIT)]
  return characters.length > ECHO_LIMIT ? `${characters.slice(0, ECHO_LIMIT - 1).join('')}…` : text
}

/**
 * One problem of an import at a place in the file. `kind` is stable (tests and scripts check it);
 * `reason` is for people. Kinds: FIELD_COUNT, NO_RECORDS, HEADER_EMPTY, HEADER_DUPLICATE,
 * TOO_MANY_COLUMNS, COLUMN_UNKNOWN, COLUMN_MISSING, ID_MISSING, ID_DUPLICATE, VALUE_REQUIRED,
 * VALUE_TOO_LONG, ODD_CHARACTER, FORMULA, NOT_DECIMAL, NUMBER_TOO_LARGE, OUT_OF_RANGE, NOT_A_LEVEL,
 * NOT_A_DATE, DATE_OUT_OF_RANGE, NOT_A_COUNT, NOT_POSITIVE, DATE_DUPLICATE, NO_VALUES (import);
 * INVALID_UTF8, CONTROL_CHARACTER, BOM_INSIDE (encoding); QUOTE_NOT_CLOSED, QUOTE_MISPLACED,
 * BARE_CR, MIXED_LINE_ENDINGS, LINE_TOO_LONG, CSV (CSV syntax).
 */
export interface RowProblem {
  file: string
  line: number
  column: string
  kind: string
  reason: string
}

function problemLines (problems: RowProblem[]): string[] {
  return problems.map((problem) => `  ${problem.file}, line ${problem.line}, column ${cut(problem.column)}: ${problem.reason} [${problem.kind}]`)
}

/** Values or a header that do not pass: every problem (up to a limit) with its place and kind. */
export class ImportInvalidError extends EpimeshError {
  static override readonly name = 'ImportInvalidError'
  readonly exitCode = 2
  readonly problems: RowProblem[]
  readonly more: number
  constructor (problems: RowProblem[], more: number) {
    super('IMPORT_INVALID', [
      `the import was refused and nothing was written: ${problems.length + more} problem${problems.length + more === 1 ? '' : 's'}`,
      ...problemLines(problems),
      ...(more > 0 ? [`  ... and ${more} more`] : [])
    ].join('\n'))
    this.problems = problems
    this.more = more
  }
}

/** A file that is not clean UTF-8 text: invalid UTF-8, a NUL or other control byte, a byte-order mark after the start. */
export class ImportEncodingError extends EpimeshError {
  static override readonly name = 'ImportEncodingError'
  readonly exitCode = 2
  readonly problems: RowProblem[]
  constructor (problem: RowProblem) {
    super('IMPORT_ENCODING', ['the import was refused and nothing was written: the file is not clean UTF-8 text', ...problemLines([problem])].join('\n'))
    this.problems = [problem]
  }
}

/** A file that is not well-formed CSV: an unbalanced quote, mixed line endings, a line too long. */
export class CsvSyntaxError extends EpimeshError {
  static override readonly name = 'CsvSyntaxError'
  readonly exitCode = 2
  readonly problems: RowProblem[]
  constructor (problem: RowProblem) {
    super('IMPORT_CSV_SYNTAX', ['the import was refused and nothing was written: the file is not well-formed CSV', ...problemLines([problem])].join('\n'))
    this.problems = [problem]
  }
}

/** A file that cannot be read: missing, not a regular file, permission denied. */
export class ImportUnreadableError extends EpimeshError {
  static override readonly name = 'ImportUnreadableError'
  readonly exitCode = 2
  constructor (file: string, reason: string, options?: { cause?: unknown }) {
    super('IMPORT_UNREADABLE', `cannot read ${file}: ${reason}`, options)
  }
}

/**
 * How a column was found to hold direct identifiers: by its name (COLUMN_NAME), or by a value that is
 * a resident identity number (RESIDENT_ID), a mobile number (MOBILE), another phone number (PHONE)
 * or an e-mail address (EMAIL), first seen on `line`.
 */
export interface IdentifierFinding {
  column: string
  kind: 'COLUMN_NAME' | 'RESIDENT_ID' | 'MOBILE' | 'PHONE' | 'EMAIL'
  line?: number
}

const FINDING_TEXT: Record<IdentifierFinding['kind'], string> = {
  COLUMN_NAME: 'its name says it holds a direct identifier',
  RESIDENT_ID: 'holds resident identity numbers',
  MOBILE: 'holds mobile numbers',
  PHONE: 'holds phone numbers',
  EMAIL: 'holds e-mail addresses'
}

export class IdentifierRefusedError extends EpimeshError {
  static override readonly name = 'IdentifierRefusedError'
  readonly exitCode = 2
  readonly columns: string[]
  readonly findings: IdentifierFinding[]
  constructor (file: string, findings: IdentifierFinding[]) {
    const columns = [...new Set(findings.map((finding) => finding.column))]
    super('IMPORT_DIRECT_IDENTIFIER', [
      `${file}: ${columns.length === 1 ? 'a column holds' : `${columns.length} columns hold`} direct identifiers (ID number, phone, name, address, e-mail, trajectory); refused, nothing was written. Drop or hash ${columns.length === 1 ? 'it' : 'them'} in the schema ("action": "drop" or "hash").`,
      ...findings.map((finding) => `  column ${cut(finding.column)}: ${FINDING_TEXT[finding.kind]}${finding.line === undefined ? '' : ` (line ${finding.line})`} [${finding.kind}]`)
    ].join('\n'))
    this.columns = columns
    this.findings = findings
  }
}

/**
 * A text column of an inferred schema that cannot be taken for a category: nearly one distinct value
 * per row (UNIQUE_TEXT, a likely identifier), long free text (LONG_TEXT), or too few values to tell
 * (TOO_FEW_VALUES).
 */
export interface FreeTextFinding {
  column: string
  kind: 'UNIQUE_TEXT' | 'LONG_TEXT' | 'TOO_FEW_VALUES'
  values: number
  distinct: number
}

const FREE_TEXT_REASON: Record<FreeTextFinding['kind'], string> = {
  UNIQUE_TEXT: 'nearly one distinct value per row: a likely identifier',
  LONG_TEXT: 'values longer than a category level: free text',
  TOO_FEW_VALUES: 'too few values to tell a category from free text'
}

export class FreeTextRefusedError extends EpimeshError {
  static override readonly name = 'FreeTextRefusedError'
  readonly exitCode = 2
  readonly findings: FreeTextFinding[]
  constructor (file: string, findings: FreeTextFinding[]) {
    super('IMPORT_FREE_TEXT', [
      `${file}: no schema was given, and ${findings.length === 1 ? 'a text column is' : `${findings.length} text columns are`} not a category; refused, nothing was written. Declare ${findings.length === 1 ? 'it' : 'them'} in a schema (a category with its levels, or "action": "drop" or "hash").`,
      ...findings.map((finding) => `  column ${cut(finding.column)}: ${finding.distinct} distinct of ${finding.values} values; ${FREE_TEXT_REASON[finding.kind]} [${finding.kind}]`)
    ].join('\n'))
    this.findings = findings
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

/** A data command's option that cannot be used: a period without its unit, a threshold that is not a whole number. */
export class OptionInvalidError extends EpimeshError {
  static override readonly name = 'OptionInvalidError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('OPTION_INVALID', message, options) }
}

/** `purge` would remove every record, and nobody confirmed it (no terminal to ask, no --yes). */
export class PurgeNotConfirmedError extends EpimeshError {
  static override readonly name = 'PurgeNotConfirmedError'
  readonly exitCode = 2
  constructor (message: string) { super('PURGE_NOT_CONFIRMED', message) }
}

/** A data folder that cannot be used: not a folder, permission denied. */
export class DataFolderUnusableError extends EpimeshError {
  static override readonly name = 'DataFolderUnusableError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('DATA_FOLDER_UNUSABLE', message, options) }
}

/** The store is held by another process for longer than a command waits. */
export class StoreLockedError extends EpimeshError {
  static override readonly name = 'StoreLockedError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_LOCKED', message, options) }
}

/** Reading or writing the store failed (a full disk, an I/O error); an import leaves nothing visible. */
export class StoreIoError extends EpimeshError {
  static override readonly name = 'StoreIoError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_IO_FAILED', message, options) }
}
