import erfc from '@stdlib/math-base-special-erfc'
import { invertSymmetric } from './linalg.ts'

/**
 * Wald inference at the solution: covariance = inverse of the (penalised) Hessian of the negative
 * log-likelihood, standard errors, z = estimate / SE and the two-sided p-value 2 (1 - Phi(|z|)), taken
 * as erfc(|z| / sqrt 2) so that it keeps its precision deep in the tail (p-values of 1e-300 and below).
 */
export interface CoefficientTable {
  terms: string[]
  estimate: number[]
  standardError: number[]
  z: number[]
  pValue: number[]
}

export function covarianceFromHessian (hessian: Float64Array, p: number): Float64Array {
  return invertSymmetric(hessian, p)
}

export function twoSidedNormalPValue (z: number): number {
  return erfc(Math.abs(z) / Math.SQRT2)
}

export function coefficientTable (terms: readonly string[], beta: ArrayLike<number>, covariance: Float64Array): CoefficientTable {
  const p = terms.length
  const estimate = Array.from({ length: p }, (_, index) => beta[index] as number)
  const standardError = estimate.map((_, index) => Math.sqrt(covariance[index * p + index] as number))
  const z = estimate.map((value, index) => value / (standardError[index] as number))
  return { terms: [...terms], estimate, standardError, z, pValue: z.map(twoSidedNormalPValue) }
}
