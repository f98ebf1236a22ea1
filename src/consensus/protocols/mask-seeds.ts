import { addInto, subtractInto } from './fixed-point.ts'
import { randomUint32 } from '../rng.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'

/**
 * The per-edge mask seeds of one job on one peer, shared by all its masked sums (flooding and tree).
 *
 * In the first masked sum of a job each member sends each member neighbour, privately (the `.mask`
 * message, on the direct Noise-encrypted channel, as the masks themselves travelled before), a fresh
 * random 32-byte seed drawn from the job's randomness (a cryptographic keystream in a real peer, a
 * seeded generator in simulation). The edge between i and j then has one mask per sum, r_e = PRG(s_ij,
 * s_ji, K) for the sum named K (see edgeMask), which one end adds to its contribution and the other
 * subtracts. Every later sum of the job derives its masks from the seeds it already holds: its
 * contribution is formed and sent in its very first round, with no round for masks. A sum that meets a
 * neighbour whose seed this peer lacks (the first sum, or an edge no earlier sum had) exchanges seeds
 * on that edge first.
 *
 * Both ends of an edge hold the same two seeds once any sum over that edge has completed anywhere: a
 * member forms its contribution only with every neighbour's seed in hand, and no sum completes without
 * every contribution. So the two ends agree on which edges are seeded when they enter the next sum.
 *
 * Security: the masks are now pseudo-random instead of uniformly random. A member's contribution
 * c_i = v_i + sum over its edges of +-r_e hides v_i from whoever lacks the seeds of one of its edges as
 * long as that edge's mask cannot be told from uniform without them: the key of each sum's mask is
 * SHA-256 of the two secret seeds and the sum's name (a pseudo-random function of the name when keyed
 * by a secret 512-bit prefix, under the usual assumption on SHA-256's compression function, the one
 * behind HMAC and the secret-prefix MAC), and the mask is ChaCha20's keystream under that key, a
 * standard stream cipher. So the guarantee is computational (it was a one-time pad), against the same
 * parties: a seed goes only to the neighbour of its edge, and is never logged (the audit log keeps a
 * digest of each private message only; a peer's journal, deleted with the job's inputs, holds the
 * seeds it received as it held the masks before). Reusing a seed across sums is safe because each sum's
 * name gives it another key; the names of one job's phases are distinct (a phase is entered once).
 */
export interface MaskSeeds {
  /** the seeds this peer drew, by neighbour node */
  readonly drawn: Map<number, Uint8Array>
  /** the seeds its neighbours sent, by neighbour node */
  readonly received: Map<number, Uint8Array>
}

export const SEED_BYTES = 32

export function createMaskSeeds (): MaskSeeds {
  return { drawn: new Map(), received: new Map() }
}

/** A fresh seed: 32 bytes from the job's randomness. */
export function drawSeed (rng: Rng): Uint8Array {
  const seed = new Uint8Array(SEED_BYTES)
  const view = new DataView(seed.buffer)
  for (let word = 0; word < SEED_BYTES / 4; word++) view.setUint32(4 * word, randomUint32(rng), true)
  return seed
}

/** The seed this peer uses towards `neighbour`: the one it drew before, or a new one, kept. */
export function seedFor (seeds: MaskSeeds, neighbour: number, rng: Rng): Uint8Array {
  let seed = seeds.drawn.get(neighbour)
  if (seed === undefined) {
    seed = drawSeed(rng)
    seeds.drawn.set(neighbour, seed)
  }
  return seed
}

/**
 * The mask of the edge between `self` and `neighbour` for the sum named `name`, `words` 32-bit words,
 * or null while the neighbour's seed is not in. Both ends compute the same mask: the ChaCha20 keystream
 * (RFC 8439, nonce 0) under the key SHA-256(s_lo || s_hi || u32 length of name || name), where s_lo is
 * the seed that the end with the lower node index drew and s_hi the other's. Neither end alone chooses
 * the key, and each sum of the job has its own. The lower end adds it to its contribution, the higher
 * end subtracts it (see addEdgeMask), so the masks cancel in the total.
 */
export function edgeMask (seeds: MaskSeeds, self: number, neighbour: number, name: string, words: number): Uint32Array | null {
  const mine = seeds.drawn.get(neighbour)
  const theirs = seeds.received.get(neighbour)
  if (mine === undefined || theirs === undefined) return null
  return maskFromSeeds(self < neighbour ? mine : theirs, self < neighbour ? theirs : mine, name, words)
}

/** The edge's mask from the lower end's seed and the higher end's (see edgeMask). */
export function maskFromSeeds (low: Uint8Array, high: Uint8Array, name: string, words: number): Uint32Array {
  if (low.length !== SEED_BYTES || high.length !== SEED_BYTES) throw new RangeError(`a mask seed has ${SEED_BYTES} bytes`)
  const label = new TextEncoder().encode(name)
  const input = new Uint8Array(2 * SEED_BYTES + 4 + label.length)
  input.set(low, 0)
  input.set(high, SEED_BYTES)
  new DataView(input.buffer).setUint32(2 * SEED_BYTES, label.length)
  input.set(label, 2 * SEED_BYTES + 4)
  const digest = sha256(input)
  const view = new DataView(digest.buffer, digest.byteOffset, digest.length)
  const key = new Uint32Array(8)
  for (let word = 0; word < 8; word++) key[word] = view.getUint32(4 * word, true)
  return chacha20(key, new Uint32Array(3), words)
}

/** Masks `contribution` with the edge's mask: the end with the lower node index adds it, the other subtracts it. */
export function addEdgeMask (contribution: Uint32Array, mask: Uint32Array, self: number, neighbour: number): void {
  if (self < neighbour) addInto(contribution, mask)
  else subtractInto(contribution, mask)
}

const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574]

/**
 * `words` words of the ChaCha20 keystream (RFC 8439: 20 rounds, 32-bit block counter from 0), each
 * the little-endian reading of four keystream bytes.
 */
export function chacha20 (key: Uint32Array, nonce: Uint32Array, words: number, counter = 0): Uint32Array {
  const out = new Uint32Array(words)
  const input = new Uint32Array(16)
  input.set(SIGMA, 0)
  input.set(key, 4)
  input.set(nonce, 13)
  const x = new Uint32Array(16)
  for (let block = counter, at = 0; at < words; block++) {
    input[12] = block >>> 0
    x.set(input)
    for (let round = 0; round < 10; round++) {
      quarter(x, 0, 4, 8, 12)
      quarter(x, 1, 5, 9, 13)
      quarter(x, 2, 6, 10, 14)
      quarter(x, 3, 7, 11, 15)
      quarter(x, 0, 5, 10, 15)
      quarter(x, 1, 6, 11, 12)
      quarter(x, 2, 7, 8, 13)
      quarter(x, 3, 4, 9, 14)
    }
    for (let word = 0; word < 16 && at < words; word++, at++) out[at] = ((x[word] as number) + (input[word] as number)) >>> 0
  }
  return out
}

function quarter (x: Uint32Array, a: number, b: number, c: number, d: number): void {
  let va = x[a] as number
  let vb = x[b] as number
  let vc = x[c] as number
  let vd = x[d] as number
  va = (va + vb) | 0; vd ^= va; vd = (vd << 16) | (vd >>> 16)
  vc = (vc + vd) | 0; vb ^= vc; vb = (vb << 12) | (vb >>> 20)
  va = (va + vb) | 0; vd ^= va; vd = (vd << 8) | (vd >>> 24)
  vc = (vc + vd) | 0; vb ^= vc; vb = (vb << 7) | (vb >>> 25)
  x[a] = va
  x[b] = vb
  x[c] = vc
  x[d] = vd
}
