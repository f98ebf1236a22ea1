/**
 * A Bloom filter of record-id hashes (base64url SHA-256, layout.hashRecordId): whether a hash may
 * already be in the store or earlier in the file being imported. "No" is certain, and spares the
 * import a read of the store for nearly every new record: LevelDB keeps no filter of its own here, so
 * a read for a key that is not there visits a table of every level, which grows with the store.
 *
 * Sized for `expected` hashes at about 1% false positives (ten bits and seven probes a hash: 1.2 MB a
 * million); more hashes only raise the rate of false positives, which cost a read each, never a wrong
 * answer. The probes come from the hash itself, whose bits are uniform already.
 */
const BITS_PER_HASH = 10
const PROBES = 7
const MIN_BITS = 1 << 16

const SEXTET = new Int8Array(128).fill(-1)
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'.split('').forEach((character, value) => { SEXTET[character.charCodeAt(0)] = value })

/** 30 bits of a base64url text from `start` (five characters). */
function bits30 (text: string, start: number): number {
  let value = 0
  for (let index = start; index < start + 5; index++) {
    const sextet = SEXTET[text.charCodeAt(index) & 127] as number
    if (sextet < 0) throw new RangeError('not a base64url record-id hash')
    value = (value << 6) | sextet
  }
  return value >>> 0
}

export class IdFilter {
  private readonly words: Uint32Array
  private readonly size: number

  constructor (expected: number) {
    this.size = Math.max(MIN_BITS, Math.ceil(Math.max(1, expected) * BITS_PER_HASH / 32) * 32)
    this.words = new Uint32Array(this.size / 32)
  }

  /** bytes held */
  get bytes (): number { return this.words.byteLength }

  private probe (hash: string, visit: (bit: number) => boolean): boolean {
    if (hash.length < 10) throw new RangeError('not a base64url record-id hash')
    const first = bits30(hash, 0)
    // odd, so that the probes do not repeat before they cover the filter
    const step = (bits30(hash, 5) | 1) >>> 0
    for (let probe = 0; probe < PROBES; probe++) {
      if (!visit((first + probe * step) % this.size)) return false
    }
    return true
  }

  add (hash: string): void {
    this.probe(hash, (bit) => {
      this.words[bit >>> 5] = (this.words[bit >>> 5] as number) | (1 << (bit & 31))
      return true
    })
  }

  /** Adds `hash`, and tells whether it was probably added before (false: certainly not), in one pass over its bits. */
  addAndTest (hash: string): boolean {
    if (hash.length < 10) throw new RangeError('not a base64url record-id hash')
    const first = bits30(hash, 0)
    const step = (bits30(hash, 5) | 1) >>> 0
    const words = this.words
    let before = true
    for (let probe = 0; probe < PROBES; probe++) {
      const bit = (first + probe * step) % this.size
      const word = words[bit >>> 5] as number
      const mask = 1 << (bit & 31)
      if ((word & mask) === 0) {
        before = false
        words[bit >>> 5] = word | mask
      }
    }
    return before
  }

  /** false: certainly not added; true: probably added. */
  has (hash: string): boolean {
    return this.probe(hash, (bit) => ((this.words[bit >>> 5] as number) & (1 << (bit & 31))) !== 0)
  }
}
