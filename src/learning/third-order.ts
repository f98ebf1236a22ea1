import type { DataBlock } from './design.ts'
import { DimensionMismatchError } from './errors.ts'
import { logistic, type FamilyName } from './family.ts'
import { choleskyInPlace, choleskySolveInPlace, norm2 } from './linalg.ts'

/**
 * Third derivatives of a GLM loss and the third-order (Chebyshev) step that uses them.
 *
 * The loss's third derivative is the symmetric tensor T_ijk = sum over rows of w3(eta) x_i x_j x_k,
 * w3 the third derivative of the per-row loss in eta (binomial: mu (1 - mu) (1 - 2 mu); Poisson with
 * the log link: mu). A quadratic penalty adds nothing to it. Only the entries with i <= j <= k are
 * kept, in lexicographic order: p (p + 1) (p + 2) / 6 of them.
 */
export function tensorLength (p: number): number {
  return (p * (p + 1) * (p + 2)) / 6
}

/**
 * Adds the third-derivative tensor of `family`'s negative log-likelihood over the block at `beta`
 * (eta = x' beta + offset), packed as tensorLength(p) entries i <= j <= k, to `out` from `offset`.
 */
export function addThirdDerivatives (family: FamilyName, block: DataBlock, beta: ArrayLike<number>, out: Float64Array, offset = 0): void {
  const p = block.cols
  if (beta.length !== p) throw new DimensionMismatchError(`beta has ${beta.length} entries for ${p} columns`)
  if (out.length < offset + tensorLength(p)) throw new DimensionMismatchError(`the tensor needs ${tensorLength(p)} entries from ${offset}, the array has ${out.length}`)
  const { x } = block
  const binomial = family === 'binomial'
  for (let row = 0; row < block.rows; row++) {
    const base = row * p
    let eta = block.offset === undefined ? 0 : (block.offset[row] as number)
    for (let column = 0; column < p; column++) eta += (x[base + column] as number) * (beta[column] as number)
    let weight: number
    if (binomial) {
      const mean = logistic(eta)
      weight = mean * (1 - mean) * (1 - 2 * mean)
    } else {
      weight = Math.exp(eta)
    }
    if (weight === 0) continue
    let index = offset
    for (let i = 0; i < p; i++) {
      const wi = weight * (x[base + i] as number)
      for (let j = i; j < p; j++) {
        const wij = wi * (x[base + j] as number)
        for (let k = j; k < p; k++, index++) out[index] = (out[index] as number) + wij * (x[base + k] as number)
      }
    }
  }
}

/** T[v, v]: the vector with entries sum over j, k of T_ijk v_j v_k, from the packed tensor. */
export function contractTensor (packed: ArrayLike<number>, offset: number, p: number, v: ArrayLike<number>): Float64Array {
  const out = new Float64Array(p)
  let index = offset
  for (let i = 0; i < p; i++) {
    for (let j = i; j < p; j++) {
      for (let k = j; k < p; k++, index++) {
        const t = packed[index] as number
        const vi = v[i] as number
        const vj = v[j] as number
        const vk = v[k] as number
        // every distinct ordering (a, b, c) of (i, j, k) adds t v_b v_c to entry a
        if (i === j && j === k) {
          out[i] = (out[i] as number) + t * vi * vi
        } else if (i === j) {
          // (i, i, k): orderings iik, iki, kii
          out[i] = (out[i] as number) + 2 * t * vi * vk
          out[k] = (out[k] as number) + t * vi * vi
        } else if (j === k) {
          // (i, j, j): orderings ijj, jij, jji
          out[i] = (out[i] as number) + t * vj * vj
          out[j] = (out[j] as number) + 2 * t * vi * vj
        } else {
          out[i] = (out[i] as number) + 2 * t * vj * vk
          out[j] = (out[j] as number) + 2 * t * vi * vk
          out[k] = (out[k] as number) + 2 * t * vi * vj
        }
      }
    }
  }
  return out
}

export interface ThirdOrderStep {
  /** the step to add to the point */
  direction: Float64Array
  /** true when the third-order correction was taken, false for the plain Newton step */
  thirdOrder: boolean
}

/**
 * The step from a point given the gradient g, the Hessian H (p x p, row-major, symmetric positive
 * definite) and, optionally, the packed third-derivative tensor T at that point: the Newton step
 * d_N = -H^-1 g and, with T, the Chebyshev step d = d_N - (1/2) H^-1 T[d_N, d_N], whose error is of
 * the third order in the distance to the optimum rather than the second. Far from the optimum the
 * correction is no improvement: when ||correction|| > ||d_N|| / 2 the plain Newton step is taken.
 */
export function thirdOrderStep (gradient: ArrayLike<number>, hessian: Float64Array, p: number, tensor: ArrayLike<number> | null = null, tensorOffset = 0): ThirdOrderStep {
  const factor = Float64Array.from(hessian)
  choleskyInPlace(factor, p)
  const direction = Float64Array.from({ length: p }, (_, index) => -(gradient[index] as number))
  choleskySolveInPlace(factor, p, direction)
  if (tensor === null) return { direction, thirdOrder: false }
  const correction = contractTensor(tensor, tensorOffset, p, direction)
  choleskySolveInPlace(factor, p, correction)
  for (let index = 0; index < p; index++) correction[index] = -0.5 * (correction[index] as number)
  const size = norm2(correction)
  if (!Number.isFinite(size) || size > 0.5 * norm2(direction)) return { direction, thirdOrder: false }
  for (let index = 0; index < p; index++) direction[index] = (direction[index] as number) + (correction[index] as number)
  return { direction, thirdOrder: true }
}
