import type { DataBlock } from './design.ts'
import { ConstantColumnError, EmptyDataError } from './errors.ts'
import { multiplySquare } from './linalg.ts'

/**
 * Standardisation from sufficient statistics (count, sums, sums of squares), so that a federation can
 * get the pooled mean and population standard deviation (divide by n) by summing, and every peer
 * scales its columns the same way.
 */
export interface SufficientStats {
  count: number
  sum: Float64Array
  sumSquares: Float64Array
}

export interface Scaler {
  /** per design column; the intercept column has mean 0 and scale 1 */
  mean: Float64Array
  scale: Float64Array
}

export function sufficientStats (block: DataBlock): SufficientStats {
  const p = block.cols
  const sum = new Float64Array(p)
  const sumSquares = new Float64Array(p)
  for (let row = 0; row < block.rows; row++) {
    for (let column = 0; column < p; column++) {
      const value = block.x[row * p + column] as number
      sum[column] = (sum[column] as number) + value
      sumSquares[column] = (sumSquares[column] as number) + value * value
    }
  }
  return { count: block.rows, sum, sumSquares }
}

export function addStats (a: SufficientStats, b: SufficientStats): SufficientStats {
  return {
    count: a.count + b.count,
    sum: a.sum.map((value, index) => value + (b.sum[index] as number)),
    sumSquares: a.sumSquares.map((value, index) => value + (b.sumSquares[index] as number))
  }
}

/** [count, sum (p), sumSquares (p)]: one vector a federation can sum. */
export function statsToVector (stats: SufficientStats): Float64Array {
  const p = stats.sum.length
  const vector = new Float64Array(1 + 2 * p)
  vector[0] = stats.count
  vector.set(stats.sum, 1)
  vector.set(stats.sumSquares, 1 + p)
  return vector
}

export function statsFromVector (vector: Float64Array, cols: number): SufficientStats {
  return { count: vector[0] as number, sum: vector.slice(1, 1 + cols), sumSquares: vector.slice(1 + cols, 1 + 2 * cols) }
}

export function scalerFromStats (stats: SufficientStats, interceptColumn: number | null, names?: readonly string[]): Scaler {
  if (stats.count <= 0) throw new EmptyDataError('no rows to standardise')
  const p = stats.sum.length
  const mean = new Float64Array(p)
  const scale = new Float64Array(p)
  for (let column = 0; column < p; column++) {
    if (column === interceptColumn) {
      mean[column] = 0
      scale[column] = 1
      continue
    }
    const average = (stats.sum[column] as number) / stats.count
    const variance = Math.max(0, (stats.sumSquares[column] as number) / stats.count - average * average)
    const deviation = Math.sqrt(variance)
    if (!(deviation > 1e-12 * Math.max(1, Math.abs(average)))) {
      throw new ConstantColumnError(`column ${names?.[column] ?? column} is constant (${average}) and cannot be standardised`)
    }
    mean[column] = average
    scale[column] = deviation
  }
  return { mean, scale }
}

export function standardizeBlock (block: DataBlock, scaler: Scaler): DataBlock {
  const p = block.cols
  const x = new Float64Array(block.rows * p)
  for (let row = 0; row < block.rows; row++) {
    for (let column = 0; column < p; column++) {
      x[row * p + column] = ((block.x[row * p + column] as number) - (scaler.mean[column] as number)) / (scaler.scale[column] as number)
    }
  }
  return block.offset === undefined ? { x, y: block.y, rows: block.rows, cols: p } : { x, y: block.y, offset: block.offset, rows: block.rows, cols: p }
}

/**
 * beta on the original scale from beta on the standardised scale: b_j = s_j / sd_j, and the intercept
 * absorbs the centring, b_0 = s_0 - sum_j s_j mean_j / sd_j. It is linear, b = T s.
 */
export function toOriginalScale (betaStd: ArrayLike<number>, scaler: Scaler, interceptColumn: number | null): Float64Array {
  const p = betaStd.length
  const beta = new Float64Array(p)
  let shift = 0
  for (let column = 0; column < p; column++) {
    if (column === interceptColumn) continue
    beta[column] = (betaStd[column] as number) / (scaler.scale[column] as number)
    shift += (beta[column] as number) * (scaler.mean[column] as number)
  }
  if (interceptColumn !== null) beta[interceptColumn] = (betaStd[interceptColumn] as number) - shift
  return beta
}

/** T C T' for the same linear map T as toOriginalScale. */
export function covarianceToOriginalScale (covStd: Float64Array, scaler: Scaler, interceptColumn: number | null): Float64Array {
  const p = scaler.mean.length
  const transform = new Float64Array(p * p)
  for (let column = 0; column < p; column++) {
    if (column === interceptColumn) {
      transform[column * p + column] = 1
      continue
    }
    transform[column * p + column] = 1 / (scaler.scale[column] as number)
    if (interceptColumn !== null) transform[interceptColumn * p + column] = -(scaler.mean[column] as number) / (scaler.scale[column] as number)
  }
  const product = multiplySquare(transform, covStd, p)
  const out = new Float64Array(p * p)
  for (let row = 0; row < p; row++) {
    for (let column = 0; column < p; column++) {
      let sum = 0
      for (let inner = 0; inner < p; inner++) sum += (product[row * p + inner] as number) * (transform[column * p + inner] as number)
      out[row * p + column] = sum
    }
  }
  return out
}
