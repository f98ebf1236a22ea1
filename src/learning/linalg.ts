import { SingularHessianError } from './errors.ts'

/**
 * Small dense symmetric linear algebra on row-major Float64Arrays, written by hand so that the per-round
 * Newton steps of a peer allocate nothing. The eigen-decompositions elsewhere use ml-matrix.
 */

/** Overwrites the lower triangle of `a` (p x p, symmetric positive definite) with its Cholesky factor L. */
export function choleskyInPlace (a: Float64Array, p: number): void {
  for (let column = 0; column < p; column++) {
    const original = a[column * p + column] as number
    let diagonal = original
    for (let inner = 0; inner < column; inner++) diagonal -= (a[column * p + inner] as number) ** 2
    // A pivot that is nothing but rounding error of the original diagonal means a dependent column.
    if (!(diagonal > 1e-13 * Math.abs(original)) || !Number.isFinite(diagonal)) {
      throw new SingularHessianError(`the matrix is singular or not positive definite (pivot ${column} is ${diagonal})`)
    }
    const root = Math.sqrt(diagonal)
    a[column * p + column] = root
    for (let row = column + 1; row < p; row++) {
      let sum = a[row * p + column] as number
      for (let inner = 0; inner < column; inner++) sum -= (a[row * p + inner] as number) * (a[column * p + inner] as number)
      a[row * p + column] = sum / root
    }
  }
}

/** Solves L L' x = b in place, L the lower factor from choleskyInPlace. */
export function choleskySolveInPlace (l: Float64Array, p: number, b: Float64Array): void {
  for (let row = 0; row < p; row++) {
    let sum = b[row] as number
    for (let inner = 0; inner < row; inner++) sum -= (l[row * p + inner] as number) * (b[inner] as number)
    b[row] = sum / (l[row * p + row] as number)
  }
  for (let row = p - 1; row >= 0; row--) {
    let sum = b[row] as number
    for (let inner = row + 1; inner < p; inner++) sum -= (l[inner * p + row] as number) * (b[inner] as number)
    b[row] = sum / (l[row * p + row] as number)
  }
}

/** Solves a x = b for symmetric positive definite a, leaving both untouched. */
export function solveSymmetric (a: Float64Array, p: number, b: Float64Array): Float64Array {
  const factor = Float64Array.from(a)
  choleskyInPlace(factor, p)
  const solution = Float64Array.from(b)
  choleskySolveInPlace(factor, p, solution)
  return solution
}

/** The inverse of a symmetric positive definite matrix, column by column from its Cholesky factor. */
export function invertSymmetric (a: Float64Array, p: number): Float64Array {
  const factor = Float64Array.from(a)
  choleskyInPlace(factor, p)
  const out = new Float64Array(p * p)
  const column = new Float64Array(p)
  for (let index = 0; index < p; index++) {
    column.fill(0)
    column[index] = 1
    choleskySolveInPlace(factor, p, column)
    for (let row = 0; row < p; row++) out[row * p + index] = column[row] as number
  }
  for (let row = 0; row < p; row++) {
    for (let other = row + 1; other < p; other++) {
      // symmetrise: the two triangles of a computed inverse differ in the last bits
      const mean = 0.5 * ((out[row * p + other] as number) + (out[other * p + row] as number))
      out[row * p + other] = mean
      out[other * p + row] = mean
    }
  }
  for (const value of out) {
    if (!Number.isFinite(value)) throw new SingularHessianError('the inverse is not finite')
  }
  return out
}

/** The product a b of two p x p row-major matrices. */
export function multiplySquare (a: ArrayLike<number>, b: ArrayLike<number>, p: number): Float64Array {
  const product = new Float64Array(p * p)
  for (let row = 0; row < p; row++) {
    for (let column = 0; column < p; column++) {
      let sum = 0
      for (let inner = 0; inner < p; inner++) sum += (a[row * p + inner] as number) * (b[inner * p + column] as number)
      product[row * p + column] = sum
    }
  }
  return product
}

export function norm2 (vector: ArrayLike<number>): number {
  let sum = 0
  for (let index = 0; index < vector.length; index++) sum += (vector[index] as number) ** 2
  return Math.sqrt(sum)
}

export function maxAbs (vector: ArrayLike<number>): number {
  let largest = 0
  for (let index = 0; index < vector.length; index++) largest = Math.max(largest, Math.abs(vector[index] as number))
  return largest
}

/** ||a - b|| / ||b||: how far a vector is from a reference, relative to the reference's size. */
export function relativeDistance (a: ArrayLike<number>, b: ArrayLike<number>): number {
  let difference = 0
  let size = 0
  for (let index = 0; index < b.length; index++) {
    difference += ((a[index] as number) - (b[index] as number)) ** 2
    size += (b[index] as number) ** 2
  }
  return Math.sqrt(difference) / Math.max(Math.sqrt(size), Number.MIN_VALUE)
}
