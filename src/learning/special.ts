/**
 * The gamma function's logarithm and its first two derivatives (digamma, trigamma) for positive real
 * arguments, as the negative binomial likelihood needs them: each shifts its argument up by the
 * recurrence until the asymptotic series is exact to double precision, then sums the series.
 */

/** Below this the series are not used: the recurrence shifts the argument up to it first. */
const SHIFT = 15

function checkPositive (x: number, name: string): void {
  if (!(x > 0) || !Number.isFinite(x)) throw new RangeError(`${name} needs a positive finite argument, got ${x}`)
}

/** log Gamma(x), x > 0: Stirling's series above 15 (error below 1e-16 relative), the recurrence below. */
export function logGamma (x: number): number {
  checkPositive(x, 'logGamma')
  let shifted = x
  let correction = 0
  while (shifted < SHIFT) {
    correction += Math.log(shifted)
    shifted += 1
  }
  const inverse = 1 / shifted
  const inverseSquared = inverse * inverse
  const series = inverse * (1 / 12 - inverseSquared * (1 / 360 - inverseSquared * (1 / 1260 - inverseSquared * (1 / 1680 - inverseSquared / 1188))))
  return (shifted - 0.5) * Math.log(shifted) - shifted + 0.5 * Math.log(2 * Math.PI) + series - correction
}

/** digamma(x) = d/dx log Gamma(x), x > 0. */
export function digamma (x: number): number {
  checkPositive(x, 'digamma')
  let shifted = x
  let correction = 0
  while (shifted < SHIFT) {
    correction += 1 / shifted
    shifted += 1
  }
  const inverseSquared = 1 / (shifted * shifted)
  const series = inverseSquared * (1 / 12 - inverseSquared * (1 / 120 - inverseSquared * (1 / 252 - inverseSquared * (1 / 240 - inverseSquared / 132))))
  return Math.log(shifted) - 0.5 / shifted - series - correction
}

/** trigamma(x) = d^2/dx^2 log Gamma(x), x > 0. */
export function trigamma (x: number): number {
  checkPositive(x, 'trigamma')
  let shifted = x
  let correction = 0
  while (shifted < SHIFT) {
    correction += 1 / (shifted * shifted)
    shifted += 1
  }
  const inverse = 1 / shifted
  const inverseSquared = inverse * inverse
  const series = inverse * (1 + inverse * (0.5 + inverse * (1 / 6 - inverseSquared * (1 / 30 - inverseSquared * (1 / 42 - inverseSquared * (1 / 30 - inverseSquared * 5 / 66))))))
  return series + correction
}

/** Counts up to this use exact sums for the differences below rather than two special-function values. */
const EXACT_SUM_LIMIT = 16

/**
 * log Gamma(y + k) - log Gamma(k) and its first two derivatives in k, for a count y and k > 0: a sum
 * over 0 <= i < y of log(k + i), 1/(k + i) and -1/(k + i)^2 when y is small (exact, and free of the
 * cancellation between two large values), the special functions otherwise.
 */
export function logGammaRatio (y: number, k: number): { value: number, first: number, second: number } {
  if (y <= EXACT_SUM_LIMIT) {
    let value = 0
    let first = 0
    let second = 0
    for (let index = 0; index < y; index++) {
      const term = k + index
      value += Math.log(term)
      first += 1 / term
      second -= 1 / (term * term)
    }
    return { value, first, second }
  }
  return { value: logGamma(y + k) - logGamma(k), first: digamma(y + k) - digamma(k), second: trigamma(y + k) - trigamma(k) }
}
