import { describe, expect, it } from 'vitest'
import { cut, echo } from '../../src/store/errors.ts'
import { isMissing, latestRecordDate, looksNumeric, parseDate, parseDecimal, textProblem, trimCell } from '../../src/store/values.ts'

describe('a number is an optional sign, digits, and optionally a point and digits', () => {
  it('reads plain decimal numbers', () => {
    for (const [text, value] of [['0', 0], ['-12', -12], ['+0.5', 0.5], ['007', 7], ['3.14', 3.14], ['123456789012345', 123456789012345], ['-0.000001', -0.000001], ['0000000000000000001', 1]] as const) {
      expect(parseDecimal(text)).toEqual({ value })
    }
  })

  it('refuses every other way of writing a number, and more than 15 digits before the point', () => {
    for (const text of ['0x1F', '0X1f', '0b11', '0o7', '1e1', '1E-3', '2.5e+3', 'Infinity', '-Infinity', '.5', '5.', '1,234', '1 234', '1_000', '1\u00a0234', '١٢', '１２', '+-1', '--1', '', ' 12', '12 ', '1.2.3', '½']) {
      expect(parseDecimal(text), text).toMatchObject({ kind: 'NOT_DECIMAL' })
    }
    expect(parseDecimal('1234567890123456')).toMatchObject({ kind: 'NUMBER_TOO_LARGE' })
    expect(parseDecimal('-9'.padEnd(400, '9'))).toMatchObject({ kind: 'NUMBER_TOO_LARGE' })
  })

  it('tells cells meant as numbers (refused later, each with its line) from text', () => {
    for (const text of ['0x1F', '1e1', 'Infinity', '1,234', '1 234', '12.', '.5', '0b11']) expect(looksNumeric(text), text).toBe(true)
    for (const text of ['north', 'A01', '0-5yrs', '2024-01-05', '12+ yrs', '']) expect(looksNumeric(text), text).toBe(false)
  })

  it('trims ASCII spaces and tabs only, and knows the missing markers', () => {
    expect(trimCell(' \t12 \t')).toBe('12')
    expect(trimCell('\u00a012\u3000')).toBe('\u00a012\u3000')
    for (const text of ['', '  ', 'NA', ' NaN ', 'null', 'NULL']) expect(isMissing(text), text).toBe(true)
    for (const text of ['0', 'na', 'None', '-']) expect(isMissing(text), text).toBe(false)
  })
})

describe('dates', () => {
  it('are real calendar days, YYYY-MM-DD, from 1900 to 2099 and no later than the limit given', () => {
    expect(parseDate('2024-02-29')).toEqual({ value: '2024-02-29' })
    for (const text of ['2023-02-29', '2024-02-30', '2024-04-31', '2024-13-01', '2024-1-5', '05/01/2024', '20240105', '2024-01-05T00:00']) {
      expect(parseDate(text), text).toMatchObject({ kind: 'NOT_A_DATE' })
    }
    for (const text of ['1899-12-31', '2100-01-01', '0001-01-01']) expect(parseDate(text), text).toMatchObject({ kind: 'DATE_OUT_OF_RANGE' })
    const latest = latestRecordDate(new Date('2026-03-10T23:30:00Z'))
    expect(latest).toBe('2026-03-11')
    expect(parseDate('2026-03-11', latest)).toEqual({ value: '2026-03-11' })
    expect(parseDate('2026-03-12', latest)).toMatchObject({ kind: 'DATE_OUT_OF_RANGE' })
  })
})

describe('text that is stored', () => {
  it('has no control, invisible or unusual space character', () => {
    for (const text of ['San Bernardino', 'naïve', '上海市 浦东新区', 'A+', '+', '-', '-1', '12+ yrs', 'O\'Brien']) expect(textProblem(text), text).toBeNull()
    for (const text of ['a\u00a0b', 'a\u200bb', 'a\u202eb', 'a\ufeffb', 'a\tb', 'a\nb', 'a\u3000b', 'a\u2028b', 'a\u0000b', 'a\u0085b']) {
      expect(textProblem(text), JSON.stringify(text)).toMatchObject({ kind: 'ODD_CHARACTER' })
    }
  })

  it('does not start like a spreadsheet formula', () => {
    for (const text of ['=cmd|\' /C calc\'!A0', '=1+2', '@SUM(A1:A9)', '+cmd', '-2+3', '-cmd|\'/c notepad\'!A1', '+A1']) {
      expect(textProblem(text), text).toMatchObject({ kind: 'FORMULA' })
    }
    expect(textProblem('=x', { formula: false })).toBeNull()
  })

  it('is at most 1000 characters long', () => {
    expect(textProblem('x'.repeat(1000))).toBeNull()
    expect(textProblem('x'.repeat(1001))).toMatchObject({ kind: 'VALUE_TOO_LONG' })
  })
})

describe('values in messages', () => {
  it('are cut to 80 characters, escaped, never whole', () => {
    const huge = 'x'.repeat(10 * 1024 * 1024)
    expect(echo(huge).length).toBeLessThanOrEqual(82)
    expect(cut(huge)).toHaveLength(80)
    expect(cut('short')).toBe('short')
    expect(echo('a\u0000b\u00a0c"')).toBe('"a\\u0000b\\u00a0c\\""')
    expect([...echo('姓'.repeat(500))].length).toBeLessThanOrEqual(82)
  })
})
