import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto'
import { deflateRawSync, inflateRawSync } from 'node:zlib'
import { StoreCorruptError } from './errors.ts'

/**
 * The store's encryption at rest. Every value is JSON sealed with AES-256-GCM under a fresh random
 * 96-bit nonce: `version (1 byte) | nonce (12) | ciphertext | tag (16)`; a kind may have its values
 * deflated first (a chunk of case records), marked by a first plaintext byte of 0. (The owners of
 * record-id hashes are keyed tags, not sealed: see StoreLayout.importTag.) The kind of record (the
 * sublevel's name) is authenticated with it, so a value moved from one kind to another fails as surely
 * as a changed byte. Keys that would carry a record's content (a series' date, a job id) are replaced by
 * a keyed tag: HMAC-SHA256 under a second key, cut to 128 bits.
 *
 * Both keys are derived from the store's master key by HKDF-SHA256, with the store's random id as salt,
 * and so is the key check value kept in the data folder, which tells a wrong key from a damaged value.
 */
export const SEALED_VERSION = 1
const NONCE_BYTES = 12
const TAG_BYTES = 16
export const MASTER_KEY_BYTES = 32

export interface StoreKeys {
  /** AES-256-GCM key of the values (a KeyObject: a cipher made from one skips importing the key for every value) */
  readonly sealing: KeyObject
  /** HMAC key of the key tags */
  readonly tagging: Buffer
}

function derive (master: Uint8Array, storeId: string, purpose: string): Buffer {
  return Buffer.from(hkdfSync('sha256', master, Buffer.from(storeId, 'utf8'), Buffer.from(`epimesh store ${purpose}`, 'utf8'), 32))
}

export function deriveStoreKeys (master: Uint8Array, storeId: string): StoreKeys {
  if (master.length !== MASTER_KEY_BYTES) throw new RangeError(`a store key has ${MASTER_KEY_BYTES} bytes, not ${master.length}`)
  return { sealing: createSecretKey(derive(master, storeId, 'values v1')), tagging: derive(master, storeId, 'key tags v1') }
}

/** The key check value of a master key for one store: reveals nothing of the key, and tells a wrong one. */
export function keyCheckValue (master: Uint8Array, storeId: string): string {
  return derive(master, storeId, 'key check v1').subarray(0, 16).toString('base64url')
}

export function keyCheckMatches (master: Uint8Array, storeId: string, expected: string): boolean {
  const actual = Buffer.from(keyCheckValue(master, storeId), 'utf8')
  const wanted = Buffer.from(expected, 'utf8')
  return actual.length === wanted.length && timingSafeEqual(actual, wanted)
}

/**
 * Nonces are drawn from the system's random generator 4,096 at a time: one call for 48 kB costs about
 * what one call for 12 bytes does. Each nonce is used once.
 */
let noncePool = Buffer.alloc(0)
let nonceAt = 0

function nextNonce (): Buffer {
  if (nonceAt + NONCE_BYTES > noncePool.length) {
    noncePool = randomBytes(NONCE_BYTES * 4096)
    nonceAt = 0
  }
  const nonce = noncePool.subarray(nonceAt, nonceAt + NONCE_BYTES)
  nonceAt += NONCE_BYTES
  return nonce
}

export function seal (key: KeyObject, context: Buffer, plaintext: Buffer): Buffer {
  const sealed = Buffer.allocUnsafe(1 + NONCE_BYTES + plaintext.length + TAG_BYTES)
  sealed[0] = SEALED_VERSION
  const nonce = nextNonce()
  nonce.copy(sealed, 1)
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_BYTES })
  cipher.setAAD(context)
  let at = 1 + NONCE_BYTES
  at += cipher.update(plaintext).copy(sealed, at)
  at += cipher.final().copy(sealed, at)
  cipher.getAuthTag().copy(sealed, at)
  return sealed
}

export function unseal (key: KeyObject, context: Buffer, sealed: Uint8Array): Buffer {
  const data = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)
  const kind = context.toString('utf8')
  if (data.length < 1 + NONCE_BYTES + TAG_BYTES || data[0] !== SEALED_VERSION) throw new StoreCorruptError(`a stored ${kind} value is not an encrypted value of this version (${data.length} bytes): the store's files were changed or damaged`)
  const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(1, 1 + NONCE_BYTES), { authTagLength: TAG_BYTES })
  decipher.setAAD(context)
  decipher.setAuthTag(data.subarray(data.length - TAG_BYTES))
  try {
    const body = decipher.update(data.subarray(1 + NONCE_BYTES, data.length - TAG_BYTES))
    decipher.final()
    return body
  } catch (error) {
    throw new StoreCorruptError(`a stored ${kind} value fails authentication: the store's files were changed or damaged`, { cause: error })
  }
}

let encodings = 0
/** the first byte of a value's plaintext that is deflated JSON (JSON text never starts with a NUL) */
const DEFLATED = 0
/** the most a deflated value may inflate to (a chunk of 1,000 records is well under 1 MB) */
const MAX_INFLATED_BYTES = 256 << 20

/**
 * An abstract-level value encoding: JSON, sealed under `key` with `context` authenticated. A value
 * that decrypts is one this store wrote under this kind, so it is returned as the kind's type `V`.
 */
export function sealedJsonEncoding<V = unknown> (key: KeyObject, kind: string, options: { compress?: (value: V) => boolean } = {}): { name: string, format: 'buffer', encode: (value: V) => Buffer, decode: (data: Buffer) => V } {
  const context = Buffer.from(kind, 'utf8')
  const { compress } = options
  return {
    // unique per store instance: a transcoder caches encodings by name
    name: `epimesh-sealed-json-${kind}-${++encodings}`,
    format: 'buffer',
    encode: (value) => {
      const json = Buffer.from(JSON.stringify(value), 'utf8')
      if (compress?.(value) !== true) return seal(key, context, json)
      // a marker byte no JSON text starts with, then the JSON deflated (level 1: most of the gain, little of the time)
      const deflated = deflateRawSync(json, { level: 1 })
      const body = Buffer.allocUnsafe(1 + deflated.length)
      body[0] = DEFLATED
      deflated.copy(body, 1)
      return seal(key, context, body)
    },
    decode: (data) => {
      const body = unseal(key, context, data)
      let text: string
      try {
        text = (body[0] === DEFLATED ? inflateRawSync(body.subarray(1), { maxOutputLength: MAX_INFLATED_BYTES }) : body).toString('utf8')
      } catch (error) {
        throw new StoreCorruptError(`a stored ${kind} value does not inflate after decryption`, { cause: error })
      }
      try {
        return JSON.parse(text) as V
      } catch (error) {
        throw new StoreCorruptError(`a stored ${kind} value is not JSON after decryption`, { cause: error })
      }
    }
  }
}

/** A keyed tag of a natural key, in `domain`: equal inputs give equal tags, and the tag reveals nothing else. */
export function keyTag (key: Buffer, domain: string, natural: string): string {
  return createHmac('sha256', key).update(domain, 'utf8').update('\u0000').update(natural, 'utf8').digest().subarray(0, 16).toString('base64url')
}

/**
 * An abstract-level key encoding that stores the keyed tag of every key: get, put, del and batches by
 * the natural key work as before; iterating yields the tags (read the natural key from the value) in
 * no meaningful order; ranges over natural keys do not apply.
 */
export function taggedKeyEncoding (key: Buffer, domain: string): { name: string, format: 'utf8', encode: (natural: string) => string, decode: (stored: string) => string } {
  return {
    name: `epimesh-tagged-key-${domain}-${++encodings}`,
    format: 'utf8',
    encode: (natural) => keyTag(key, domain, natural),
    decode: (stored) => stored
  }
}
