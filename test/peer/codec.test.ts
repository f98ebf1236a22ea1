import { describe, expect, test } from 'vitest'
import fc from 'fast-check'
import { checkConsensusMessage, decodeConsensusMessage, encodeConsensusMessage } from '../../src/peer/net/codec.ts'
import { MessageRejectedError } from '../../src/peer/errors.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'

const PEER_A = '12D3KooWGQoJ8UWG5GYhXca7SFCFaFw5jERfUZMTgX5qdgtWrjQ8'
const PEER_B = '12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq'

function sample (extra: Partial<ConsensusMessage> = {}): ConsensusMessage {
  return {
    job: 'fit-2024-03',
    kind: 'admm',
    round: 17,
    from: PEER_A,
    values: Float64Array.from([1.5, -2.25, 0, -0, 1e-300, 1.7976931348623157e308, Math.PI]),
    data: Uint8Array.from([0, 1, 2, 255]),
    ...extra
  }
}

function codeOf (fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    if (err instanceof MessageRejectedError) return err.code
    throw err
  }
  return 'OK'
}

describe('encode / decode', () => {
  test('round-trips every field, `to` included', () => {
    for (const message of [sample(), sample({ to: PEER_B }), sample({ values: new Float64Array(0), data: new Uint8Array(0), round: 0xffffffff })]) {
      const decoded = decodeConsensusMessage(encodeConsensusMessage(message))
      expect(decoded).toEqual(message)
      expect(Object.is(decoded.values[3], -0) || decoded.values.length === 0).toBe(true)
    }
  })

  test('with headroom, the same bytes after free room, and the size limit still on the message alone', () => {
    const plain = encodeConsensusMessage(sample({ to: PEER_B }))
    const framed = encodeConsensusMessage(sample({ to: PEER_B }), { headroom: 4 })
    expect(framed.byteLength).toBe(plain.byteLength + 4)
    expect(framed.subarray(4)).toEqual(plain)
    expect(decodeConsensusMessage(framed.subarray(4))).toEqual(sample({ to: PEER_B }))
    expect(codeOf(() => encodeConsensusMessage(sample({ to: PEER_B }), { maxBytes: plain.byteLength, headroom: 4 }))).toBe('OK')
    expect(codeOf(() => encodeConsensusMessage(sample({ to: PEER_B }), { maxBytes: plain.byteLength - 1, headroom: 4 }))).toBe('MESSAGE_TOO_LARGE')
  })

  test('decodes from a pooled Buffer view (byteOffset not 0, not 8-aligned) and copies out', () => {
    const encoded = encodeConsensusMessage(sample())
    const pool = Buffer.alloc(encoded.length + 13, 0xaa)
    pool.set(encoded, 5)
    const view = pool.subarray(5, 5 + encoded.length)
    expect(view.byteOffset % 8).not.toBe(0)
    const decoded = decodeConsensusMessage(view)
    expect(decoded).toEqual(sample())
    // Reusing the pool afterwards must not change what was decoded.
    pool.fill(0)
    expect(decoded).toEqual(sample())
    expect(decoded.data.buffer).not.toBe(pool.buffer)
  })

  test('size limit on both sides', () => {
    const big = sample({ values: new Float64Array(200) })
    expect(codeOf(() => encodeConsensusMessage(big, { maxBytes: 1000 }))).toBe('MESSAGE_TOO_LARGE')
    const bytes = encodeConsensusMessage(big)
    expect(codeOf(() => decodeConsensusMessage(bytes, { maxBytes: 1000 }))).toBe('MESSAGE_TOO_LARGE')
    expect(codeOf(() => decodeConsensusMessage(bytes, { maxBytes: bytes.length }))).toBe('OK')
  })

  test('non-finite values are refused when encoding and when decoding', () => {
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
      expect(codeOf(() => encodeConsensusMessage(sample({ values: Float64Array.from([1, bad]) })))).toBe('MESSAGE_NON_FINITE')
      const bytes = encodeConsensusMessage(sample({ values: Float64Array.from([1, 2]) }))
      // overwrite the second float (the last 8 bytes before the data length and the 4 data bytes)
      new DataView(bytes.buffer).setFloat64(bytes.length - 4 - 4 - 8, bad, true)
      expect(codeOf(() => decodeConsensusMessage(bytes))).toBe('MESSAGE_NON_FINITE')
    }
  })

  test('header fields out of range are malformed', () => {
    expect(codeOf(() => encodeConsensusMessage(sample({ job: '' })))).toBe('MESSAGE_MALFORMED')
    expect(codeOf(() => encodeConsensusMessage(sample({ job: 'x'.repeat(65) })))).toBe('MESSAGE_MALFORMED')
    // a job id names files in every member's data folder: nothing that could leave it
    for (const job of ['../../federation', 'a/b', '..', 'latest', ' job', 'job\n']) expect(codeOf(() => encodeConsensusMessage(sample({ job })))).toBe('MESSAGE_MALFORMED')
    expect(codeOf(() => encodeConsensusMessage(sample({ kind: 'has space' })))).toBe('MESSAGE_MALFORMED')
    expect(codeOf(() => encodeConsensusMessage(sample({ round: -1 })))).toBe('MESSAGE_MALFORMED')
    expect(codeOf(() => encodeConsensusMessage(sample({ round: 1.5 })))).toBe('MESSAGE_MALFORMED')
    expect(codeOf(() => encodeConsensusMessage(sample({ round: 2 ** 32 })))).toBe('MESSAGE_MALFORMED')
  })

  test('truncation, trailing bytes, bad magic, version and flags are malformed', () => {
    const bytes = encodeConsensusMessage(sample({ to: PEER_B }))
    for (let length = 0; length < bytes.length; length++) {
      expect(codeOf(() => decodeConsensusMessage(bytes.subarray(0, length)))).toBe('MESSAGE_MALFORMED')
    }
    const longer = new Uint8Array(bytes.length + 1)
    longer.set(bytes)
    expect(codeOf(() => decodeConsensusMessage(longer))).toBe('MESSAGE_MALFORMED')
    for (const [index, value] of [[0, 0x46], [2, 2], [3, 0x02]] as const) {
      const mutated = Uint8Array.from(bytes)
      mutated[index] = value
      expect(codeOf(() => decodeConsensusMessage(mutated))).toBe('MESSAGE_MALFORMED')
    }
  })

  test('a huge announced value count allocates nothing and is malformed', () => {
    const bytes = encodeConsensusMessage(sample({ values: new Float64Array(0), data: new Uint8Array(0) }))
    new DataView(bytes.buffer).setUint32(bytes.length - 8, 0xffffffff, true)
    expect(codeOf(() => decodeConsensusMessage(bytes))).toBe('MESSAGE_MALFORMED')
  })

  test('invalid UTF-8 in a string field is malformed', () => {
    const bytes = encodeConsensusMessage(sample({ job: 'ab' }))
    bytes[5] = 0xff // first byte of the job
    expect(codeOf(() => decodeConsensusMessage(bytes))).toBe('MESSAGE_MALFORMED')
  })
})

describe('inbound checks', () => {
  test('the claimed sender must be the authenticated one', () => {
    expect(codeOf(() => checkConsensusMessage(sample(), { from: PEER_A, to: null }))).toBe('OK')
    expect(codeOf(() => checkConsensusMessage(sample(), { from: PEER_B, to: null }))).toBe('MESSAGE_WRONG_SENDER')
  })

  test('a broadcast names no recipient; a private message names this peer', () => {
    expect(codeOf(() => checkConsensusMessage(sample({ to: PEER_B }), { from: PEER_A, to: null }))).toBe('MESSAGE_WRONG_RECIPIENT')
    expect(codeOf(() => checkConsensusMessage(sample({ to: PEER_B }), { from: PEER_A, to: PEER_B }))).toBe('OK')
    expect(codeOf(() => checkConsensusMessage(sample({ to: PEER_A }), { from: PEER_A, to: PEER_B }))).toBe('MESSAGE_WRONG_RECIPIENT')
    expect(codeOf(() => checkConsensusMessage(sample(), { from: PEER_A, to: PEER_B }))).toBe('OK')
  })

  test('rounds outside the window are stale or future', () => {
    const roundWindow = (job: string): { min: number, max: number } | undefined => job === 'fit-2024-03' ? { min: 16, max: 18 } : undefined
    expect(codeOf(() => checkConsensusMessage(sample({ round: 15 }), { from: PEER_A, to: null, roundWindow }))).toBe('MESSAGE_STALE_ROUND')
    expect(codeOf(() => checkConsensusMessage(sample({ round: 19 }), { from: PEER_A, to: null, roundWindow }))).toBe('MESSAGE_FUTURE_ROUND')
    for (const round of [16, 17, 18]) expect(codeOf(() => checkConsensusMessage(sample({ round }), { from: PEER_A, to: null, roundWindow }))).toBe('OK')
    expect(codeOf(() => checkConsensusMessage(sample({ job: 'other', round: 1 }), { from: PEER_A, to: null, roundWindow }))).toBe('OK')
  })
})

describe('fuzz: the decoder throws nothing but its typed errors', () => {
  const expectTypedOrMessage = (bytes: Uint8Array): void => {
    try {
      const decoded = decodeConsensusMessage(bytes, { maxBytes: 4096 })
      // whatever decodes must re-encode to the very same bytes
      expect(encodeConsensusMessage(decoded)).toEqual(Uint8Array.from(bytes))
    } catch (err) {
      expect(err).toBeInstanceOf(MessageRejectedError)
    }
  }

  test('random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 600 }), (bytes) => { expectTypedOrMessage(bytes) }), { seed: 20240301, numRuns: 3000 })
  })

  test('random bytes behind a valid header', () => {
    const header = encodeConsensusMessage(sample()).subarray(0, 16)
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (tail) => {
      const bytes = new Uint8Array(header.length + tail.length)
      bytes.set(header)
      bytes.set(tail, header.length)
      expectTypedOrMessage(bytes)
    }), { seed: 20240302, numRuns: 3000 })
  })

  test('valid messages with bytes flipped, cut or inserted', () => {
    const message = fc.record({
      job: fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,19}$/).filter((job) => job.toLowerCase() !== 'latest'),
      kind: fc.stringMatching(/^[a-z]{1,12}$/),
      round: fc.integer({ min: 0, max: 0xffffffff }),
      from: fc.constantFrom(PEER_A, PEER_B),
      to: fc.option(fc.constantFrom(PEER_A, PEER_B), { nil: undefined }),
      values: fc.float64Array({ maxLength: 40, noNaN: true, noDefaultInfinity: true }),
      data: fc.uint8Array({ maxLength: 64 })
    })
    const mutation = fc.record({
      flips: fc.array(fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 4 }),
      cut: fc.option(fc.nat(), { nil: undefined }),
      insert: fc.option(fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }), { nil: undefined })
    })
    fc.assert(fc.property(message, mutation, (fields, change) => {
      const original: ConsensusMessage = { ...fields }
      if (fields.to === undefined) delete original.to
      let bytes: Uint8Array = encodeConsensusMessage(original)
      expect(decodeConsensusMessage(bytes)).toEqual(original)
      for (const flip of change.flips) bytes[flip.at % bytes.length] = flip.value
      if (change.insert !== undefined) {
        const at = change.insert.at % (bytes.length + 1)
        bytes = Uint8Array.from([...bytes.subarray(0, at), ...change.insert.bytes, ...bytes.subarray(at)])
      }
      if (change.cut !== undefined) bytes = bytes.subarray(0, change.cut % (bytes.length + 1))
      expectTypedOrMessage(bytes)
    }), { seed: 20240303, numRuns: 3000 })
  })
})
