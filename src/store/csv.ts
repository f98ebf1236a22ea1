import { stat } from 'node:fs/promises'
import { createReadStream } from 'node:fs'
import { CsvError, Parser } from 'csv-parse'
import { EpimeshError } from '../errors.ts'
import { CsvSyntaxError, ImportEncodingError, ImportUnreadableError, type RowProblem } from './errors.ts'

/**
 * Reading an operator's CSV file defensively. Before the CSV parser sees a byte, a screen checks that
 * the file is clean UTF-8 text (no invalid sequence, no NUL or other control byte but tab and line
 * breaks, no byte-order mark after the start), that its lines all end alike (LF or CRLF, never a bare
 * CR, never a mix, which would silently run records together) and that no line is longer than
 * `MAX_LINE_BYTES`. The first problem stops the read with a coded error naming the line.
 */
export const MAX_LINE_BYTES = 1 << 20
/** columns a file (or a schema) may have */
export const MAX_COLUMNS = 1000

export interface ByteProblem {
  line: number
  kind: 'INVALID_UTF8' | 'CONTROL_CHARACTER' | 'BOM_INSIDE' | 'BARE_CR' | 'MIXED_LINE_ENDINGS' | 'LINE_TOO_LONG'
  reason: string
}

const hex = (byte: number): string => `0x${byte.toString(16).padStart(2, '0').toUpperCase()}`

/** A streaming check of a file's bytes; `push` each chunk in order, then `end`. */
export class ByteScreen {
  private line = 1
  private lineBytes = 0
  private offset = 0
  private need = 0
  private codePoint = 0
  private charStart = 0
  private lower = 0x80
  private upper = 0xbf
  private afterCr = false
  private ending: 'LF' | 'CRLF' | null = null
  private endingLine = 0
  private readonly maxLineBytes: number

  constructor (maxLineBytes = MAX_LINE_BYTES) {
    this.maxLineBytes = maxLineBytes
  }

  private invalid (byte: number): ByteProblem {
    return { line: this.line, kind: 'INVALID_UTF8', reason: `invalid UTF-8: byte ${hex(byte)} at byte ${this.lineBytes + 1} of the line` }
  }

  private lineEnd (ending: 'LF' | 'CRLF'): ByteProblem | null {
    if (this.ending === null) {
      this.ending = ending
      this.endingLine = this.line
    } else if (this.ending !== ending) {
      return { line: this.line, kind: 'MIXED_LINE_ENDINGS', reason: `this line ends with ${ending}, line ${this.endingLine} with ${this.ending}: a file's lines must all end alike` }
    }
    this.line++
    this.lineBytes = 0
    return null
  }

  /** The first problem in `chunk`, or null. */
  push (chunk: Uint8Array): ByteProblem | null {
    for (let index = 0; index < chunk.length; index++, this.offset++) {
      const byte = chunk[index] as number
      if (this.afterCr) {
        this.afterCr = false
        if (byte !== 0x0a) return { line: this.line, kind: 'BARE_CR', reason: 'a carriage return (CR) without a line feed' }
        const problem = this.lineEnd('CRLF')
        if (problem !== null) return problem
        continue
      }
      if (this.need > 0) {
        if (byte < this.lower || byte > this.upper) return this.invalid(byte)
        this.codePoint = (this.codePoint << 6) | (byte & 0x3f)
        this.lower = 0x80
        this.upper = 0xbf
        if (--this.need === 0 && this.codePoint === 0xfeff && this.charStart !== 0) {
          return { line: this.line, kind: 'BOM_INSIDE', reason: `a byte-order mark (U+FEFF) at byte ${this.lineBytes - 1} of the line; one is allowed only at the start of the file` }
        }
      } else if (byte < 0x80) {
        if (byte === 0x0a) {
          const problem = this.lineEnd('LF')
          if (problem !== null) return problem
          continue
        }
        if (byte === 0x0d) {
          this.afterCr = true
          continue
        }
        if ((byte < 0x20 && byte !== 0x09) || byte === 0x7f) {
          return { line: this.line, kind: 'CONTROL_CHARACTER', reason: `${byte === 0 ? 'a NUL byte' : `the control character ${hex(byte)}`} at byte ${this.lineBytes + 1} of the line` }
        }
      } else {
        this.charStart = this.offset
        if (byte >= 0xc2 && byte <= 0xdf) {
          this.need = 1
          this.codePoint = byte & 0x1f
        } else if (byte >= 0xe0 && byte <= 0xef) {
          this.need = 2
          this.codePoint = byte & 0x0f
          if (byte === 0xe0) this.lower = 0xa0 // no overlong forms
          if (byte === 0xed) this.upper = 0x9f // no surrogates
        } else if (byte >= 0xf0 && byte <= 0xf4) {
          this.need = 3
          this.codePoint = byte & 0x07
          if (byte === 0xf0) this.lower = 0x90
          if (byte === 0xf4) this.upper = 0x8f // nothing above U+10FFFF
        } else {
          return this.invalid(byte)
        }
      }
      if (++this.lineBytes > this.maxLineBytes) return { line: this.line, kind: 'LINE_TOO_LONG', reason: `the line is longer than ${this.maxLineBytes} bytes` }
    }
    return null
  }

  /** A problem at the end of the file (a character cut short, a final bare CR), or null. */
  end (): ByteProblem | null {
    if (this.need > 0) return { line: this.line, kind: 'INVALID_UTF8', reason: 'invalid UTF-8: the file ends inside a character' }
    if (this.afterCr) return { line: this.line, kind: 'BARE_CR', reason: 'a carriage return (CR) without a line feed' }
    return null
  }
}

const ENCODING_KINDS = new Set(['INVALID_UTF8', 'CONTROL_CHARACTER', 'BOM_INSIDE'])

/** The coded error for a screen's problem: IMPORT_ENCODING or IMPORT_CSV_SYNTAX. */
export function byteProblemError (file: string, problem: ByteProblem): ImportEncodingError | CsvSyntaxError {
  const row: RowProblem = { file, line: problem.line, column: '(line)', kind: problem.kind, reason: problem.reason }
  return ENCODING_KINDS.has(problem.kind) ? new ImportEncodingError(row) : new CsvSyntaxError(row)
}

const CSV_REASONS: Record<string, [string, string]> = {
  CSV_QUOTE_NOT_CLOSED: ['QUOTE_NOT_CLOSED', 'a quoted field is never closed'],
  INVALID_OPENING_QUOTE: ['QUOTE_MISPLACED', 'a quote inside an unquoted field (quote the whole field and double the quote)'],
  CSV_INVALID_CLOSING_QUOTE: ['QUOTE_MISPLACED', 'text after a closing quote (double a quote inside a quoted field)'],
  CSV_MAX_RECORD_SIZE: ['LINE_TOO_LONG', `a record longer than ${MAX_LINE_BYTES} characters`]
}

/** A csv-parse error as IMPORT_CSV_SYNTAX, at the line where its record starts (`fallbackLine`) when the parser names none. */
export function csvParseError (file: string, error: CsvError, fallbackLine: number): CsvSyntaxError {
  const [kind, reason] = CSV_REASONS[error.code] ?? ['CSV', `${error.code}: not well-formed CSV`]
  // a record never closed, or too long, is named by the line it starts on
  const startLine = kind === 'QUOTE_NOT_CLOSED' || kind === 'LINE_TOO_LONG'
  const line = startLine ? fallbackLine : (error as { lines?: number }).lines ?? fallbackLine
  return new CsvSyntaxError({ file, line, column: '(line)', kind, reason: startLine ? `${reason} (it starts on this line or after it)` : reason })
}

export interface CsvRecord {
  fields: string[]
  /** the line the record starts on */
  line: number
}

function isErrno (error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' && typeof (error as NodeJS.ErrnoException).syscall === 'string'
}

/** The parser's engine under its stream (csv-parse's `Parser#api`): called directly, it hands each record over as it ends, with the line count then. */
interface ParserEngine {
  parse: (chunk: Buffer | undefined, end: boolean, push: (record: string[]) => void, close: () => void) => Error | undefined
  info: { lines: number }
}

function engineOf (parser: Parser): ParserEngine {
  const engine = (parser as unknown as { api?: Partial<ParserEngine> }).api
  if (typeof engine?.parse !== 'function' || typeof engine.info?.lines !== 'number') throw new TypeError('csv-parse without the parser engine this reader uses (Parser#api): a version this program was not written for')
  return engine as ParserEngine
}

/**
 * The records of a CSV file, screened, with the line each starts on, a chunk of the file at a time
 * (hundreds of records an array). A leading byte-order mark is dropped, empty lines are skipped,
 * records may have any number of fields (the caller checks). The file must be a regular file (it may
 * be read twice).
 *
 * The screen and the parser are called on each chunk read, not joined as streams: a stream in object
 * mode, and csv-parse's record information (an object a record), cost more than the parsing itself.
 */
export async function * readCsvChunks (file: string): AsyncGenerator<CsvRecord[]> {
  try {
    const info = await stat(file)
    if (!info.isFile()) throw new ImportUnreadableError(file, 'not a regular file')
  } catch (error) {
    if (error instanceof EpimeshError) throw error
    throw new ImportUnreadableError(file, isErrno(error) ? error.code as string : 'cannot read it', { cause: error })
  }
  const source = createReadStream(file, { highWaterMark: 1 << 16 })
  const screen = new ByteScreen()
  const engine = engineOf(new Parser({ bom: true, relax_column_count: true, skip_empty_lines: true, max_record_size: MAX_LINE_BYTES }))
  let nextLine = 1
  let records: CsvRecord[] = []
  const push = (record: string[]): void => {
    let inner = 0
    for (const field of record) for (let at = field.indexOf('\n'); at !== -1; at = field.indexOf('\n', at + 1)) inner++
    const lines = engine.info.lines
    records.push({ fields: record, line: lines - inner })
    nextLine = lines + 1
  }
  const close = (): void => {}
  try {
    for await (const chunk of source as AsyncIterable<Buffer>) {
      const problem = screen.push(chunk)
      if (problem !== null) throw byteProblemError(file, problem)
      const error = engine.parse(chunk, false, push, close)
      // the records before a malformed one come first, as they would from a stream
      if (records.length > 0) {
        yield records
        records = []
      }
      if (error !== undefined) throw error
    }
    const problem = screen.end()
    if (problem !== null) throw byteProblemError(file, problem)
    const error = engine.parse(undefined, true, push, close)
    if (records.length > 0) yield records
    if (error !== undefined) throw error
  } catch (error) {
    if (error instanceof EpimeshError) throw error
    if (error instanceof CsvError) throw csvParseError(file, error, nextLine)
    if (isErrno(error)) throw new ImportUnreadableError(file, error.code as string, { cause: error })
    throw error
  } finally {
    source.destroy()
  }
}

/** The records of a CSV file one at a time (readCsvChunks). */
export async function * readCsv (file: string): AsyncGenerator<CsvRecord> {
  for await (const records of readCsvChunks(file)) yield * records
}
