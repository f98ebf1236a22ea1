import { TopicValidatorResult, type Message } from '@libp2p/gossipsub'
import { peerIdFromString } from '@libp2p/peer-id'
import { combineSignals, sleep, throwIfAborted, withTimeout } from './abort.ts'
import { checkConsensusMessage, decodeConsensusMessage, encodeConsensusMessage, type RoundWindowFn } from './codec.ts'
import { DEFAULT_TRANSPORT, directProtocol, peerTopic } from '../constants.ts'
import { DirectChannel } from './direct.ts'
import { FRAME_HEADER_BYTES, writeFrameHeader } from './framing.ts'
import { federationGraph } from '../federation.ts'
import { RoundWindows, roundWindowsInit } from './round-window.ts'
import { diameter } from '../../consensus/graph.ts'
import {
  MESSAGE_REJECTION_CODES,
  MessageRejectedError,
  MessageUnknownJobError,
  NotANeighbourError,
  NotStartedError,
  PeerConfigError,
  PeerUnreachableError,
  PublishFailedError,
  type MessageRejectionCode
} from '../errors.ts'
import type { PeerNode } from './node.ts'
import type { ConsensusMessage, Transport } from '../../consensus/types.ts'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'

/**
 * The consensus Transport over a PeerNode.
 *
 * broadcast: published on this peer's own topic, `/epimesh/<federation>/peer/<peer id>`, to which only
 * its graph neighbours subscribe (or, with `broadcastVia: 'direct'`, written to each neighbour's direct
 * stream). send: always the direct stream, so a private message reaches that neighbour and no one else.
 *
 * Inbound, both carriers apply the same checks before a message reaches a handler: size, well-formed
 * bytes, finite values, the claimed sender equal to the authenticated one (topic owner and gossipsub's
 * verified author; the stream's remote peer), the recipient, and the round window of a job this peer
 * runs (`rounds`, which the round driver keeps up to date; see RoundWindows). Each refusal is counted
 * by code in `stats()` and otherwise ignored: nothing a peer sends can throw here. What its author is
 * answerable for (malformed, non-finite, oversized, wrong sender or recipient, not a neighbour) also
 * counts against the author's gossipsub score: Reject on a topic, a report to the node on a direct
 * stream. A round outside the window or a job not run here depends on this peer's own progress, so it
 * costs its author nothing (Ignore).
 */

export type BroadcastCarrier = 'gossipsub' | 'direct'

export interface Libp2pTransportInit {
  broadcastVia?: BroadcastCarrier
  /** default: the node's maxMessageBytes */
  maxMessageBytes?: number
  /** how long `start()` waits for neighbours' subscriptions (gossipsub) or streams (direct) */
  readyTimeoutMs?: number
  streamOpenTimeoutMs?: number
  /**
   * the rounds accepted per job, instead of the transport's own `rounds` (which refuses jobs that no
   * driver here runs); `anyRound` accepts every message
   */
  roundWindow?: RoundWindowFn
}

/** A round window with no opinion: every job, every round (tests and benchmarks without a round driver). */
export const anyRound: RoundWindowFn = () => undefined

export type Libp2pTransportConfig = Required<Omit<Libp2pTransportInit, 'roundWindow'>> & { roundWindow?: RoundWindowFn }

export interface Libp2pTransportComponents {
  node: PeerNode
  logger?: Logger
}

export interface TransportStats {
  /** inbound messages, before any check (gossipsub duplicates are dropped before this count) */
  received: number
  accepted: number
  rejected: Record<MessageRejectionCode, number>
  /** message copies handed to the network: a broadcast counts once per neighbour it reached */
  sent: number
  /** sends and broadcasts that failed to reach a neighbour */
  sendFailures: number
  /** encoded consensus bytes, without transport framing, signatures or encryption */
  bytesSent: number
  bytesReceived: number
}

export interface ReadyReport {
  /** neighbours ready to receive this peer's broadcasts */
  ready: string[]
  missing: string[]
}

export function createLibp2pTransportInit (init: Libp2pTransportInit = {}): Libp2pTransportConfig {
  const config: Libp2pTransportConfig = { ...DEFAULT_TRANSPORT }
  for (const [key, value] of Object.entries(init)) if (value !== undefined) (config as Record<string, unknown>)[key] = value
  if (config.broadcastVia !== 'gossipsub' && config.broadcastVia !== 'direct') throw new PeerConfigError('broadcastVia', `must be 'gossipsub' or 'direct', got ${String(config.broadcastVia)}`)
  for (const field of ['maxMessageBytes', 'readyTimeoutMs', 'streamOpenTimeoutMs'] as const) {
    if (!Number.isFinite(config[field]) || config[field] <= 0) throw new PeerConfigError(field, `must be a positive number, got ${config[field]}`)
  }
  return config
}

export class Libp2pTransport implements Transport {
  readonly self: string
  readonly config: Libp2pTransportConfig
  private readonly node: PeerNode
  private readonly logger: Logger | undefined
  private readonly direct: DirectChannel
  private readonly ownTopic: string
  /** topic -> the neighbour that owns it */
  private readonly neighbourTopics: Map<string, string>
  private readonly handlers = new Set<(message: ConsensusMessage) => void>()
  /** validated gossipsub messages, from the validator to the 'message' event (the same object) */
  private readonly validated = new WeakMap<Message, ConsensusMessage>()
  private roundWindow: RoundWindowFn | undefined
  /** the windows of the jobs the round drivers run here; pass `rounds.track(job)` to driveRounds */
  readonly rounds: RoundWindows
  private controller: AbortController | null = null
  private readonly counters = {
    received: 0,
    accepted: 0,
    rejected: Object.fromEntries(MESSAGE_REJECTION_CODES.map((code) => [code, 0])) as Record<MessageRejectionCode, number>,
    sent: 0,
    sendFailures: 0,
    bytesSent: 0,
    bytesReceived: 0
  }

  private readonly onGossip = (event: CustomEvent<Message>): void => {
    const message = this.validated.get(event.detail)
    if (message === undefined) return
    this.validated.delete(event.detail)
    this.deliver(message)
  }

  constructor (config: Libp2pTransportConfig, components: Libp2pTransportComponents) {
    this.config = config
    this.node = components.node
    this.logger = components.logger
    this.self = this.node.peerId
    this.roundWindow = config.roundWindow
    this.rounds = new RoundWindows(roundWindowsInit(diameter(federationGraph(this.node.federation))))
    const federationId = this.node.federation.federationId
    this.ownTopic = peerTopic(federationId, this.self)
    this.neighbourTopics = new Map(this.node.neighbours.map((peer) => [peerTopic(federationId, peer), peer]))
    this.direct = new DirectChannel({
      protocol: directProtocol(federationId),
      neighbours: this.node.neighbours,
      maxFrameBytes: config.maxMessageBytes,
      streamOpenTimeoutMs: config.streamOpenTimeoutMs
    }, { libp2p: this.node.libp2p, logger: this.logger }, {
      frame: (from, payload) => { this.receiveDirect(from, payload) },
      refused: (from, reason, bytes) => {
        this.counters.received++
        this.counters.bytesReceived += bytes
        this.reject(reason === 'oversized' ? 'MESSAGE_TOO_LARGE' : 'MESSAGE_NOT_NEIGHBOUR', from, 'direct')
      }
    })
  }

  neighbours (): readonly string[] {
    return this.node.neighbours
  }

  /** Replaces the round window; `undefined` goes back to the transport's own `rounds`. */
  setRoundWindow (roundWindow: RoundWindowFn | undefined): void {
    this.roundWindow = roundWindow
  }

  /**
   * Registers the direct protocol and the neighbours' topics, then waits (at most `readyTimeoutMs`)
   * until every neighbour can receive this peer's broadcasts. A neighbour still missing then is
   * reported, not fatal: the consensus machines go on without a silent neighbour.
   */
  async start (options: { signal?: AbortSignal } = {}): Promise<ReadyReport> {
    if (this.controller !== null) return await this.waitReady(options)
    if (!this.node.started) throw new NotStartedError('start the peer node before its transport')
    throwIfAborted(options.signal)
    this.controller = new AbortController()
    await this.direct.start()
    const pubsub = this.node.pubsub
    for (const [topic, owner] of this.neighbourTopics) {
      const ownerId = peerIdFromString(owner)
      pubsub.topicValidators.set(topic, (_propagationSource, message) => this.validateGossip(owner, ownerId, message))
    }
    pubsub.addEventListener('message', this.onGossip)
    for (const topic of this.neighbourTopics.keys()) pubsub.subscribe(topic)
    return await this.waitReady(options)
  }

  async stop (): Promise<void> {
    const controller = this.controller
    if (controller === null) return
    this.controller = null
    controller.abort()
    const pubsub = this.node.pubsub
    pubsub.removeEventListener('message', this.onGossip)
    for (const topic of this.neighbourTopics.keys()) {
      pubsub.topicValidators.delete(topic)
      if (pubsub.getTopics().includes(topic)) pubsub.unsubscribe(topic)
    }
    await this.direct.stop()
  }

  /** Waits until each neighbour is subscribed to this peer's topic (gossipsub) or has an open direct stream. */
  async waitReady (options: { signal?: AbortSignal, timeoutMs?: number } = {}): Promise<ReadyReport> {
    const signal = combineSignals(options.signal, this.stopSignal())
    const timeoutMs = options.timeoutMs ?? this.config.readyTimeoutMs
    const neighbours = this.node.neighbours
    if (this.config.broadcastVia === 'gossipsub') {
      const missing = await this.node.waitForSubscribers(this.ownTopic, neighbours, { signal, timeoutMs })
      return { ready: neighbours.filter((peer) => !missing.includes(peer)), missing }
    }
    const deadline = withTimeout(signal, timeoutMs)
    await this.node.waitForNeighbours({ signal: deadline, timeoutMs })
    // A neighbour connected but not yet serving the direct protocol (two peers starting at the same
    // moment: the dial can come before the other side's handler) is tried again until the deadline; one
    // with no connection is reported missing at once (dialling is the neighbour links' job).
    const openWhileConnected = async (peer: string): Promise<void> => {
      for (let pause = 25; ; pause = Math.min(2 * pause, 400)) {
        try {
          await this.direct.open(peer, { signal: deadline })
          return
        } catch (error) {
          if (deadline.aborted || !this.direct.connected(peer)) throw error
          await sleep(pause, deadline)
        }
      }
    }
    const opened = await Promise.allSettled(neighbours.map(openWhileConnected))
    return {
      ready: neighbours.filter((_, index) => opened[index]?.status === 'fulfilled'),
      missing: neighbours.filter((_, index) => opened[index]?.status !== 'fulfilled')
    }
  }

  async send (to: string, message: ConsensusMessage): Promise<void> {
    const signal = this.stopSignal()
    if (!this.node.neighbours.includes(to)) throw new NotANeighbourError(`${to} is not a graph neighbour of ${this.self}`)
    const frame = this.frame(message)
    try {
      await this.direct.write(to, frame, { signal })
    } catch (err) {
      this.counters.sendFailures++
      throw err
    }
    this.counters.sent++
    this.counters.bytesSent += frame.byteLength - FRAME_HEADER_BYTES
  }

  /** Encoded once, with its stream frame's header, whatever the number of neighbours it goes to. */
  private frame (message: ConsensusMessage): Uint8Array {
    return writeFrameHeader(encodeConsensusMessage(message, { maxBytes: this.config.maxMessageBytes, headroom: FRAME_HEADER_BYTES }))
  }

  async broadcast (message: ConsensusMessage): Promise<void> {
    const signal = this.stopSignal()
    if (message.to !== undefined) throw new TypeError('a message with `to` is private: use send()')
    if (this.config.broadcastVia === 'direct') {
      const frame = this.frame(message)
      const neighbours = this.node.neighbours
      // written at once to every neighbour whose stream is open and has room; the others are waited for
      let waiting: Array<Promise<void>> | null = null
      let waitingFor: string[] | null = null
      for (const peer of neighbours) {
        const written = this.direct.write(peer, frame, { signal })
        if (written === null) continue
        ;(waiting ??= []).push(written)
        ;(waitingFor ??= []).push(peer)
      }
      const results = waiting === null ? [] : await Promise.allSettled(waiting)
      const failed = (waitingFor ?? []).filter((_, index) => results[index]?.status === 'rejected')
      const reached = neighbours.length - failed.length
      this.counters.sent += reached
      this.counters.bytesSent += reached * (frame.byteLength - FRAME_HEADER_BYTES)
      if (failed.length > 0) {
        this.counters.sendFailures++
        throw new PeerUnreachableError(`broadcast did not reach ${failed.join(', ')}`, { cause: results.find((result) => result.status === 'rejected')?.reason })
      }
      return
    }
    const bytes = encodeConsensusMessage(message, { maxBytes: this.config.maxMessageBytes })
    let recipients: number
    try {
      recipients = (await this.node.pubsub.publish(this.ownTopic, bytes)).recipients.length
    } catch (cause) {
      this.counters.sendFailures++
      throw new PublishFailedError(`round message not published: ${(cause as Error).message}`, { cause })
    }
    this.counters.sent += recipients
    this.counters.bytesSent += recipients * bytes.byteLength
  }

  onMessage (handler: (message: ConsensusMessage) => void): () => void {
    this.handlers.add(handler)
    return () => { this.handlers.delete(handler) }
  }

  stats (): TransportStats {
    return { ...this.counters, rejected: { ...this.counters.rejected } }
  }

  private stopSignal (): AbortSignal {
    if (this.controller === null) throw new NotStartedError('the transport is not started')
    return this.controller.signal
  }

  private validateGossip (owner: string, ownerId: PeerId, message: Message): TopicValidatorResult {
    this.counters.received++
    this.counters.bytesReceived += message.data.byteLength
    // StrictSign: gossipsub has verified that `from` signed this; it must be the topic's owner.
    // (Compared as peer ids: rendering one as a string costs a base58 encoding per message.)
    if (message.type !== 'signed' || !message.from.equals(ownerId)) {
      return this.reject('MESSAGE_WRONG_SENDER', message.type === 'signed' ? message.from.toString() : 'anonymous', 'gossipsub')
    }
    try {
      const decoded = decodeConsensusMessage(message.data, { maxBytes: this.config.maxMessageBytes })
      this.check(decoded, owner, null)
      this.counters.accepted++
      this.validated.set(message, decoded)
      return TopicValidatorResult.Accept
    } catch (err) {
      const code = rejectionCode(err)
      this.reject(code, owner, 'gossipsub')
      // Late, early, or for a job not (or no longer, or not yet) run here: this peer's own progress
      // decides that, not the author's conduct; drop it without penalising author or relay.
      return IGNORED.has(code) ? TopicValidatorResult.Ignore : TopicValidatorResult.Reject
    }
  }

  private receiveDirect (from: string, payload: Uint8Array): void {
    this.counters.received++
    this.counters.bytesReceived += payload.byteLength
    try {
      const decoded = decodeConsensusMessage(payload, { maxBytes: this.config.maxMessageBytes })
      this.check(decoded, from, this.self)
      this.counters.accepted++
      this.deliver(decoded)
    } catch (err) {
      this.reject(rejectionCode(err), from, 'direct')
    }
  }

  /** Sender, recipient and round window; a job that no driver here runs or recently ran is refused last. */
  private check (message: ConsensusMessage, from: string, to: string | null): void {
    const explicit = this.roundWindow
    if (explicit !== undefined) {
      checkConsensusMessage(message, { from, to, roundWindow: explicit })
      return
    }
    const window = this.rounds.window(message.job, message.kind)
    checkConsensusMessage(message, { from, to, roundWindow: window === null ? undefined : () => window })
    if (window === null) throw new MessageUnknownJobError(`no job ${message.job.slice(0, 80)} runs here`)
  }

  private reject (code: MessageRejectionCode, from: string, carrier: BroadcastCarrier): TopicValidatorResult {
    this.counters.rejected[code]++
    this.logger?.debug({ code, from, carrier }, 'message rejected')
    // gossipsub scores a Reject itself; a direct stream has no score of its own
    if (carrier === 'direct' && !IGNORED.has(code)) this.node.reportInvalidMessage(from)
    return TopicValidatorResult.Reject
  }

  private deliver (message: ConsensusMessage): void {
    for (const handler of this.handlers) {
      try {
        handler(message)
      } catch (err) {
        this.logger?.warn({ err, from: message.from, kind: message.kind, round: message.round }, 'message handler failed')
      }
    }
  }
}

export function createLibp2pTransport (init: Libp2pTransportInit, components: Libp2pTransportComponents): Libp2pTransport {
  return new Libp2pTransport(createLibp2pTransportInit({ maxMessageBytes: components.node.config.maxMessageBytes, ...stripUndefined(init) }), components)
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>
}

/** Refusals that depend on this peer's own progress, not on what the author did. */
const IGNORED: ReadonlySet<MessageRejectionCode> = new Set(['MESSAGE_STALE_ROUND', 'MESSAGE_FUTURE_ROUND', 'MESSAGE_UNKNOWN_JOB'])

function rejectionCode (err: unknown): MessageRejectionCode {
  // Anything else escaping the codec is a bug there; it is still only counted, never thrown at the peer.
  return err instanceof MessageRejectedError ? err.code : 'MESSAGE_MALFORMED'
}
