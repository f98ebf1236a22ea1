import type { Rng } from './types.ts'

/**
 * Seeded randomness for simulations and tests: sfc32 seeded through splitmix32. Small, fast and good
 * enough statistically; not cryptographic (a real peer's masks come from a keystream, see src/peer).
 */
function splitmix32 (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x9e3779b9) >>> 0
    let z = state
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0
    return (z ^ (z >>> 16)) >>> 0
  }
}

function sfc32 (a: number, b: number, c: number, d: number): () => number {
  return () => {
    const t = (((a + b) >>> 0) + d) >>> 0
    d = (d + 1) >>> 0
    a = b ^ (b >>> 9)
    b = (c + (c << 3)) >>> 0
    c = ((c << 21) | (c >>> 11)) >>> 0
    c = (c + t) >>> 0
    return t
  }
}

/** A generator of uniform numbers in [0, 1) with 53 random bits, fully determined by `seed`. */
export function createRng (seed: number): Rng {
  if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`)
  const mix = splitmix32(Math.floor(seed) ^ Math.floor(seed / 4294967296))
  const next = sfc32(mix(), mix(), mix(), mix())
  for (let warmup = 0; warmup < 12; warmup++) next()
  const rng: Rng & { nextUint32?: () => number } = () => ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992
  rng.nextUint32 = next
  return rng
}

/** 32 uniform random bits. */
export function randomUint32 (rng: Rng): number {
  const direct = (rng as { nextUint32?: () => number }).nextUint32
  return direct !== undefined ? direct() : Math.floor(rng() * 4294967296) >>> 0
}

/** A uniform integer in [0, n). With 53 random bits per draw the bias is below 2^-20 for any n < 2^32. */
export function randomInt (rng: Rng, n: number): number {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`randomInt needs a positive integer bound, got ${n}`)
  return Math.floor(rng() * n)
}

/** Fisher–Yates, in place; returns the same array. */
export function shuffle<T> (rng: Rng, items: T[]): T[] {
  for (let index = items.length - 1; index > 0; index--) {
    const other = randomInt(rng, index + 1)
    const held = items[index] as T
    items[index] = items[other] as T
    items[other] = held
  }
  return items
}

function hashLabel (label: number | string): number {
  const text = String(label)
  let hash = 0x811c9dc5
  for (let index = 0; index < text.length; index++) hash = Math.imul(hash ^ text.charCodeAt(index), 0x01000193) >>> 0
  return hash
}

/**
 * An independent, deterministic stream derived from `rng` and a label (one per peer, per purpose). It
 * draws two words from the parent, so forks depend on the order they are made in: fork every peer's
 * stream in peer order, once, at the start of a run.
 */
export function forkRng (rng: Rng, label: number | string): Rng {
  return createRng((randomUint32(rng) ^ hashLabel(label)) + randomUint32(rng) * 4294967296)
}
