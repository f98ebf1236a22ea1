/**
 * Length-prefixed frames for long-lived streams: a 4-byte big-endian length, then that many bytes.
 *
 * The decoder holds at most one frame's worth of bytes. Frames that arrive whole in one chunk are handed
 * on as views into it, without a copy; only a partial frame left at a chunk's end is copied (the
 * producer may reuse its buffer after `push` returns). A frame announced larger than `maxFrameBytes` is
 * reported once and its bytes are skipped as they arrive, without being buffered, so a misbehaving sender
 * costs neither memory nor the stream: the next frame is read normally.
 */

export const FRAME_HEADER_BYTES = 4

/** Writes the header of a frame whose payload already follows it in `frame` (built with room for it). */
export function writeFrameHeader (frame: Uint8Array): Uint8Array {
  new DataView(frame.buffer, frame.byteOffset, FRAME_HEADER_BYTES).setUint32(0, frame.byteLength - FRAME_HEADER_BYTES, false)
  return frame
}

export function encodeFrame (payload: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + payload.byteLength)
  new DataView(frame.buffer).setUint32(0, payload.byteLength, false)
  frame.set(payload, FRAME_HEADER_BYTES)
  return frame
}

export interface FrameDecoderEvents {
  /** a complete frame; its bytes are valid only during the call (copy them to keep them) */
  frame: (payload: Uint8Array) => void
  /** a frame over the limit, skipped */
  oversized: (announcedBytes: number) => void
}

export class FrameDecoder {
  private readonly chunks: Uint8Array[] = []
  private buffered = 0
  /** bytes of an oversized frame still to be thrown away */
  private skipping = 0

  constructor (private readonly maxFrameBytes: number, private readonly events: FrameDecoderEvents) {}

  push (chunk: Uint8Array): void {
    let input = chunk
    if (this.skipping > 0) {
      const skipped = Math.min(this.skipping, input.byteLength)
      this.skipping -= skipped
      input = input.subarray(skipped)
    }
    if (input.byteLength === 0) return
    if (this.buffered === 0) input = this.direct(input)
    if (input.byteLength === 0) return
    // Own the bytes: an inbound chunk may be a view into a buffer its producer reuses after this call.
    this.chunks.push(new Uint8Array(input))
    this.buffered += input.byteLength
    this.drain()
  }

  /** Frames read straight from a chunk while nothing is buffered; returns what is left to buffer. */
  private direct (chunk: Uint8Array): Uint8Array {
    const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength)
    let offset = 0
    while (chunk.byteLength - offset >= FRAME_HEADER_BYTES) {
      const length = view.getUint32(offset, false)
      if (length > this.maxFrameBytes) {
        const available = Math.min(length, chunk.byteLength - offset - FRAME_HEADER_BYTES)
        this.skipping = length - available
        offset += FRAME_HEADER_BYTES + available
        this.events.oversized(length)
        if (this.skipping > 0) return chunk.subarray(offset)
        continue
      }
      if (chunk.byteLength - offset - FRAME_HEADER_BYTES < length) break
      const start = offset + FRAME_HEADER_BYTES
      offset = start + length
      this.events.frame(chunk.subarray(start, offset))
    }
    return chunk.subarray(offset)
  }

  private drain (): void {
    for (;;) {
      if (this.buffered < FRAME_HEADER_BYTES) return
      const header = this.peek(FRAME_HEADER_BYTES)
      const length = new DataView(header.buffer, header.byteOffset, FRAME_HEADER_BYTES).getUint32(0, false)
      if (length > this.maxFrameBytes) {
        this.consume(FRAME_HEADER_BYTES)
        const available = Math.min(length, this.buffered)
        this.consume(available)
        this.skipping = length - available
        this.events.oversized(length)
        continue
      }
      if (this.buffered < FRAME_HEADER_BYTES + length) return
      this.consume(FRAME_HEADER_BYTES)
      this.events.frame(this.take(length))
    }
  }

  /** the first `count` bytes, copied only when they span chunks */
  private peek (count: number): Uint8Array {
    const first = this.chunks[0] as Uint8Array
    if (first.byteLength >= count) return first
    return this.copy(count, false)
  }

  private take (count: number): Uint8Array {
    if (count === 0) return new Uint8Array(0)
    const first = this.chunks[0] as Uint8Array
    if (first.byteLength >= count) {
      const frame = first.subarray(0, count)
      this.consume(count)
      return frame
    }
    return this.copy(count, true)
  }

  private copy (count: number, consume: boolean): Uint8Array {
    const out = new Uint8Array(count)
    let filled = 0
    for (const chunk of this.chunks) {
      if (filled === count) break
      const part = chunk.subarray(0, Math.min(chunk.byteLength, count - filled))
      out.set(part, filled)
      filled += part.byteLength
    }
    if (consume) this.consume(count)
    return out
  }

  private consume (count: number): void {
    let left = count
    while (left > 0) {
      const first = this.chunks[0] as Uint8Array
      if (first.byteLength <= left) {
        this.chunks.shift()
        left -= first.byteLength
      } else {
        this.chunks[0] = first.subarray(left)
        left = 0
      }
    }
    this.buffered -= count
  }
}
