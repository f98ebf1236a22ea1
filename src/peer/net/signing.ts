import { availableParallelism } from 'node:os'
import { createHash, createPrivateKey, createPublicKey, sign as edSign, verify as edVerify, type KeyObject } from 'node:crypto'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { bodyBytes, signingPayload, type MessageSigner, type MessageVerifier } from '../../consensus/audit/evidence.ts'
import type { ConsensusMessage, Transport } from '../../consensus/types.ts'

/**
 * Every consensus message a peer sends carries its Ed25519 signature (over the header and the body's
 * SHA-256, see consensus/evidence.ts), made with the peer's libp2p identity key, so that what it said
 * can be proven to every other member. Node's own Ed25519 is used (about 50 us to sign and 130 us to
 * verify here, against 550 and 970 us for the pure-JavaScript one the key object carries), with its key
 * objects built once (per identity, per peer id), and run on libuv's thread pool where the caller can
 * wait: on the event loop a verification costs about 20 us instead of 125, and it runs beside it.
 */
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex')
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex')

/**
 * The identity key as libp2p's services see it, with its Ed25519 signatures made by a key object built
 * once. @libp2p/crypto's own key builds a fresh one from JWK for every signature (about 50 us, more
 * than the signature itself), and gossipsub signs every message it publishes with it (StrictSign).
 * Everything else (raw bytes, public key, type, equality) is the original key's.
 */
export function withCachedSigning (key: PrivateKey): PrivateKey {
  if (key.type !== 'Ed25519') return key
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' })
  const cached = Object.create(key) as PrivateKey
  Object.defineProperty(cached, 'sign', {
    value: (message: Uint8Array | { subarray: () => Uint8Array }) => {
      // a Buffer, as the original key returns
      return edSign(null, message instanceof Uint8Array ? message : message.subarray(), privateKey)
    }
  })
  return cached
}

/** A signer that can also sign off the event loop; `done` is called exactly once. */
export interface AsyncMessageSigner extends MessageSigner {
  signLater (payload: Uint8Array, done: (error: Error | null, signature: Uint8Array | null) => void): void
}

/** A verifier that can also verify off the event loop; `done` is called exactly once, never synchronously. */
export interface AsyncMessageVerifier extends MessageVerifier {
  verifyLater (from: string, payload: Uint8Array, signature: Uint8Array, done: (valid: boolean) => void): void
}

export function ed25519Signer (key: PrivateKey): AsyncMessageSigner {
  if (key.type !== 'Ed25519') throw new TypeError('an Ed25519 identity key is needed')
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, key.raw.subarray(0, 32)]), format: 'der', type: 'pkcs8' })
  return {
    sign: (payload) => new Uint8Array(edSign(null, payload, privateKey)),
    signLater: (payload, done) => {
      edSign(null, payload, privateKey, (error, signature) => { done(error, error === null ? new Uint8Array(signature.buffer, signature.byteOffset, signature.byteLength) : null) })
    }
  }
}

/** Verifies signatures by peer id (an Ed25519 peer id carries its public key); keys are cached. */
export function ed25519Verifier (): AsyncMessageVerifier {
  const keys = new Map<string, KeyObject | null>()
  const keyOf = (peerId: string): KeyObject | null => {
    let key = keys.get(peerId)
    if (key === undefined) {
      try {
        const publicKey = peerIdFromString(peerId).publicKey
        key = publicKey?.type === 'Ed25519' ? createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey.raw]), format: 'der', type: 'spki' }) : null
      } catch {
        key = null
      }
      if (keys.size < 100_000) keys.set(peerId, key)
    }
    return key
  }
  return {
    verify: (from, payload, signature) => {
      const key = keyOf(from)
      if (key === null || signature.length !== 64) return false
      try {
        return edVerify(null, payload, key, signature)
      } catch {
        return false
      }
    },
    verifyLater: (from, payload, signature, done) => {
      const key = keyOf(from)
      if (key === null || signature.length !== 64) {
        queueMicrotask(() => { done(false) })
        return
      }
      try {
        edVerify(null, payload, key, signature, (error, valid) => { done(error === null && valid) })
      } catch {
        queueMicrotask(() => { done(false) })
      }
    }
  }
}

/** The signing payload of a message, hashed with Node's SHA-256 (the same bytes as consensus/evidence.ts). */
export function fastPayload (message: ConsensusMessage): Uint8Array {
  return signingPayload(message, new Uint8Array(createHash('sha256').update(bodyBytes(message)).digest()))
}

export interface SigningStats {
  signed: number
  verified: number
  /** inbound messages without a signature, or with one that does not verify: dropped */
  rejected: number
  /** inbound messages dropped unchecked because too many were already waiting for verification */
  overflow: number
}

/**
 * Turns for signatures and verifications on libuv's thread pool, which the whole process shares (file
 * system, LevelDB, DNS): at most `size` run at once, the rest wait in arrival order. A job started
 * with `run` must call its `release` exactly once.
 *
 * On this project's 2-core machines, more than one at a time slowed rounds down: four busy pool threads
 * and the event loop share two cores, and the event loop, which every peer's I/O waits for, gets less of
 * them. So the default leaves the event loop a core of its own.
 */
export class CryptoSlots {
  private running = 0
  private readonly waiting: Array<(release: () => void) => void> = []
  private head = 0

  constructor (readonly size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`crypto slots: a positive whole number, got ${size}`)
  }

  run (job: (release: () => void) => void): void {
    if (this.running < this.size) this.start(job)
    else this.waiting.push(job)
  }

  private start (job: (release: () => void) => void): void {
    this.running++
    let released = false
    job(() => {
      if (released) return
      released = true
      this.running--
      if (this.head < this.waiting.length) {
        const next = this.waiting[this.head] as (release: () => void) => void
        this.waiting[this.head++] = undefined as unknown as (release: () => void) => void
        if (this.head === this.waiting.length) {
          this.waiting.length = 0
          this.head = 0
        }
        this.start(next)
      }
    })
  }
}

/** The process's slots: one fewer than its cores, at least one. */
export const processCryptoSlots = new CryptoSlots(Math.max(1, availableParallelism() - 1))

export interface SigningTransportInit {
  /** where signatures and verifications take turns on the thread pool; default the process's */
  slots?: CryptoSlots
  /** inbound messages waiting for their verdict or their turn, beyond which new ones are dropped; default 1024 */
  maxPendingVerifications?: number
}

interface Inbound {
  readonly message: ConsensusMessage
  readonly signature: Uint8Array
  readonly generation: number
  /** 0: waiting for its verdict; 1: valid; 2: invalid */
  verdict: 0 | 1 | 2
}

interface Outbound {
  /** null until signed; an Error when signing failed */
  signature: Uint8Array | Error | null
  readonly message: ConsensusMessage
  readonly deliver: (signed: ConsensusMessage) => Promise<void>
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

/**
 * A Transport that signs everything it sends and passes on only messages whose author's signature
 * verifies. It wraps any transport (libp2p, or the in-memory one in tests).
 *
 * With a signer and verifier that can work off the event loop (Ed25519 here), both run on libuv's
 * thread pool. What goes out is still handed to the inner transport in the order it was sent; what
 * comes in is delivered in the order each sender's messages arrived, each only after its own signature
 * has verified (a message held by an earlier one of the same sender waits for it), and one that fails
 * is dropped and counted, never seen by a handler. The pool's work takes turns (CryptoSlots), and at
 * most `maxPendingVerifications` inbound messages wait: past that, new ones are dropped unchecked
 * (`overflow`), so a flood costs bounded memory.
 */
export class SigningTransport implements Transport {
  readonly self: string
  private readonly counters: SigningStats = { signed: 0, verified: 0, rejected: 0, overflow: 0 }
  private readonly slots: CryptoSlots
  private readonly maxPending: number
  private readonly signLater: AsyncMessageSigner['signLater'] | null
  private readonly verifyLater: AsyncMessageVerifier['verifyLater'] | null

  constructor (private readonly inner: Transport, private readonly signer: MessageSigner, private readonly verifier: MessageVerifier, private readonly onReject?: (message: ConsensusMessage) => void, init: SigningTransportInit = {}) {
    this.self = inner.self
    this.slots = init.slots ?? processCryptoSlots
    this.maxPending = init.maxPendingVerifications ?? 1024
    if (!Number.isInteger(this.maxPending) || this.maxPending < 1) throw new RangeError(`maxPendingVerifications must be a positive whole number, got ${this.maxPending}`)
    this.signLater = 'signLater' in signer && typeof signer.signLater === 'function' ? (signer as AsyncMessageSigner).signLater : null
    this.verifyLater = 'verifyLater' in verifier && typeof verifier.verifyLater === 'function' ? (verifier as AsyncMessageVerifier).verifyLater : null
  }

  neighbours (): readonly string[] { return this.inner.neighbours() }

  async send (to: string, message: ConsensusMessage): Promise<void> { await this.signed(message, async (signed) => { await this.inner.send(to, signed) }) }

  /** Signed once, whatever the number of neighbours it reaches. */
  async broadcast (message: ConsensusMessage): Promise<void> { await this.signed(message, async (signed) => { await this.inner.broadcast(signed) }) }

  private readonly outgoing: Outbound[] = []

  private async signed (message: ConsensusMessage, deliver: (signed: ConsensusMessage) => Promise<void>): Promise<void> {
    const { signature: _old, ...unsigned } = message
    this.counters.signed++
    const signLater = this.signLater
    if (signLater === null) {
      await deliver({ ...unsigned, signature: this.signer.sign(fastPayload(unsigned)) })
      return
    }
    await new Promise<void>((resolve, reject) => {
      const entry: Outbound = { signature: null, message: unsigned, deliver, resolve, reject }
      this.outgoing.push(entry)
      const payload = fastPayload(unsigned)
      this.slots.run((release) => {
        try {
          signLater(payload, (error, signature) => {
            release()
            entry.signature = error ?? signature ?? new Error('no signature')
            this.flushOutgoing()
          })
        } catch (error) {
          release()
          entry.signature = error instanceof Error ? error : new Error(String(error))
          queueMicrotask(() => { this.flushOutgoing() })
        }
      })
    })
  }

  /** Hands signed messages to the inner transport in the order they were sent. */
  private flushOutgoing (): void {
    for (;;) {
      const head = this.outgoing[0]
      if (head === undefined || head.signature === null) return
      this.outgoing.shift()
      const signature = head.signature
      if (signature instanceof Error) {
        head.reject(signature)
        continue
      }
      head.deliver({ ...head.message, signature }).then(head.resolve, head.reject)
    }
  }

  private readonly handlers = new Set<(message: ConsensusMessage) => void>()
  private release: (() => void) | null = null
  /** per sender, its messages not yet delivered, in arrival order */
  private readonly inbound = new Map<string, Inbound[]>()
  private pending = 0
  /** bumped whenever the inner subscription ends: verdicts of an older generation are dropped */
  private generation = 0

  /** Each inbound message is verified once, whatever the number of handlers. */
  onMessage (handler: (message: ConsensusMessage) => void): () => void {
    this.handlers.add(handler)
    this.release ??= this.inner.onMessage((message) => { this.receive(message) })
    return () => {
      this.handlers.delete(handler)
      if (this.handlers.size === 0) {
        this.release?.()
        this.release = null
        this.generation++
        this.inbound.clear()
        this.pending = 0
      }
    }
  }

  private receive (message: ConsensusMessage): void {
    const signature = message.signature
    if (signature === undefined) {
      this.refuse(message)
      return
    }
    const verifyLater = this.verifyLater
    if (verifyLater === null) {
      if (this.verifier.verify(message.from, fastPayload(message), signature)) this.accept(message)
      else this.refuse(message)
      return
    }
    if (this.pending >= this.maxPending) {
      this.counters.overflow++
      return
    }
    const entry: Inbound = { message, signature, generation: this.generation, verdict: 0 }
    const queue = this.inbound.get(message.from)
    if (queue === undefined) this.inbound.set(message.from, [entry])
    else queue.push(entry)
    this.pending++
    this.slots.run((release) => {
      // a subscription that ended while this waited for its turn: nothing to verify for
      if (entry.generation !== this.generation) {
        release()
        return
      }
      verifyLater(entry.message.from, fastPayload(entry.message), entry.signature, (valid) => {
        release()
        if (entry.generation !== this.generation) return
        entry.verdict = valid ? 1 : 2
        this.deliverFrom(entry.message.from)
      })
    })
  }

  /** Delivers (or refuses) a sender's messages from the front while their verdicts are in. */
  private deliverFrom (from: string): void {
    const queue = this.inbound.get(from)
    if (queue === undefined) return
    let index = 0
    while (index < queue.length && (queue[index] as Inbound).verdict !== 0) {
      const entry = queue[index++] as Inbound
      this.pending--
      if (entry.verdict === 1) this.accept(entry.message)
      else this.refuse(entry.message)
      // a handler may have unsubscribed the last handler, which clears every queue
      if (entry.generation !== this.generation) return
    }
    if (index === queue.length) this.inbound.delete(from)
    else queue.splice(0, index)
  }

  private accept (message: ConsensusMessage): void {
    this.counters.verified++
    for (const each of [...this.handlers]) each(message)
  }

  private refuse (message: ConsensusMessage): void {
    this.counters.rejected++
    this.onReject?.(message)
  }

  stats (): SigningStats {
    return { ...this.counters }
  }
}
