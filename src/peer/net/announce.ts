import { TopicValidatorResult, type GossipSub, type Message } from '@libp2p/gossipsub'
import { AnnouncementRejectedError, PublishFailedError } from '../errors.ts'
import type { Logger } from 'pino'
import type { ZodType } from 'zod'

/**
 * The federation-wide topic: job proposals, status, log checkpoints. The channel carries opaque bytes
 * (or JSON) signed by their author; what they mean is up to the layer above. Every announcement must
 * come from a member, be signed (gossipsub StrictSign, so `from` is authenticated) and fit the size
 * limit; a validator set by the layer above can refuse more, and gossipsub then neither delivers nor
 * forwards it.
 */

export interface Announcement {
  /** the authenticated author's peer id */
  from: string
  data: Uint8Array
}

export type AnnouncementVerdict = 'accept' | 'reject' | 'ignore'
export type AnnouncementValidator = (announcement: Announcement) => AnnouncementVerdict

export interface AnnouncementStats {
  received: number
  accepted: number
  rejected: number
  ignored: number
  published: number
  /** JSON subscribers' refusals: unparseable, or not matching the subscriber's schema */
  jsonRejected: number
  /** ignored because their author was over its rate */
  rateLimited: number
}

export interface AnnounceChannelInit {
  topic: string
  members: ReadonlySet<string>
  maxBytes: number
  /**
   * Per member: announcements accepted per second on average, and in a burst. Beyond that a member's
   * announcements are ignored (neither delivered nor forwarded) and counted: one member cannot make
   * the others spend their time on its floods. Honest traffic (a few proposals and answers, a
   * checkpoint every 100 rounds and its countersignatures) stays far below.
   */
  ratePerSecond?: number
  burst?: number
  /** clock for the rate limit (tests) */
  now?: () => number
}

export const ANNOUNCEMENT_RATE = Object.freeze({ ratePerSecond: 20, burst: 200 })

export interface AnnounceChannelComponents {
  pubsub: GossipSub
  logger?: Logger
}

const utf8Encoder = new TextEncoder()
const utf8Decoder = new TextDecoder('utf-8', { fatal: true })

export class AnnounceChannel {
  readonly topic: string
  private validator: AnnouncementValidator | undefined
  private readonly handlers = new Set<(announcement: Announcement) => void>()
  private readonly counters: AnnouncementStats = { received: 0, accepted: 0, rejected: 0, ignored: 0, published: 0, jsonRejected: 0, rateLimited: 0 }
  /** per member: tokens left and when they were last topped up */
  private readonly buckets = new Map<string, { tokens: number, at: number }>()
  private started = false
  private readonly onMessage = (event: CustomEvent<Message>): void => {
    const message = event.detail
    if (message.topic !== this.topic || message.type !== 'signed') return
    // A copy: the payload may be a view into a buffer gossipsub shares (and Buffer#slice would not copy).
    const announcement: Announcement = { from: message.from.toString(), data: new Uint8Array(message.data) }
    for (const handler of this.handlers) {
      try {
        handler(announcement)
      } catch (err) {
        this.components.logger?.warn({ err, from: announcement.from }, 'announcement handler failed')
      }
    }
  }

  constructor (private readonly init: AnnounceChannelInit, private readonly components: AnnounceChannelComponents) {
    this.topic = init.topic
  }

  start (): void {
    if (this.started) return
    this.started = true
    const { pubsub } = this.components
    pubsub.topicValidators.set(this.topic, (_propagationSource, message) => this.validate(message))
    pubsub.addEventListener('message', this.onMessage)
    pubsub.subscribe(this.topic)
  }

  stop (): void {
    if (!this.started) return
    this.started = false
    const { pubsub } = this.components
    pubsub.removeEventListener('message', this.onMessage)
    pubsub.topicValidators.delete(this.topic)
    if (pubsub.getTopics().includes(this.topic)) pubsub.unsubscribe(this.topic)
  }

  /** Refuses announcements beyond the channel's own checks; `undefined` accepts all well-formed ones. */
  setValidator (validator: AnnouncementValidator | undefined): void {
    this.validator = validator
  }

  /** Publishes to every member subscribed to the topic; returns how many it reached directly. */
  async publish (data: Uint8Array): Promise<number> {
    if (data.byteLength > this.init.maxBytes) {
      throw new AnnouncementRejectedError(`the announcement takes ${data.byteLength} bytes, over the limit of ${this.init.maxBytes}`)
    }
    try {
      const result = await this.components.pubsub.publish(this.topic, data)
      this.counters.published++
      return result.recipients.length
    } catch (cause) {
      throw new PublishFailedError(`announcement not published: ${(cause as Error).message}`, { cause })
    }
  }

  async publishJson (value: unknown): Promise<number> {
    return await this.publish(utf8Encoder.encode(JSON.stringify(value)))
  }

  /** Returns an unsubscribe function. */
  subscribe (handler: (announcement: Announcement) => void): () => void {
    this.handlers.add(handler)
    return () => { this.handlers.delete(handler) }
  }

  /** Delivers only announcements that are JSON and match `schema`; the others are counted and dropped. */
  subscribeJson<T> (schema: ZodType<T>, handler: (value: T, from: string) => void): () => void {
    return this.subscribe((announcement) => {
      let json: unknown
      try {
        json = JSON.parse(utf8Decoder.decode(announcement.data))
      } catch {
        this.counters.jsonRejected++
        return
      }
      const parsed = schema.safeParse(json)
      if (!parsed.success) {
        this.counters.jsonRejected++
        return
      }
      handler(parsed.data, announcement.from)
    })
  }

  stats (): AnnouncementStats {
    return { ...this.counters }
  }

  /** A token bucket per member (members are few and known, so the map is bounded by the federation). */
  private withinRate (author: string): boolean {
    const rate = this.init.ratePerSecond ?? ANNOUNCEMENT_RATE.ratePerSecond
    const burst = this.init.burst ?? ANNOUNCEMENT_RATE.burst
    const now = (this.init.now ?? Date.now)()
    const bucket = this.buckets.get(author) ?? { tokens: burst, at: now }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * rate)
    bucket.at = now
    this.buckets.set(author, bucket)
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  private validate (message: Message): TopicValidatorResult {
    this.counters.received++
    if (message.type !== 'signed' || !this.init.members.has(message.from.toString()) || message.data.byteLength > this.init.maxBytes) {
      this.counters.rejected++
      return TopicValidatorResult.Reject
    }
    if (!this.withinRate(message.from.toString())) {
      this.counters.rateLimited++
      this.counters.ignored++
      return TopicValidatorResult.Ignore
    }
    let verdict: AnnouncementVerdict = 'accept'
    try {
      verdict = this.validator?.({ from: message.from.toString(), data: message.data }) ?? 'accept'
    } catch (err) {
      this.components.logger?.warn({ err }, 'announcement validator failed')
      verdict = 'ignore'
    }
    if (verdict === 'accept') {
      this.counters.accepted++
      return TopicValidatorResult.Accept
    }
    if (verdict === 'reject') this.counters.rejected++
    else this.counters.ignored++
    return verdict === 'reject' ? TopicValidatorResult.Reject : TopicValidatorResult.Ignore
  }
}
