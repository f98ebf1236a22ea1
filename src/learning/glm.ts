import type { DataBlock } from './design.ts'
import { DimensionMismatchError, NonFiniteError } from './errors.ts'
import { logFactorial, logistic, softplus, type FamilyName } from './family.ts'

/**
 * The negative log-likelihood of a block of rows, with its gradient and Hessian: the one function a
 * peer calls every round, so it writes into a caller's workspace and allocates nothing.
 */
export interface Workspace {
  gradient: Float64Array
  /** p x p, row-major, symmetric */
  hessian: Float64Array
}

export function createWorkspace (cols: number): Workspace {
  return { gradient: new Float64Array(cols), hessian: new Float64Array(cols * cols) }
}

/**
 * Negative log-likelihood (a sum over rows, with the constant terms, so that minus it equals R's
 * logLik) of `family` with its canonical link at `beta`; gradient and, when asked, Hessian into
 * `workspace`. Binomial: sum log(1 + e^eta) - y eta. Poisson: sum e^eta - y eta + log(y!).
 * eta = x' beta + offset.
 */
export function evaluateLoss (family: FamilyName, block: DataBlock, beta: ArrayLike<number>, workspace: Workspace, wantHessian = true): number {
  const p = block.cols
  if (beta.length !== p) throw new DimensionMismatchError(`beta has ${beta.length} entries for ${p} columns`)
  if (workspace.gradient.length !== p || workspace.hessian.length !== p * p) throw new DimensionMismatchError(`the workspace is for ${workspace.gradient.length} columns, the block has ${p}`)
  const { x, y, offset } = block
  const gradient = workspace.gradient
  const hessian = workspace.hessian
  gradient.fill(0)
  if (wantHessian) hessian.fill(0)
  let loss = 0
  const binomial = family === 'binomial'
  for (let row = 0; row < block.rows; row++) {
    const base = row * p
    let eta = offset === undefined ? 0 : (offset[row] as number)
    for (let column = 0; column < p; column++) eta += (x[base + column] as number) * (beta[column] as number)
    const observed = y[row] as number
    let mean: number
    let weight: number
    if (binomial) {
      mean = logistic(eta)
      weight = mean * (1 - mean)
      loss += softplus(eta) - observed * eta
    } else {
      mean = Math.exp(eta)
      weight = mean
      loss += mean - observed * eta + logFactorial(observed)
    }
    const residual = mean - observed
    for (let column = 0; column < p; column++) {
      const value = x[base + column] as number
      gradient[column] = (gradient[column] as number) + residual * value
      if (wantHessian) {
        const scaled = weight * value
        for (let other = column; other < p; other++) {
          hessian[column * p + other] = (hessian[column * p + other] as number) + scaled * (x[base + other] as number)
        }
      }
    }
  }
  if (wantHessian) {
    for (let column = 0; column < p; column++) {
      for (let other = column + 1; other < p; other++) hessian[other * p + column] = hessian[column * p + other] as number
    }
  }
  if (!Number.isFinite(loss)) throw new NonFiniteError(`the ${family} loss is not finite at the current coefficients`)
  return loss
}

/**
 * Adds (lambda / 2) ||P beta||^2 to the gradient and Hessian in the workspace and returns its value;
 * P drops the unpenalised columns (the intercept).
 */
export function addPenalty (beta: ArrayLike<number>, lambda: number, penalized: ArrayLike<boolean>, workspace: Workspace, wantHessian = true): number {
  if (lambda === 0) return 0
  const p = beta.length
  let value = 0
  for (let column = 0; column < p; column++) {
    if (penalized[column] !== true) continue
    const coefficient = beta[column] as number
    value += 0.5 * lambda * coefficient * coefficient
    workspace.gradient[column] = (workspace.gradient[column] as number) + lambda * coefficient
    if (wantHessian) workspace.hessian[column * p + column] = (workspace.hessian[column * p + column] as number) + lambda
  }
  return value
}
