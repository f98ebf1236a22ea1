/** The two GLM families of epimesh, each with its canonical link: logit for binomial, log for Poisson. */
export type FamilyName = 'binomial' | 'poisson'

export const FAMILIES: readonly FamilyName[] = Object.freeze(['binomial', 'poisson'])

export function isFamily (value: unknown): value is FamilyName {
  return value === 'binomial' || value === 'poisson'
}

/** log(1 + exp(x)) without overflow or loss of precision at either end. */
export function softplus (x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))
}

/** 1 / (1 + exp(-x)), stable for large |x|. */
export function logistic (x: number): number {
  if (x >= 0) return 1 / (1 + Math.exp(-x))
  const e = Math.exp(x)
  return e / (1 + e)
}

const SMALL_LOG_FACTORIALS: number[] = (() => {
  const table = [0]
  for (let n = 1; n < 64; n++) table.push((table[n - 1] as number) + Math.log(n))
  return table
})()

/** log(y!) for a non-negative count: a table below 64, Stirling's series above (error below 1e-15 relative). */
export function logFactorial (y: number): number {
  if (y < 64) return SMALL_LOG_FACTORIALS[Math.round(y)] as number
  const x = y + 1
  const inverse = 1 / x
  const inverseSquared = inverse * inverse
  return (x - 0.5) * Math.log(x) - x + 0.5 * Math.log(2 * Math.PI) +
    inverse * (1 / 12 - inverseSquared * (1 / 360 - inverseSquared * (1 / 1260 - inverseSquared / 1680)))
}
