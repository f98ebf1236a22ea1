import { describe, expect, it } from 'vitest'
import { forecastRefresh, forecastRefreshId } from '../../src/peer/runtime/forecast-refresh.ts'
import { isJobId } from '../../src/consensus/ids.ts'
import type { StoredForecast } from '../../src/store/store.ts'

/** A forecast as a region keeps it, with the settings it was proposed with (or none, as earlier versions kept it). */
function stored (settings: Record<string, unknown> | undefined): StoredForecast {
  return {
    job: 'risk-1',
    region: 'alpha',
    createdAt: '2026-12-01T02:30:00.000Z',
    forecast: [{ step: 1, mean: 3, lower: 1, upper: 6 }],
    rate: 1,
    h: 0.1,
    joint: { sum: 0.3, mean: 0.1, regions: 3, open: [] },
    model: { job: 'risk-1', createdAt: '2026-12-01T02:30:00.000Z', rounds: 10, converged: true, peers: 3, rows: 100, logLikelihood: -1, penalty: null, metrics: null, dropped: [], coefficients: [] },
    ...(settings === undefined ? {} : { settings })
  } as StoredForecast
}

const weekly = { from: '2001-01-01', periods: 20, period: 'week', kind: 'endemic-epidemic', unitIntercepts: false, model: { harmonics: 2 }, openRegions: ['beta'], algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000 }
const points = (dates: string[]): Array<{ date: string, count: number }> => dates.map((date) => ({ date, count: 1 }))

describe('a re-fit\'s forecast refresh', () => {
  it('proposes the forecast again with its settings, through the period of the latest date of the series', () => {
    // 2001-01-01 + 22 weeks = 2001-06-04: the 23rd week; a date inside it counts it
    const refresh = forecastRefresh(stored(weekly), points(['2001-01-01', '2001-06-06', '2001-03-05']))
    expect(refresh).toEqual({ parent: 'risk-1', through: '2001-06-06', forecast: { ...weekly, periods: 23 } })
    // never fewer periods than the job it refreshes
    expect(forecastRefresh(stored(weekly), points(['2001-01-01', '2001-02-05']))).toMatchObject({ forecast: { periods: 20 } })
    // daily periods: one a day
    expect(forecastRefresh(stored({ ...weekly, period: 'day', from: '2001-01-03' }), points(['2001-01-03', '2001-02-01']))).toMatchObject({ forecast: { periods: 30 } })
  })

  it('has nothing to refresh without a forecast, and says why it cannot refresh one it cannot read', () => {
    expect(forecastRefresh(null, points(['2001-01-01']))).toBeNull()
    expect(forecastRefresh(stored(undefined), points(['2001-01-01']))).toMatch(/without its settings/)
    expect(forecastRefresh(stored({ ...weekly, periods: -3 }), points(['2001-01-01']))).toMatch(/not a forecasting job's/)
    expect(forecastRefresh(stored({ ...weekly, surprise: true }), points(['2001-01-01']))).toMatch(/not a forecasting job's/)
    expect(forecastRefresh(stored(weekly), [])).toMatch(/no case-count series/)
  })

  it('names its job after the re-fit, a valid job id however long the re-fit\'s', () => {
    expect(forecastRefreshId('severity-2026-12-01')).toBe('severity-2026-12-01-forecast')
    const long = forecastRefreshId('x'.repeat(64))
    expect(long).toHaveLength(64)
    expect(isJobId(long)).toBe(true)
  })
})
