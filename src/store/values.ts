/**
 * What a value in an operator's file is, exactly. Cells are first trimmed of ASCII spaces and tabs at
 * both ends (and only of those). Then:
 *
 * - **missing**: empty, `NA`, `NaN`, `null` or `NULL`;
 * - **a number**: an optional sign, ASCII digits (at most 15 before the decimal point, so that every
 *   whole number is exact), and optionally a decimal point followed by digits — `-12`, `+0.5`, `007`.
 *   Nothing else: no `0x1F`, `0b11`, `0o7`, `1e1`, `Infinity`, `.5`, `5.`, `1,234`, `1 234`, `١٢`;
 * - **a date**: `YYYY-MM-DD`, a real calendar day (no 2024-02-30) from 1900-01-01 to 2099-12-31;
 * - **text** (a category level, a record id): at most `MAX_VALUE_CHARS` characters, no control or
 *   invisible formatting character (zero-width, bidirectional controls, a byte-order mark), no space
 *   but the plain one (no no-break or ideographic space), and not starting like a spreadsheet formula
 *   (`=`, `@`, or `+`/`-` unless the whole value is a number or the sign alone).
 */
export const MAX_VALUE_CHARS = 1000
export const MAX_INTEGER_DIGITS = 15
export const EARLIEST_DATE = '1900-01-01'
export const LATEST_DATE = '2099-12-31'

const MISSING = new Set(['', 'NA', 'NaN', 'null', 'NULL'])
const DECIMAL = /^[+-]?(\d+)(?:\.\d+)?$/
const DATE_SHAPE = /^\d{4}-\d{2}-\d{2}$/

/** The cell without the ASCII spaces and tabs around it. */
export function trimCell (value: string): string {
  let start = 0
  let end = value.length
  while (start < end && (value[start] === ' ' || value[start] === '\t')) start++
  while (end > start && (value[end - 1] === ' ' || value[end - 1] === '\t')) end--
  return start === 0 && end === value.length ? value : value.slice(start, end)
}

export function isMissing (value: string | undefined): boolean {
  return value === undefined || MISSING.has(trimCell(value))
}

export type DecimalResult = { value: number } | { kind: 'NOT_DECIMAL' | 'NUMBER_TOO_LARGE', reason: string }

/** A trimmed cell as a number under the strict rule above. */
export function parseDecimal (text: string): DecimalResult {
  const match = DECIMAL.exec(text)
  if (match === null) return { kind: 'NOT_DECIMAL', reason: 'is not a decimal number (an optional sign, digits, and optionally a point and digits)' }
  if ((match[1] as string).replace(/^0+(?=\d)/, '').length > MAX_INTEGER_DIGITS) return { kind: 'NUMBER_TOO_LARGE', reason: `has more than ${MAX_INTEGER_DIGITS} digits before the decimal point` }
  return { value: Number(text) }
}

export function isDecimal (text: string): boolean {
  return 'value' in parseDecimal(text)
}

/**
 * Whether a trimmed cell is meant as a number though not written as one: JavaScript would read it
 * (`0x1F`, `1e1`, `Infinity`, ` 12`), or it is digits with thousands separators or odd spaces. A
 * column of numbers with such cells among them is still a number column, and those cells are refused.
 */
export function looksNumeric (text: string): boolean {
  if (text === '') return false
  if (!Number.isNaN(Number(text))) return true
  return /^[+-]?(?:\d[\d,'\s\u00a0\u202f\u3000]*(?:\.\d*)?|\.\d+)$/u.test(text) || /^[+-]?(?:Infinity|inf)$/i.test(text)
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]

/** The ASCII digit at `at` of `text` as a number, or -1. */
function digitAt (text: string, at: number): number {
  const code = text.charCodeAt(at) - 48
  return code >= 0 && code <= 9 ? code : -1
}

export function isIsoDate (value: string): boolean {
  // by arithmetic on the characters rather than a pattern and a Date object: it runs for every date cell of an import
  if (value.length !== 10 || value.charCodeAt(4) !== 45 || value.charCodeAt(7) !== 45) return false
  let year = 0
  for (let at = 0; at < 4; at++) {
    const digit = digitAt(value, at)
    if (digit < 0) return false
    year = year * 10 + digit
  }
  const m1 = digitAt(value, 5)
  const m2 = digitAt(value, 6)
  const d1 = digitAt(value, 8)
  const d2 = digitAt(value, 9)
  if (m1 < 0 || m2 < 0 || d1 < 0 || d2 < 0) return false
  const month = m1 * 10 + m2
  const day = d1 * 10 + d2
  if (month < 1 || month > 12 || day < 1) return false
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0)
  return day <= (month === 2 && leap ? 29 : DAYS_IN_MONTH[month - 1] as number)
}

/** Looks like YYYY-MM-DD (a column of such cells is a date column, and its impossible days are refused). */
export function looksLikeDate (value: string): boolean {
  return DATE_SHAPE.test(value)
}

export type DateResult = { value: string } | { kind: 'NOT_A_DATE' | 'DATE_OUT_OF_RANGE', reason: string }

/** A trimmed cell as a date, no later than `latest` (YYYY-MM-DD) when given. */
export function parseDate (text: string, latest = LATEST_DATE): DateResult {
  if (!isIsoDate(text)) return { kind: 'NOT_A_DATE', reason: 'is not a date (YYYY-MM-DD, a real calendar day)' }
  if (text < EARLIEST_DATE) return { kind: 'DATE_OUT_OF_RANGE', reason: `is before ${EARLIEST_DATE}` }
  if (text > latest) return { kind: 'DATE_OUT_OF_RANGE', reason: latest === LATEST_DATE ? `is after ${LATEST_DATE}` : `is in the future (after ${latest})` }
  return { value: text }
}

/** Tomorrow in UTC, YYYY-MM-DD: the latest day a record or a count may carry (a day's slack for time zones). */
export function latestRecordDate (now: Date): string {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString().slice(0, 10)
}

// control characters, invisible formatting (zero-width, bidirectional controls, BOM), line and
// paragraph separators, and every space but U+0020
const ODD_CHARACTER = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Co}\p{Cs}]|(?! )\p{Zs}/u
/** `=`, `@`, or a sign that does not begin a plain number (`-2+3` is a formula to a spreadsheet) */
const isFormula = (text: string): boolean => /^[=@]/.test(text) || (/^[+-]./.test(text) && !isDecimal(text))

export type TextProblem = { kind: 'VALUE_TOO_LONG' | 'ODD_CHARACTER' | 'FORMULA', reason: string }

/** The problem of a trimmed text cell that is to be stored or hashed, or null. */
export function textProblem (text: string, options: { formula?: boolean } = {}): TextProblem | null {
  if (text.length > MAX_VALUE_CHARS) return { kind: 'VALUE_TOO_LONG', reason: `is ${text.length} characters long; at most ${MAX_VALUE_CHARS}` }
  const odd = ODD_CHARACTER.exec(text)
  if (odd !== null) return { kind: 'ODD_CHARACTER', reason: `contains U+${(odd[0].codePointAt(0) as number).toString(16).toUpperCase().padStart(4, '0')} (a control, invisible or unusual space character)` }
  if (options.formula !== false && isFormula(text)) return { kind: 'FORMULA', reason: 'starts like a spreadsheet formula (=, @, + or -)' }
  return null
}
