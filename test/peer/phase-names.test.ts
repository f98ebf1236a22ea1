import { describe, expect, it } from 'vitest'
import { phaseLabel } from '../../src/peer/cli/phase-names.ts'
import { jobStatusLine } from '../../src/peer/cli/inspect.ts'
import { forecastPeriodLabels } from '../../src/peer/cli/forecast-dates.ts'
import type { StoredForecast } from '../../src/store/store.ts'

describe('phase names in words', () => {
  it('names the protocol\'s phase tags, with the iteration, the candidate design and the chunk', () => {
    expect(phaseLabel('admm')).toBe('consensus ADMM')
    expect(phaseLabel('admm2')).toBe('consensus ADMM, second pass (penalty re-tuned)')
    expect(phaseLabel('newton.3')).toBe('exact Newton, iteration 3')
    expect(phaseLabel('c1-ee-newton.2')).toBe('candidate design 2: endemic-epidemic model: exact Newton, iteration 2')
    expect(phaseLabel('level-0.4')).toBe('boosted trees: split histograms, step 5')
    expect(phaseLabel('stats-second-1.0')).toBe('descriptive statistics: spreads, quantiles and tables (masked sum), part 2')
    expect(phaseLabel('joint-risk')).toBe('joint risk and the federation\'s forecast (masked sum)')
    // a tag it does not know is shown as it is
    expect(phaseLabel('something-new')).toBe('something-new')
  })

  it('status shows the phase by name and its own round beside the job round, never the raw tag', () => {
    const line = jobStatusLine({ job: 'j-1', kind: 'glm', state: 'running', phase: 'admm2', round: 28, jobRound: 1041, primalResidual: 1.5e-4, dualResidual: 2e-5 })
    expect(line).toBe('job j-1 (regression): consensus ADMM, second pass (penalty re-tuned), round 28 of this phase, 1041 since the job began; primal residual 1.50e-4, dual residual 2.00e-5')
    expect(jobStatusLine({ job: 'j-2', kind: 'forecast', state: 'finished', phase: 'done', round: 0, jobRound: 60 })).toBe('job j-2 (regional forecast) (finished): finished, round 0 of this phase, 60 since the job began')
  })
})

describe('forecast periods by their dates', () => {
  const stored = (parameters: Record<string, unknown> | null): StoredForecast => ({ model: { lineage: parameters === null ? undefined : { parameters } } }) as unknown as StoredForecast
  it('weeks after the job\'s last, from its first day and its number of periods', () => {
    const label = forecastPeriodLabels(stored({ from: '2001-01-01', periods: 416, period: 'week' }))
    expect(label(1)).toBe('week of 2008-12-22')
    expect(label(2)).toBe('week of 2008-12-29')
    expect(forecastPeriodLabels(stored({ from: '2024-02-27', periods: 3, period: 'day' }))(1)).toBe('2024-03-01')
  })
  it('a forecast without its proposal (an earlier version\'s) keeps the period numbers', () => {
    expect(forecastPeriodLabels(stored(null))(1)).toBe('period +1')
    expect(forecastPeriodLabels(stored({ from: 'soon', periods: 3, period: 'week' }))(2)).toBe('period +2')
  })
})
