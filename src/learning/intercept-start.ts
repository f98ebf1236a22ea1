import type { Family, ColumnScaling } from './local-problem.ts'
import { logistic, softplus } from './family.ts'
import { multiplySquare } from './linalg.ts'

/**
 * The pooled objective's value, gradient and Hessian at an intercept-only point, in closed form from
 * pooled sums: exact Newton's first step without a sum of its own. At eta = c on every row (no slope)
 * the mean is the same function of c everywhere (Poisson: times the row's exposure), so
 *
 *   binomial  f = n softplus(c) - c sum y,                 g = mu sum x - sum y x,     H = mu (1 - mu) sum x x'
 *   Poisson   f = e^c sum e^o - c sum y - sum y o + sum log y!,  g = e^c sum e^o x - sum y x,  H = e^c sum e^o x x'
 *
 * with mu = logistic(c); sum e^o x is the intercept's row of sum e^o x x'. On the standardised scale
 * (b = T s, see standardize.ts) g_s = T' g and H_s = T' H T. The penalty (lambda / 2) ||P s||^2 adds
 * lambda to the Hessian's diagonal off the intercept and nothing else at a point without slopes.
 *
 * The sums are those of LocalProblem.crossProducts() and statistics(), added over the peers: the same
 * information as the first Newton sum's totals (its Hessian is a multiple of sum w x x', its gradient
 * gives sum y x), so nothing more is revealed.
 */
export interface InterceptStartInput {
  family: Family
  dimension: number
  interceptColumn: number
  /** the intercept c (the standardised and the original scale agree on it when every slope is 0) */
  intercept: number
  rows: number
  outcomeSum: number
  exposureSum: number
  /** pooled crossProducts(): [sum w x x' upper, sum y x, sum y o, sum log y!, (flag)] */
  crossProducts: ArrayLike<number>
  scaling: ColumnScaling | null
  /** the pooled penalty lambda on the standardised slopes */
  lambda: number
}

/** [value, gradient (p), Hessian's upper triangle], the layout of a Newton step's summed contribution. */
export function interceptStartDerivatives (input: InterceptStartInput): Float64Array {
  const { dimension: p, interceptColumn: k, intercept: c, crossProducts: sums } = input
  const upper = (p * (p + 1)) / 2
  const cross = new Float64Array(p * p)
  for (let row = 0, index = 0; row < p; row++) {
    for (let column = row; column < p; column++, index++) {
      cross[row * p + column] = sums[index] as number
      cross[column * p + row] = sums[index] as number
    }
  }
  const gradient = new Float64Array(p)
  const hessian = new Float64Array(p * p)
  let value: number
  if (input.family === 'binomial') {
    const mu = logistic(c)
    value = input.rows * softplus(c) - c * input.outcomeSum
    for (let column = 0; column < p; column++) gradient[column] = mu * (cross[k * p + column] as number) - (sums[upper + column] as number)
    for (let index = 0; index < p * p; index++) hessian[index] = mu * (1 - mu) * (cross[index] as number)
  } else {
    const scale = Math.exp(c)
    value = scale * input.exposureSum - c * input.outcomeSum - (sums[upper + p] as number) + (sums[upper + p + 1] as number)
    for (let column = 0; column < p; column++) gradient[column] = scale * (cross[k * p + column] as number) - (sums[upper + column] as number)
    for (let index = 0; index < p * p; index++) hessian[index] = scale * (cross[index] as number)
  }
  // to the standardised scale: T[j][j] = 1 / sd_j, T[k][j] = -mean_j / sd_j (j != k)
  const t = new Float64Array(p * p)
  for (let column = 0; column < p; column++) {
    const sd = input.scaling === null || column === k ? 1 : input.scaling.scale[column] as number
    const mean = input.scaling === null || column === k ? 0 : input.scaling.mean[column] as number
    t[column * p + column] = 1 / sd
    if (column !== k) t[k * p + column] = -mean / sd
  }
  const scaledGradient = new Float64Array(p)
  for (let column = 0; column < p; column++) {
    let sum = 0
    for (let row = 0; row < p; row++) sum += (t[row * p + column] as number) * (gradient[row] as number)
    scaledGradient[column] = sum
  }
  const product = multiplySquare(hessian, t, p)
  const out = new Float64Array(1 + p + upper)
  out[0] = value
  out.set(scaledGradient, 1)
  for (let row = 0, index = 1 + p; row < p; row++) {
    for (let column = row; column < p; column++, index++) {
      let sum = 0
      for (let middle = 0; middle < p; middle++) sum += (t[middle * p + row] as number) * (product[middle * p + column] as number)
      out[index] = sum + (row === column && row !== k ? input.lambda : 0)
    }
  }
  return out
}
