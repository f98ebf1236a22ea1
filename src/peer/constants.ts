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
export function directProtocol (federationId: string): string { return `${protocolPrefix(federationId)}/direct/1.0.0` }
export function peerTopic (federationId: string, peerId: string): string { return `${protocolPrefix(federationId)}/peer/${peerId}` }
export function announceTopic (federationId: string): string { return `${protocolPrefix(federationId)}/announce` }

/** Concurrent ping streams per connection: the connection monitor and kad-dht both ping (see node.ts). */
export const PING_MAX_OUTBOUND_STREAMS = 4
export const PING_MAX_INBOUND_STREAMS = 8

/** Loopback is always allowed past the connection manager's per-host inbound rate limit. */
export const LOOPBACK_ALLOW = '/ip4/127.0.0.0/ipcidr/8'

export const DEFAULT_PEER_NODE = Object.freeze({
  listen: Object.freeze(['/ip4/127.0.0.1/tcp/0']) as readonly string[],
  /** addresses to advertise instead of the listen addresses (NAT, public interface); empty: listen addresses */
  announce: Object.freeze([]) as readonly string[],
  /** extra CIDR multiaddrs (e.g. '/ip4/10.0.0.0/ipcidr/8') exempt from the inbound-dial rate limit */
  allow: Object.freeze([]) as readonly string[],
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
  maxMessageBytes: MAX_MESSAGE_BYTES
})

export const DEFAULT_TRANSPORT = Object.freeze({
  broadcastVia: 'gossipsub' as 'gossipsub' | 'direct',
  maxMessageBytes: MAX_MESSAGE_BYTES,
  /** how long `start()` waits for the neighbours' subscriptions / direct streams before round 0 */
  readyTimeoutMs: 15_000,
  /** bound on opening one direct stream (dial included) */
  streamOpenTimeoutMs: 10_000
})
