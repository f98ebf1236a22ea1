/**
 * Defaults of the network layer, in one place. Each service's `createXInit(partial)` spreads the
 * frozen object that belongs to it and validates the result.
 */

/** Wire format version written in every consensus message header. */
export const CODEC_VERSION = 1

/** Largest encoded consensus message accepted or produced, in bytes. Gossipsub itself stops at 4 MiB. */
export const MAX_MESSAGE_BYTES = 1024 * 1024

/** Gossipsub's RPC frame limit (its length-prefix codec's 4 MiB, on both the writing and reading side). */
export const GOSSIPSUB_MAX_FRAME_BYTES = 4 * 1024 * 1024

/** Header field limits (UTF-8 bytes). Ed25519 peer ids are 52 characters; region names are shorter. */
export const MAX_JOB_BYTES = 64
export const MAX_KIND_BYTES = 32
export const MAX_ID_BYTES = 128

/** Announcement payloads (job proposals, status, checkpoints) are small documents. */
export const MAX_ANNOUNCEMENT_BYTES = 256 * 1024

/** Protocol and topic names, all under the federation's own prefix. */
export function protocolPrefix (federationId: string): string { return `/epimesh/${federationId}` }
export function dhtProtocol (federationId: string): string { return `${protocolPrefix(federationId)}/kad/1.0.0` }
/**
 * The direct channel's protocol. 2.0.0: a job's first masked sum sends per-edge mask seeds and later sums
 * derive their masks from them (protocols/mask-seeds.ts); a peer of 1.0.0 cannot take part in such sums,
 * so the two do not open direct streams to each other at all (the link shows as missing) rather than
 * fail mid-job.
 */
export function directProtocol (federationId: string): string { return `${protocolPrefix(federationId)}/direct/2.0.0` }
export function peerTopic (federationId: string, peerId: string): string { return `${protocolPrefix(federationId)}/peer/${peerId}` }
export function announceTopic (federationId: string): string { return `${protocolPrefix(federationId)}/announce` }

/** Concurrent ping streams per connection: the connection monitor and kad-dht both ping (see node.ts). */
export const PING_MAX_OUTBOUND_STREAMS = 4
export const PING_MAX_INBOUND_STREAMS = 8

export const DEFAULT_PEER_NODE = Object.freeze({
  listen: Object.freeze(['/ip4/127.0.0.1/tcp/0']) as readonly string[],
  /** addresses to advertise instead of the listen addresses (NAT, public interface); empty: listen addresses */
  announce: Object.freeze([]) as readonly string[],
  /** whole-dial budget, also the per-attempt bound when finding a neighbour */
  dialTimeoutMs: 10_000,
  /** redials of a KEEP_ALIVE-tagged neighbour after its connection drops, by libp2p itself */
  reconnectRetries: 20,
  reconnectRetryIntervalMs: 500,
  reconnectBackoffFactor: 1.5,
  /** the neighbour-link loop: first retry delay, its growth, its cap */
  neighbourRetryInitialMs: 100,
  neighbourRetryMaxMs: 5_000,
  neighbourRetryFactor: 2,
  /** how often links to graph neighbours are checked and re-established */
  neighbourCheckIntervalMs: 2_000,
  /** gossipsub heartbeat: mesh upkeep and IHAVE gossip; publishing does not wait for it */
  heartbeatIntervalMs: 700,
  /** gossipsub mesh degree; 0: flood publish plus gossip repair, no eager forwarding (see gossipsubOptions) */
  meshDegree: 0,
  maxAnnouncementBytes: MAX_ANNOUNCEMENT_BYTES,
  maxMessageBytes: MAX_MESSAGE_BYTES,
  /** a graylisted member's first ban, and the longest (see DEFAULT_PEER_SCORE) */
  banMs: 5 * 60_000,
  maxBanMs: 60 * 60_000
})

export const DEFAULT_TRANSPORT = Object.freeze({
  broadcastVia: 'gossipsub' as 'gossipsub' | 'direct',
  maxMessageBytes: MAX_MESSAGE_BYTES,
  /** how long `start()` waits for the neighbours' subscriptions / direct streams before round 0 */
  readyTimeoutMs: 15_000,
  /** bound on opening one direct stream (dial included) */
  streamOpenTimeoutMs: 10_000
})

/**
 * Gossipsub peer scoring (v1.1) on the federation's topics, and what follows a graylisting. The
 * arithmetic, with the library's formulas (src/score/compute-score.ts, peer-score.ts of
 * @libp2p/gossipsub): every `decayIntervalMs` each counter is multiplied by its decay; a topic scores
 * topicWeight x (P2 first deliveries x w2 + P4 invalid deliveries SQUARED x w4); the positive total
 * is capped at topicScoreCap; P7 adds (behaviour counter - threshold)^2 x w7 above the threshold.
 *
 * - P4, invalid deliveries (w4 = -1, half-life 60 s: decay 0.5^(1/60) = 0.98851). One invalid message
 *   costs 1, n in a burst cost n^2.
 * - P2, first deliveries (w2 = 0.1, cap 10, half-life 10 s): delivering valid messages first earns a
 *   member at most 1 point per topic, on the topics both peers subscribe to (the announcement topic
 *   and round topics of graph neighbours: at most m in a federation of m members); the positive total
 *   is capped at 10.
 * - P1 (time in mesh), P3 and P3b (mesh delivery quota) are off: there is no mesh by default (D = 0),
 *   and between jobs no round message flows at all, so any delivery quota would punish idle honest
 *   members. P6 (IP colocation) is off: see gossipsubOptions.
 * - P7, behaviour (broken IWANT promises, GRAFT spam): w7 = -1 above a threshold of 10, half-life 10 s.
 *   A member whose event loop stalls for the 3 s IWANT follow-up breaks a few promises at once without
 *   any ill will; ten are free, twenty cost 100 (at the gossip threshold), only over thirty graylist.
 * - Thresholds: gossip -100, publish -200, graylist -400. n invalid messages in a burst, with b points
 *   banked, score b - n^2: below the gossip threshold at n = 11, below publish at 15, graylisted at
 *   n = 21 whenever b <= 40 (any federation of up to 40 members; beyond, the smallest n with n^2 > 400 + m). Sent
 *   steadily, the count decays between messages: one invalid message a second is graylisted by its
 *   23rd (22 s), one every 2 s by its 27th, one every 4 s by its 51st (200 s); at one every 5 s or
 *   slower the count peaks at 1 / (1 - 0.98851^5) = 17.9 (score -320) and the member is never
 *   graylisted. (score-guard.test.ts checks these figures against the library's own score code.)
 * - Honest members send no invalid message at all: every Reject is for something its author is
 *   answerable for (malformed, non-finite, oversized, wrong sender or recipient); a round outside the
 *   window or an unknown job is Ignore, which costs nothing. Their score stays >= 0.
 *
 * A graylisted member is disconnected and refused in both directions for `banMs` (5 min, in
 * DEFAULT_PEER_NODE), doubled for each later offence up to `maxBanMs` (1 h). Gossipsub keeps a
 * disconnected peer's negative score for `retainScoreMs` without decaying it; setting that to the first
 * ban means a member readmitted after its ban starts from 0 again, instead of being graylisted at once
 * by the score it left with.
 */
export const DEFAULT_PEER_SCORE = Object.freeze({
  decayIntervalMs: 1000,
  invalidDeliveriesWeight: -1,
  invalidDeliveriesDecay: 0.5 ** (1 / 60),
  firstDeliveriesWeight: 0.1,
  firstDeliveriesCap: 10,
  firstDeliveriesDecay: 0.5 ** (1 / 10),
  topicScoreCap: 10,
  behaviourPenaltyWeight: -1,
  behaviourPenaltyThreshold: 10,
  behaviourPenaltyDecay: 0.5 ** (1 / 10),
  gossipThreshold: -100,
  publishThreshold: -200,
  graylistThreshold: -400,
  retainScoreMs: 5 * 60_000
})

/**
 * Connection limits. Nothing is exempt by address: members share hosts, NATs and (in tests) 127.0.0.1,
 * and an address range says nothing about who is behind it. What a peer id can do is limited once the
 * Noise handshake has proven it; what can be limited before that (per host, pending handshakes) is
 * sized so that a whole federation on one host still gets in.
 * - per peer: at most 4 open connections (one is normal; simultaneous dials from both ends make two; a
 *   redial racing the close of the last one a third) and at most 8 new inbound connections in 10 s
 *   (an honest member redials a few times after a drop, with backoff).
 * - per host, per second: 4 new inbound connections per member of the federation (at least 20): at
 *   start every member may dial this one, directly and through DHT walks, within the same second.
 * - handshakes in progress: 2 per member (at least 16), each bounded by libp2p's 10 s upgrade timeout.
 */
export const DEFAULT_CONNECTION_LIMITS = Object.freeze({
  maxConnectionsPerPeer: 4,
  maxInboundPerPeer: 8,
  inboundPerPeerWindowMs: 10_000,
  inboundPerHostPerMember: 4,
  minInboundPerHost: 20,
  pendingPerMember: 2,
  minPending: 16
})

/**
 * The round window a transport accepts for a job it runs, around this peer's own round in each message
 * kind. Ahead: the ADMM machine buffers messages up to 1000 rounds ahead of its own (MAX_ROUNDS_AHEAD in
 * consensus/admm.ts) and catches up to them, so a peer that ran on alone for a while (its neighbours'
 * deadlines passed) is followed rather than refused; anything further is what the machine throws away
 * anyway, now refused before it is journalled. Behind: ADMM peers run up to about the diameter + a few
 * rounds apart, and a flood sum waits 3 x diameter + 12 rounds for a neighbour that lags before it
 * gives up; 4 x diameter + 16 (at least 64) covers both. Finished jobs keep their last windows for
 * neighbours still finishing them (the most recent 8 jobs).
 */
export const ROUND_WINDOW = Object.freeze({
  ahead: 1000,
  minBehind: 64,
  behindPerDiameter: 4,
  behindSlack: 16,
  keepFinished: 8
})

/** How often `start` refreshes DIR/status.json while it runs (refusals happen between jobs too). */
export const STATUS_REFRESH_MS = 2000
