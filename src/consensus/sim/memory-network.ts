import type { Graph } from '../graph.ts'
import type { ConsensusMessage, Rng, Transport } from '../types.ts'
import { messagePayload, type MessageSigner } from '../audit/evidence.ts'

/**
 * The in-memory network of the simulator and the tests, with seeded faults: a link that fails for a
 * whole round (both directions, `linkLoss`), single lost messages (`messageLoss`), delays of whole
 * rounds, cut and healed links, isolated, killed and restarted peers. It also counts what a real
 * network would carry. Every random draw comes from the injected rng, in the order messages are sent
 * and delivered, so a run is reproducible from its seed.
 */
export interface MemoryNetworkOptions {
  /** who can reach whom: a message with `to` must name one of the sender's neighbours here */
  graph: Graph
  rng: Rng
  /**
   * probability that an edge fails for a round, both directions: the messages of round r of a kind
   * between two peers are all lost or all delivered, whenever each peer sends them (a resend of the
   * same round's message gets a fresh draw). The private `.mask` messages of a kind share its draw.
   */
  linkLoss?: number
  /** probability that a single message is lost, independently of every other */
  messageLoss?: number
  /** probability that a message is held back, and for how many ticks at most (uniform in 1..maxRounds) */
  delay?: { probability: number, maxRounds: number }
  /** each peer's signer: every message it sends is signed, as a real peer's transport does */
  signers?: (name: string) => MessageSigner
}

const HEADER_BYTES = 24

function utf8Length (text: string): number {
  let bytes = 0
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index)
    if (code < 0x80) bytes += 1
    else if (code < 0x800) bytes += 2
    else if (code >= 0xd800 && code <= 0xdbff) {
      bytes += 4
      index++
    } else bytes += 3
  }
  return bytes
}

/**
 * Bytes a message takes on the wire, an estimate of what the peer's codec writes: a fixed header of 24
 * bytes (round, lengths, tags), the UTF-8 bytes of job, kind, from and to, 8 bytes per float and the
 * raw data. The real codec lives with the network code; this only has to rank runs fairly.
 */
export function encodedSize (message: ConsensusMessage): number {
  const text = utf8Length(message.job) + utf8Length(message.kind) + utf8Length(message.from) + (message.to === undefined ? 0 : utf8Length(message.to))
  return HEADER_BYTES + text + 8 * message.values.length + message.data.length
}

interface InFlight { from: number, to: number, message: ConsensusMessage, due: number, attempt: number }

export interface MemoryNetworkCounters {
  /** messages sent (one per recipient of a broadcast), lost ones included */
  messages: number
  /** encodedSize of every message sent, lost ones included */
  bytes: number
  /** messages that did not arrive: link or message loss, a cut, an isolated or dead end */
  lost: number
  delivered: number
  /** messages sent, per kind */
  byKind: Map<string, number>
}

export class MemoryNetwork {
  readonly graph: Graph
  private readonly rng: Rng
  private readonly linkLoss: number
  private readonly messageLoss: number
  private readonly delay: { probability: number, maxRounds: number }
  private readonly index: Map<string, number>
  private readonly neighbourSets: Array<Set<number>>
  private readonly cuts = new Set<string>()
  private readonly lossSeed: number
  /** how often each (from, to, kind, round) message has been sent: resends get fresh link-loss draws */
  private readonly attempts = new Map<string, number>()
  private readonly dead = new Set<number>()
  private readonly isolated = new Set<number>()
  private readonly restartStates = new Map<number, unknown>()
  private readonly signers: Array<MessageSigner | null>
  private queue: InFlight[] = []
  /** the current tick, advanced by beginRound */
  round = 0
  messages = 0
  bytes = 0
  lost = 0
  delivered = 0
  readonly byKind = new Map<string, number>()
  /** messages and bytes sent by each peer (one per recipient, lost ones included), by node index */
  readonly sentBy: number[]
  readonly bytesBy: number[]

  constructor (options: MemoryNetworkOptions) {
    this.graph = options.graph
    this.rng = options.rng
    this.linkLoss = options.linkLoss ?? 0
    this.messageLoss = options.messageLoss ?? 0
    this.delay = options.delay ?? { probability: 0, maxRounds: 0 }
    for (const [field, value] of [['linkLoss', this.linkLoss], ['messageLoss', this.messageLoss], ['delay.probability', this.delay.probability]] as const) {
      if (!(value >= 0 && value <= 1)) throw new RangeError(`${field} must be a probability, got ${value}`)
    }
    if (this.delay.probability > 0 && !(Number.isInteger(this.delay.maxRounds) && this.delay.maxRounds >= 1)) {
      throw new RangeError(`delay.maxRounds must be a positive integer, got ${this.delay.maxRounds}`)
    }
    this.index = new Map(options.graph.names.map((name, position) => [name, position]))
    this.sentBy = options.graph.names.map(() => 0)
    this.bytesBy = options.graph.names.map(() => 0)
    this.neighbourSets = options.graph.neighbours.map((list) => new Set(list))
    this.lossSeed = Math.floor(this.rng() * 4294967296)
    const signers = options.signers
    this.signers = options.graph.names.map((name) => signers === undefined ? null : signers(name))
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

  /** The link a-b loses every message, both ways, until healed. */
  cut (a: string, b: string): void { this.cuts.add(MemoryNetwork.edgeKey(this.nodeOf(a), this.nodeOf(b))) }
  heal (a: string, b: string): void { this.cuts.delete(MemoryNetwork.edgeKey(this.nodeOf(a), this.nodeOf(b))) }
  /** Every link of the peer is down: it keeps running (its deadlines pass) but hears and reaches no one. */
  isolate (name: string): void { this.isolated.add(this.nodeOf(name)) }
  rejoin (name: string): void { this.isolated.delete(this.nodeOf(name)) }
  /** The peer crashes: it neither sends nor receives and the driver stops stepping it. */
  kill (name: string): void { this.dead.add(this.nodeOf(name)) }

  /**
   * The peer comes back. Without `state` the driver resumes it from the last state its machine
   * returned, which is what a peer that persists every state before sending has on disk, and sends
   * that state's messages again. With `state` (a snapshot taken earlier, to model a lost write) the
   * driver resumes from that instead and leaves the resending to the machine's deadlines.
   */
  restart (name: string, state?: unknown): void {
    const node = this.nodeOf(name)
    this.dead.delete(node)
    if (state !== undefined) this.restartStates.set(node, state)
  }

  isAlive (node: number): boolean { return !this.dead.has(node) }

  /** The state a restart asked the driver to resume `node` from, once. */
  takeRestartState (node: number): { state: unknown } | null {
    if (!this.restartStates.has(node)) return null
    const state = this.restartStates.get(node)
    this.restartStates.delete(node)
    return { state }
  }

  counters (): MemoryNetworkCounters {
    return { messages: this.messages, bytes: this.bytes, lost: this.lost, delivered: this.delivered, byKind: new Map(this.byKind) }
  }

  /** Queues a peer's outbox: a message with `to` goes to that neighbour, one without to every neighbour. */
  send (from: number, original: ConsensusMessage): void {
    if (this.dead.has(from)) return
    const signer = this.signers[from]
    const message = signer === null || signer === undefined || original.signature !== undefined ? original : { ...original, signature: signer.sign(messagePayload(original)) }
    let targets: readonly number[]
    if (message.to === undefined) {
      targets = this.graph.neighbours[from] ?? []
    } else {
      const to = this.nodeOf(message.to)
      if (this.neighbourSets[from]?.has(to) !== true) throw new RangeError(`${this.graph.names[from]} sent a private ${message.kind} message to ${message.to}, which is not its neighbour`)
      targets = [to]
    }
    const size = encodedSize(message)
    for (const to of targets) {
      this.messages++
      this.bytes += size
      this.sentBy[from] = (this.sentBy[from] as number) + 1
      this.bytesBy[from] = (this.bytesBy[from] as number) + size
      this.byKind.set(message.kind, (this.byKind.get(message.kind) ?? 0) + 1)
      const extra = this.delay.probability > 0 && this.rng() < this.delay.probability ? 1 + Math.floor(this.rng() * this.delay.maxRounds) : 0
      let attempt = 0
      if (this.linkLoss > 0) {
        const attemptKey = `${from}>${to}/${message.kind}/${message.round}`
        attempt = this.attempts.get(attemptKey) ?? 0
        this.attempts.set(attemptKey, attempt + 1)
      }
      this.queue.push({ from, to, message, due: this.round + 1 + extra, attempt })
    }
  }

  /**
   * Queues a message for one neighbour only, whatever its `to`: how a hostile member sends a message
   * that claims to be a broadcast to one neighbour and another to the next (equivocation). For
   * simulations of adversaries; honest machines use send().
   */
  sendTo (from: number, to: number, original: ConsensusMessage): void {
    if (this.dead.has(from)) return
    if (this.neighbourSets[from]?.has(to) !== true) throw new RangeError(`${this.graph.names[to]} is not a neighbour of ${this.graph.names[from]}`)
    const signer = this.signers[from]
    const message = signer === null || signer === undefined || original.signature !== undefined ? original : { ...original, signature: signer.sign(messagePayload(original)) }
    this.messages++
    this.bytes += encodedSize(message)
    this.byKind.set(message.kind, (this.byKind.get(message.kind) ?? 0) + 1)
    this.queue.push({ from, to, message, due: this.round + 1, attempt: 0 })
  }

  /**
   * The messages due by this tick that get through, in the order they were sent (a delayed message
   * comes in the order of its sending among those due with it). A message is lost when either end is
   * dead or isolated, the link is cut or down for its round, or the single-message loss draw says so.
   */
  deliverDue (): Array<{ to: number, message: ConsensusMessage }> {
    const due: Array<{ to: number, message: ConsensusMessage }> = []
    const later: InFlight[] = []
    for (const item of this.queue) {
      if (item.due > this.round) {
        later.push(item)
        continue
      }
      const blocked = this.dead.has(item.to) || this.dead.has(item.from) || this.isolated.has(item.from) || this.isolated.has(item.to) ||
        (this.cuts.size > 0 && this.cuts.has(MemoryNetwork.edgeKey(item.from, item.to))) ||
        this.linkDown(item.from, item.to, item.message.kind, item.message.round, item.attempt) ||
        (this.messageLoss > 0 && this.rng() < this.messageLoss)
      if (blocked) {
        this.lost++
      } else {
        this.delivered++
        due.push({ to: item.to, message: item.message })
      }
    }
    this.queue = later
    return due
  }

  /** Messages sent and neither delivered nor lost yet. */
  inFlight (): number {
    return this.queue.length
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
    const { to: _to, ...everyone } = message
    this.network.send(this.network.nodeOf(this.self), everyone)
  }

  onMessage (handler: (message: ConsensusMessage) => void): () => void {
    this.handlers.add(handler)
    return () => { this.handlers.delete(handler) }
  }

  /** Hands a delivered message to the handlers. */
  deliver (message: ConsensusMessage): void {
    for (const handler of [...this.handlers]) handler(message)
  }
}

/**
 * One tick for code that talks through MemoryTransports: starts the tick and hands every message due
 * to its recipient's handlers (a peer without a transport drops its messages). Returns how many were
 * handed over.
 */
export function deliverToTransports (network: MemoryNetwork, transports: readonly MemoryTransport[]): number {
  const byNode = new Map(transports.map((transport) => [network.nodeOf(transport.self), transport]))
  network.beginRound()
  let handed = 0
  for (const { to, message } of network.deliverDue()) {
    const transport = byNode.get(to)
    if (transport === undefined) continue
    transport.deliver(message)
    handed++
  }
  return handed
}

/** A memory network that shows every message sent to `observe` first (a test's or a script's eavesdropper). */
export class ObservedNetwork extends MemoryNetwork {
  constructor (options: MemoryNetworkOptions, private readonly observe: (from: number, message: ConsensusMessage) => void) {
    super(options)
  }

  override send (from: number, message: ConsensusMessage): void {
    this.observe(from, message)
    super.send(from, message)
  }
}
