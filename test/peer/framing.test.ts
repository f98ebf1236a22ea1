import { expect, test } from 'vitest'
import fc from 'fast-check'
import { encodeFrame, FrameDecoder } from '../../src/peer/net/framing.ts'

function decoder (maxFrameBytes: number): { push: (chunk: Uint8Array) => void, frames: Uint8Array[], oversized: number[] } {
  const frames: Uint8Array[] = []
  const oversized: number[] = []
  // a frame's bytes are valid only during the call: keep a copy
  const instance = new FrameDecoder(maxFrameBytes, { frame: (payload) => frames.push(Uint8Array.from(payload)), oversized: (bytes) => oversized.push(bytes) })
  return { push: (chunk) => { instance.push(chunk) }, frames, oversized }
}

test('frames split at every possible point come out whole and in order', () => {
  fc.assert(fc.property(
    fc.array(fc.uint8Array({ maxLength: 40 }), { minLength: 1, maxLength: 6 }),
    // small cuts split headers; large ones carry several whole frames, read without a copy
    fc.array(fc.integer({ min: 1, max: 120 }), { minLength: 1, maxLength: 10 }),
    (payloads, cuts) => {
      const stream = Uint8Array.from(payloads.flatMap((payload) => [...encodeFrame(payload)]))
      const d = decoder(1024)
      let at = 0
      for (let index = 0; at < stream.length; index++) {
        const size = cuts[index % cuts.length] as number
        d.push(stream.subarray(at, at + size))
        at += size
      }
      expect(d.frames).toEqual(payloads)
      expect(d.oversized).toEqual([])
    }), { seed: 7, numRuns: 500 })
})

test('an oversized frame is skipped without buffering it, and the next frame is read', () => {
  const d = decoder(16)
  const big = encodeFrame(new Uint8Array(1000).fill(7))
  const next = encodeFrame(Uint8Array.from([1, 2, 3]))
  d.push(big.subarray(0, 10))
  d.push(big.subarray(10, 600))
  d.push(Uint8Array.from([...big.subarray(600), ...next.subarray(0, 2)]))
  d.push(next.subarray(2))
  expect(d.oversized).toEqual([1000])
  expect(d.frames).toEqual([Uint8Array.from([1, 2, 3])])
})

test('an empty frame is a frame', () => {
  const d = decoder(16)
  d.push(Uint8Array.from([...encodeFrame(new Uint8Array(0)), ...encodeFrame(Uint8Array.from([9]))]))
  expect(d.frames).toEqual([new Uint8Array(0), Uint8Array.from([9])])
})

test('buffered bytes are owned: reusing the producer\'s buffer does not corrupt a partial frame', () => {
  const d = decoder(64)
  const frame = encodeFrame(Uint8Array.from([1, 2, 3, 4, 5, 6]))
  const shared = Buffer.from(frame.subarray(0, 6))
  d.push(shared)
  shared.fill(0)
  d.push(frame.subarray(6))
  expect(d.frames).toEqual([Uint8Array.from([1, 2, 3, 4, 5, 6])])
})

test('whole frames are read from the chunk itself; an oversized one inside a chunk is skipped', () => {
  const d = decoder(8)
  const chunk = Uint8Array.from([...encodeFrame(Uint8Array.from([1])), ...encodeFrame(new Uint8Array(20).fill(5)), ...encodeFrame(Uint8Array.from([2, 3])), ...encodeFrame(Uint8Array.from([4, 5, 6])).subarray(0, 5)])
  d.push(chunk)
  chunk.fill(0)
  d.push(Uint8Array.from([5, 6]))
  expect(d.oversized).toEqual([20])
  expect(d.frames).toEqual([Uint8Array.from([1]), Uint8Array.from([2, 3]), Uint8Array.from([4, 5, 6])])
})
