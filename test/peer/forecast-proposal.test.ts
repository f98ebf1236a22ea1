import { describe, expect, it } from 'vitest'
import { parseForecastProposal } from '../../src/peer/runtime/forecast-proposal.ts'

describe('forecasting proposals: the model', () => {
  it('the endemic-epidemic model by default, its season from the period; loglinear on request', () => {
    const weekly = parseForecastProposal({ from: '2001-01-01', periods: 104, period: 'week' })
    expect(weekly.proposal.kind).toBe('endemic-epidemic')
    expect(weekly.endemicEpidemic).toEqual({ family: 'negbin1', harmonics: 1, period: 52, unitIntercepts: false })
    const daily = parseForecastProposal({ from: '2001-01-01', periods: 700, period: 'day', unitIntercepts: true, model: { harmonics: 2 } })
    expect(daily.endemicEpidemic).toEqual({ family: 'negbin1', harmonics: 2, period: 365.25, unitIntercepts: true })
    expect(parseForecastProposal({ from: '2001-01-01', periods: 104, period: 'week', kind: 'loglinear' }).endemicEpidemic).toBeNull()
  })

  it('refuses an unknown model, a mistyped flag and a model without a season, naming the field', () => {
    expect(() => parseForecastProposal({ from: '2001-01-01', periods: 104, period: 'week', kind: 'arima' })).toThrow(/kind/)
    expect(() => parseForecastProposal({ from: '2001-01-01', periods: 104, period: 'week', unitIntercepts: 'yes' })).toThrow(/unitIntercepts/)
    expect(() => parseForecastProposal({ from: '2001-01-01', periods: 104, period: 'week', model: { seasonPeriod: null } })).toThrow(/seasonPeriod/)
  })
})
