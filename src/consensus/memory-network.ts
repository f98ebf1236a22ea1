import type { Graph } from './graph.ts'
import type { ConsensusMessage, Rng, Transport } from './types.ts'

/**
 * The in-memory network of the simulator and the tests, with seeded faults: a link that fails for a
 * whole round (both directions, `linkLoss`), single lost messages (`messageLoss`), delays of whole
 * rounds, cut and healed links, isolated and killed peers. It also counts what a real network would
 * carry.
 */
export interface MemoryNetworkOptions {
  graph: Graph
  rng: Rng
  /**
   * probability that an edge fails for a round, both directions: the messages of round r of a kind
   * between two peers are all lost or all delivered, whenever each peer sends them
   */
  linkLoss?: number
  /** probability that a single message is lost */
  messageLoss?: number
  /** probability that a message is held back, and for how many rounds at most */
  delay?: { probability: number, maxRounds: number }
}

/**
 * Bytes a message takes on the wire, as the peer's codec writes it: a fixed header of 24 bytes, the
 * UTF-8 lengths of its strings, 8 bytes per float and the raw data.
 */
export function encodedSize (message: ConsensusMessage): number {
  const text = message.job.length + message.kind.length + message.from.length + (message.to?.length ?? 0)
  return 24 + text + 8 * message.values.length + message.data.length
}

interface InFlight { from: number, to: number, message: ConsensusMessage, due: number, attempt: number }

export class MemoryNetwork {
  readonly graph: Graph
  private readonly rng: Rng
  private readonly linkLoss: number
  private readonly messageLoss: number
  private readonly delay: { probability: number, maxRounds: number }
  private readonly index: Map<string, number>
  private readonly cuts = new Set<string>()
  private readonly lossSeed: number
  /** how often each (from, to, kind, round) message has been sent: resends get fresh loss draws */
  private readonly attempts = new Map<string, number>()
  private readonly dead = new Set<number>()
  private readonly isolated = new Set<number>()
  private queue: InFlight[] = []
  round = 0
  messages = 0
  bytes = 0
  lost = 0
  readonly byKind = new Map<string, number>()

  constructor (options: MemoryNetworkOptions) {
    this.graph = options.graph
    this.rng = options.rng
    this.linkLoss = options.linkLoss ?? 0
    this.messageLoss = options.messageLoss ?? 0
    this.delay = options.delay ?? { probability: 0, maxRounds: 0 }
    for (const [field, value] of [['linkLoss', this.linkLoss], ['messageLoss', this.messageLoss], ['delay.probability', this.delay.probability]] as const) {
      if (!(value >= 0 && value <= 1)) throw new RangeError(`${field} must be a probability, got ${value}`)
    }
    this.index = new Map(options.graph.names.map((name, position) => [name, position]))
    this.lossSeed = Math.floor(this.rng() * 4294967296)
  }

  /** Whether edge a-b is down for `round` of messages of `kind`: a hash, so both directions agree. */
  private linkDown (a: number, b: number, kind: string, round: number, attempt: number): boolean {
    if (this.linkLoss <= 0) return false
    const key = `${Math.min(a, b)}-${Math.max(a, b)}/${kind.replace(/\.mask$/, '')}/${round}/${attempt}`
    let hash = this.lossSeed ^ 0x811c9dc5
    for (let index = 0; index < key.length; index++) hash = Math.imul(hash ^ key.charCodeAt(index), 0x01000193)
    hash = Math.imul(hash ^ (hash >>> 16), 0x85ebca6b)
    hash = Math.imul(hash ^ (hash >>> 13), 0xc2b2ae35)
    return ((hash ^ (hash >>> 16)) >>> 0) / 4294967296 < this.linkLoss
  }

  private static edgeKey (a: number, b: number): string {
    return a < b ? `${a}-${b}` : `${b}-${a}`
  }

  nodeOf (name: string): number {
    const node = this.index.get(name)
    if (node === undefined) throw new RangeError(`unknown peer ${name}`)
    return node
  }

  /** Starts a new tick. Call once per tick, before delivering. */
  beginRound (): void {
    this.round++
  }

  cut (a: string, b: string): void { this.cuts.add(MemoryNetwork.edgeKey(this.nodeOf(a), this.nodeOf(b))) }
  heal (a: string, b: string): void { this.cuts.delete(MemoryNetwork.edgeKey(this.nodeOf(a), this.nodeOf(b))) }
  isolate (name: string): void { this.isolated.add(this.nodeOf(name)) }
  rejoin (name: string): void { this.isolated.delete(this.nodeOf(name)) }
  kill (name: string): void { this.dead.add(this.nodeOf(name)) }
  restart (name: string): void { this.dead.delete(this.nodeOf(name)) }
  isAlive (node: number): boolean { return !this.dead.has(node) }

  /** Queues a peer's outbox: a message with `to` goes to that neighbour, one without to every neighbour. */
  send (from: number, message: ConsensusMessage): void {
    if (this.dead.has(from)) return
    const targets = message.to === undefined ? (this.graph.neighbours[from] ?? []) : [this.nodeOf(message.to)]
    for (const to of targets) {
      this.messages++
      const size = encodedSize(message)
      this.bytes += size
      this.byKind.set(message.kind, (this.byKind.get(message.kind) ?? 0) + 1)
      const extra = this.delay.probability > 0 && this.rng() < this.delay.probability ? 1 + Math.floor(this.rng() * this.delay.maxRounds) : 0
      const attemptKey = `${from}>${to}/${message.kind}/${message.round}`
      const attempt = this.attempts.get(attemptKey) ?? 0
      this.attempts.set(attemptKey, attempt + 1)
      this.queue.push({ from, to, message, due: this.round + 1 + extra, attempt })
    }
  }

  /** The messages due by this round that get through, in the order they were sent. */
  deliverDue (): Array<{ to: number, message: ConsensusMessage }> {
    const due: Array<{ to: number, message: ConsensusMessage }> = []
    const later: InFlight[] = []
    for (const item of this.queue) {
      if (item.due > this.round) {
        later.push(item)
        continue
      }
      const key = MemoryNetwork.edgeKey(item.from, item.to)
      const blocked = this.dead.has(item.to) || this.dead.has(item.from) || this.isolated.has(item.from) || this.isolated.has(item.to) ||
        this.cuts.has(key) || this.linkDown(item.from, item.to, item.message.kind, item.message.round, item.attempt) || (this.messageLoss > 0 && this.rng() < this.messageLoss)
      if (blocked) this.lost++
      else due.push({ to: item.to, message: item.message })
    }
    this.queue = later
    return due
  }
}

/** The Transport interface over a MemoryNetwork, for code written against Transport. */
export class MemoryTransport implements Transport {
  readonly self: string
  private readonly network: MemoryNetwork
  private readonly handlers = new Set<(message: ConsensusMessage) => void>()

  constructor (network: MemoryNetwork, self: string) {
    this.network = network
    this.self = self
  }

  neighbours (): readonly string[] {
    return (this.network.graph.neighbours[this.network.nodeOf(this.self)] ?? []).map((node) => this.network.graph.names[node] as string)
  }

  async send (to: string, message: ConsensusMessage): Promise<void> {
    this.network.send(this.network.nodeOf(this.self), { ...message, to })
  }

  async broadcast (message: ConsensusMessage): Promise<void> {
    this.network.send(this.network.nodeOf(this.self), message)
  }

  onMessage (handler: (message: ConsensusMessage) => void): () => void {
    this.handlers.add(handler)
    return () => { this.handlers.delete(handler) }
  }

  /** Hands a delivered message to the handlers (the simulation loop calls it). */
  deliver (message: ConsensusMessage): void {
    for (const handler of this.handlers) handler(message)
  }
}
