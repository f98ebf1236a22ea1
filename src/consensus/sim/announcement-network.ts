import type { Rng } from '../types.ts'

/**
 * An in-memory stand-in for the federation's announcement topic, for the agreement's simulation and
 * tests: what a member publishes goes to every other member, each copy lost or delayed on its own,
 * with seeded faults. Time is in milliseconds, as the agreement machine counts it. Every random draw
 * comes from the injected rng, in the order copies are published, so a run is reproducible from its
 * seed.
 */
export interface AnnouncementNetworkOptions {
  members: readonly string[]
  rng: Rng
  /** probability that one copy of an announcement (to one member) is lost */
  loss?: number
  /** each copy takes a delay uniform in [min, max] milliseconds */
  delayMs?: { min: number, max: number }
}

export interface AnnouncementDelivery<A> {
  from: string
  to: string
  announcement: A
}

interface InFlight<A> extends AnnouncementDelivery<A> { due: number, order: number }

export interface AnnouncementNetworkCounters {
  /** announcements published, per member */
  published: Map<string, number>
  /** copies sent (one per other member), lost ones included */
  copies: number
  lost: number
  delivered: number
}

export class AnnouncementNetwork<A> {
  readonly members: readonly string[]
  private readonly memberSet: ReadonlySet<string>
  private readonly rng: Rng
  private readonly loss: number
  private readonly delay: { min: number, max: number }
  private readonly isolated = new Set<string>()
  private queue: Array<InFlight<A>> = []
  private sent = 0
  private readonly published = new Map<string, number>()
  private copies = 0
  private lost = 0
  private delivered = 0

  constructor (options: AnnouncementNetworkOptions) {
    this.members = [...options.members]
    this.memberSet = new Set(this.members)
    if (this.memberSet.size !== this.members.length) throw new RangeError('announcement network members must be distinct')
    this.rng = options.rng
    this.loss = options.loss ?? 0
    this.delay = options.delayMs ?? { min: 0, max: 0 }
    if (!(this.loss >= 0 && this.loss <= 1)) throw new RangeError(`loss must be a probability, got ${this.loss}`)
    if (!(Number.isFinite(this.delay.min) && this.delay.min >= 0 && this.delay.max >= this.delay.min && Number.isFinite(this.delay.max))) {
      throw new RangeError(`delayMs must be 0 <= min <= max, got ${this.delay.min}..${this.delay.max}`)
    }
    for (const member of this.members) this.published.set(member, 0)
  }

  /** The member hears nothing and reaches no one until it rejoins (what it publishes is lost). */
  isolate (member: string): void { this.isolated.add(this.check(member)) }
  rejoin (member: string): void { this.isolated.delete(this.check(member)) }

  private check (member: string): string {
    if (!this.memberSet.has(member)) throw new RangeError(`unknown member ${member}`)
    return member
  }

  /** Publishes at `now` to every other member: each copy is lost or delayed on its own draw. */
  publish (from: string, announcement: A, now: number): void {
    this.check(from)
    this.published.set(from, (this.published.get(from) ?? 0) + 1)
    for (const to of this.members) {
      if (to === from) continue
      this.copies++
      const lost = this.loss > 0 && this.rng() < this.loss
      const delay = this.delay.max > this.delay.min ? this.delay.min + Math.floor(this.rng() * (this.delay.max - this.delay.min + 1)) : this.delay.min
      if (lost || this.isolated.has(from)) {
        this.lost++
        continue
      }
      this.queue.push({ from, to, announcement, due: now + delay, order: this.sent++ })
    }
  }

  /**
   * The copies due by `now`, earliest first (copies due at the same time in the order they were
   * published). A copy to an isolated member is lost.
   */
  deliverDue (now: number): Array<AnnouncementDelivery<A>> {
    const due: Array<InFlight<A>> = []
    const later: Array<InFlight<A>> = []
    for (const item of this.queue) (item.due <= now ? due : later).push(item)
    this.queue = later
    due.sort((a, b) => a.due - b.due || a.order - b.order)
    const delivered: Array<AnnouncementDelivery<A>> = []
    for (const { from, to, announcement } of due) {
      if (this.isolated.has(to)) {
        this.lost++
        continue
      }
      this.delivered++
      delivered.push({ from, to, announcement })
    }
    return delivered
  }

  /** Copies published and neither delivered nor lost yet. */
  inFlight (): number {
    return this.queue.length
  }

  counters (): AnnouncementNetworkCounters {
    return { published: new Map(this.published), copies: this.copies, lost: this.lost, delivered: this.delivered }
  }
}
