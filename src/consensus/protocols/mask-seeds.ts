import { randomUint32 } from '../rng.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'

/**
 * The per-edge mask seeds of one job on one peer, shared by all its masked sums (flooding and tree).
 *
 * In the first masked sum of a job each member sends each member neighbour, privately (the `.mask`
 * message, on the direct Noise-encrypted channel, as the masks themselves travelled before), a fresh
 * random 32-byte seed s_ij drawn from the job's randomness (a cryptographic keystream in a real peer, a
 * seeded generator in simulation). The mask that i adds to its contribution for j in the sum named K is
 * then PRG(s_ij, K) and the one it takes from j is PRG(s_ji, K), with PRG the SHA-256 stream below. Every
 * later sum of the job derives its masks from the seeds it already holds: its contribution is formed
 * and sent in its very first round, with no round for masks. A sum that meets a neighbour whose seed this
 * peer lacks (the first sum, or an edge no earlier sum had) exchanges seeds on that edge first.
 *
 * Both ends of an edge hold the same two seeds once any sum over that edge has completed anywhere: a
 * member forms its contribution only with every incoming seed in hand, and no sum completes without
 * every contribution. So the two ends agree on which edges are seeded when they enter the next sum.
 *
 * Security: the masks are now pseudo-random instead of uniformly random. A member's contribution
 * c_i = v_i - sum_j PRG(s_ij, K) + sum_j PRG(s_ji, K) hides v_i from whoever lacks one of the seeds of
 * its edges as long as that PRG output cannot be told from uniform without the seed: SHA-256 keyed by
 * a secret 256-bit prefix, over inputs that no other input extends (length-prefixed name, fixed-width
 * counter), is a pseudo-random function if SHA-256's compression function is one (the usual assumption
 * behind HMAC and the secret-prefix MAC). So the guarantee is computational (a one-time pad before),
 * against the same parties: a seed goes only to the neighbour of its edge, and is never logged (the
 * audit log keeps a digest of each private message only).
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
 * `words` pseudo-random 32-bit words from `seed` for the sum named `name`: SHA-256 in counter mode
 * over seed || u32 length of name || name || u32 counter (big-endian), each block's digest giving
 * eight words (little-endian).
 */
export function maskFromSeed (seed: Uint8Array, name: string, words: number): Uint32Array {
  if (seed.length !== SEED_BYTES) throw new RangeError(`a mask seed has ${SEED_BYTES} bytes, got ${seed.length}`)
  const label = new TextEncoder().encode(name)
  const input = new Uint8Array(SEED_BYTES + 4 + label.length + 4)
  const view = new DataView(input.buffer)
  input.set(seed, 0)
  view.setUint32(SEED_BYTES, label.length)
  input.set(label, SEED_BYTES + 4)
  const counterAt = SEED_BYTES + 4 + label.length
  const out = new Uint32Array(words)
  for (let block = 0, at = 0; at < words; block++) {
    view.setUint32(counterAt, block)
    const digest = sha256(input)
    const digestView = new DataView(digest.buffer, digest.byteOffset, digest.length)
    for (let word = 0; word < 8 && at < words; word++, at++) out[at] = digestView.getUint32(4 * word, true)
  }
  return out
}
