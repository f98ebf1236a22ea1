import { createCipheriv, randomBytes } from 'node:crypto'
import type { Rng } from '../../consensus/types.ts'

/**
 * A cryptographic, replayable random source for the secure-sum masks of a real peer: the AES-256-CTR
 * keystream of a secret seed. A neighbour sees some of the masks this peer draws; with a plain PRNG it
 * could recover the generator's state from them and predict the masks sent to other neighbours, which a
 * keystream does not allow. Seeded, so that a restarted peer that replays its inputs draws the same masks.
 */
export function createSecureRng (seed: Uint8Array = randomBytes(32)): Rng {
  if (seed.length !== 32) throw new RangeError('the seed must be 32 bytes')
  const cipher = createCipheriv('aes-256-ctr', seed, Buffer.alloc(16))
  const zeros = Buffer.alloc(4096)
  let block = cipher.update(zeros)
  let offset = 0
  return () => {
    if (offset + 8 > block.length) {
      block = cipher.update(zeros)
      offset = 0
    }
    // 53 random bits -> a double in [0, 1)
    const high = block.readUInt32LE(offset) >>> 5
    const low = block.readUInt32LE(offset + 4) >>> 6
    offset += 8
    return (high * 67108864 + low) / 9007199254740992
  }
}

export function newSeed (): Uint8Array {
  return new Uint8Array(randomBytes(32))
}
