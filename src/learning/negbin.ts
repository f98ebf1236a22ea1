import { logFactorial } from './family.ts'
import { logGammaRatio } from './special.ts'

/**
 * Count distributions of forecasts: the negative binomial with mean `mean` and size `size` (variance
 * mean (1 + mean / size), R's dnbinom(y, mu = mean, size = size)), and the Poisson as its limit
 * size = Infinity. Probabilities, the distribution function, quantiles and the proper scores of the
 * forecasting literature (Czado, Gneiting and Held 2009), as surveillance::scores defines them.
 */
export interface CountDistribution {
  mean: number
  /** the negative binomial's size (1 / overdispersion); Infinity for the Poisson */
  size: number
}

function check (distribution: CountDistribution): void {
  const { mean, size } = distribution
  if (!(mean > 0) || !Number.isFinite(mean)) throw new RangeError(`a count distribution's mean must be positive and finite, got ${mean}`)
  if (!(size > 0)) throw new RangeError(`a negative binomial size must be positive, got ${size}`)
}

/** log P(Y = y), y a non-negative integer. */
export function logCountProbability (y: number, distribution: CountDistribution): number {
  check(distribution)
  const { mean, size } = distribution
  if (size === Number.POSITIVE_INFINITY) return y * Math.log(mean) - mean - logFactorial(y)
  // size log(size / (size + mean)) + y log(mean / (size + mean)), written to keep digits when mean << size
  const logShare = -Math.log1p(mean / size)
  return logGammaRatio(y, size).value - logFactorial(y) + size * logShare + y * (Math.log(mean) + logShare - Math.log(size))
}

export function countVariance (distribution: CountDistribution): number {
  return distribution.mean * (1 + distribution.mean / distribution.size)
}

/** P(Y = x) / P(Y = x - 1) for x >= 1. */
function ratio (x: number, distribution: CountDistribution): number {
  const { mean, size } = distribution
  if (size === Number.POSITIVE_INFINITY) return mean / x
  return (x - 1 + size) / x * mean / (size + mean)
}

/** Terms below this fraction of the running total no longer change a double-precision sum. */
const NEGLIGIBLE = 1e-17

/**
 * The probabilities P(Y = x) for x = 0 .. upper, where upper is at least `atLeast` and the mass above
 * it is negligible: walked outward from the mode by the ratio of neighbouring probabilities in
 * relative terms and scaled once by the mode's exact probability, so that a large mean (where P(Y = 0)
 * underflows) is as exact as a small one.
 */
export function countProbabilities (distribution: CountDistribution, atLeast = 0): Float64Array {
  check(distribution)
  const { mean, size } = distribution
  const mode = size === Number.POSITIVE_INFINITY || size <= 1 ? (size <= 1 ? 0 : Math.floor(mean)) : Math.floor(mean * (size - 1) / size)
  const relative: number[] = []
  relative[mode] = 1
  let total = 1
  for (let x = mode; x > 0; x--) {
    const term = (relative[x] as number) / ratio(x, distribution)
    relative[x - 1] = term
    total += term
  }
  for (let x = mode + 1; ; x++) {
    const term = (relative[x - 1] as number) * ratio(x, distribution)
    relative[x] = term
    total += term
    if (x >= atLeast && term < NEGLIGIBLE * total) break
  }
  const scale = Math.exp(logCountProbability(mode, distribution))
  return Float64Array.from(relative, (term) => (term ?? 0) * scale)
}

/** P(Y <= y); 0 for y < 0. */
export function countCdf (y: number, distribution: CountDistribution): number {
  if (y < 0) return 0
  const probabilities = countProbabilities(distribution, y)
  let sum = 0
  for (let x = 0; x <= y; x++) sum += probabilities[x] as number
  return Math.min(1, sum)
}

/** The smallest x with P(Y <= x) >= probability. */
export function countQuantile (probability: number, distribution: CountDistribution): number {
  if (!(probability >= 0 && probability < 1)) throw new RangeError(`probability must be in [0, 1), got ${probability}`)
  const probabilities = countProbabilities(distribution)
  let sum = 0
  for (let x = 0; x < probabilities.length; x++) {
    sum += probabilities[x] as number
    if (sum >= probability) return x
  }
  return probabilities.length - 1
}

/** The scores of one forecast distribution against the observed count. */
export interface CountScores {
  /** log P(Y = y): higher is better */
  logScore: number
  /** ranked probability score, sum over x >= 0 of (F(x) - 1{y <= x})^2: lower is better */
  rps: number
  /** Dawid-Sebastiani score ((y - mean) / sd)^2 + 2 log sd: lower is better */
  dss: number
  absoluteError: number
  /**
   * The share of the randomised PIT interval [F(y - 1), F(y)] inside [(1 - level) / 2, (1 + level) / 2]:
   * its mean over forecasts is `level` for a calibrated forecast, where the share of counts inside an
   * inclusive interval over-covers.
   */
  coverage: number
}

export function scoreCount (y: number, distribution: CountDistribution, level = 0.9): CountScores {
  if (!(Number.isInteger(y) && y >= 0)) throw new RangeError(`an observed count must be a non-negative integer, got ${y}`)
  if (!(level > 0 && level < 1)) throw new RangeError(`level must be in (0, 1), got ${level}`)
  const probabilities = countProbabilities(distribution, y)
  let cumulative = 0
  let below = 0
  let rps = 0
  for (let x = 0; x < probabilities.length; x++) {
    if (x === y) below = cumulative
    cumulative += probabilities[x] as number
    const target = x >= y ? 1 : 0
    rps += (Math.min(1, cumulative) - target) ** 2
  }
  const atY = Math.min(1, below + (probabilities[y] as number))
  const lower = (1 - level) / 2
  const upper = (1 + level) / 2
  const width = atY - below
  const coverage = width > 0 ? Math.max(0, Math.min(atY, upper) - Math.max(below, lower)) / width : (below >= lower && below <= upper ? 1 : 0)
  const variance = countVariance(distribution)
  return {
    logScore: logCountProbability(y, distribution),
    rps,
    dss: (y - distribution.mean) ** 2 / variance + Math.log(variance),
    absoluteError: Math.abs(y - distribution.mean),
    coverage
  }
}
