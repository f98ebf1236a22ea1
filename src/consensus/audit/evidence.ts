import { sha256, equalBytes } from '../sha256.ts'
import type { ConsensusMessage } from '../types.ts'

/**
 * Signed messages and the evidence built from them.
 *
 * Every consensus message is signed by its author (the peer's transport signs what its machine sends:
 * Ed25519 in a real peer, a keyed hash in simulation) over
 *
 *   TAG | header (job, kind, round, from, to) | SHA-256(body (values, data))
 *
 * so that a receipt (header, body digest, signature) proves what a member sent without carrying it,
 * and a whole message proves its content. A member that breaks the protocol leaves such signed proof
 * with whoever caught it; the proof travels to every member (an `alarm`), each checks it for itself, and
 * the job fails there naming the member: no one has to take the accuser's word for it, and no one can
 * frame an honest member, whose signature cannot be forged.
 */
const TAG = new TextEncoder().encode('epimesh/msg/1\u0000')
const utf8 = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

/** Checks signatures of other members' messages: Ed25519 by peer id in a real peer, its own scheme in simulation. */
export interface MessageVerifier {
  verify (from: string, payload: Uint8Array, signature: Uint8Array): boolean
}

/** Signs what this member sends. Only the shell holds a key; the machines never sign. */
export interface MessageSigner {
  sign (payload: Uint8Array): Uint8Array
}

export function headerBytes (header: { job: string, kind: string, round: number, from: string, to?: string | undefined }): Uint8Array {
  const writer = new ByteWriter()
  writer.string(header.job)
  writer.string(header.kind)
  writer.u32(header.round)
  writer.string(header.from)
  writer.string(header.to ?? '')
  return writer.bytes()
}

/** [u32 count][count float64][u32 length][data], little-endian: what ByteWriter's floats and blob write, in one buffer. */
export function bodyBytes (message: Pick<ConsensusMessage, 'values' | 'data'>): Uint8Array {
  const { values, data } = message
  const out = new Uint8Array(8 + 8 * values.length + data.length)
  const view = new DataView(out.buffer)
  view.setUint32(0, values.length, true)
  for (let index = 0; index < values.length; index++) view.setFloat64(4 + 8 * index, values[index] as number, true)
  view.setUint32(4 + 8 * values.length, data.length, true)
  out.set(data, 8 + 8 * values.length)
  return out
}

/**
 * The digest of a message's body (values and data), which signatures, echoes and receipts commit to.
 * Kept per message object: a message is immutable once made (machines build new ones, never edit one
 * sent or received), and in the simulator one object reaches every neighbour, so the sender's digest
 * serves all of them (with 10,000 peers, hashing each copy again was a fifth of a round's work). The
 * cached digest is used only while the object still holds the same values and data arrays. Callers must
 * not modify the returned bytes.
 */
export function bodyDigest (message: Pick<ConsensusMessage, 'values' | 'data'>): Uint8Array {
  const cached = digests.get(message)
  if (cached !== undefined && cached.values === message.values && cached.data === message.data) return cached.digest
  const digest = sha256(bodyBytes(message))
  digests.set(message, { values: message.values, data: message.data, digest })
  return digest
}

const digests = new WeakMap<object, { values: Float64Array, data: Uint8Array, digest: Uint8Array }>()

/** What a signature covers: the header in full, the body by its digest. */
export function signingPayload (header: { job: string, kind: string, round: number, from: string, to?: string | undefined }, digest: Uint8Array): Uint8Array {
  const head = headerBytes(header)
  const payload = new Uint8Array(TAG.length + head.length + digest.length)
  payload.set(TAG, 0)
  payload.set(head, TAG.length)
  payload.set(digest, TAG.length + head.length)
  return payload
}

export function messagePayload (message: ConsensusMessage): Uint8Array {
  return signingPayload(message, bodyDigest(message))
}

/** Proof that `from` sent a message with this header and this body digest. */
export interface Receipt {
  job: string
  kind: string
  round: number
  from: string
  to?: string
  digest: Uint8Array
  signature: Uint8Array
}

export function receiptOf (message: ConsensusMessage): Receipt | null {
  if (message.signature === undefined) return null
  return { job: message.job, kind: message.kind, round: message.round, from: message.from, ...(message.to === undefined ? {} : { to: message.to }), digest: bodyDigest(message), signature: message.signature }
}

export function verifyReceipt (receipt: Receipt, verifier: MessageVerifier): boolean {
  return verifier.verify(receipt.from, signingPayload(receipt, receipt.digest), receipt.signature)
}

export function verifyMessage (message: ConsensusMessage, verifier: MessageVerifier): boolean {
  return message.signature !== undefined && verifier.verify(message.from, messagePayload(message), message.signature)
}

/**
 * The kinds of protocol violation a member can be caught in, each with what proves it:
 * - range:      one signed message whose values are outside what the fixed-point sums can hold
 * - stop-flag:  one signed consensus-ADMM message that announces the stop without the counter for it
 * - stop-counter: a signed message whose stop counter exceeds 1 + the counter of the accuser's message
 *               it says it last heard (that message, authenticated by the digest the offender echoed)
 * - residual:   a signed message claiming small residuals (a positive stop counter) next to the
 *               offender's own previous message, or the accuser's message it echoed, that contradict it
 * - equivocation: two signed receipts of the offender for the same job, kind, round and recipient with
 *               different bodies
 */
export type Rule = 'range' | 'stop-flag' | 'stop-counter' | 'residual' | 'equivocation'

export interface Evidence {
  rule: Rule
  /** the member accused */
  offender: string
  /** who found it (signs the alarm that carries it) */
  reporter: string
  /** the offender's signed messages */
  messages: ConsensusMessage[]
  /** the offender's signed receipts */
  receipts: Receipt[]
  /** the reporter's own messages the offender said it heard, authenticated by the offender's echo */
  witnesses: ConsensusMessage[]
}

const RULES: readonly Rule[] = ['range', 'stop-flag', 'stop-counter', 'residual', 'equivocation']

/** Bounds that keep a decoded alarm small whatever its sender writes. */
const MAX_EVIDENCE_ITEMS = 4
const MAX_ITEM_VALUES = 1 << 16
const MAX_ITEM_DATA = 1 << 16

export function encodeEvidence (evidence: Evidence): Uint8Array {
  const writer = new ByteWriter()
  writer.u8(1)
  writer.u8(RULES.indexOf(evidence.rule))
  writer.string(evidence.offender)
  writer.string(evidence.reporter)
  for (const list of [evidence.messages, evidence.witnesses]) {
    writer.u8(list.length)
    for (const message of list) {
      writer.string(message.job)
      writer.string(message.kind)
      writer.u32(message.round)
      writer.string(message.from)
      writer.string(message.to ?? '')
      writer.floats(message.values)
      writer.blob(message.data)
      writer.blob(message.signature ?? new Uint8Array(0))
    }
  }
  writer.u8(evidence.receipts.length)
  for (const receipt of evidence.receipts) {
    writer.string(receipt.job)
    writer.string(receipt.kind)
    writer.u32(receipt.round)
    writer.string(receipt.from)
    writer.string(receipt.to ?? '')
    writer.blob(receipt.digest)
    writer.blob(receipt.signature)
  }
  return writer.bytes()
}

/** Decodes an alarm's evidence; a string says why it is unusable. Never throws. */
export function decodeEvidence (bytes: Uint8Array): Evidence | string {
  try {
    const reader = new ByteReader(bytes)
    if (reader.u8() !== 1) return 'unknown evidence version'
    const rule = RULES[reader.u8()]
    if (rule === undefined) return 'unknown rule'
    const offender = reader.string()
    const reporter = reader.string()
    const lists: ConsensusMessage[][] = []
    for (let list = 0; list < 2; list++) {
      const count = reader.u8()
      if (count > MAX_EVIDENCE_ITEMS) return 'too many messages'
      const messages: ConsensusMessage[] = []
      for (let item = 0; item < count; item++) {
        const job = reader.string()
        const kind = reader.string()
        const round = reader.u32()
        const from = reader.string()
        const to = reader.string()
        const values = reader.floats(MAX_ITEM_VALUES)
        const data = reader.blob(MAX_ITEM_DATA)
        const signature = reader.blob(128)
        messages.push({ job, kind, round, from, ...(to === '' ? {} : { to }), values, data, ...(signature.length === 0 ? {} : { signature }) })
      }
      lists.push(messages)
    }
    const receiptCount = reader.u8()
    if (receiptCount > MAX_EVIDENCE_ITEMS) return 'too many receipts'
    const receipts: Receipt[] = []
    for (let item = 0; item < receiptCount; item++) {
      const job = reader.string()
      const kind = reader.string()
      const round = reader.u32()
      const from = reader.string()
      const to = reader.string()
      const digest = reader.blob(32)
      const signature = reader.blob(128)
      if (digest.length !== 32) return 'a receipt digest is not 32 bytes'
      receipts.push({ job, kind, round, from, ...(to === '' ? {} : { to }), digest, signature })
    }
    if (!reader.atEnd()) return 'trailing bytes'
    return { rule, offender, reporter, messages: lists[0] as ConsensusMessage[], witnesses: lists[1] as ConsensusMessage[], receipts }
  } catch (error) {
    return (error as Error).message
  }
}

/** The offender's equivocation, from two receipts: same header, different bodies, both signed by it. */
export function judgeEquivocation (evidence: Evidence, verifier: MessageVerifier): string | null {
  const [first, second] = evidence.receipts
  if (first === undefined || second === undefined || evidence.receipts.length !== 2) return 'equivocation needs two receipts'
  if (first.from !== evidence.offender || second.from !== evidence.offender) return 'the receipts are not the offender\'s'
  if (first.job !== second.job || first.kind !== second.kind || first.round !== second.round || (first.to ?? '') !== (second.to ?? '')) return 'the receipts are of different messages'
  if (equalBytes(first.digest, second.digest)) return 'the receipts are of the same message'
  if (!verifyReceipt(first, verifier) || !verifyReceipt(second, verifier)) return 'a receipt\'s signature does not verify'
  return null
}

export class ByteWriter {
  private chunks: Uint8Array[] = []
  private length = 0

  private push (chunk: Uint8Array): void {
    this.chunks.push(chunk)
    this.length += chunk.length
  }

  u8 (value: number): void { this.push(Uint8Array.of(value & 0xff)) }

  u32 (value: number): void {
    const chunk = new Uint8Array(4)
    new DataView(chunk.buffer).setUint32(0, value >>> 0, true)
    this.push(chunk)
  }

  blob (bytes: Uint8Array): void {
    this.u32(bytes.length)
    this.push(Uint8Array.from(bytes))
  }

  string (text: string): void { this.blob(utf8.encode(text)) }

  floats (values: ArrayLike<number>): void {
    const chunk = new Uint8Array(4 + 8 * values.length)
    const view = new DataView(chunk.buffer)
    view.setUint32(0, values.length, true)
    for (let index = 0; index < values.length; index++) view.setFloat64(4 + 8 * index, values[index] as number, true)
    this.push(chunk)
  }

  bytes (): Uint8Array {
    const out = new Uint8Array(this.length)
    let offset = 0
    for (const chunk of this.chunks) {
      out.set(chunk, offset)
      offset += chunk.length
    }
    return out
  }
}

export class ByteReader {
  private offset = 0
  private readonly view: DataView

  constructor (private readonly source: Uint8Array) {
    this.view = new DataView(source.buffer, source.byteOffset, source.byteLength)
  }

  private need (count: number): void {
    if (this.offset + count > this.source.length) throw new RangeError('truncated')
  }

  u8 (): number {
    this.need(1)
    return this.source[this.offset++] as number
  }

  u32 (): number {
    this.need(4)
    const value = this.view.getUint32(this.offset, true)
    this.offset += 4
    return value
  }

  blob (max: number): Uint8Array {
    const length = this.u32()
    if (length > max) throw new RangeError(`a field of ${length} bytes, over ${max}`)
    this.need(length)
    const out = this.source.slice(this.offset, this.offset + length)
    this.offset += length
    return out
  }

  string (): string { return utf8Decoder.decode(this.blob(256)) }

  floats (max: number): Float64Array {
    const count = this.u32()
    if (count > max) throw new RangeError(`${count} values, over ${max}`)
    this.need(8 * count)
    const out = new Float64Array(count)
    for (let index = 0; index < count; index++) out[index] = this.view.getFloat64(this.offset + 8 * index, true)
    this.offset += 8 * count
    return out
  }

  atEnd (): boolean { return this.offset === this.source.length }
}

/**
 * Signatures for simulations: a member's "signature" is a keyed hash with a secret derived from the
 * run's seed and its name. It proves nothing to anyone who knows the seed; it lets the simulator run
 * the very same checks of proof as real peers, which sign with Ed25519.
 */
export function simulatedSignatures (seed: string): { signerFor (name: string): MessageSigner, verifier: MessageVerifier } {
  const secrets = new Map<string, Uint8Array>()
  const secretOf = (name: string): Uint8Array => {
    let secret = secrets.get(name)
    if (secret === undefined) {
      secret = sha256(utf8.encode(`epimesh/simulated-key/${seed}/${name}`))
      secrets.set(name, secret)
    }
    return secret
  }
  const signatureOf = (name: string, payload: Uint8Array): Uint8Array => {
    const signature = new Uint8Array(64)
    signature.set(sha256(secretOf(name), payload), 0)
    signature.set(sha256(payload, secretOf(name)), 32)
    return signature
  }
  return {
    signerFor: (name) => ({ sign: (payload) => signatureOf(name, payload) }),
    verifier: { verify: (from, payload, signature) => signature.length === 64 && equalBytes(signatureOf(from, payload), signature) }
  }
}
