import type { DataBlock } from './design.ts'
import { DimensionMismatchError, EmptyDataError, NonFiniteError, PerfectSeparationError, SingularHessianError } from './errors.ts'
import type { FamilyName } from './family.ts'
import { addPenalty, createWorkspace, evaluateLoss, type Workspace } from './glm.ts'
import { choleskyInPlace, choleskySolveInPlace, maxAbs, norm2 } from './linalg.ts'

export interface NewtonOptions {
  family: FamilyName
  lambda?: number
  /** which coefficients the penalty applies to (false for the intercept) */
  penalized?: ArrayLike<boolean>
  start?: Float64Array
  /**
   * Convergence when the relative change of the penalised objective is below `tolerance`, as R's glm
   * (|dev - dev_old| / (|dev| + 0.1) < epsilon), and the Newton step is small. Default 1e-12.
   */
  tolerance?: number
  maxIterations?: number
}

export interface NewtonResult {
  beta: Float64Array
  iterations: number
  /** the penalised negative log-likelihood at beta */
  loss: number
  /** the unpenalised log-likelihood at beta */
  logLikelihood: number
  gradientNorm: number
  /** Hessian of the penalised objective at beta */
  hessian: Float64Array
  converged: boolean
}

/** Gradient and Hessian of the summed objective over all blocks into `total`; returns its value. */
function evaluateAll (family: FamilyName, blocks: readonly DataBlock[], beta: Float64Array, part: Workspace, total: Workspace, wantHessian: boolean): number {
  total.gradient.fill(0)
  if (wantHessian) total.hessian.fill(0)
  let loss = 0
  for (const block of blocks) {
    if (block.rows === 0) continue
    loss += evaluateLoss(family, block, beta, part, wantHessian)
    for (let index = 0; index < part.gradient.length; index++) total.gradient[index] = (total.gradient[index] as number) + (part.gradient[index] as number)
    if (wantHessian) for (let index = 0; index < part.hessian.length; index++) total.hessian[index] = (total.hessian[index] as number) + (part.hessian[index] as number)
  }
  return loss
}

/** The Newton direction H^{-1} g from the workspace (the Hessian there is overwritten by its factor). */
export function newtonDirection (workspace: Workspace, p: number, out: Float64Array): void {
  out.set(workspace.gradient)
  choleskyInPlace(workspace.hessian, p)
  choleskySolveInPlace(workspace.hessian, p, out)
}

/**
 * Damped Newton on the penalised negative log-likelihood with step-halving: a step that does not lower
 * the objective is halved until it does. For the binomial family, fitted probabilities that reach 0 or
 * 1 while the coefficients keep growing mean perfect separation: no finite maximum exists.
 */
export function fitNewton (blocks: readonly DataBlock[], options: NewtonOptions): NewtonResult {
  const first = blocks.find((block) => block.rows > 0)
  if (first === undefined) throw new EmptyDataError('no rows to fit')
  const p = first.cols
  for (const block of blocks) if (block.cols !== p) throw new DimensionMismatchError(`blocks have ${p} and ${block.cols} columns`)
  const lambda = options.lambda ?? 0
  const penalized = options.penalized ?? Array.from({ length: p }, () => true)
  if (penalized.length !== p) throw new DimensionMismatchError(`penalty mask has ${penalized.length} entries for ${p} columns`)
  const tolerance = options.tolerance ?? 1e-12
  const maxIterations = options.maxIterations ?? 100
  const beta = options.start === undefined ? new Float64Array(p) : Float64Array.from(options.start)
  if (beta.length !== p) throw new DimensionMismatchError(`start has ${beta.length} entries for ${p} columns`)
  const part = createWorkspace(p)
  const total = createWorkspace(p)
  const direction = new Float64Array(p)
  const trial = new Float64Array(p)
  const trialWorkspace = createWorkspace(p)

  const objective = (point: Float64Array, target: Workspace, wantHessian: boolean): number =>
    evaluateAll(options.family, blocks, point, part, target, wantHessian) + addPenalty(point, lambda, penalized, target, wantHessian)

  let loss = objective(beta, total, true)
  let iterations = 0
  let converged = false
  const hessian = new Float64Array(p * p)
  while (iterations < maxIterations) {
    iterations++
    hessian.set(total.hessian)
    try {
      newtonDirection(total, p, direction)
    } catch (error) {
      // Under separation the weights p(1 - p) vanish and the Hessian with them: say what happened.
      if (error instanceof SingularHessianError && options.family === 'binomial' && lambda === 0) detectSeparation(blocks, beta, loss, false)
      throw error
    }
    let step = 1
    let trialLoss = Number.POSITIVE_INFINITY
    for (let halving = 0; halving < 40; halving++) {
      for (let index = 0; index < p; index++) trial[index] = (beta[index] as number) - step * (direction[index] as number)
      try {
        trialLoss = objective(trial, trialWorkspace, false)
      } catch (error) {
        if (!(error instanceof NonFiniteError)) throw error
        trialLoss = Number.POSITIVE_INFINITY
      }
      if (trialLoss <= loss + 1e-12 * Math.abs(loss)) break
      step /= 2
    }
    if (!Number.isFinite(trialLoss)) throw new NonFiniteError('the objective is not finite along the Newton direction')
    const change = Math.abs(trialLoss - loss)
    const stepSize = step * maxAbs(direction)
    beta.set(trial)
    loss = objective(beta, total, true)
    if (change / (Math.abs(loss) + 0.1) < tolerance && stepSize < Math.sqrt(tolerance) * (1 + maxAbs(beta))) {
      converged = true
      break
    }
  }
  for (const value of beta) if (!Number.isFinite(value)) throw new NonFiniteError('the coefficients are not finite')
  if (options.family === 'binomial' && lambda === 0) detectSeparation(blocks, beta, loss, converged)
  hessian.set(total.hessian)
  const penaltyValue = addPenalty(beta, lambda, penalized, createWorkspace(p), false)
  return { beta, iterations, loss, logLikelihood: -(loss - penaltyValue), gradientNorm: norm2(total.gradient), hessian, converged }
}

/**
 * Complete separation drives the loss to 0 and the coefficients to infinity; quasi-complete separation
 * drives some fitted probabilities to 0 or 1. Either way the maximum-likelihood estimate does not exist.
 */
function detectSeparation (blocks: readonly DataBlock[], beta: Float64Array, loss: number, converged: boolean): void {
  const rows = blocks.reduce((sum, block) => sum + block.rows, 0)
  let extreme = 0
  for (const block of blocks) {
    const p = block.cols
    for (let row = 0; row < block.rows; row++) {
      let eta = block.offset === undefined ? 0 : (block.offset[row] as number)
      for (let column = 0; column < p; column++) eta += (block.x[row * p + column] as number) * (beta[column] as number)
      if (Math.abs(eta) > 30) extreme++
    }
  }
  if (loss < 1e-6 * rows || (!converged && extreme > 0) || extreme === rows) {
    throw new PerfectSeparationError(`the outcome is perfectly separated by the features (${extreme} of ${rows} fitted probabilities are 0 or 1): no finite estimate exists`)
  }
}
