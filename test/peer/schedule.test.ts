import { describe, expect, it } from 'vitest'
import { nextRefitAt, parseRefitSchedule, refitJobId } from '../../src/peer/runtime/schedule.ts'
import { isJobId } from '../../src/consensus/ids.ts'

describe('start --refit-at', () => {
  it('daily@HH:MM fires at that local time, today if it is still ahead, else tomorrow', () => {
    const schedule = parseRefitSchedule('daily@02:00')
    expect(schedule).toEqual({ kind: 'daily', hour: 2, minute: 0 })
    const before = new Date(2026, 11, 1, 1, 59, 30)
    expect(nextRefitAt(schedule, before)).toEqual(new Date(2026, 11, 1, 2, 0, 0))
    const at = new Date(2026, 11, 1, 2, 0, 0)
    expect(nextRefitAt(schedule, at)).toEqual(new Date(2026, 11, 2, 2, 0, 0))
    // across the end of a month and of a year
    expect(nextRefitAt(schedule, new Date(2026, 11, 31, 23, 0))).toEqual(new Date(2027, 0, 1, 2, 0, 0))
  })

  it('every@N counts from now; the job ids are valid and sortable', () => {
    expect(parseRefitSchedule('every@6h')).toEqual({ kind: 'every', ms: 6 * 3_600_000 })
    const now = new Date(2026, 11, 1, 12, 0, 0)
    expect(nextRefitAt(parseRefitSchedule('every@15m'), now).getTime() - now.getTime()).toBe(15 * 60_000)
    const id = refitJobId(new Date(2026, 0, 5, 7, 8, 9))
    expect(id).toBe('refit-20260105-070809')
    expect(isJobId(id)).toBe(true)
    expect(refitJobId(new Date(2026, 0, 5, 7, 8, 10)) > id).toBe(true)
  })

  it('refuses anything else, naming the flag', () => {
    for (const text of ['daily@24:00', 'daily@2:00', 'hourly', 'every@5s', 'every@1000h', 'every@-1m', 'daily@02:00; rm -rf /']) {
      expect(() => parseRefitSchedule(text)).toThrow(/--refit-at/)
    }
  })
})
