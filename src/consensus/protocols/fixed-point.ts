import { randomUint32 } from '../rng.ts'
import type { Rng } from '../types.ts'

/**
 * Fixed-point numbers in the ring of integers modulo 2^128, four little-endian 32-bit limbs each, so
 * that masks added by one peer and subtracted by another cancel exactly (floating-point masks would
 * leave rounding noise behind). A float v is encoded as round(v * 2^48): 48 fractional bits (a
 * resolution of 3.6e-15) and, as a signed 128-bit integer, room for totals up to 2^79 in magnitude.
 * Limbs rather than BigInt: the masked sums add and subtract many vectors, and 32-bit limbs with
 * explicit carries do that without allocating. Encoding rounds each value once (relative error 2^-53
 * for |v| >= 32, absolute 2^-49 below); the sum itself is exact, and decoding rounds once more.
 */
export const FRACTION_BITS = 48
const SCALE = 2 ** FRACTION_BITS
const LIMB = 4294967296

export const LIMBS = 4

/**
 * The largest magnitude one value may have: 2^64, far beyond any count, sum or Hessian entry, and low
 * enough that a total of up to 2^15 such values stays below 2^79 (beyond 2^127 / 2^48 it would wrap).
 */
export const MAX_FIXED_MAGNITUDE = 2 ** 64

/** Writes the encoding of `value` into `out` at element `index` (4 limbs). */
export function encodeFixed (value: number, out: Uint32Array, index: number): void {
  if (!Number.isFinite(value) || Math.abs(value) >= MAX_FIXED_MAGNITUDE) throw new RangeError(`cannot encode ${value} in fixed point: it must be finite and below 2^64 in magnitude`)
  let magnitude = Math.round(Math.abs(value) * SCALE)
  const base = index * LIMBS
  for (let limb = 0; limb < LIMBS; limb++) {
    out[base + limb] = magnitude % LIMB
    magnitude = Math.floor(magnitude / LIMB)
  }
  if (value < 0) negateAt(out, index)
}

function negateAt (out: Uint32Array, index: number): void {
  const base = index * LIMBS
  let carry = 1
  for (let limb = 0; limb < LIMBS; limb++) {
    const sum = ((~(out[base + limb] as number)) >>> 0) + carry
    out[base + limb] = sum >>> 0
    carry = sum > 0xffffffff ? 1 : 0
  }
}

export function decodeFixed (values: Uint32Array, index: number): number {
  const base = index * LIMBS
  const negative = ((values[base + LIMBS - 1] as number) & 0x80000000) !== 0
  const limbs = values.slice(base, base + LIMBS)
  if (negative) negateAt(limbs, 0)
  let magnitude = 0
  for (let limb = LIMBS - 1; limb >= 0; limb--) magnitude = magnitude * LIMB + (limbs[limb] as number)
  return (negative ? -magnitude : magnitude) / SCALE
}

export function encodeVector (vector: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(vector.length * LIMBS)
  for (let index = 0; index < vector.length; index++) encodeFixed(vector[index] as number, out, index)
  return out
}

export function decodeVector (values: Uint32Array): Float64Array {
  const out = new Float64Array(values.length / LIMBS)
  for (let index = 0; index < out.length; index++) out[index] = decodeFixed(values, index)
  return out
}

/** target += source (mod 2^128), element-wise. */
export function addInto (target: Uint32Array, source: Uint32Array): void {
  for (let base = 0; base < target.length; base += LIMBS) {
    let carry = 0
    for (let limb = 0; limb < LIMBS; limb++) {
      const sum = (target[base + limb] as number) + (source[base + limb] as number) + carry
      target[base + limb] = sum >>> 0
      carry = sum > 0xffffffff ? 1 : 0
    }
  }
}

/** target -= source (mod 2^128), element-wise. */
export function subtractInto (target: Uint32Array, source: Uint32Array): void {
  for (let base = 0; base < target.length; base += LIMBS) {
    let borrow = 0
    for (let limb = 0; limb < LIMBS; limb++) {
      const difference = (target[base + limb] as number) - (source[base + limb] as number) - borrow
      target[base + limb] = difference >>> 0
      borrow = difference < 0 ? 1 : 0
    }
  }
}

/** Uniformly random ring elements: a mask reveals nothing about the value it hides. */
export function randomRingVector (rng: Rng, length: number): Uint32Array {
  const out = new Uint32Array(length * LIMBS)
  for (let index = 0; index < out.length; index++) out[index] = randomUint32(rng)
  return out
}

export function toBytes (values: Uint32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4)
  const view = new DataView(bytes.buffer)
  for (let index = 0; index < values.length; index++) view.setUint32(index * 4, values[index] as number, true)
  return bytes
}

export function fromBytes (bytes: Uint8Array, offset: number, count: number): Uint32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset + offset, count * 4)
  const out = new Uint32Array(count)
  for (let index = 0; index < count; index++) out[index] = view.getUint32(index * 4, true)
  return out
}
