import { describe, expect, it } from 'vitest'
import { createRng } from '../../src/consensus/rng.ts'
import {
  buildForecastDesign, createForecastModelSpec, forecastMeans, forecastRegion, forecastTerms, incidencePer100k,
  neighbourMeanIncidence, simulateRegionForecast
} from '../../src/learning/forecast.ts'
import { forecastPanel, panelHistories } from '../../src/learning/forecast-panel.ts'
import { addForecast, createSkillAccumulator, lastValueMean, seasonalNaiveMean, skillOf } from '../../src/learning/forecast-skill.ts'
import { logPoissonProbability, poissonQuantile } from '../../src/learning/poisson.ts'
import { createRiskParams, mapRisk, riskHorizon, riskScore } from '../../src/learning/risk.ts'

// Two regions that neighbour each other; A has 100,000 residents, B 200,000, so A's incidence per
// 100,000 equals its counts and B's is half of its counts.
const A = [1, 3, 0, 7, 2]
const B = [4, 0, 2, 6, 8]
const panel = { regions: ['A', 'B'], counts: [Float64Array.from(A), Float64Array.from(B)], populations: [100_000, 200_000] }
const neighbours = [[1], [0]]
// a season of 4 periods keeps the sines and cosines on 0 and +-1
const spec = createForecastModelSpec({ ownLags: 2, neighbourLags: 1, ownScale: 'count', seasonPeriod: 4, harmonics: 1 })

function rowsOf (x: Float64Array, p: number): number[][] {
  return Array.from({ length: x.length / p }, (_, row) => Array.from(x.subarray(row * p, row * p + p)))
}

function expectRows (actual: number[][], expected: number[][]): void {
  expect(actual).toHaveLength(expected.length)
  actual.forEach((row, index) => row.forEach((value, column) => expect(value).toBeCloseTo((expected[index] as number[])[column] as number, 12)))
}

describe('forecast design', () => {
  it('terms name the lags and the season', () => {
    expect(forecastTerms(spec)).toEqual(['(Intercept)', 'log1p(y[t-1])', 'log1p(y[t-2])', 'log1p(nbr[t-1])', 'sin(2*pi*t/4)', 'cos(2*pi*t/4)'])
    expect(forecastTerms(createForecastModelSpec({ ownScale: 'incidence', neighbourLags: 2, harmonics: 2 }))).toEqual([
      '(Intercept)', 'log1p(inc[t-1])', 'log1p(inc[t-2])', 'log1p(nbr[t-1])', 'log1p(nbr[t-2])',
      'sin(2*pi*t/52)', 'cos(2*pi*t/52)', 'sin(2*pi*2*t/52)', 'cos(2*pi*2*t/52)'
    ])
  })

  it('the neighbour aggregate is the mean of the neighbours\' incidence per 100,000', () => {
    expect(Array.from(incidencePer100k(B, 200_000))).toEqual([2, 0, 1, 3, 4])
    expect(Array.from(neighbourMeanIncidence([[2, 0, 1], [4, 4, 0]], 3))).toEqual([3, 2, 0.5])
    expect(Array.from(neighbourMeanIncidence([], 2))).toEqual([0, 0])
  })

  it('builds the rows of a tiny two-region series by hand', () => {
    const [historyA, historyB] = panelHistories(panel, neighbours)
    expect(Array.from(historyA?.neighbourIncidence ?? [])).toEqual([2, 0, 1, 3, 4])
    expect(Array.from(historyB?.neighbourIncidence ?? [])).toEqual([1, 3, 0, 7, 2])
    const a = buildForecastDesign(spec, historyA!)
    expect(a.times).toEqual([2, 3, 4])
    expect(Array.from(a.block.y)).toEqual([0, 7, 2])
    expect(Array.from(a.block.offset!)).toEqual([Math.log(100_000), Math.log(100_000), Math.log(100_000)])
    // t = 2: own lags y[1] = 3 and y[0] = 1, B's incidence at t = 1 is 0, season angle pi
    // t = 3: own lags 0 and 3, B's incidence at t = 2 is 1, angle 3 pi / 2
    // t = 4: own lags 7 and 0, B's incidence at t = 3 is 3, angle 2 pi
    expectRows(rowsOf(a.block.x, 6), [
      [1, Math.log(4), Math.log(2), 0, 0, -1],
      [1, 0, Math.log(4), Math.log(2), -1, 0],
      [1, Math.log(8), 0, Math.log(4), 0, 1]
    ])
    const b = buildForecastDesign(spec, historyB!, { from: 3 })
    expect(b.times).toEqual([3, 4])
    expect(Array.from(b.block.y)).toEqual([6, 8])
    expectRows(rowsOf(b.block.x, 6), [
      [1, Math.log(3), Math.log(1), Math.log(1), -1, 0],
      [1, Math.log(7), Math.log(3), Math.log(8), 0, 1]
    ])
  })

  it('own lags as incidence divide by the population; start shifts the season', () => {
    const incidence = createForecastModelSpec({ ownLags: 2, neighbourLags: 0, ownScale: 'incidence', seasonPeriod: 4 })
    const design = buildForecastDesign(incidence, { counts: B, population: 200_000, neighbourIncidence: [0, 0, 0, 0, 0], start: 1 }, { to: 4 })
    // rows for t = 3 (index 2), counts before it 0 and 4, i.e. incidence 0 and 2; angle 3 pi / 2
    expect(design.times).toEqual([3])
    expectRows(rowsOf(design.block.x, 5), [[1, 0, Math.log(3), -1, 0]])
  })

  it('refuses bad counts and populations with a code', () => {
    expect(() => buildForecastDesign(spec, { counts: [1, -1, 2], population: 10, neighbourIncidence: [0, 0, 0] })).toThrow(expect.objectContaining({ code: 'INVALID_OUTCOME' }))
    expect(() => buildForecastDesign(spec, { counts: [1, 1.5, 2], population: 10, neighbourIncidence: [0, 0, 0] })).toThrow(expect.objectContaining({ code: 'INVALID_OUTCOME' }))
    expect(() => buildForecastDesign(spec, { counts: [1, 2, 2], population: 0, neighbourIncidence: [0, 0, 0] })).toThrow(expect.objectContaining({ code: 'FORECAST_INPUT_INVALID' }))
    expect(() => buildForecastDesign(spec, { counts: [1, 2, 2], population: 5, neighbourIncidence: [0, 0] })).toThrow(expect.objectContaining({ code: 'FORECAST_INPUT_INVALID' }))
    expect(() => createForecastModelSpec({ ownLags: -1 })).toThrow(expect.objectContaining({ code: 'FORECAST_INPUT_INVALID', field: 'ownLags' }))
  })
})

describe('forecasts', () => {
  // log mu = log(pop) + log(1e-5) + 0.5 log(1 + y[t-1]): with 100,000 residents, mu = sqrt(1 + y[t-1])
  const halfPower = createForecastModelSpec({ ownLags: 1, neighbourLags: 0, seasonPeriod: null })
  const coefficients = [Math.log(1e-5), 0.5]
  const history = { counts: [5, 2], population: 100_000, neighbourIncidence: [0, 0], start: 10 }

  it('iterates the mean forward with Poisson intervals', () => {
    const forecast = forecastRegion(halfPower, coefficients, history, { horizon: 3 })
    const step1 = Math.sqrt(3)
    const step2 = Math.sqrt(1 + step1)
    const step3 = Math.sqrt(1 + step2)
    expect(forecast.map((period) => period.time)).toEqual([12, 13, 14])
    expect(forecast.map((period) => period.step)).toEqual([1, 2, 3])
    expect(forecast[0]?.mean).toBeCloseTo(step1, 12)
    expect(forecast[1]?.mean).toBeCloseTo(step2, 12)
    expect(forecast[2]?.mean).toBeCloseTo(step3, 12)
    // R: qpois(c(0.05, 0.95), sqrt(3)) is 0 and 4
    expect([forecast[0]?.lower, forecast[0]?.upper]).toEqual([0, 4])
  })

  it('a one-step forecast equals the design row\'s mean', () => {
    const [historyA] = panelHistories(panel, neighbours)
    const beta = [-11, 0.3, 0.2, 0.4, 0.1, -0.2]
    const rows = forecastMeans(buildForecastDesign(spec, historyA!).block, beta)
    const upTo4 = { ...historyA!, counts: A.slice(0, 4), neighbourIncidence: Array.from(historyA!.neighbourIncidence).slice(0, 4) }
    expect(forecastRegion(spec, beta, upTo4, { horizon: 1 })[0]?.mean).toBeCloseTo(rows[2] as number, 12)
  })

  it('joint iteration feeds the regions\' forecasts into their neighbours\' next step', () => {
    const histories = panelHistories(panel, neighbours)
    const beta = [-11, 0.3, 0.2, 0.4, 0.1, -0.2]
    const joint = forecastPanel(spec, beta, histories, neighbours, { horizon: 2 })
    const firstA = joint[0]?.[0]?.mean as number
    const firstB = joint[1]?.[0]?.mean as number
    // A's second step: own lags (its step-1 mean, y[4] = 2), B's forecast incidence at t = 5
    const expected = Math.exp(Math.log(100_000) - 11 + 0.3 * Math.log1p(firstA) + 0.2 * Math.log1p(2) + 0.4 * Math.log1p(firstB / 2) + 0.1 * Math.sin(2 * Math.PI * 6 / 4) - 0.2 * Math.cos(2 * Math.PI * 6 / 4))
    expect(joint[0]?.[1]?.mean).toBeCloseTo(expected, 10)
  })

  it('simulated paths agree with the plug-in mean at step 1 and fall below it later (Jensen)', () => {
    const plugIn = forecastRegion(halfPower, coefficients, history, { horizon: 2 })
    const simulated = simulateRegionForecast(halfPower, coefficients, history, { horizon: 2, draws: 20_000, uniform: createRng(7) })
    const again = simulateRegionForecast(halfPower, coefficients, history, { horizon: 2, draws: 20_000, uniform: createRng(7) })
    expect(again).toEqual(simulated)
    const standardError = Math.sqrt(Math.sqrt(3) / 20_000)
    expect(Math.abs((simulated[0]?.mean as number) - Math.sqrt(3))).toBeLessThan(4 * standardError)
    expect([simulated[0]?.lower, simulated[0]?.upper]).toEqual([0, 4])
    // E sqrt(1 + Y) < sqrt(1 + E Y) for a Poisson Y: the plug-in overstates the second step
    expect(simulated[1]?.mean).toBeLessThan(plugIn[1]?.mean as number)
    expect(simulated[1]?.mean).toBeGreaterThan((plugIn[1]?.mean as number) - 0.2)
  })
})

describe('Poisson', () => {
  it('log probabilities and quantiles match R (dpois, qpois)', () => {
    // R: dpois(c(0, 3, 7, 1000), c(0.3, sqrt(3), 12.5, 1000), log = TRUE)
    const expected = [-0.3, -1.87589184379477, -3.34506085090763, -4.3728995060263]
    const points: Array<[number, number]> = [[0, 0.3], [3, Math.sqrt(3)], [7, 12.5], [1000, 1000]]
    points.forEach(([y, mean], index) => expect(logPoissonProbability(y, mean)).toBeCloseTo(expected[index] as number, 10))
    // R: qpois(c(0.05, 0.5, 0.95), m) for m in 0.3, sqrt(3), 12.5, 1000, 12345.6
    const quantiles: Array<[number, number[]]> = [[0.3, [0, 0, 1]], [Math.sqrt(3), [0, 2, 4]], [12.5, [7, 12, 19]], [1000, [948, 1000, 1052]], [12345.6, [12163, 12345, 12529]]]
    for (const [mean, values] of quantiles) expect([0.05, 0.5, 0.95].map((probability) => poissonQuantile(probability, mean))).toEqual(values)
    expect(poissonQuantile(0, 3)).toBe(0)
  })
})

describe('skill and baselines', () => {
  it('baselines floor their point value at 0.5; scores average over forecasts', () => {
    const counts = [0, 3, 0, 4]
    expect(lastValueMean(counts, 1)).toBe(0.5)
    expect(lastValueMean(counts, 2)).toBe(3)
    expect(seasonalNaiveMean(counts, 2, 2)).toBe(0.5)
    expect(seasonalNaiveMean(counts, 3, 2)).toBe(3)
    const accumulator = createSkillAccumulator()
    addForecast(accumulator, 3, 3)
    addForecast(accumulator, 0, 0.5)
    const skill = skillOf(accumulator)
    expect(skill.count).toBe(2)
    expect(skill.mae).toBeCloseTo(0.25, 15)
    expect(skill.logScore).toBeCloseTo((3 * Math.log(3) - 3 - Math.log(6) - 0.5) / 2, 12)
  })
})

describe('risk score', () => {
  it('maps the 7-day rate per 100,000 monotonically to [0, 1]', () => {
    const exponential = { kind: 'exponential', halfRisk: 10 } as const
    expect(mapRisk(0, exponential)).toBe(0)
    expect(mapRisk(10, exponential)).toBeCloseTo(0.5, 15)
    expect(mapRisk(20, exponential)).toBeCloseTo(0.75, 15)
    const logLogistic = { kind: 'log-logistic', threshold: 50, slope: 3 } as const
    expect(mapRisk(50, logLogistic)).toBeCloseTo(0.5, 15)
    expect(mapRisk(100, logLogistic)).toBeCloseTo(8 / 9, 15)
    for (const mapping of [exponential, logLogistic]) {
      let previous = -1
      for (const rate of [0, 0.01, 1, 5, 10, 49, 50, 51, 200, 1e6]) {
        const h = mapRisk(rate, mapping)
        expect(h).toBeGreaterThanOrEqual(0)
        expect(h).toBeLessThanOrEqual(1)
        expect(h).toBeGreaterThan(previous)
        previous = h
      }
    }
  })

  it('weekly data average one period, daily data seven, both as cases per 100,000 per 7 days', () => {
    const weekly = createRiskParams()
    expect(riskHorizon(weekly)).toBe(1)
    const week = riskScore([5, 100], 100_000, weekly)
    expect(week.rate).toBeCloseTo(5, 12)
    expect(week.h).toBeCloseTo(1 - Math.pow(2, -0.5), 12)
    const daily = createRiskParams({ periodDays: 1 })
    expect(riskHorizon(daily)).toBe(7)
    expect(riskScore([1, 1, 1, 1, 1, 1, 1, 9], 200_000, daily).rate).toBeCloseTo(3.5, 12)
    expect(riskScore([2, 4], 100_000, createRiskParams({ horizon: 2 })).rate).toBeCloseTo(3, 12)
    expect(() => riskScore([1], 100_000, daily)).toThrow(expect.objectContaining({ code: 'FORECAST_INPUT_INVALID' }))
    expect(() => createRiskParams({ mapping: { kind: 'exponential', halfRisk: 0 } })).toThrow(expect.objectContaining({ field: 'mapping.halfRisk' }))
  })
})
