import { INTERCEPT, termNames, type FeatureSpec } from './design.ts'
import { DimensionMismatchError } from './errors.ts'
import { logistic, type FamilyName } from './family.ts'

/**
 * Scoring new records with a fitted GLM: the design row built as the fit built it (the intercept,
 * numeric columns as they are, each categorical feature in treatment contrasts against its first
 * level, the offset added to the linear predictor), the linear predictor eta = x'b (+ offset), and
 * its standard error by the delta method from the model's covariance V: se(eta) = sqrt(x' V x).
 *
 * The coefficients and V are on the original scale of the features. A model fitted on standardised
 * columns (pooled mean m_j and population SD s_j) has them mapped back by the linear map T of
 * standardize.ts (b = T s, V = T V_s T'), so that x'b = z's and x'Vx = z'V_s z for the standardised
 * row z_j = (x_j - m_j) / s_j: scoring on the original scale is scoring as the job did.
 *
 * On the response scale, as R's predict(glm, type = "response", se.fit = TRUE): fit = g^-1(eta) and
 * se = |d mu / d eta| se(eta) (binomial: mu (1 - mu); Poisson: mu). The 95% interval is taken on the
 * link scale and mapped back, g^-1(eta -/+ z_0.975 se(eta)), so that it stays within the response's
 * range (a probability in [0, 1], a rate above 0).
 */
export interface ScoringModel {
  family: FamilyName
  features: readonly FeatureSpec[]
  /** default true */
  intercept?: boolean
  /** a column added to the linear predictor as it is (for example log population) */
  offset?: string | null
  /** on the original scale, in the order of termNames */
  coefficients: ArrayLike<number>
  /** p x p, row-major, on the original scale */
  covariance: ArrayLike<number>
}

export interface RowPrediction {
  /** the record's position in the input, from 1 */
  row: number
  /** linear predictor and its standard error */
  link: number
  linkSe: number
  /** on the response scale (probability or rate) */
  fit: number
  se: number
  /** 95% interval on the response scale */
  lower: number
  upper: number
}

/** Why a record cannot be scored: the column and a stable kind with the reason. */
export interface RowRefusal {
  row: number
  column: string
  kind: 'VALUE_MISSING' | 'LEVEL_UNKNOWN' | 'NOT_A_NUMBER'
  error: string
}

export type ScoredRow = RowPrediction | RowRefusal

/** The 97.5% quantile of the standard normal distribution. */
export const Z_975 = 1.959963984540054

const isMissing = (value: unknown): boolean => value === null || value === undefined || (typeof value === 'string' && value.trim() === '')

function toNumber (value: unknown): number {
  if (typeof value === 'number') return value
  if (typeof value === 'boolean') return value ? 1 : 0
  if (typeof value === 'string' && value.trim() !== '') return Number(value)
  return Number.NaN
}

function shown (value: unknown): string {
  const text = String(value)
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}...` : text)
}

/** The design row of one record, with its offset, or why it cannot be built. */
export function designRow (model: Pick<ScoringModel, 'features' | 'intercept' | 'offset'>, record: Readonly<Record<string, unknown>>, row: number): { x: Float64Array, offset: number } | RowRefusal {
  const terms = termNames({ outcome: '', features: [...model.features], ...(model.intercept === false ? { intercept: false } : {}) })
  const x = new Float64Array(terms.length)
  let column = 0
  if (terms[0] === INTERCEPT) x[column++] = 1
  for (const feature of model.features) {
    const value = record[feature.name]
    if (isMissing(value)) return { row, column: feature.name, kind: 'VALUE_MISSING', error: `no value for ${feature.name}` }
    if (feature.type === 'numeric') {
      const number = toNumber(value)
      if (!Number.isFinite(number)) return { row, column: feature.name, kind: 'NOT_A_NUMBER', error: `${feature.name} ${shown(value)} is not a number` }
      x[column++] = number
      continue
    }
    const level = feature.levels.indexOf(String(value))
    if (level < 0) return { row, column: feature.name, kind: 'LEVEL_UNKNOWN', error: `${feature.name} ${shown(value)} is a level the model never saw (it knows ${feature.levels.join(', ')})` }
    for (let index = 1; index < feature.levels.length; index++) x[column++] = index === level ? 1 : 0
  }
  let offset = 0
  if (model.offset !== undefined && model.offset !== null) {
    const value = record[model.offset]
    if (isMissing(value)) return { row, column: model.offset, kind: 'VALUE_MISSING', error: `no value for the offset ${model.offset}` }
    offset = toNumber(value)
    if (!Number.isFinite(offset)) return { row, column: model.offset, kind: 'NOT_A_NUMBER', error: `the offset ${model.offset} ${shown(value)} is not a number` }
  }
  return { x, offset }
}

/** The prediction of one design row (eta, its SE, and both on the response scale). */
export function predictRow (model: Pick<ScoringModel, 'family' | 'coefficients' | 'covariance'>, x: ArrayLike<number>, offset: number, row: number): RowPrediction {
  const p = x.length
  let link = offset
  let variance = 0
  for (let i = 0; i < p; i++) {
    const xi = x[i] as number
    link += xi * (model.coefficients[i] as number)
    if (xi === 0) continue
    let inner = 0
    for (let j = 0; j < p; j++) inner += (model.covariance[i * p + j] as number) * (x[j] as number)
    variance += xi * inner
  }
  const linkSe = Math.sqrt(Math.max(0, variance))
  const inverse = model.family === 'binomial' ? logistic : Math.exp
  const fit = inverse(link)
  // d mu / d eta: R's binomial()$mu.eta is bounded below by the machine epsilon
  const derivative = model.family === 'binomial' ? Math.max(fit * (1 - fit), Number.EPSILON) : Math.max(fit, Number.EPSILON)
  return { row, link, linkSe, fit, se: derivative * linkSe, lower: inverse(link - Z_975 * linkSe), upper: inverse(link + Z_975 * linkSe) }
}

/** Scores records in order: a prediction for each, or the reason it cannot be scored. Rows are numbered from `firstRow`. */
export function predictRecords (model: ScoringModel, records: ReadonlyArray<Readonly<Record<string, unknown>>>, firstRow = 1): ScoredRow[] {
  const p = termNames({ outcome: '', features: [...model.features], ...(model.intercept === false ? { intercept: false } : {}) }).length
  if (model.coefficients.length !== p) throw new DimensionMismatchError(`${model.coefficients.length} coefficients for the ${p} terms of the model's features`)
  if (model.covariance.length !== p * p) throw new DimensionMismatchError(`a covariance of ${model.covariance.length} entries for ${p} coefficients`)
  return records.map((record, index) => {
    const built = designRow(model, record, firstRow + index)
    return 'kind' in built ? built : predictRow(model, built.x, built.offset, firstRow + index)
  })
}

/** Wald intervals for each coefficient, as R's confint.default: estimate -/+ z_0.975 SE. */
export function waldIntervals (estimate: readonly number[], standardError: ReadonlyArray<number | null>): Array<{ lower: number | null, upper: number | null }> {
  return estimate.map((value, index) => {
    const se = standardError[index]
    return se === null || se === undefined || !Number.isFinite(se) ? { lower: null, upper: null } : { lower: value - Z_975 * se, upper: value + Z_975 * se }
  })
}
