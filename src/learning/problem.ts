import { riskHistogram } from './metrics.ts'
import type { ColumnScaling, LocalProblem } from './local-problem.ts'
import type { LocalObjective } from './objective.ts'
import type { DataBlock } from './design.ts'
import type { FamilyName } from './family.ts'
import { logFactorial, logistic } from './family.ts'
import { createWorkspace, evaluateLoss, type Workspace } from './glm.ts'
import { standardizeBlock } from './standardize.ts'
import { addThirdDerivatives } from './third-order.ts'

/**
 * A peer's regression problem over its own rows, in the form the consensus machines use: additive
 * statistics and an objective. The rows stay here; only aggregates and derivatives leave.
 */
export function createGlmProblem (options: {
  family: FamilyName
  block: DataBlock
  terms: readonly string[]
  interceptColumn: number | null
}): LocalProblem {
  const { family, block, terms, interceptColumn } = options
  const p = block.cols
  if (terms.length !== p) throw new RangeError(`${terms.length} term names for ${p} columns`)
  return {
    family,
    dimension: p,
    terms,
    interceptColumn,
    statistics () {
      const statistics = new Float64Array(4 + 2 * p)
      statistics[0] = 1
      statistics[1] = block.rows
      for (let row = 0; row < block.rows; row++) {
        for (let column = 0; column < p; column++) {
          const value = block.x[row * p + column] as number
          statistics[2 + column] = (statistics[2 + column] as number) + value
          statistics[2 + p + column] = (statistics[2 + p + column] as number) + value * value
        }
        statistics[2 + 2 * p] = (statistics[2 + 2 * p] as number) + (block.y[row] as number)
        statistics[3 + 2 * p] = (statistics[3 + 2 * p] as number) + Math.exp(block.offset?.[row] ?? 0)
      }
      return statistics
    },
    crossProducts () {
      const upper = (p * (p + 1)) / 2
      const out = new Float64Array(upper + p + 3)
      for (let row = 0; row < block.rows; row++) {
        const base = row * p
        const offset = block.offset?.[row] ?? 0
        const weight = family === 'poisson' ? Math.exp(offset) : 1
        if (family === 'binomial' && offset !== 0) out[upper + p + 2] = 1
        const observed = block.y[row] as number
        let index = 0
        for (let column = 0; column < p; column++) {
          const scaled = weight * (block.x[base + column] as number)
          for (let other = column; other < p; other++, index++) out[index] = (out[index] as number) + scaled * (block.x[base + other] as number)
          out[upper + column] = (out[upper + column] as number) + observed * (block.x[base + column] as number)
        }
        out[upper + p] = (out[upper + p] as number) + observed * offset
        if (family === 'poisson') out[upper + p + 1] = (out[upper + p + 1] as number) + logFactorial(observed)
      }
      return out
    },
    objective (scaling: ColumnScaling | null, penaltyShare: number): LocalObjective {
      const scaled = scaling === null ? block : standardizeBlock(block, scaling)
      return glmObjective(family, scaled, interceptColumn, penaltyShare)
    },
    riskHistogram (coefficients: Float64Array, bins: number) {
      const risks = new Float64Array(block.rows)
      for (let row = 0; row < block.rows; row++) {
        let eta = block.offset?.[row] ?? 0
        for (let column = 0; column < p; column++) eta += (block.x[row * p + column] as number) * (coefficients[column] as number)
        risks[row] = logistic(eta)
      }
      return riskHistogram(risks, block.y, bins)
    },
    negativeLogLikelihood (coefficients: Float64Array) {
      const workspace = createWorkspace(p)
      return evaluateLoss(family, block, coefficients, workspace, false)
    }
  }
}

/** f(x) = negative log-likelihood of the block + (penalty / 2) ||P x||^2, P dropping the intercept. */
export function glmObjective (family: FamilyName, block: DataBlock, interceptColumn: number | null, penalty: number): LocalObjective {
  const p = block.cols
  const workspace: Workspace = createWorkspace(p)
  return {
    dimension: p,
    evaluate (point, gradient, hessian, wantHessian) {
      let value = block.rows === 0 ? 0 : evaluateLoss(family, block, point, workspace, wantHessian)
      if (block.rows === 0) {
        workspace.gradient.fill(0)
        workspace.hessian.fill(0)
      }
      gradient.set(workspace.gradient)
      if (wantHessian) hessian.set(workspace.hessian)
      if (penalty > 0) {
        for (let index = 0; index < p; index++) {
          if (index === interceptColumn) continue
          const coefficient = point[index] as number
          value += 0.5 * penalty * coefficient * coefficient
          gradient[index] = (gradient[index] as number) + penalty * coefficient
          if (wantHessian) hessian[index * p + index] = (hessian[index * p + index] as number) + penalty
        }
      }
      return value
    },
    thirdDerivatives (point, out) {
      // the penalty is quadratic: it adds nothing to the third derivatives
      out.fill(0)
      if (block.rows > 0) addThirdDerivatives(family, block, point, out)
    }
  }
}
