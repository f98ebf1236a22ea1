import { describe, expect, it } from 'vitest'
import { createRng, forkRng, randomInt, randomUint32, shuffle } from '../../src/consensus/rng.ts'

describe('seeded rng', () => {
  it('is a pure function of its seed', () => {
    const first = createRng(42)
    const second = createRng(42)
    const other = createRng(43)
    const a = Array.from({ length: 100 }, () => first())
    expect(Array.from({ length: 100 }, () => second())).toEqual(a)
    expect(Array.from({ length: 100 }, () => other())).not.toEqual(a)
  })

  it('draws uniformly from [0, 1) with more than 32 bits of resolution', () => {
    const rng = createRng(7)
    const draws = 100_000
    const buckets = new Array<number>(10).fill(0)
    let sum = 0
    let fine = 0
    for (let draw = 0; draw < draws; draw++) {
      const value = rng()
      expect(value).toBeGreaterThanOrEqual(0)
      expect(value).toBeLessThan(1)
      sum += value
      buckets[Math.floor(value * 10)]!++
      // a 32-bit generator scaled to [0, 1) leaves every value a multiple of 2^-32
      if (value * 4294967296 !== Math.floor(value * 4294967296)) fine++
    }
    expect(sum / draws).toBeCloseTo(0.5, 2)
    // chi-square with 9 degrees of freedom: 27.9 is its 0.999 quantile
    const expected = draws / 10
    const chiSquare = buckets.reduce((total, count) => total + (count - expected) ** 2 / expected, 0)
    expect(chiSquare).toBeLessThan(27.9)
    expect(fine).toBeGreaterThan(draws * 0.99)
  })

  it('gives 32-bit words and bounded integers', () => {
    const rng = createRng(1)
    const words = Array.from({ length: 1000 }, () => randomUint32(rng))
    expect(words.every((word) => Number.isInteger(word) && word >= 0 && word < 2 ** 32)).toBe(true)
    expect(Math.max(...words)).toBeGreaterThan(2 ** 31)
    const counts = new Array<number>(6).fill(0)
    for (let draw = 0; draw < 6000; draw++) counts[randomInt(rng, 6)]!++
    expect(Math.min(...counts)).toBeGreaterThan(850)
    expect(() => randomInt(rng, 0)).toThrow(RangeError)
    expect(() => randomInt(rng, 2.5)).toThrow(RangeError)
    expect(() => createRng(Number.NaN)).toThrow(RangeError)
  })

  it('shuffles in place into a permutation, deterministically', () => {
    const items = Array.from({ length: 50 }, (_, index) => index)
    const shuffled = shuffle(createRng(3), [...items])
    expect([...shuffled].sort((a, b) => a - b)).toEqual(items)
    expect(shuffled).not.toEqual(items)
    expect(shuffle(createRng(3), [...items])).toEqual(shuffled)
  })

  it('forks independent, reproducible streams per label', () => {
    const forks = (seed: number) => {
      const root = createRng(seed)
      return ['peer-0', 'peer-1', 'network'].map((label) => forkRng(root, label))
    }
    const [a, b, c] = forks(9)
    const [a2] = forks(9)
    const streamA = Array.from({ length: 20 }, () => a!())
    expect(Array.from({ length: 20 }, () => a2!())).toEqual(streamA)
    const streamB = Array.from({ length: 20 }, () => b!())
    const streamC = Array.from({ length: 20 }, () => c!())
    expect(streamB).not.toEqual(streamA)
    expect(streamC).not.toEqual(streamB)
    // streams of different forks are uncorrelated
    const x = Array.from({ length: 5000 }, () => a!())
    const y = Array.from({ length: 5000 }, () => b!())
    const mean = (values: number[]) => values.reduce((total, value) => total + value, 0) / values.length
    const mx = mean(x)
    const my = mean(y)
    let covariance = 0
    for (let index = 0; index < x.length; index++) covariance += (x[index]! - mx) * (y[index]! - my)
    expect(Math.abs(covariance / x.length / (1 / 12))).toBeLessThan(0.06)
  })
})
