import { logFactorial } from './family.ts'

/**
 * The Poisson distribution as forecasts need it: log probabilities for the log score, quantiles for
 * prediction intervals and draws (by inversion, from an injected uniform source) for simulated paths.
 */

/** log P(Y = y) for Y ~ Poisson(mean); y a non-negative integer, mean > 0. */
export function logPoissonProbability (y: number, mean: number): number {
  if (!(mean > 0)) throw new RangeError(`a Poisson mean must be positive, got ${mean}`)
  return y * Math.log(mean) - mean - logFactorial(y)
}

/** Terms below this fraction of the running total no longer change a double-precision sum. */
const NEGLIGIBLE = 1e-17

/**
 * The smallest k with P(Y <= k) >= probability, Y ~ Poisson(mean). Sums the probabilities outward from
 * the mode in log space, so a large mean (where e^-mean underflows) is as exact as a small one.
 */
export function poissonQuantile (probability: number, mean: number): number {
  if (!(probability >= 0 && probability <= 1)) throw new RangeError(`probability must be in [0, 1], got ${probability}`)
  if (!(mean > 0) || !Number.isFinite(mean)) throw new RangeError(`a Poisson mean must be positive and finite, got ${mean}`)
  if (probability === 1) return Number.POSITIVE_INFINITY
  const mode = Math.floor(mean)
  // probabilities relative to P(Y = mode): they fall away from the mode on both sides
  let below = 0
  let term = 1
  for (let k = mode; k > 0; k--) {
    term *= k / mean
    below += term
    if (term < NEGLIGIBLE * (1 + below)) break
  }
  let above = 0
  term = 1
  for (let k = mode + 1; ; k++) {
    term *= mean / k
    above += term
    if (term < NEGLIGIBLE * (1 + above)) break
  }
  const total = 1 + below + above
  let k = mode
  let atK = 1 / total
  let cumulative = (1 + below) / total
  if (cumulative >= probability) {
    // walk down while P(Y <= k - 1) still reaches the probability
    while (k > 0 && cumulative - atK >= probability) {
      cumulative -= atK
      atK *= k / mean
      k--
    }
    return k
  }
  while (cumulative < probability && atK > 0) {
    k++
    atK *= mean / k
    cumulative += atK
  }
  return k
}

/** One draw from Poisson(mean) by inversion of a uniform number in [0, 1) from `uniform`. */
export function samplePoisson (mean: number, uniform: () => number): number {
  return poissonQuantile(uniform(), mean)
}
