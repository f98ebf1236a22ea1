import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { gossipsub, type GossipSub, type GossipsubOpts } from '@libp2p/gossipsub'
import { createTopicScoreParams, type TopicScoreParams } from '@libp2p/gossipsub/score'
import { identify, type Identify } from '@libp2p/identify'
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht'
import { ping, type Ping } from '@libp2p/ping'
import { preSharedKey } from '@libp2p/pnet'
import { tcp } from '@libp2p/tcp'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { combineSignals, throwIfAborted, waitUntil, withTimeout } from './abort.ts'
import { AnnounceChannel } from './announce.ts'
import { announceTopic, DEFAULT_CONNECTION_LIMITS, DEFAULT_PEER_NODE, DEFAULT_PEER_SCORE, dhtProtocol, GOSSIPSUB_MAX_FRAME_BYTES, peerTopic, PING_MAX_INBOUND_STREAMS, PING_MAX_OUTBOUND_STREAMS } from '../constants.ts'
import { NeighbourLinks, type NeighbourStatus } from './discovery.ts'
import { NotAMemberError, NotStartedError, PeerConfigError } from '../errors.ts'
import { isMember, neighboursOf, type Federation } from '../federation.ts'
import { createMembershipGater, type MembershipGater, type RefusalStats } from './gater.ts'
import { createScoreGuardInit, ScoreGuard, type ScoreStats } from './score-guard.ts'
import { withCachedSigning } from './signing.ts'
import type { AnnouncementStats } from './announce.ts'
import type { PrivateKey } from '@libp2p/interface'
import type { Logger } from 'pino'

/**
 * One federation member's libp2p node: TCP, Noise, yamux, identify, ping, gossipsub and a kad-dht under
 * the federation's own protocol prefix; a gater that admits members only; optionally a pre-shared key
 * (pnet) for a private network; links to the graph neighbours kept up; the federation-wide
 * announcement channel; gossipsub peer scoring, with graylisted members disconnected and banned (see
 * ScoreGuard). Consensus messages travel through a Libp2pTransport built on top of it.
 */

export type PeerServices = {
  identify: Identify
  ping: Ping
  pubsub: GossipSub
  dht: KadDHT
}

export type PeerLibp2p = Libp2p<PeerServices>

export interface PeerNodeInit {
  federation: Federation
  /** this member's Ed25519 key; its peer id must be listed in the federation */
  privateKey: PrivateKey
  /** listen multiaddrs */
  listen?: readonly string[]
  /** addresses to advertise instead of the listen addresses */
  announce?: readonly string[]
  /** pnet swarm key document; defaults to the federation's; `null` forces an open network */
  preSharedKey?: Uint8Array | null
  dialTimeoutMs?: number
  reconnectRetries?: number
  reconnectRetryIntervalMs?: number
  reconnectBackoffFactor?: number
  neighbourRetryInitialMs?: number
  neighbourRetryMaxMs?: number
  neighbourRetryFactor?: number
  neighbourCheckIntervalMs?: number
  heartbeatIntervalMs?: number
  /**
   * Gossipsub mesh degree D. 0 (the default) keeps no mesh: a publish reaches every connected
   * subscriber directly (flood publish) and a copy lost on the way is recovered through IHAVE/IWANT
   * gossip at the next heartbeat. A positive D adds eager forwarding by D peers per topic.
   */
  meshDegree?: number
  maxAnnouncementBytes?: number
  /** largest consensus message; the default of transports built on this node */
  maxMessageBytes?: number
  /** how long a graylisted member stays banned at its first offence; doubled for each later one */
  banMs?: number
  /** the longest ban */
  maxBanMs?: number
  /** gossipsub overrides, applied last (for experiments; the defaults are tuned, see gossipsubOptions) */
  gossipsub?: Partial<GossipsubOpts>
}

export type PeerNodeConfig = Required<Omit<PeerNodeInit, 'gossipsub' | 'preSharedKey'>> & {
  preSharedKey: Uint8Array | null
  gossipsub: Partial<GossipsubOpts>
}

export interface PeerNodeComponents {
  logger?: Logger
}

/** What a node refused and whom it scored: the gater's refusals, the gossipsub scores and graylistings. */
export interface NetworkStats {
  connections: RefusalStats
  gossipsub: ScoreStats
  announcements: AnnouncementStats
}

interface PeerNodeParts {
  logger?: Logger
  gater: MembershipGater
  guard: ScoreGuard
}

export function createPeerNodeInit (init: PeerNodeInit): PeerNodeConfig {
  const config: PeerNodeConfig = {
    ...DEFAULT_PEER_NODE,
    ...stripUndefined(init),
    federation: init.federation,
    privateKey: init.privateKey,
    preSharedKey: init.preSharedKey === undefined ? (init.federation.preSharedKey ?? null) : init.preSharedKey,
    gossipsub: init.gossipsub ?? {}
  }
  validatePeerNodeConfig(config)
  return config
}

export function validatePeerNodeConfig (config: PeerNodeConfig): void {
  const positive = ['dialTimeoutMs', 'reconnectRetryIntervalMs', 'neighbourRetryInitialMs', 'neighbourRetryMaxMs',
    'neighbourCheckIntervalMs', 'heartbeatIntervalMs', 'maxAnnouncementBytes', 'maxMessageBytes', 'banMs', 'maxBanMs'] as const
  for (const field of positive) {
    if (!Number.isFinite(config[field]) || config[field] <= 0) throw new PeerConfigError(field, `must be a positive number, got ${config[field]}`)
  }
  if (!Number.isInteger(config.meshDegree) || config.meshDegree < 0) throw new PeerConfigError('meshDegree', 'must be a non-negative integer')
  if (!Number.isInteger(config.reconnectRetries) || config.reconnectRetries < 0) throw new PeerConfigError('reconnectRetries', 'must be a non-negative integer')
  if (!(config.reconnectBackoffFactor >= 1)) throw new PeerConfigError('reconnectBackoffFactor', 'must be at least 1')
  if (!(config.neighbourRetryFactor >= 1)) throw new PeerConfigError('neighbourRetryFactor', 'must be at least 1')
  if (!(config.maxBanMs >= config.banMs)) throw new PeerConfigError('maxBanMs', 'must be at least banMs')
  if (Math.max(config.maxMessageBytes, config.maxAnnouncementBytes) > GOSSIPSUB_MAX_FRAME_BYTES - 64 * 1024) {
    // a larger publish reaches no one and does not throw: the frame encoder refuses it silently
    throw new PeerConfigError(config.maxMessageBytes >= config.maxAnnouncementBytes ? 'maxMessageBytes' : 'maxAnnouncementBytes', 'must leave room under gossipsub\'s 4 MiB frame limit')
  }
  if (config.privateKey.type !== 'Ed25519') throw new PeerConfigError('privateKey', `must be Ed25519, got ${config.privateKey.type}`)
  for (const field of ['listen', 'announce'] as const) {
    config[field].forEach((address, index) => {
      try {
        multiaddr(address)
      } catch (cause) {
        throw new PeerConfigError(`${field}[${index}]`, `not a multiaddr: ${address}`, { cause })
      }
    })
  }
  if (config.listen.length === 0) throw new PeerConfigError('listen', 'needs at least one address')
}

/**
 * Gossipsub for a small consortium at a low message rate, where every peer is an authenticated member:
 * - IP colocation scoring off: members share hosts and NATs (and tests share 127.0.0.1); past about ten
 *   peers per address the default penalty removes them from meshes and then graylists them. The gater,
 *   not an IP heuristic, is what keeps strangers out.
 * - flood publish on: a peer's own topic is subscribed to by its graph neighbours only, so flood publish
 *   means exactly "send to each neighbour, one hop, now" with no wait for mesh formation; on the
 *   announce topic it reaches every connected member in one hop.
 * - no mesh by default (D = 0): with flood publish every subscriber of a per-peer topic already gets the
 *   message straight from its author, so a mesh would only make each of them forward a duplicate to the
 *   others (measured at 16 peers on a ring: about 40% more time per round, from the extra encrypted
 *   writes and decodes). Lost copies are repaired by IHAVE/IWANT gossip at the next heartbeat; an
 *   announcement reaches members not connected to its author the same way, one hop per heartbeat.
 * - signing kept (StrictSign): `from` is authenticated, which the topic validators rely on; identical
 *   payloads from two peers are not deduplicated into one.
 * - duplicates skip signature checks: a fast message id (author + sequence number, the same fields
 *   that make the spec'ed id) is cached only after a first copy verified, so later copies are dropped
 *   before the Ed25519 verification they would otherwise pay for.
 * - finite limits: topics restricted to the federation's; subscriptions per peer bounded by the number
 *   of topics a member can legitimately use; messages held to maxMessageBytes (1 MiB) by the topic
 *   validators, RPC frames to 4 MiB.
 * - heartbeat 700 ms: mesh repair and IHAVE gossip (the lazy repair path for a message lost on a direct
 *   send) come a little sooner than the 1 s default; publishing never waits for a heartbeat.
 * - peer scoring on every federation topic (numbers and arithmetic in DEFAULT_PEER_SCORE): invalid
 *   deliveries weigh heavily and decay slowly, first deliveries earn a little, mesh quotas are off. A
 *   validator's Reject must mean "the author is answerable for this": anything that depends on this
 *   peer's time or state (a round outside its window, a job it does not run, a rate it enforces) is
 *   Ignore, or an honest member relaying or running a moment ahead would be penalised. A member below
 *   the graylist threshold is disconnected and banned by the ScoreGuard.
 */
export function gossipsubOptions (federation: Federation, config: Pick<PeerNodeConfig, 'heartbeatIntervalMs' | 'meshDegree' | 'gossipsub'>): Partial<GossipsubOpts> {
  const topics = [announceTopic(federation.federationId), ...federation.members.map((member) => peerTopic(federation.federationId, member.peerId))]
  const longestTopic = Math.max(...topics.map((topic) => topic.length))
  return {
    ...meshParameters(config.meshDegree),
    globalSignaturePolicy: 'StrictSign',
    emitSelf: false,
    floodPublish: true,
    allowPublishToZeroTopicPeers: false,
    doPX: false,
    heartbeatInterval: config.heartbeatIntervalMs,
    allowedTopics: topics,
    // One RPC frame may bundle many messages (an IWANT reply carries every message asked for), so the
    // frame limit stays at the 4 MiB that the sender's encoder enforces too: a frame over the reader's
    // limit ends the whole inbound stream, not just that RPC. Single messages are held to
    // maxMessageBytes by the topic validators.
    maxInboundDataLength: GOSSIPSUB_MAX_FRAME_BYTES,
    maxTopicBytesPerPeer: topics.length * (longestTopic + 1024),
    // The library's decode limits, except subscriptions: a member never has more than the
    // federation's topics to announce (twice, for an unsubscribe and a subscribe in one RPC). The
    // message and IHAVE limits stay generous: a decode failure drops the whole RPC, and gossip is
    // piggybacked on RPCs that carry messages.
    decodeRpcLimits: {
      maxSubscriptions: 2 * topics.length,
      maxMessages: 5000,
      maxIhaveMessageIDs: 5000,
      maxIwantMessageIDs: 5000,
      maxIdontwantMessageIDs: 512,
      maxControlMessages: 5000,
      maxPeerInfos: 16
    },
    fastMsgIdFn: fastMessageId,
    scoreParams: {
      topics: Object.fromEntries(topics.map((topic) => [topic, topicScoreParams()])),
      topicScoreCap: DEFAULT_PEER_SCORE.topicScoreCap,
      // P5: invalid messages on direct streams (the ScoreGuard supplies the function)
      appSpecificWeight: 1,
      IPColocationFactorWeight: 0,
      behaviourPenaltyWeight: DEFAULT_PEER_SCORE.behaviourPenaltyWeight,
      behaviourPenaltyThreshold: DEFAULT_PEER_SCORE.behaviourPenaltyThreshold,
      behaviourPenaltyDecay: DEFAULT_PEER_SCORE.behaviourPenaltyDecay,
      decayInterval: DEFAULT_PEER_SCORE.decayIntervalMs,
      decayToZero: 0.1,
      retainScore: DEFAULT_PEER_SCORE.retainScoreMs
    },
    scoreThresholds: {
      gossipThreshold: DEFAULT_PEER_SCORE.gossipThreshold,
      publishThreshold: DEFAULT_PEER_SCORE.publishThreshold,
      graylistThreshold: DEFAULT_PEER_SCORE.graylistThreshold,
      // no peer exchange (doPX off) and no mesh by default: the library's values, never reached in use
      acceptPXThreshold: 10,
      opportunisticGraftThreshold: 20
    },
    ...config.gossipsub
  }
}

/** The same parameters on every federation topic: the announcement topic and each member's round topic. */
function topicScoreParams (): TopicScoreParams {
  return createTopicScoreParams({
    topicWeight: 1,
    timeInMeshWeight: 0,
    firstMessageDeliveriesWeight: DEFAULT_PEER_SCORE.firstDeliveriesWeight,
    firstMessageDeliveriesDecay: DEFAULT_PEER_SCORE.firstDeliveriesDecay,
    firstMessageDeliveriesCap: DEFAULT_PEER_SCORE.firstDeliveriesCap,
    meshMessageDeliveriesWeight: 0,
    meshFailurePenaltyWeight: 0,
    invalidMessageDeliveriesWeight: DEFAULT_PEER_SCORE.invalidDeliveriesWeight,
    invalidMessageDeliveriesDecay: DEFAULT_PEER_SCORE.invalidDeliveriesDecay
  })
}

/** D and its companions in the library's proportions (D = 6 gives its defaults 4, 12, 2, 4). */
function meshParameters (degree: number): Pick<GossipsubOpts, 'D' | 'Dlo' | 'Dhi' | 'Dout' | 'Dscore'> {
  if (degree === 0) return { D: 0, Dlo: 0, Dhi: 0, Dout: 0, Dscore: 0 }
  const low = Math.max(1, Math.floor((2 * degree) / 3))
  return { D: degree, Dlo: low, Dhi: 2 * degree, Dout: Math.min(Math.floor(degree / 3), low - 1), Dscore: Math.floor((2 * degree) / 3) }
}

function fastMessageId (message: { from?: Uint8Array, seqno?: Uint8Array }): string {
  if (message.from === undefined || message.seqno === undefined) return ''
  return Buffer.from(message.from.buffer, message.from.byteOffset, message.from.byteLength).toString('base64') +
    Buffer.from(message.seqno.buffer, message.seqno.byteOffset, message.seqno.byteLength).toString('hex')
}

export class PeerNode {
  readonly peerId: string
  readonly federation: Federation
  readonly config: PeerNodeConfig
  readonly libp2p: PeerLibp2p
  readonly announcements: AnnounceChannel
  /** graph neighbours' peer ids, from the federation file */
  readonly neighbours: readonly string[]
  private readonly links: NeighbourLinks
  private controller: AbortController | null = null

  constructor (config: PeerNodeConfig, libp2p: PeerLibp2p, private readonly components: PeerNodeParts) {
    this.config = config
    this.federation = config.federation
    this.libp2p = libp2p
    this.peerId = libp2p.peerId.toString()
    this.neighbours = Object.freeze(neighboursOf(this.federation, this.peerId))
    this.announcements = new AnnounceChannel({
      topic: announceTopic(this.federation.federationId),
      members: new Set(this.federation.members.map((member) => member.peerId)),
      maxBytes: config.maxAnnouncementBytes
    }, { pubsub: libp2p.services.pubsub, logger: components.logger?.child({ component: 'announce' }) })
    this.links = new NeighbourLinks({
      neighbours: this.neighbours,
      bootstrap: this.federation.bootstrap.length > 0
        ? this.federation.bootstrap
        : this.federation.members.filter((member) => member.peerId !== this.peerId).flatMap((member) => member.addresses.map((address) => withPeerId(address, member.peerId))),
      dialTimeoutMs: config.dialTimeoutMs,
      retryInitialMs: config.neighbourRetryInitialMs,
      retryMaxMs: config.neighbourRetryMaxMs,
      retryFactor: config.neighbourRetryFactor,
      checkIntervalMs: config.neighbourCheckIntervalMs
    }, { libp2p, logger: components.logger?.child({ component: 'links' }) })
  }

  get pubsub (): GossipSub {
    return this.libp2p.services.pubsub
  }

  get started (): boolean {
    return this.controller !== null
  }

  /** The signal that `stop()` aborts; services built on the node bound their waits with it. */
  get signal (): AbortSignal {
    if (this.controller === null) throw new NotStartedError('the peer node is not started')
    return this.controller.signal
  }

  async start (options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.controller !== null) return
    throwIfAborted(options.signal)
    this.controller = new AbortController()
    try {
      await this.libp2p.start()
      // Addresses published in the federation file seed the peer store; the DHT supplies current ones.
      await Promise.all(this.federation.members.filter((member) => member.peerId !== this.peerId && member.addresses.length > 0).map(async (member) => {
        await this.libp2p.peerStore.merge(peerIdFromString(member.peerId), { multiaddrs: member.addresses.map((address) => multiaddr(address)) })
      }))
      this.components.guard.start({ pubsub: this.pubsub, hangUp: async (peer) => { await this.libp2p.hangUp(peer) } })
      this.announcements.start()
      await this.links.start()
      throwIfAborted(options.signal)
      this.components.logger?.info({ peerId: this.peerId, addresses: this.addresses(), neighbours: this.neighbours.length }, 'peer node started')
      if (this.federation.network.allow.length > 0) {
        this.components.logger?.warn({ event: 'federation.network.allow.ignored', ranges: this.federation.network.allow.length }, 'network.allow in the federation file is ignored: connection limits apply to every member, whatever its address')
      }
    } catch (err) {
      await this.stop()
      throw err
    }
  }

  async stop (): Promise<void> {
    const controller = this.controller
    if (controller === null) return
    this.controller = null
    controller.abort()
    await this.links.stop()
    this.components.guard.stop()
    this.announcements.stop()
    await this.libp2p.stop()
    this.components.logger?.info({ peerId: this.peerId }, 'peer node stopped')
  }

  /** The multiaddrs this node can be dialled on, each ending in /p2p/<peer id>. */
  addresses (): string[] {
    return this.libp2p.getMultiaddrs().map((address) => address.toString())
  }

  neighbourStatus (): NeighbourStatus {
    return this.links.status()
  }

  networkStats (): NetworkStats {
    return { connections: this.components.gater.stats(), gossipsub: this.components.guard.stats(), announcements: this.announcements.stats() }
  }

  /** An invalid message from a member outside gossipsub (a direct stream): it counts into its score. */
  reportInvalidMessage (peerId: string): void {
    this.components.guard.invalidMessage(peerId)
  }

  /** Reads the scores now rather than at the next heartbeat (graylisted members are disconnected). */
  checkScores (): void {
    this.components.guard.check()
  }

  /** Waits until every graph neighbour is connected (or the time-out); reports who is and isn't. */
  async waitForNeighbours (options: { signal?: AbortSignal, timeoutMs: number }): Promise<NeighbourStatus> {
    return await this.links.waitForNeighbours({ signal: combineSignals(options.signal, this.signal), timeoutMs: options.timeoutMs })
  }

  /**
   * Waits until all `peers` are subscribed to `topic` as far as this node's gossipsub knows (a publish
   * before that reaches no one). Returns the peers still missing when the time-out ends the wait.
   */
  async waitForSubscribers (topic: string, peers: readonly string[], options: { signal?: AbortSignal, timeoutMs: number }): Promise<string[]> {
    const missing = (): string[] => {
      const subscribed = new Set(this.pubsub.getSubscribers(topic).map((peer) => peer.toString()))
      return peers.filter((peer) => !subscribed.has(peer))
    }
    await waitUntil(() => missing().length === 0, {
      signal: withTimeout(combineSignals(options.signal, this.signal), options.timeoutMs),
      target: this.pubsub,
      events: ['subscription-change']
    })
    return missing()
  }
}

/**
 * Builds (but does not start) a member's node. Throws NotAMemberError when the key's peer id is not in
 * the federation, PeerConfigError for an out-of-range setting.
 */
export async function createPeerNode (init: PeerNodeInit, components: PeerNodeComponents = {}): Promise<PeerNode> {
  const config = createPeerNodeInit(init)
  const { federation } = config
  const members = federation.members.map((member) => member.peerId)
  const logger = components.logger
  const peerId = peerIdFromPrivateKey(config.privateKey).toString()
  const gater = createMembershipGater({ members }, { logger: logger?.child({ component: 'gater', peerId }) })
  const gossipsubInit = gossipsubOptions(federation, config)
  const thresholds = gossipsubInit.scoreThresholds ?? {}
  const guard = new ScoreGuard(createScoreGuardInit({
    banMs: config.banMs,
    maxBanMs: config.maxBanMs,
    ...(thresholds.graylistThreshold === undefined ? {} : { graylistThreshold: thresholds.graylistThreshold }),
    ...(thresholds.publishThreshold === undefined ? {} : { publishThreshold: thresholds.publishThreshold }),
    ...(thresholds.gossipThreshold === undefined ? {} : { gossipThreshold: thresholds.gossipThreshold })
  }), { gater, logger: logger?.child({ component: 'score', peerId }) })
  const libp2p = await createLibp2p<PeerServices>({
    start: false,
    privateKey: withCachedSigning(config.privateKey),
    addresses: {
      listen: [...config.listen],
      ...(config.announce.length > 0 ? { announce: [...config.announce] } : {})
    },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    ...(config.preSharedKey !== null ? { connectionProtector: preSharedKey({ psk: config.preSharedKey }) } : {}),
    connectionGater: gater,
    // No address range is exempt (see DEFAULT_CONNECTION_LIMITS): the per-host limits, which apply
    // before a peer is authenticated, are sized for a whole federation on one host; the per-peer ones
    // are the gater's.
    connectionManager: {
      allow: [],
      inboundConnectionThreshold: Math.max(DEFAULT_CONNECTION_LIMITS.minInboundPerHost, DEFAULT_CONNECTION_LIMITS.inboundPerHostPerMember * members.length),
      maxIncomingPendingConnections: Math.max(DEFAULT_CONNECTION_LIMITS.minPending, DEFAULT_CONNECTION_LIMITS.pendingPerMember * members.length),
      dialTimeout: config.dialTimeoutMs,
      reconnectRetries: config.reconnectRetries,
      reconnectRetryInterval: config.reconnectRetryIntervalMs,
      reconnectBackoffFactor: config.reconnectBackoffFactor
    },
    services: {
      identify: identify(),
      // The connection monitor pings every connection every 10 s and aborts the connection when that
      // ping fails; kad-dht pings the same peers to vet routing-table contacts. With the library's
      // limit of one outbound ping stream per connection the two collide, the monitor's ping fails
      // with "too many outbound protocol streams" and a healthy link to a neighbour is torn down.
      ping: ping({ maxOutboundStreams: PING_MAX_OUTBOUND_STREAMS, maxInboundStreams: PING_MAX_INBOUND_STREAMS }),
      pubsub: gossipsub({ ...gossipsubInit, scoreParams: { appSpecificScore: guard.appSpecificScore, ...gossipsubInit.scoreParams } }),
      dht: kadDHT({
        protocol: dhtProtocol(federation.federationId),
        clientMode: false,
        // Members find each other on LANs and loopback too: keep private addresses.
        peerInfoMapper: passthroughMapper
      })
    }
  })
  if (!isMember(federation, peerId)) {
    await libp2p.stop()
    throw new NotAMemberError(`peer ${peerId} is not a member of federation ${federation.federationId}`)
  }
  gater.attach((peer) => libp2p.getConnections(peer).length)
  return new PeerNode(config, libp2p, { logger: logger?.child({ component: 'peer', peerId }), gater, guard })
}

function withPeerId (address: string, peerId: string): string {
  return address.includes('/p2p/') ? address : `${address}/p2p/${peerId}`
}

function stripUndefined<T extends object> (value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined)) as Partial<T>
}
