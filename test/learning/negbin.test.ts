import { describe, expect, it } from 'vitest'
import { countCdf, countProbabilities, countQuantile, logCountProbability, scoreCount } from '../../src/learning/negbin.ts'
import { logPoissonProbability } from '../../src/learning/poisson.ts'

// R: dnbinom(c(0, 3, 17), mu = 4.2, size = 0.8); pnbinom(3, mu = 4.2, size = 0.8); qnbinom(c(0.05, 0.95), mu = 4.2, size = 0.8)
const R_DENSITY = [0.230831984945, 0.091939707421, 0.005779414606]

describe('count distributions: negative binomial and Poisson', () => {
  const negbin = { mean: 4.2, size: 0.8 }

  it('probabilities sum to one, and the log probability is the log of the probability', () => {
    for (const distribution of [negbin, { mean: 250, size: 3 }, { mean: 900, size: Number.POSITIVE_INFINITY }, { mean: 0.01, size: 0.2 }]) {
      const probabilities = countProbabilities(distribution)
      const total = probabilities.reduce((sum, value) => sum + value, 0)
      expect(Math.abs(total - 1)).toBeLessThan(1e-12)
      for (const y of [0, 1, Math.round(distribution.mean), Math.round(distribution.mean) + 7]) {
        // (P(Y = 0) of a Poisson with mean 900 underflows; its log is still exact)
        if (y >= probabilities.length || (probabilities[y] as number) < 1e-300) continue
        expect(Math.abs(Math.log(probabilities[y] as number) - logCountProbability(y, distribution))).toBeLessThan(1e-10)
      }
    }
    expect(logCountProbability(12, { mean: 7.5, size: Number.POSITIVE_INFINITY })).toBeCloseTo(logPoissonProbability(12, 7.5), 13)
  })

  it('agrees with R\'s dnbinom, pnbinom and qnbinom', () => {
    ;[0, 3, 17].forEach((y, index) => { expect(Math.exp(logCountProbability(y, negbin))).toBeCloseTo(R_DENSITY[index] as number, 11) })
    const cdf = [0, 1, 2, 3].reduce((sum, y) => sum + Math.exp(logCountProbability(y, negbin)), 0)
    expect(countCdf(3, negbin)).toBeCloseTo(cdf, 13)
    expect(countCdf(-1, negbin)).toBe(0)
    expect(countQuantile(0.05, negbin)).toBe(0)
    expect(countQuantile(0.95, negbin)).toBe(14)
  })

  it('the ranked probability score equals its sum written out, and the coverage is the PIT interval\'s share in [0.05, 0.95]', () => {
    for (const [y, distribution] of [[0, negbin], [6, negbin], [30, negbin], [3, { mean: 2.5, size: Number.POSITIVE_INFINITY }]] as const) {
      const scores = scoreCount(y, distribution)
      let rps = 0
      for (let x = 0; x < 400; x++) rps += (countCdf(x, distribution) - (x >= y ? 1 : 0)) ** 2
      expect(scores.rps).toBeCloseTo(rps, 10)
      const upper = countCdf(y, distribution)
      const lower = countCdf(y - 1, distribution)
      const inside = Math.max(0, Math.min(upper, 0.95) - Math.max(lower, 0.05)) / (upper - lower)
      expect(scores.coverage).toBeCloseTo(inside, 12)
      const variance = distribution.mean * (1 + distribution.mean / distribution.size)
      expect(scores.dss).toBeCloseTo((y - distribution.mean) ** 2 / variance + Math.log(variance), 12)
      expect(scores.absoluteError).toBeCloseTo(Math.abs(y - distribution.mean), 14)
    }
    // a count far in the tail: no part of its PIT interval is in the central 90%
    expect(scoreCount(60, negbin).coverage).toBe(0)
  })
})
