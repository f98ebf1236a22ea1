import type { DataBlock } from './design.ts'
import { INTERCEPT } from './design.ts'
import type { FamilyName } from './family.ts'
import { coefficientTable, covarianceFromHessian, type CoefficientTable } from './inference.ts'
import { auc, brierScore, hosmerLemeshow, logLoss, predictMeans, type HosmerLemeshow } from './metrics.ts'
import { fitNewton } from './newton.ts'
import { covarianceToOriginalScale, scalerFromStats, standardizeBlock, sufficientStats, toOriginalScale } from './standardize.ts'

export interface FitOptions {
  family: FamilyName
  /** L2 penalty on the standardised (or raw) coefficients; the intercept is never penalised */
  lambda?: number
  standardize?: boolean
  tolerance?: number
  maxIterations?: number
}

export interface FitMetrics {
  auc: number
  logLoss: number
  brier: number
  hosmerLemeshow: HosmerLemeshow
}

export interface FitResult {
  terms: string[]
  /** on the original scale of the features */
  coefficients: CoefficientTable
  covariance: Float64Array
  /** on the standardised scale, when standardised */
  standardizedCoefficients: number[] | null
  logLikelihood: number
  iterations: number
  converged: boolean
  rows: number
  gradientNorm: number
  metrics: FitMetrics | null
}

/**
 * A pooled (single-site) fit: what one analyst holding every row would get, and so the reference that
 * a federation must reproduce. With standardisation the columns are scaled by the pooled mean and
 * population standard deviation, the penalty applies on that scale, and the coefficients and
 * covariance are mapped back to the original scale.
 */
export function fitModel (block: DataBlock, terms: readonly string[], options: FitOptions): FitResult {
  const p = block.cols
  if (terms.length !== p) throw new RangeError(`${terms.length} term names for ${p} columns`)
  const interceptColumn = terms.indexOf(INTERCEPT) >= 0 ? terms.indexOf(INTERCEPT) : null
  const penalized = terms.map((term) => term !== INTERCEPT)
  const scaler = options.standardize === true ? scalerFromStats(sufficientStats(block), interceptColumn, terms) : null
  const working = scaler === null ? block : standardizeBlock(block, scaler)
  const fit = fitNewton([working], {
    family: options.family,
    lambda: options.lambda ?? 0,
    penalized,
    ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
    ...(options.maxIterations === undefined ? {} : { maxIterations: options.maxIterations })
  })
  const covarianceScaled = covarianceFromHessian(fit.hessian, p)
  const beta = scaler === null ? fit.beta : toOriginalScale(fit.beta, scaler, interceptColumn)
  const covariance = scaler === null ? covarianceScaled : covarianceToOriginalScale(covarianceScaled, scaler, interceptColumn)
  let metrics: FitMetrics | null = null
  if (options.family === 'binomial') {
    const probabilities = predictMeans('binomial', block, beta)
    metrics = { auc: auc(block.y, probabilities), logLoss: logLoss(block.y, probabilities), brier: brierScore(block.y, probabilities), hosmerLemeshow: hosmerLemeshow(block.y, probabilities) }
  }
  return {
    terms: [...terms],
    coefficients: coefficientTable(terms, beta, covariance),
    covariance,
    standardizedCoefficients: scaler === null ? null : Array.from(fit.beta),
    logLikelihood: fit.logLikelihood,
    iterations: fit.iterations,
    converged: fit.converged,
    rows: block.rows,
    gradientNorm: fit.gradientNorm,
    metrics
  }
}
