import { describe, expect, it } from 'vitest'
import { createRng } from '../../src/consensus/rng.ts'
import { quickNumber, validateCell } from '../../src/store/import.ts'
import { isIsoDate, LATEST_DATE } from '../../src/store/values.ts'

/** The import's quick paths (a cell taken without a result object) against the checks they stand in for. */
const rng = createRng(20261201)
const pick = (characters: string): string => characters[Math.floor(rng() * characters.length)] as string

describe('the quick paths of an import', () => {
  it('take a number exactly when validateCell does, as the same value, within the same range', () => {
    const fixed = ['0', '-0', '+0.5', '007', '12', '-12', '1.', '.5', '5.', '1e1', '0x1F', '+', '-', '', '1,234', '١٢', '999999999999999', '1000000000000000', '0000000000000000001', '3.14159', '-120.5', '120', '121', '1 2']
    const random = Array.from({ length: 5000 }, () => Array.from({ length: 1 + Math.floor(rng() * 18) }, () => pick('0123456789000.+-e')).join(''))
    let taken = 0
    for (const text of [...fixed, ...random]) {
      for (const rule of [{ type: 'number' as const }, { type: 'number' as const, min: -120, max: 120 }]) {
        const full = validateCell(rule, text, LATEST_DATE)
        const quick = quickNumber(text, rule.min, rule.max)
        expect(quick, text).toBe('value' in full ? full.value : undefined)
        if (quick !== undefined) taken++
      }
    }
    // both kinds of outcome occur
    expect(taken).toBeGreaterThan(100)
    expect(taken).toBeLessThan(2 * (fixed.length + random.length) - 100)
  })

  it('read a date as the pattern and the calendar do', () => {
    const reference = (text: string): boolean => {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(text)) return false
      const [year, month, day] = text.split('-').map(Number) as [number, number, number]
      return month >= 1 && month <= 12 && day >= 1 && day <= new Date(Date.UTC(year, month, 0)).getUTCDate()
    }
    const fixed = ['2024-02-29', '2023-02-29', '1900-02-29', '2000-02-29', '2025-12-31', '2025-13-01', '2025-00-10', '2025-01-00', '2025-1-01', '2025-01-1', '2025/01/01', '20250101', '2025-01-01 ', '２０２５-01-01']
    const random = Array.from({ length: 5000 }, () => Array.from({ length: 10 }, (_, at) => at === 4 || at === 7 ? pick('--/') : pick('0123456789012x')).join(''))
    let valid = 0
    for (const text of [...fixed, ...random]) {
      expect(isIsoDate(text), text).toBe(reference(text))
      if (reference(text)) valid++
    }
    expect(valid).toBeGreaterThan(50)
  })
})
