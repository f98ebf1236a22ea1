import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  addInto, decodeFixed, decodeVector, encodeFixed, encodeVector, fromBytes, FRACTION_BITS, LIMBS, MAX_FIXED_MAGNITUDE,
  randomRingVector, subtractInto, toBytes
} from '../../src/consensus/protocols/fixed-point.ts'
import { createRng } from '../../src/consensus/rng.ts'

const resolution = 2 ** -FRACTION_BITS

describe('fixed point in Z/2^128', () => {
  it('round-trips to the fixed-point resolution, signs and limb carries included', () => {
    for (const value of [0, 1, -1, 0.5, -0.5, resolution, -resolution, 2 ** 32, -(2 ** 32), 2 ** 63, -(2 ** 63), 123456.789, -9.87654321e-7]) {
      const decoded = decodeVector(encodeVector([value]))[0]!
      expect(Math.abs(decoded - value)).toBeLessThanOrEqual(Math.max(resolution / 2, Math.abs(value) * 2 ** -52))
    }
    expect(Array.from(encodeVector([-resolution]))).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff])
    expect(Array.from(encodeVector([1]))).toEqual([0, 1 << 16, 0, 0])
  })

  it('refuses values it cannot carry', () => {
    const out = new Uint32Array(LIMBS)
    for (const value of [Number.NaN, Number.POSITIVE_INFINITY, MAX_FIXED_MAGNITUDE, -MAX_FIXED_MAGNITUDE * 2]) {
      expect(() => encodeFixed(value, out, 0)).toThrow(RangeError)
    }
  })

  it('masks cancel exactly, whatever they are', () => {
    fc.assert(fc.property(fc.array(fc.double({ min: -1e12, max: 1e12, noNaN: true }), { minLength: 1, maxLength: 8 }), fc.integer(), (values, seed) => {
      const rng = createRng(seed)
      const encoded = encodeVector(values)
      const masked = Uint32Array.from(encoded)
      const masks = [randomRingVector(rng, values.length), randomRingVector(rng, values.length)]
      for (const mask of masks) addInto(masked, mask)
      for (const mask of masks.reverse()) subtractInto(masked, mask)
      return masked.every((limb, index) => limb === encoded[index])
    }), { numRuns: 200, seed: 1 })
  })

  it('the sum of encodings is the encoding of the sum, exactly, for values on the grid', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -(2 ** 40), max: 2 ** 40 }), { minLength: 1, maxLength: 50 }), (numerators) => {
      const values = numerators.map((numerator) => numerator * 2 ** -20)
      const total = new Uint32Array(LIMBS)
      for (const value of values) addInto(total, encodeVector([value]))
      return decodeFixed(total, 0) === values.reduce((sum, value) => sum + value, 0)
    }), { numRuns: 200, seed: 2 })
  })

  it('wraps modulo 2^128', () => {
    const top = new Uint32Array([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff])
    addInto(top, new Uint32Array([1, 0, 0, 0]))
    expect(Array.from(top)).toEqual([0, 0, 0, 0])
    subtractInto(top, new Uint32Array([1, 0, 0, 0]))
    expect(Array.from(top)).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff])
  })

  it('random ring elements use every bit', () => {
    const vector = randomRingVector(createRng(4), 1000)
    let ones = 0
    for (const limb of vector) for (let bits = limb; bits !== 0; bits &= bits - 1) ones++
    expect(ones / (vector.length * 32)).toBeCloseTo(0.5, 2)
  })

  it('bytes are little-endian and read correctly from a view into a larger buffer', () => {
    const values = new Uint32Array([1, 0x01020304, 0xffffffff])
    const bytes = toBytes(values)
    expect(Array.from(bytes.subarray(4, 8))).toEqual([4, 3, 2, 1])
    const pooled = new Uint8Array(64)
    pooled.set(bytes, 13)
    expect(Array.from(fromBytes(pooled.subarray(10), 3, 3))).toEqual(Array.from(values))
  })
})
