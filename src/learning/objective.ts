/**
 * What a consensus machine needs from a peer's local problem: the value, gradient and Hessian of the
 * peer's own smooth objective f_i at a point. The learning core provides it for GLM losses; the
 * machines never see a data row.
 */
export interface LocalObjective {
  readonly dimension: number
  /**
   * Writes the gradient (length p) and, when asked, the Hessian (p*p, row-major, symmetric) of f_i at
   * `point` into the given arrays, overwriting them, and returns f_i(point).
   */
  evaluate(point: Float64Array, gradient: Float64Array, hessian: Float64Array, wantHessian: boolean): number
  /**
   * Optional: writes the symmetric third-derivative tensor of f_i at `point`, packed as the entries
   * i <= j <= k in lexicographic order (tensorLength(p) of them, see third-order.ts), into `out`,
   * overwriting it; on the same scale as the gradient and Hessian of evaluate.
   */
  thirdDerivatives?(point: Float64Array, out: Float64Array): void
}
