import { ForecastInputError, PER_100K } from './forecast.ts'

/**
 * The risk score h of a region, in [0, 1] (closer to 1, more risk):
 *
 *   rate = (mean forecast count per period over the next `horizon` periods) / population * 100,000
 *          * (7 / periodDays)
 *
 * that is, the forecast number of cases per 100,000 residents per 7 days (the "7-day incidence" that
 * surveillance bulletins report), whatever the period of the series: for weekly data the default
 * horizon is 1 period (the next week), for daily data 7 periods (the next 7 days), so both cover the
 * coming week. The rate is then mapped to [0, 1] by a monotone mapping:
 *
 *   exponential (default):  h = 1 - 2^(-rate / halfRisk)
 *     h = 0 with no forecast cases, 1/2 at the rate `halfRisk`, 3/4 at twice that, approaching 1;
 *     concave, so a rise from a low level moves h most.
 *   log-logistic:           h = 1 / (1 + (threshold / rate)^slope)
 *     h = 1/2 at `threshold`; an S-curve in log(rate) whose steepness is `slope`, for an alert
 *     threshold with a soft edge.
 *
 * A federation agrees on one mapping (it is part of the job), so that h means the same in every
 * region and the joint risk (sum and mean of h) is comparable over time. The default halfRisk of 10
 * cases per 100,000 per 7 days is a reference level, not an epidemiological threshold: set it per
 * disease (for instance to a season's usual peak incidence).
 */
export type RiskMapping =
  | { kind: 'exponential', halfRisk: number }
  | { kind: 'log-logistic', threshold: number, slope: number }

export interface RiskParams {
  /** length of one period of the series in days (7 for weekly data, 1 for daily) */
  periodDays: number
  /** periods averaged; null: enough periods to cover 7 days, ceil(7 / periodDays) */
  horizon: number | null
  mapping: RiskMapping
}

export const DEFAULT_RISK_PARAMS: Readonly<RiskParams> = Object.freeze({
  periodDays: 7,
  horizon: null,
  mapping: Object.freeze({ kind: 'exponential', halfRisk: 10 }) as RiskMapping
})

export function createRiskParams (partial: Partial<RiskParams> = {}): RiskParams {
  const params: RiskParams = { ...DEFAULT_RISK_PARAMS, ...partial }
  if (!(Number.isFinite(params.periodDays) && params.periodDays > 0)) throw new ForecastInputError('periodDays', `must be a positive number of days, got ${params.periodDays}`)
  if (params.horizon !== null && !(Number.isInteger(params.horizon) && params.horizon >= 1)) throw new ForecastInputError('horizon', `must be a positive integer, got ${params.horizon}`)
  const mapping = params.mapping
  if (mapping.kind === 'exponential') {
    if (!(Number.isFinite(mapping.halfRisk) && mapping.halfRisk > 0)) throw new ForecastInputError('mapping.halfRisk', `must be a positive rate, got ${mapping.halfRisk}`)
  } else if (mapping.kind === 'log-logistic') {
    if (!(Number.isFinite(mapping.threshold) && mapping.threshold > 0)) throw new ForecastInputError('mapping.threshold', `must be a positive rate, got ${mapping.threshold}`)
    if (!(Number.isFinite(mapping.slope) && mapping.slope > 0)) throw new ForecastInputError('mapping.slope', `must be a positive number, got ${mapping.slope}`)
  } else {
    throw new ForecastInputError('mapping.kind', `must be exponential or log-logistic, got ${String((mapping as { kind: unknown }).kind)}`)
  }
  return params
}

/** Periods the risk score averages: the horizon, or ceil(7 / periodDays). */
export function riskHorizon (params: RiskParams): number {
  return params.horizon ?? Math.max(1, Math.ceil(7 / params.periodDays - 1e-9))
}

/** The monotone map from a 7-day rate per 100,000 to [0, 1]. */
export function mapRisk (rate: number, mapping: RiskMapping): number {
  if (!(Number.isFinite(rate) && rate >= 0)) throw new ForecastInputError('rate', `must be a non-negative number, got ${rate}`)
  if (rate === 0) return 0
  if (mapping.kind === 'exponential') return -Math.expm1(-Math.LN2 * rate / mapping.halfRisk)
  return 1 / (1 + Math.pow(mapping.threshold / rate, mapping.slope))
}

export interface RegionRisk {
  /** forecast cases per 100,000 residents per 7 days */
  rate: number
  h: number
  /** periods averaged */
  horizon: number
}

/**
 * A region's risk from its forecast means for the coming periods (the first riskHorizon(params) are
 * used; there must be that many).
 */
export function riskScore (forecastMeans: ArrayLike<number>, population: number, params: RiskParams = DEFAULT_RISK_PARAMS): RegionRisk {
  if (!(Number.isFinite(population) && population > 0)) throw new ForecastInputError('population', `must be a positive number, got ${population}`)
  const horizon = riskHorizon(params)
  if (forecastMeans.length < horizon) throw new ForecastInputError('horizon', `the risk score averages ${horizon} periods, the forecast has ${forecastMeans.length}`)
  let sum = 0
  for (let index = 0; index < horizon; index++) {
    const mean = forecastMeans[index] as number
    if (!(Number.isFinite(mean) && mean >= 0)) throw new ForecastInputError('forecast', `period ${index}: ${mean} is not a non-negative number`)
    sum += mean
  }
  const rate = sum / horizon / population * PER_100K * (7 / params.periodDays)
  return { rate, h: mapRisk(rate, params.mapping), horizon }
}
