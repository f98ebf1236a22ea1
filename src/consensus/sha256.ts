/**
 * SHA-256 (FIPS 180-4) in plain TypeScript, so that the pure machines can commit to what they heard
 * (message digests inside round messages and closing statements) without importing node:crypto: the
 * simulator and the real peer then compute the same bytes. Inputs here are round messages of a few
 * kilobytes, so a straightforward implementation is fast enough.
 */
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
])

const W = new Int32Array(64)

/** One 64-byte block of `bytes` at `offset` into `state` (int32 arithmetic: V8 keeps it in registers). */
function compress (state: Int32Array, bytes: Uint8Array, offset: number): void {
  for (let t = 0; t < 16; t++) {
    const at = offset + 4 * t
    W[t] = ((bytes[at] as number) << 24) | ((bytes[at + 1] as number) << 16) | ((bytes[at + 2] as number) << 8) | (bytes[at + 3] as number)
  }
  for (let t = 16; t < 64; t++) {
    const w15 = W[t - 15] as number
    const w2 = W[t - 2] as number
    const s0 = ((w15 >>> 7) | (w15 << 25)) ^ ((w15 >>> 18) | (w15 << 14)) ^ (w15 >>> 3)
    const s1 = ((w2 >>> 17) | (w2 << 15)) ^ ((w2 >>> 19) | (w2 << 13)) ^ (w2 >>> 10)
    W[t] = ((W[t - 16] as number) + s0 + (W[t - 7] as number) + s1) | 0
  }
  let a = state[0] as number
  let b = state[1] as number
  let c = state[2] as number
  let d = state[3] as number
  let e = state[4] as number
  let f = state[5] as number
  let g = state[6] as number
  let h = state[7] as number
  for (let t = 0; t < 64; t++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7))
    const ch = (e & f) ^ (~e & g)
    const t1 = (h + S1 + ch + (K[t] as number) + (W[t] as number)) | 0
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10))
    const maj = (a & b) ^ (a & c) ^ (b & c)
    const t2 = (S0 + maj) | 0
    h = g
    g = f
    f = e
    e = (d + t1) | 0
    d = c
    c = b
    b = a
    a = (t1 + t2) | 0
  }
  state[0] = ((state[0] as number) + a) | 0
  state[1] = ((state[1] as number) + b) | 0
  state[2] = ((state[2] as number) + c) | 0
  state[3] = ((state[3] as number) + d) | 0
  state[4] = ((state[4] as number) + e) | 0
  state[5] = ((state[5] as number) + f) | 0
  state[6] = ((state[6] as number) + g) | 0
  state[7] = ((state[7] as number) + h) | 0
}

/** The SHA-256 digest of the concatenation of `parts`, 32 bytes. */
export function sha256 (...parts: Uint8Array[]): Uint8Array {
  const state = Int32Array.of(0x6a09e667, 0xbb67ae85 | 0, 0x3c6ef372, 0xa54ff53a | 0, 0x510e527f, 0x9b05688c | 0, 0x1f83d9ab, 0x5be0cd19)
  let input: Uint8Array
  if (parts.length === 1) {
    input = parts[0] as Uint8Array
  } else {
    let total = 0
    for (const part of parts) total += part.length
    input = new Uint8Array(total)
    let offset = 0
    for (const part of parts) {
      input.set(part, offset)
      offset += part.length
    }
  }
  const length = input.length
  // the whole blocks straight from the input; then the rest, a 1 bit, zeros and the length in bits
  // (64-bit big-endian), to a multiple of 64 bytes
  const whole = length - (length % 64)
  for (let block = 0; block < whole; block += 64) compress(state, input, block)
  const tail = new Uint8Array(length - whole + 9 <= 64 ? 64 : 128)
  tail.set(input.subarray(whole), 0)
  tail[length - whole] = 0x80
  const high = Math.floor(length / 0x20000000)
  const low = (length * 8) >>> 0
  const end = tail.length
  tail[end - 8] = high >>> 24
  tail[end - 7] = (high >>> 16) & 0xff
  tail[end - 6] = (high >>> 8) & 0xff
  tail[end - 5] = high & 0xff
  tail[end - 4] = low >>> 24
  tail[end - 3] = (low >>> 16) & 0xff
  tail[end - 2] = (low >>> 8) & 0xff
  tail[end - 1] = low & 0xff
  for (let block = 0; block < end; block += 64) compress(state, tail, block)
  const out = new Uint8Array(32)
  for (let word = 0; word < 8; word++) {
    const value = state[word] as number
    out[4 * word] = value >>> 24
    out[4 * word + 1] = (value >>> 16) & 0xff
    out[4 * word + 2] = (value >>> 8) & 0xff
    out[4 * word + 3] = value & 0xff
  }
  return out
}

export function toHex (bytes: Uint8Array): string {
  let text = ''
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0')
  return text
}

export function equalBytes (a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false
  for (let index = 0; index < a.length; index++) if (a[index] !== b[index]) return false
  return true
}
