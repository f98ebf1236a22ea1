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

/** A value echoed in a message: at most 80 characters. */
export function cut (text: string, length = 80): string {
  return text.length <= length ? text : `${text.slice(0, length - 3)}...`
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
