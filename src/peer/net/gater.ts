import { DEFAULT_CONNECTION_LIMITS } from '../constants.ts'
import type { Clock } from '../../consensus/types.ts'
import type { ConnectionGater, PeerId } from '@libp2p/interface'
import type { Multiaddr } from '@multiformats/multiaddr'
import type { Logger } from 'pino'

/**
 * The connection gater: admits the federation's members only, in both directions, and among them no
 * member that is banned (graylisted by gossipsub, see ScoreGuard) and no more connections per member
 * than the per-peer limits. Inbound peers are known only after the Noise handshake, so that is where
 * they are refused; outbound dials to anyone else are refused before a socket is opened. Addresses of
 * non-members are not even stored.
 *
 * Every refusal is counted by reason and direction, and logged with the peer id (the first refusal of a
 * peer for a reason, then at most once a minute per peer and reason, with the running count; at most
 * 60 such lines a minute in all, the rest at debug level).
 */
export type RefusalReason = 'not-member' | 'graylisted' | 'connection-limit' | 'inbound-rate'
export type Direction = 'inbound' | 'outbound'

export const REFUSAL_REASONS: readonly RefusalReason[] = Object.freeze(['not-member', 'graylisted', 'connection-limit', 'inbound-rate'])

export interface MembershipGaterInit {
  /** the member peer ids (this node's own id may be among them) */
  members: Iterable<string>
  maxConnectionsPerPeer?: number
  /** new inbound connections a member may open within `inboundPerPeerWindowMs` */
  maxInboundPerPeer?: number
  inboundPerPeerWindowMs?: number
}

export interface MembershipGaterComponents {
  logger?: Logger
  clock?: Clock
  /** called with every refusal (tests) */
  onDenied?: (peerId: string, direction: Direction, reason: RefusalReason) => void
}

export interface RefusedPeer {
  peerId: string
  reason: RefusalReason
  direction: Direction
  count: number
  last: string
}

export interface RefusalStats {
  total: number
  byReason: Record<RefusalReason, Record<Direction, number>>
  /** the peers refused most recently, newest first */
  recent: RefusedPeer[]
  /** members refused until the time given (ISO 8601) */
  banned: Array<{ peerId: string, until: string }>
}

const RECENT_KEPT = 16
const TALLIES_KEPT = 256
const LOG_EVERY_MS = 60_000
const LOG_LINES_PER_MINUTE = 60

interface Tally { peerId: string, reason: RefusalReason, direction: Direction, count: number, last: number, logged: number }

export class MembershipGater implements ConnectionGater {
  private readonly members: ReadonlySet<string>
  private readonly limits: Required<Omit<MembershipGaterInit, 'members'>>
  private readonly clock: Clock
  private readonly bans = new Map<string, number>()
  /** recent inbound connection times per member (at most maxInboundPerPeer each) */
  private readonly inbound = new Map<string, number[]>()
  private readonly counts = Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, { inbound: 0, outbound: 0 }])) as Record<RefusalReason, Record<Direction, number>>
  /** per peer, reason and direction, least recently refused first (bounded: non-members can be many) */
  private readonly tallies = new Map<string, Tally>()
  private logWindow = { start: 0, lines: 0 }
  private connectionsOf: ((peerId: PeerId) => number) | null = null

  constructor (init: MembershipGaterInit, private readonly components: MembershipGaterComponents = {}) {
    this.members = new Set(init.members)
    this.limits = {
      maxConnectionsPerPeer: init.maxConnectionsPerPeer ?? DEFAULT_CONNECTION_LIMITS.maxConnectionsPerPeer,
      maxInboundPerPeer: init.maxInboundPerPeer ?? DEFAULT_CONNECTION_LIMITS.maxInboundPerPeer,
      inboundPerPeerWindowMs: init.inboundPerPeerWindowMs ?? DEFAULT_CONNECTION_LIMITS.inboundPerPeerWindowMs
    }
    for (const field of ['maxConnectionsPerPeer', 'maxInboundPerPeer', 'inboundPerPeerWindowMs'] as const) {
      if (!(this.limits[field] > 0)) throw new RangeError(`${field} must be positive`)
    }
    this.clock = components.clock ?? { now: () => Date.now() }
  }

  /** Where open connections are counted (the node's libp2p, once it exists). */
  attach (connectionsOf: (peerId: PeerId) => number): void {
    this.connectionsOf = connectionsOf
  }

  /** Refuses a member in both directions until `until` (a clock time); a later ban never shortens one. */
  ban (peerId: string, until: number): void {
    this.bans.set(peerId, Math.max(until, this.bans.get(peerId) ?? 0))
  }

  isBanned (peerId: string): boolean {
    const until = this.bans.get(peerId)
    if (until === undefined) return false
    if (until > this.clock.now()) return true
    this.bans.delete(peerId)
    return false
  }

  stats (): RefusalStats {
    const byReason = Object.fromEntries(REFUSAL_REASONS.map((reason) => [reason, { ...this.counts[reason] }])) as Record<RefusalReason, Record<Direction, number>>
    const total = REFUSAL_REASONS.reduce((sum, reason) => sum + byReason[reason].inbound + byReason[reason].outbound, 0)
    const recent = [...this.tallies.values()].slice(-RECENT_KEPT).reverse()
      .map((tally) => ({ peerId: tally.peerId, reason: tally.reason, direction: tally.direction, count: tally.count, last: new Date(tally.last).toISOString() }))
    const banned = [...this.bans.keys()].filter((peerId) => this.isBanned(peerId))
      .map((peerId) => ({ peerId, until: new Date(this.bans.get(peerId) as number).toISOString() }))
    return { total, byReason, recent, banned }
  }

  // Arrow properties: libp2p hands some of these around unbound (filterMultiaddrForPeer becomes the peer
  // store's address filter).
  readonly denyDialPeer = (peerId: PeerId): boolean => this.refuseStranger(peerId.toString(), 'outbound')

  readonly denyDialMultiaddr = (address: Multiaddr): boolean => {
    const named = address.getComponents().find((component) => component.name === 'p2p')?.value
    return named !== undefined && this.refuseStranger(named, 'outbound')
  }

  readonly denyOutboundEncryptedConnection = (peerId: PeerId): boolean => this.refuseStranger(peerId.toString(), 'outbound')

  readonly denyOutboundUpgradedConnection = (peerId: PeerId): boolean => this.refuseStranger(peerId.toString(), 'outbound')

  readonly denyInboundEncryptedConnection = (peerId: PeerId): boolean => {
    const id = peerId.toString()
    if (this.refuseStranger(id, 'inbound')) return true
    if (this.connectionsOf !== null && this.connectionsOf(peerId) >= this.limits.maxConnectionsPerPeer) {
      return this.refuse(id, 'inbound', 'connection-limit')
    }
    const now = this.clock.now()
    const recent = (this.inbound.get(id) ?? []).filter((at) => at > now - this.limits.inboundPerPeerWindowMs)
    if (recent.length >= this.limits.maxInboundPerPeer) {
      this.inbound.set(id, recent)
      return this.refuse(id, 'inbound', 'inbound-rate')
    }
    recent.push(now)
    this.inbound.set(id, recent)
    return false
  }

  readonly denyInboundUpgradedConnection = (peerId: PeerId): boolean => this.refuseStranger(peerId.toString(), 'inbound')

  readonly filterMultiaddrForPeer = (peerId: PeerId): boolean => this.members.has(peerId.toString())

  /** Non-members always, banned members while their ban lasts. */
  private refuseStranger (peerId: string, direction: Direction): boolean {
    if (!this.members.has(peerId)) return this.refuse(peerId, direction, 'not-member')
    if (this.isBanned(peerId)) return this.refuse(peerId, direction, 'graylisted')
    return false
  }

  private refuse (peerId: string, direction: Direction, reason: RefusalReason): true {
    this.counts[reason][direction]++
    const now = this.clock.now()
    const key = `${reason} ${direction} ${peerId}`
    const tally = this.tallies.get(key) ?? { peerId, reason, direction, count: 0, last: now, logged: Number.NEGATIVE_INFINITY }
    tally.count++
    tally.last = now
    // most recently refused last
    this.tallies.delete(key)
    this.tallies.set(key, tally)
    if (this.tallies.size > TALLIES_KEPT) this.tallies.delete(this.tallies.keys().next().value as string)
    this.log(tally, now)
    this.components.onDenied?.(peerId, direction, reason)
    return true
  }

  private log (tally: Tally, now: number): void {
    const logger = this.components.logger
    if (logger === undefined) return
    const fields = { event: 'connection.refused', peerId: tally.peerId, direction: tally.direction, reason: tally.reason, refusals: tally.count }
    if (now - this.logWindow.start >= LOG_EVERY_MS) this.logWindow = { start: now, lines: 0 }
    if (now - tally.logged >= LOG_EVERY_MS && this.logWindow.lines < LOG_LINES_PER_MINUTE) {
      tally.logged = now
      this.logWindow.lines++
      logger.warn(fields, 'connection refused')
    } else {
      logger.debug(fields, 'connection refused')
    }
  }
}

export function createMembershipGater (init: MembershipGaterInit, components: MembershipGaterComponents = {}): MembershipGater {
  return new MembershipGater(init, components)
}
