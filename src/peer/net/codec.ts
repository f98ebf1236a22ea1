import { CODEC_VERSION, MAX_ID_BYTES, MAX_JOB_BYTES, MAX_KIND_BYTES, MAX_MESSAGE_BYTES } from '../constants.ts'
import {
  MessageFutureRoundError,
  MessageMalformedError,
  MessageNonFiniteError,
  MessageStaleRoundError,
  MessageTooLargeError,
  MessageWrongRecipientError,
  MessageWrongSenderError
} from '../errors.ts'
import type { ConsensusMessage } from '../../consensus/types.ts'
import { isJobId } from '../../consensus/ids.ts'

/**
 * The wire form of a ConsensusMessage. Little-endian throughout:
 *
 *   magic 'E' 'M' | version u8 | flags u8 (bit 0: `to` present; other bits zero)
 *   job:  u8 length, UTF-8            (1..64 bytes)
 *   kind: u8 length, printable ASCII  (1..32 bytes)
 *   round u32
 *   from: u8 length, UTF-8            (1..128 bytes)
 *   [to:  u8 length, UTF-8            (1..128 bytes), when flag bit 0]
 *   values: u32 count, count x float64
 *   data:   u32 length, bytes
 *   [signature: 64 bytes, when flag bit 1: the author's Ed25519 signature, see consensus/evidence.ts]
 *
 * and nothing after. Decoding copies everything out of the input: inbound buffers are often views into
 * a shared pool (a non-zero byteOffset, an underlying ArrayBuffer reused later), so nothing decoded may
 * alias it, and a Float64Array is never laid over `buffer.buffer`.
 */

const MAGIC_0 = 0x45 // 'E'
const MAGIC_1 = 0x4d // 'M'
const FLAG_TO = 0x01
const FLAG_SIGNATURE = 0x02
export const SIGNATURE_BYTES = 64
/** magic, version, flags, three length bytes, round, value count, data length: the smallest message minus strings */
const FIXED_BYTES = 2 + 1 + 1 + 1 + 1 + 4 + 1 + 4 + 4

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true })

export interface DecodeOptions {
  /** default MAX_MESSAGE_BYTES */
  maxBytes?: number
}

export interface EncodeOptions {
  /** default MAX_MESSAGE_BYTES */
  maxBytes?: number
  /**
   * bytes left free before the message, for a carrier's header (a stream frame's length), so that the
   * message is not copied again to be framed; not counted against `maxBytes`. Default 0.
   */
  headroom?: number
}

/** Rounds a receiver accepts for a job right now, both ends inclusive. */
export interface RoundWindow {
  min: number
  max: number
}

/** Supplied by whoever drives the rounds; `undefined` means "no opinion, accept any round". */
export type RoundWindowFn = (job: string, kind: string) => RoundWindow | undefined

/** What an inbound check knows about where a message came from. */
export interface MessageExpectations {
  /** the authenticated origin: the topic's owner and gossipsub's verified author, or the stream's remote peer */
  from: string
  /** this peer, for a point-to-point message; `null` for a broadcast, which must not carry `to` */
  to: string | null
  roundWindow?: RoundWindowFn
}

export function encodeConsensusMessage (message: ConsensusMessage, options: EncodeOptions = {}): Uint8Array {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES
  const job = utf8Encoder.encode(message.job)
  const kind = utf8Encoder.encode(message.kind)
  const from = utf8Encoder.encode(message.from)
  const to = message.to === undefined ? null : utf8Encoder.encode(message.to)
  checkHeaderField('job', job, MAX_JOB_BYTES)
  if (!isJobId(message.job)) throw new MessageMalformedError('job is not a valid job id')
  checkHeaderField('kind', kind, MAX_KIND_BYTES)
  if (!isPrintableAscii(kind)) throw new MessageMalformedError('kind must be printable ASCII')
  checkHeaderField('from', from, MAX_ID_BYTES)
  if (to !== null) checkHeaderField('to', to, MAX_ID_BYTES)
  if (!Number.isInteger(message.round) || message.round < 0 || message.round > 0xffffffff) {
    throw new MessageMalformedError(`round must be an integer in [0, 2^32), got ${message.round}`)
  }
  const values = message.values
  for (let index = 0; index < values.length; index++) {
    if (!Number.isFinite(values[index])) throw new MessageNonFiniteError(`values[${index}] is not finite`)
  }
  const signature = message.signature
  if (signature !== undefined && signature.length !== SIGNATURE_BYTES) throw new MessageMalformedError(`a signature is ${SIGNATURE_BYTES} bytes, got ${signature.length}`)
  const length = FIXED_BYTES + job.length + kind.length + from.length + (to === null ? 0 : 1 + to.length) +
    values.length * 8 + message.data.length + (signature === undefined ? 0 : SIGNATURE_BYTES)
  if (length > maxBytes) throw new MessageTooLargeError(`the message takes ${length} bytes, over the limit of ${maxBytes}`)

  const headroom = options.headroom ?? 0
  const framed = new Uint8Array(headroom + length)
  const bytes = headroom === 0 ? framed : framed.subarray(headroom)
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  bytes[0] = MAGIC_0
  bytes[1] = MAGIC_1
  bytes[2] = CODEC_VERSION
  bytes[3] = (to === null ? 0 : FLAG_TO) | (signature === undefined ? 0 : FLAG_SIGNATURE)
  let offset = 4
  offset = writeField(bytes, offset, job)
  offset = writeField(bytes, offset, kind)
  view.setUint32(offset, message.round, true)
  offset += 4
  offset = writeField(bytes, offset, from)
  if (to !== null) offset = writeField(bytes, offset, to)
  view.setUint32(offset, values.length, true)
  offset += 4
  for (let index = 0; index < values.length; index++, offset += 8) view.setFloat64(offset, values[index] as number, true)
  view.setUint32(offset, message.data.length, true)
  offset += 4
  bytes.set(message.data, offset)
  if (signature !== undefined) bytes.set(signature, offset + message.data.length)
  return framed
}

/**
 * Parses and checks the wire form. Throws only MessageRejectedError subclasses (MESSAGE_TOO_LARGE,
 * MESSAGE_MALFORMED, MESSAGE_NON_FINITE), whatever the input.
 */
export function decodeConsensusMessage (bytes: Uint8Array, options: DecodeOptions = {}): ConsensusMessage {
  const maxBytes = options.maxBytes ?? MAX_MESSAGE_BYTES
  if (bytes.byteLength > maxBytes) throw new MessageTooLargeError(`the message takes ${bytes.byteLength} bytes, over the limit of ${maxBytes}`)
  if (bytes.byteLength < FIXED_BYTES) throw new MessageMalformedError(`truncated: ${bytes.byteLength} bytes`)
  if (bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1) throw new MessageMalformedError('not a consensus message (bad magic)')
  if (bytes[2] !== CODEC_VERSION) throw new MessageMalformedError(`unsupported version ${String(bytes[2])}`)
  const flags = bytes[3] as number
  if ((flags & ~(FLAG_TO | FLAG_SIGNATURE)) !== 0) throw new MessageMalformedError(`unknown flags 0x${flags.toString(16)}`)
  const signed = (flags & FLAG_SIGNATURE) !== 0

  const reader = new Reader(bytes, 4)
  const job = reader.string('job', MAX_JOB_BYTES)
  if (!isJobId(job)) throw new MessageMalformedError('job is not a valid job id')
  const kindBytes = reader.field('kind', MAX_KIND_BYTES)
  if (!isPrintableAscii(kindBytes)) throw new MessageMalformedError('kind is not printable ASCII')
  const kind = String.fromCharCode(...kindBytes)
  const round = reader.u32('round')
  const from = reader.string('from', MAX_ID_BYTES)
  const to = (flags & FLAG_TO) === 0 ? undefined : reader.string('to', MAX_ID_BYTES)
  const count = reader.u32('values length')
  // Compare before multiplying out: a hostile count must not allocate anything.
  if (count > (bytes.byteLength - reader.offset) / 8) throw new MessageMalformedError(`truncated: ${count} values announced`)
  const values = new Float64Array(count)
  for (let index = 0; index < count; index++) {
    const value = reader.view.getFloat64(reader.offset, true)
    if (!Number.isFinite(value)) throw new MessageNonFiniteError(`values[${index}] is not finite`)
    values[index] = value
    reader.offset += 8
  }
  const dataLength = reader.u32('data length')
  const remaining = bytes.byteLength - reader.offset - (signed ? SIGNATURE_BYTES : 0)
  if (dataLength !== remaining) {
    throw new MessageMalformedError(dataLength > remaining ? 'truncated data' : 'trailing bytes after data')
  }
  const data = new Uint8Array(dataLength)
  data.set(bytes.subarray(reader.offset, reader.offset + dataLength))
  const message: ConsensusMessage = { job, kind, round, from, values, data }
  if (to !== undefined) message.to = to
  if (signed) message.signature = bytes.slice(reader.offset + dataLength, reader.offset + dataLength + SIGNATURE_BYTES)
  return message
}

/**
 * The inbound checks that depend on where a message came from: the claimed sender must be the
 * authenticated one, a private message must be addressed to us and a broadcast to no one, and the
 * round must lie in the window the round driver accepts.
 */
export function checkConsensusMessage (message: ConsensusMessage, expected: MessageExpectations): void {
  if (message.from !== expected.from) {
    throw new MessageWrongSenderError(`claims to be from ${message.from} but came from ${expected.from}`)
  }
  if (expected.to === null) {
    if (message.to !== undefined) throw new MessageWrongRecipientError('a broadcast must not name a recipient')
  } else if (message.to !== undefined && message.to !== expected.to) {
    throw new MessageWrongRecipientError(`addressed to ${message.to}, not to this peer`)
  }
  const window = expected.roundWindow?.(message.job, message.kind)
  if (window !== undefined) {
    if (message.round < window.min) throw new MessageStaleRoundError(`round ${message.round} is before ${window.min}`)
    if (message.round > window.max) throw new MessageFutureRoundError(`round ${message.round} is after ${window.max}`)
  }
}

class Reader {
  readonly view: DataView
  offset: number

  constructor (readonly bytes: Uint8Array, offset: number) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.offset = offset
  }

  u32 (what: string): number {
    if (this.offset + 4 > this.bytes.byteLength) throw new MessageMalformedError(`truncated at ${what}`)
    const value = this.view.getUint32(this.offset, true)
    this.offset += 4
    return value
  }

  field (what: string, maxLength: number): Uint8Array {
    if (this.offset + 1 > this.bytes.byteLength) throw new MessageMalformedError(`truncated at ${what}`)
    const length = this.bytes[this.offset] as number
    if (length === 0 || length > maxLength) throw new MessageMalformedError(`${what} must be 1 to ${maxLength} bytes, got ${length}`)
    const start = this.offset + 1
    if (start + length > this.bytes.byteLength) throw new MessageMalformedError(`truncated at ${what}`)
    this.offset = start + length
    return this.bytes.subarray(start, start + length)
  }

  string (what: string, maxLength: number): string {
    const field = this.field(what, maxLength)
    try {
      return utf8Decoder.decode(field)
    } catch (cause) {
      throw new MessageMalformedError(`${what} is not valid UTF-8`, { cause })
    }
  }
}

function checkHeaderField (what: string, bytes: Uint8Array, maxLength: number): void {
  if (bytes.length === 0 || bytes.length > maxLength) {
    throw new MessageMalformedError(`${what} must be 1 to ${maxLength} bytes of UTF-8, got ${bytes.length}`)
  }
}

function writeField (target: Uint8Array, offset: number, field: Uint8Array): number {
  target[offset] = field.length
  target.set(field, offset + 1)
  return offset + 1 + field.length
}

function isPrintableAscii (bytes: Uint8Array): boolean {
  for (const byte of bytes) if (byte < 0x21 || byte > 0x7e) return false
  return true
}
