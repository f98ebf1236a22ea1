import { peerIdFromString } from '@libp2p/peer-id'
import { combineSignals, timeoutSignal, withTimeout } from './abort.ts'
import { NotStartedError, PeerUnreachableError } from '../errors.ts'
import { encodeFrame, FrameDecoder } from './framing.ts'
import type { Connection, Libp2p, Stream } from '@libp2p/interface'
import type { Logger } from 'pino'

/**
 * Point-to-point channel to graph neighbours on the federation's direct protocol: one long-lived yamux
 * stream per neighbour and direction, carrying length-prefixed frames. Each side writes only on the
 * stream it opened and reads only the ones it accepted, so there is no contention over who owns a
 * stream. The link is encrypted by Noise and the remote end is the authenticated peer of the connection,
 * which is what makes this the carrier for private messages such as secure-sum masks.
 */

export interface DirectChannelInit {
  protocol: string
  neighbours: readonly string[]
  maxFrameBytes: number
  streamOpenTimeoutMs: number
}

export interface DirectChannelComponents {
  libp2p: Libp2p
  logger?: Logger
}

export interface DirectChannelEvents {
  /** a complete frame from an authenticated neighbour */
  frame: (from: string, payload: Uint8Array) => void
  /** a frame skipped because it was over the limit, or a stream opened by a non-neighbour */
  refused: (from: string, reason: 'oversized' | 'not-neighbour', bytes: number) => void
}

export class DirectChannel {
  private readonly neighbours: ReadonlySet<string>
  private readonly outbound = new Map<string, Stream>()
  private readonly opening = new Map<string, Promise<Stream>>()
  private readonly inbound = new Set<Stream>()
  private controller: AbortController | null = null

  constructor (private readonly init: DirectChannelInit, private readonly components: DirectChannelComponents, private readonly events: DirectChannelEvents) {
    this.neighbours = new Set(init.neighbours)
  }

  async start (): Promise<void> {
    if (this.controller !== null) return
    this.controller = new AbortController()
    // A neighbour needs one inbound stream; a few more cover a reopen racing the old stream's close.
    await this.components.libp2p.handle(this.init.protocol, (stream, connection) => { this.accept(stream, connection) }, {
      maxInboundStreams: 4,
      maxOutboundStreams: 4,
      force: true
    })
  }

  async stop (): Promise<void> {
    const controller = this.controller
    if (controller === null) return
    this.controller = null
    controller.abort()
    await this.components.libp2p.unhandle(this.init.protocol).catch(() => {})
    const streams = [...this.outbound.values(), ...this.inbound]
    this.outbound.clear()
    this.inbound.clear()
    await Promise.allSettled(streams.map(async (stream) => {
      await stream.close({ signal: timeoutSignal(1_000) }).catch((err: Error) => { stream.abort(err) })
    }))
  }

  /** Whether there is an open connection to `peerId` (over which a stream could be opened). */
  connected (peerId: string): boolean {
    return this.components.libp2p.getConnections(peerIdFromString(peerId)).some((connection) => connection.status === 'open')
  }

  /** Open (or reuse) the stream to `peerId`; resolves once a frame can be written. */
  async open (peerId: string, options: { signal?: AbortSignal } = {}): Promise<Stream> {
    const existing = this.outbound.get(peerId)
    if (existing !== undefined && existing.status === 'open' && existing.writeStatus === 'writable') return existing
    const pending = this.opening.get(peerId)
    if (pending !== undefined) return await pending
    const stopSignal = this.controller?.signal
    if (stopSignal === undefined) throw new NotStartedError('the direct channel is not started')
    // Fail fast when the link is down: dialling is the neighbour links' job, and a send that waited for
    // a dial time-out would hold up the caller's whole round for a neighbour that is gone.
    const remote = peerIdFromString(peerId)
    if (!this.components.libp2p.getConnections(remote).some((connection) => connection.status === 'open')) {
      throw new PeerUnreachableError(`no open connection to ${peerId}`)
    }
    const opening = (async () => {
      const signal = withTimeout(combineSignals(stopSignal, options.signal), this.init.streamOpenTimeoutMs)
      try {
        const stream = await this.components.libp2p.dialProtocol(remote, this.init.protocol, { signal })
        // Outbound streams are write-only: nothing is expected back, so never buffer what might arrive.
        stream.addEventListener('message', () => {})
        stream.addEventListener('close', () => {
          if (this.outbound.get(peerId) === stream) this.outbound.delete(peerId)
        }, { once: true })
        this.outbound.set(peerId, stream)
        return stream
      } catch (cause) {
        throw new PeerUnreachableError(`cannot open a direct stream to ${peerId}`, { cause })
      }
    })()
    this.opening.set(peerId, opening)
    try {
      return await opening
    } finally {
      this.opening.delete(peerId)
    }
  }

  /** Writes one frame to a neighbour, waiting for the stream to drain when its buffer is full. */
  async send (peerId: string, payload: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> {
    await this.write(peerId, encodeFrame(payload), options)
  }

  /**
   * Writes an encoded frame (framing.ts). On an open stream with room in its buffer, the usual case
   * within a job, the write is done before this returns and the result is null: no promise, no wait.
   * Otherwise the promise settles once the frame is written (after opening the stream, or waiting for
   * it to drain). The same frame may be written to several neighbours.
   */
  write (peerId: string, frame: Uint8Array, options: { signal?: AbortSignal } = {}): Promise<void> | null {
    const stream = this.outbound.get(peerId)
    if (stream !== undefined && stream.status === 'open' && stream.writeStatus === 'writable') {
      let sent: boolean
      try {
        sent = stream.send(frame)
      } catch {
        // the stream died under us: a fresh one, below
        return this.retry(peerId, frame, options)
      }
      return sent ? null : stream.onDrain(options).catch(async () => { await this.retry(peerId, frame, options) })
    }
    return this.slowWrite(peerId, frame, options)
  }

  private async slowWrite (peerId: string, frame: Uint8Array, options: { signal?: AbortSignal }): Promise<void> {
    const stream = await this.open(peerId, options)
    try {
      if (!stream.send(frame)) await stream.onDrain(options)
    } catch {
      await this.retry(peerId, frame, options)
    }
  }

  /** The stream died under us (the neighbour restarted or the link dropped): one fresh attempt. */
  private async retry (peerId: string, frame: Uint8Array, options: { signal?: AbortSignal }): Promise<void> {
    this.outbound.delete(peerId)
    const stream = await this.open(peerId, options)
    try {
      if (!stream.send(frame)) await stream.onDrain(options)
    } catch (cause) {
      throw new PeerUnreachableError(`cannot write to ${peerId}`, { cause })
    }
  }

  private accept (stream: Stream, connection: Connection): void {
    const remote = connection.remotePeer.toString()
    if (!this.neighbours.has(remote)) {
      this.events.refused(remote, 'not-neighbour', 0)
      stream.abort(new Error('not a graph neighbour'))
      return
    }
    this.inbound.add(stream)
    const decoder = new FrameDecoder(this.init.maxFrameBytes, {
      frame: (payload) => { this.events.frame(remote, payload) },
      oversized: (bytes) => { this.events.refused(remote, 'oversized', bytes) }
    })
    stream.addEventListener('message', (event) => {
      const data = event.data instanceof Uint8Array ? event.data : event.data.subarray()
      try {
        decoder.push(data)
      } catch (err) {
        this.components.logger?.warn({ err, remote }, 'direct frame handler failed')
      }
    })
    // The neighbour closed its end (restart, stop): close ours so the stream is released at both ends.
    stream.addEventListener('remoteCloseWrite', () => { stream.close().catch((err: Error) => { stream.abort(err) }) }, { once: true })
    stream.addEventListener('close', () => { this.inbound.delete(stream) }, { once: true })
  }
}
