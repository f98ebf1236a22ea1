import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { z } from 'zod'
import { EpimeshError } from '../../errors.ts'
import { createRng } from '../../consensus/rng.ts'
import type { Rng } from '../../consensus/types.ts'

/**
 * A user-space TCP relay that gives each relayed connection a wide-area link's timing: every byte is
 * forwarded, in order, `delayMs` after it arrived (in each direction), and a fraction of the segments
 * is held back a further `holdMs`.
 *
 * Why holding segments back is how loss looks on TCP: the applications here speak TCP, which never
 * shows them a lost segment. The sender retransmits it after a retransmission time-out (Linux: at
 * least 200 ms) or a fast retransmit, and the receiver's kernel keeps every later byte until the gap
 * is filled. What a peer sees of 1% loss is therefore a segment (and everything behind it on that
 * connection) arriving a retransmission time-out late: exactly what this relay does, without a
 * kernel `netem` qdisc. What it does not model: the sender's congestion window halving after a loss,
 * and bandwidth; the messages here are small (kilobytes a round), so neither the window nor the link's
 * rate bounds them. A connection is also set up one round trip faster than real TCP's handshake: the
 * relay accepts at once and connects onwards `delayMs` later, before any byte of the client arrives.
 *
 * Each direction of a connection is its own FIFO: a segment's due time is never earlier than the
 * previous segment's, so order is preserved (a held segment holds up those behind it, as on TCP).
 * Bounded: at most `maxConnections` open connections, and a direction whose queue holds more than
 * `maxQueuedBytes` pauses its reader until it drains (back-pressure, as a receive window would).
 */

export interface RelayRoute {
  /** where the relay listens */
  listen: { host: string, port: number }
  /** where it forwards each connection */
  target: { host: string, port: number }
  /** local address for the onward connection (optional) */
  source?: string
}

export interface DelayRelayInit {
  routes: RelayRoute[]
  /** one-way delay added to every byte, each direction (ms) */
  delayMs: number
  /** probability that a segment is held back further (a lost and retransmitted segment) */
  holdProbability: number
  /** the extra delay of a held segment (ms): a retransmission time-out */
  holdMs: number
  /** the segment size the chunks read off a socket are cut into before the hold is drawn (bytes) */
  segmentBytes: number
  /** seed of the draws of held segments */
  seed: number
  maxConnections: number
  maxQueuedBytes: number
}

export interface DelayRelayComponents {
  /** draws of held segments (default: seeded by `seed`) */
  rng?: Rng
  /** milliseconds, monotonic (default: performance.now) */
  now?: () => number
  /** called with each relay event worth a line in a log (connections refused, onward dials failed) */
  onEvent?: (event: string, fields: Record<string, unknown>) => void
}

export const DEFAULT_DELAY_RELAY = Object.freeze({
  delayMs: 20,
  holdProbability: 0.01,
  holdMs: 200,
  // 1500-byte MTU less IPv4 and TCP headers with timestamps
  segmentBytes: 1448,
  seed: 1,
  maxConnections: 1024,
  maxQueuedBytes: 16 * 1024 * 1024
})

const hostSchema = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address').max(15)
const portSchema = z.number().int().min(1).max(65_535)

export const delayRelayConfigSchema = z.strictObject({
  routes: z.array(z.strictObject({
    listen: z.strictObject({ host: hostSchema, port: portSchema }),
    target: z.strictObject({ host: hostSchema, port: portSchema }),
    source: hostSchema.optional()
  })).min(1).max(1024),
  delayMs: z.number().min(0).max(10_000).optional(),
  holdProbability: z.number().min(0).max(1).optional(),
  holdMs: z.number().min(0).max(60_000).optional(),
  segmentBytes: z.number().int().min(1).max(65_536).optional(),
  seed: z.number().int().min(0).max(2 ** 32 - 1).optional(),
  maxConnections: z.number().int().min(1).max(65_536).optional(),
  maxQueuedBytes: z.number().int().min(1024).max(1024 ** 3).optional()
})

/** A relay configuration that fails its schema: names the source and every offending field. */
export class DelayRelayConfigError extends EpimeshError {
  static override readonly name = 'DelayRelayConfigError'
  readonly exitCode = 2
  constructor (source: string, issues: Array<{ path: string, message: string }>) {
    super('RELAY_CONFIG_INVALID', `${source}: ${issues.map((issue) => `${issue.path === '' ? '(top)' : issue.path}: ${issue.message}`).join('; ')}`)
  }
}

/** Validates a relay configuration (a file's JSON) and fills in the defaults; throws DelayRelayConfigError naming the fields. */
export function createDelayRelayInit (value: unknown, source = 'relay configuration'): DelayRelayInit {
  const parsed = delayRelayConfigSchema.safeParse(value)
  if (!parsed.success) throw new DelayRelayConfigError(source, parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message })))
  return { ...DEFAULT_DELAY_RELAY, ...Object.fromEntries(Object.entries(parsed.data).filter(([, field]) => field !== undefined)) } as DelayRelayInit
}

export interface RelayStats {
  connections: number
  open: number
  refused: number
  failedDials: number
  bytes: number
  segments: number
  /** segments held back the extra `holdMs` */
  held: number
  /** how late the relay's timers wrote segments after their due time (ms) */
  latenessMeanMs: number
  latenessMaxMs: number
}

/** a run of bytes, or the end of the stream (null), and when it may go */
interface Segment { due: number, bytes: Buffer | null }

/** One direction of one connection: a FIFO of segments each released at its due time. */
class DelayedPipe {
  private readonly queue: Segment[] = []
  private head = 0
  private lastDue = 0
  private queuedBytes = 0
  private timer: NodeJS.Timeout | null = null
  private waitingForDrain = false
  private to: Socket | null = null

  constructor (private readonly from: Socket, private readonly relay: DelayRelay) {
    from.on('data', (chunk: Buffer) => { this.take(chunk) })
    from.on('end', () => { this.push({ due: this.dueAfter(0), bytes: null }) })
  }

  /** The socket the segments go to, once it is connected: those already due go at once. */
  attach (to: Socket): void {
    this.to = to
    to.on('drain', () => { this.waitingForDrain = false; this.resumeIfClear() })
    this.release()
  }

  stop (): void {
    if (this.timer !== null) clearTimeout(this.timer)
    this.timer = null
    this.queue.length = 0
    this.head = 0
    this.queuedBytes = 0
  }

  private dueAfter (extra: number): number {
    this.lastDue = Math.max(this.lastDue, this.relay.now() + this.relay.init.delayMs + extra)
    return this.lastDue
  }

  private take (chunk: Buffer): void {
    const { segmentBytes, holdProbability, holdMs } = this.relay.init
    for (let at = 0; at < chunk.length; at += segmentBytes) {
      const held = holdProbability > 0 && this.relay.draw() < holdProbability
      const bytes = chunk.subarray(at, Math.min(chunk.length, at + segmentBytes))
      this.relay.counted(bytes.length, held)
      this.push({ due: this.dueAfter(held ? holdMs : 0), bytes })
    }
    if (this.queuedBytes > this.relay.init.maxQueuedBytes) this.from.pause()
  }

  private push (segment: Segment): void {
    this.queue.push(segment)
    this.queuedBytes += segment.bytes?.length ?? 0
    if (this.queue.length - this.head === 1) this.schedule()
  }

  private schedule (): void {
    if (this.timer !== null || this.to === null) return
    const next = this.queue[this.head]
    if (next === undefined) return
    this.timer = setTimeout(() => { this.timer = null; this.release() }, Math.max(0, next.due - this.relay.now()))
  }

  /** Writes every segment now due, as one write (the end of the stream when its turn comes). */
  private release (): void {
    const to = this.to
    if (to === null || to.destroyed) return
    const now = this.relay.now()
    const due: Buffer[] = []
    let ended = false
    while (this.head < this.queue.length) {
      const segment = this.queue[this.head] as Segment
      if (segment.due > now) break
      this.head++
      this.relay.late(now - segment.due)
      if (segment.bytes === null) { ended = true; break }
      due.push(segment.bytes)
      this.queuedBytes -= segment.bytes.length
    }
    if (this.head >= 1024 && this.head * 2 >= this.queue.length) { this.queue.splice(0, this.head); this.head = 0 }
    if (due.length > 0 && !to.write(due.length === 1 ? due[0] as Buffer : Buffer.concat(due))) {
      this.waitingForDrain = true
      this.from.pause()
    }
    if (ended) { to.end(); return }
    this.resumeIfClear()
    this.schedule()
  }

  private resumeIfClear (): void {
    if (!this.waitingForDrain && this.queuedBytes <= this.relay.init.maxQueuedBytes && this.from.isPaused()) this.from.resume()
  }
}

export class DelayRelay {
  readonly init: DelayRelayInit
  readonly now: () => number
  private readonly servers: Server[] = []
  /** every open connection's closer */
  private readonly open = new Set<() => void>()
  private readonly rng: Rng
  private readonly totals = { connections: 0, refused: 0, failedDials: 0, bytes: 0, segments: 0, held: 0, lateness: 0, latenessMax: 0, released: 0 }

  constructor (init: DelayRelayInit, private readonly components: DelayRelayComponents = {}) {
    this.init = init
    this.rng = components.rng ?? createRng(init.seed)
    this.now = components.now ?? (() => performance.now())
  }

  /** @internal the next draw of the held-segment coin */
  draw (): number {
    return this.rng()
  }

  /** @internal */
  counted (bytes: number, held: boolean): void {
    this.totals.bytes += bytes
    this.totals.segments++
    if (held) this.totals.held++
  }

  /** @internal */
  late (ms: number): void {
    this.totals.released++
    this.totals.lateness += ms
    this.totals.latenessMax = Math.max(this.totals.latenessMax, ms)
  }

  /** Listens on every route's address; rejects (and closes what it opened) when one cannot be bound. */
  async start (): Promise<void> {
    try {
      for (const route of this.init.routes) {
        const server = createServer({ pauseOnConnect: true, noDelay: true, allowHalfOpen: true }, (client) => { this.accept(client, route) })
        this.servers.push(server)
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject)
          server.listen(route.listen.port, route.listen.host, () => { server.off('error', reject); resolve() })
        })
      }
    } catch (error) {
      await this.stop()
      throw error
    }
  }

  /** Closes every connection and stops listening. */
  async stop (): Promise<void> {
    for (const close of [...this.open]) close()
    await Promise.all(this.servers.map(async (server) => await new Promise<void>((resolve) => { server.close(() => { resolve() }) })))
    this.servers.length = 0
  }

  stats (): RelayStats {
    const { connections, refused, failedDials, bytes, segments, held, lateness, latenessMax, released } = this.totals
    return { connections, open: this.open.size, refused, failedDials, bytes, segments, held, latenessMeanMs: released === 0 ? 0 : lateness / released, latenessMaxMs: latenessMax }
  }

  private accept (client: Socket, route: RelayRoute): void {
    const listen = `${route.listen.host}:${route.listen.port}`
    if (this.open.size >= this.init.maxConnections) {
      this.totals.refused++
      this.components.onEvent?.('relay.refused', { listen, open: this.open.size })
      client.destroy()
      return
    }
    this.totals.connections++
    const forward = new DelayedPipe(client, this)
    let backward: DelayedPipe | null = null
    let upstream: Socket | null = null
    let dial: NodeJS.Timeout | null = null
    let closedSockets = 0
    const close = (): void => {
      if (!this.open.delete(close)) return
      if (dial !== null) clearTimeout(dial)
      forward.stop()
      backward?.stop()
      client.destroy()
      upstream?.destroy()
    }
    this.open.add(close)
    // a connection is done when both sockets have closed (each after both its directions ended), or
    // at once when either is reset
    const onClose = (hadError: boolean): void => { if (hadError || ++closedSockets === 2) close() }
    client.on('error', close)
    client.on('close', onClose)
    client.resume()
    // the onward connection opens a one-way delay after the client's (the SYN's journey)
    dial = setTimeout(() => {
      dial = null
      const socket = createConnection({ host: route.target.host, port: route.target.port, noDelay: true, allowHalfOpen: true, ...(route.source === undefined ? {} : { localAddress: route.source }) })
      upstream = socket
      let connected = false
      socket.on('error', (error: Error) => {
        if (!connected) {
          this.totals.failedDials++
          this.components.onEvent?.('relay.dial.failed', { listen, target: `${route.target.host}:${route.target.port}`, reason: error.message })
        }
        close()
      })
      socket.on('close', onClose)
      socket.once('connect', () => {
        connected = true
        forward.attach(socket)
        backward = new DelayedPipe(socket, this)
        backward.attach(client)
      })
    }, this.init.delayMs)
  }
}
