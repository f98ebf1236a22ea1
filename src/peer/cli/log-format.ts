import { OptionInvalidError } from '../../store/errors.ts'

/**
 * How `start` writes its log on stderr: JSON lines (pino's own, for log collectors and pipes), or
 * readable lines for a person at a terminal, one per record:
 *
 *   14:03:07.512 INFO  peer started  addresses=/ip4/127.0.0.1/tcp/4001/p2p/12D3… neighbours=2
 *
 * The readable form is made here from the JSON pino writes (no extra package: pino-pretty would bring
 * its own dependencies for what is a few lines of formatting).
 */
export type LogFormat = 'json' | 'pretty'

export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty']

/** `--log-format` as given, or by default pretty when the log goes to a terminal and JSON otherwise. */
export function chooseLogFormat (given: string | undefined, terminal: boolean): LogFormat {
  if (given === undefined) return terminal ? 'pretty' : 'json'
  if (given !== 'json' && given !== 'pretty') throw new OptionInvalidError(`--log-format must be json or pretty, got ${JSON.stringify(given.slice(0, 40))}`)
  return given
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' }
const COLOURS: Record<number, string> = { 10: '90', 20: '90', 30: '32', 40: '33', 50: '31', 60: '35' }
const MAX_VALUE_CHARS = 200

/** A field's value in a readable line: a plain word as it is, anything else as JSON, cut to 200 characters. */
function fieldValue (value: unknown): string {
  const text = typeof value === 'string' && /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value) ?? String(value)
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS - 1)}…` : text
}

/** One JSON log record as a readable line (a line that is not a JSON object is kept as it is). */
export function prettyLine (json: string, options: { colour?: boolean } = {}): string {
  let record: unknown
  try {
    record = JSON.parse(json)
  } catch {
    return json
  }
  if (typeof record !== 'object' || record === null || Array.isArray(record)) return json
  const { level, time, msg, ...fields } = record as Record<string, unknown>
  // the time of day (the date is the reader's today; the JSON form keeps the full time stamp)
  const clock = typeof time === 'string'
    ? (/T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(time)?.[1] ?? time)
    : typeof time === 'number' ? new Date(time).toISOString().slice(11, 23) : ''
  const number = typeof level === 'number' ? level : 30
  const name = (LEVELS[number] ?? String(level)).padEnd(5)
  const shown = options.colour === true ? `\u001b[${COLOURS[number] ?? '0'}m${name}\u001b[0m` : name
  const rest = Object.entries(fields).filter(([, value]) => value !== undefined).map(([key, value]) => `${key}=${fieldValue(value)}`).join(' ')
  return `${clock === '' ? '' : `${clock} `}${shown} ${typeof msg === 'string' ? msg : ''}${rest === '' ? '' : `  ${rest}`}`
}

/** A destination for pino that writes each record to `out` as a readable line. */
export function prettyDestination (out: { write: (text: string) => unknown }, options: { colour?: boolean } = {}): { write: (chunk: string) => void } {
  return {
    write (chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') out.write(`${prettyLine(line, options)}\n`)
    }
  }
}
