import { EpimeshError } from '../errors.ts'

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

/** Up to `limit` (80) characters of `text`, with an ellipsis when it is longer. */
export function cut (text: string, limit = ECHO_LIMIT): string {
  const characters = [...text.slice(0, 4 * limit)]
  return characters.length > limit ? `${characters.slice(0, limit - 1).join('')}…` : text
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

/** Records to score (epimesh predict) that cannot be read at all: the file, its header, or not one record. Nothing is stored. */
export class CasesInvalidError extends EpimeshError {
  static override readonly name = 'CasesInvalidError'
  readonly exitCode = 2
  readonly problems: RowProblem[]
  readonly more: number
  constructor (problems: RowProblem[], more: number) {
    super('CASES_INVALID', [
      `the records to score were refused: ${problems.length + more} problem${problems.length + more === 1 ? '' : 's'}`,
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

/** Reading or writing the store failed (a full disk, an I/O error); an import leaves nothing visible. */
export class StoreIoError extends EpimeshError {
  static override readonly name = 'StoreIoError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_IO_FAILED', message, options) }
}

/* ---------------------------------------------------------------------------------------------- */
/* The store's key, its files on disk, and the machine it runs on                                  */
/* ---------------------------------------------------------------------------------------------- */

/** No key for an encrypted store: the default key file is gone, or a passphrase store without a passphrase. */
export class StoreKeyMissingError extends EpimeshError {
  static override readonly name = 'StoreKeyMissingError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_MISSING', message, options) }
}

/** The key (file or passphrase) does not match the store's key check value. */
export class StoreKeyWrongError extends EpimeshError {
  static override readonly name = 'StoreKeyWrongError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_WRONG', message, options) }
}

/** A key file that is empty or not a key (32 bytes, or 64 hexadecimal digits). */
export class StoreKeyInvalidError extends EpimeshError {
  static override readonly name = 'StoreKeyInvalidError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_INVALID', message, options) }
}

/** A key file that exists but cannot be read (permission denied, a folder in its place). */
export class StoreKeyUnreadableError extends EpimeshError {
  static override readonly name = 'StoreKeyUnreadableError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_UNREADABLE', message, options) }
}

/** A key file readable by group or others: refused, as ssh refuses such a private key. */
export class StoreKeyExposedError extends EpimeshError {
  static override readonly name = 'StoreKeyExposedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_EXPOSED', message, options) }
}

/** A key file inside the data folder: a copy of the folder would carry its own key. */
export class StoreKeyInsideFolderError extends EpimeshError {
  static override readonly name = 'StoreKeyInsideFolderError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_KEY_INSIDE_FOLDER', message, options) }
}

/** A store written by the earlier, unencrypted layout (or a migration that did not finish). */
export class StoreUnencryptedError extends EpimeshError {
  static override readonly name = 'StoreUnencryptedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_UNENCRYPTED', message, options) }
}

/** A stored value that fails authentication (changed or damaged on disk), or a store whose files are damaged. */
export class StoreCorruptError extends EpimeshError {
  static override readonly name = 'StoreCorruptError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_CORRUPT', message, options) }
}

/** A value handed to the store that it does not keep (a model without its job, a region name with control characters): nothing is written. */
export class StoreValueInvalidError extends EpimeshError {
  static override readonly name = 'StoreValueInvalidError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_VALUE_INVALID', message, options) }
}

/** Another process (an import, the peer writing) holds the store for longer than the wait. */
export class StoreLockedError extends EpimeshError {
  static override readonly name = 'StoreLockedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('STORE_LOCKED', message, options) }
}

/** The disk (or the user's quota) is full. */
export class DiskFullError extends EpimeshError {
  static override readonly name = 'DiskFullError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('DISK_FULL', message, options) }
}

/** The operating system refused access to a file or folder. */
export class PermissionDeniedError extends EpimeshError {
  static override readonly name = 'PermissionDeniedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('PERMISSION_DENIED', message, options) }
}

/** Any other input/output failure of the store or of a file the project writes. */
export class StorageFailedError extends EpimeshError {
  static override readonly name = 'StorageFailedError'
  readonly exitCode = 1
  constructor (message: string, options?: { cause?: unknown }) { super('STORAGE_FAILED', message, options) }
}


interface SystemFailure { code?: unknown, message?: unknown, cause?: unknown, path?: unknown }

const DISK_FULL = /No space left on device|Disk quota exceeded/i
const DENIED = /Permission denied|Operation not permitted|Read-only file system/i

/**
 * The coded error for a failure of the store or of the file system, or null for anything else (a
 * programming error keeps its stack). An error already coded anywhere in the `cause` chain wins:
 * abstract-level wraps a value that fails to decrypt in its own LEVEL_DECODE_ERROR. LevelDB reports
 * the operating system's failures as text ("IO error: DIR/000003.log: No space left on device"),
 * Node as errno codes; both are mapped.
 */
export function storageFailure (error: unknown): EpimeshError | null {
  const chain: SystemFailure[] = []
  for (let link: unknown = error; typeof link === 'object' && link !== null && chain.length < 8; link = (link as SystemFailure).cause) chain.push(link as SystemFailure)
  const coded = chain.find((link): link is EpimeshError => link instanceof EpimeshError)
  if (coded !== undefined) return coded
  const codes = new Set(chain.map((link) => link.code))
  const text = chain.map((link) => typeof link.message === 'string' ? link.message : '').join('; ')
  const where = chain.map((link) => link.path).find((path): path is string => typeof path === 'string')
  const reason = cut(where === undefined || text.includes(where) ? text : `${where}: ${text}`, 200)
  if (codes.has('ENOSPC') || codes.has('EDQUOT') || DISK_FULL.test(text)) return new DiskFullError(`the disk is full: ${reason}`, { cause: error })
  if (codes.has('EACCES') || codes.has('EPERM') || codes.has('EROFS') || DENIED.test(text)) return new PermissionDeniedError(`permission denied: ${reason}`, { cause: error })
  if (codes.has('LEVEL_LOCKED')) return new StoreLockedError(`the store is held by another process: ${reason}`, { cause: error })
  if (codes.has('LEVEL_CORRUPTION')) return new StoreCorruptError(`the store's files are damaged: ${reason}`, { cause: error })
  if (codes.has('LEVEL_IO_ERROR') || codes.has('EIO') || codes.has('EMFILE') || codes.has('ENFILE')) {
    return new StorageFailedError(`a file could not be read or written: ${reason}`, { cause: error })
  }
  return null
}
