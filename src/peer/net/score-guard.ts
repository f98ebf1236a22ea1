import { DEFAULT_PEER_NODE, DEFAULT_PEER_SCORE } from '../constants.ts'
import type { MembershipGater } from './gater.ts'
import type { Clock } from '../../consensus/types.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { PeerId } from '@libp2p/interface'
import type { Logger } from 'pino'

/**
 * What follows a gossipsub score below the graylist threshold. Gossipsub itself only stops reading a
 * graylisted peer's RPCs; the connection stays up and the peer may redial at once. At every heartbeat
 * the guard reads the scores of the connected peers; a member below the threshold is banned at the
 * gater (no connection either way) for `banMs`, doubled for each later offence up to `maxBanMs`, and
 * its connections are closed.
 *
 * Invalid messages that do not travel over gossipsub (private messages on direct streams) count as well:
 * the transport reports them here, and they enter the score as its application-specific part (P5), as
 * -(count^2) with the same weight and decay as gossipsub's invalid deliveries (P4).
 */
export interface ScoreGuardInit {
  graylistThreshold: number
  gossipThreshold: number
  publishThreshold: number
  banMs: number
  maxBanMs: number
  decayIntervalMs: number
  invalidDeliveriesWeight: number
  invalidDeliveriesDecay: number
}

export interface ScoreGuardComponents {
  gater: MembershipGater
  logger?: Logger
  clock?: Clock
}

/** The part of the gossipsub instance the guard reads and the libp2p node it closes connections on. */
export interface ScoreGuardTarget {
  pubsub: GossipSub
  hangUp: (peer: PeerId) => Promise<void>
}

export interface MemberScore {
  score: number
  /** the lowest score seen at a heartbeat since the node started */
  lowest: number
  /** the highest */
  highest: number
  /** times this member was graylisted (and banned) */
  offences: number
}

export interface ScoreStats {
  thresholds: { gossip: number, publish: number, graylist: number }
  /** members found below the graylist threshold, and banned */
  graylisted: number
  /** connections closed because of it */
  disconnected: number
  /** invalid messages on direct streams, counted into the score */
  invalidDirect: number
  scores: Record<string, MemberScore>
}

interface ScoredPubsub { getScore: (peerId: string) => number }

export function createScoreGuardInit (overrides: Partial<ScoreGuardInit> = {}): ScoreGuardInit {
  const init: ScoreGuardInit = {
    graylistThreshold: DEFAULT_PEER_SCORE.graylistThreshold,
    gossipThreshold: DEFAULT_PEER_SCORE.gossipThreshold,
    publishThreshold: DEFAULT_PEER_SCORE.publishThreshold,
    banMs: DEFAULT_PEER_NODE.banMs,
    maxBanMs: DEFAULT_PEER_NODE.maxBanMs,
    decayIntervalMs: DEFAULT_PEER_SCORE.decayIntervalMs,
    invalidDeliveriesWeight: DEFAULT_PEER_SCORE.invalidDeliveriesWeight,
    invalidDeliveriesDecay: DEFAULT_PEER_SCORE.invalidDeliveriesDecay,
    ...overrides
  }
  if (!(init.graylistThreshold <= init.publishThreshold && init.publishThreshold <= init.gossipThreshold && init.gossipThreshold <= 0)) {
    throw new RangeError('score thresholds must satisfy graylist <= publish <= gossip <= 0')
  }
  if (!(init.banMs > 0) || !(init.maxBanMs >= init.banMs)) throw new RangeError('banMs must be positive and at most maxBanMs')
  if (!(init.invalidDeliveriesDecay > 0 && init.invalidDeliveriesDecay < 1)) throw new RangeError('invalidDeliveriesDecay must be in (0, 1)')
  return init
}

export class ScoreGuard {
  readonly config: ScoreGuardInit
  private readonly clock: Clock
  private target: ScoreGuardTarget | null = null
  private readonly scores = new Map<string, MemberScore>()
  /** decaying counts of invalid direct messages: value at time `at` */
  private readonly direct = new Map<string, { value: number, at: number }>()
  private graylisted = 0
  private disconnected = 0
  private invalidDirect = 0
  private readonly closing = new Set<string>()
  private readonly onHeartbeat = (): void => { this.check() }

  constructor (config: ScoreGuardInit, private readonly components: ScoreGuardComponents) {
    this.config = config
    this.clock = components.clock ?? { now: () => Date.now() }
  }

  /** P5 for gossipsub's score function: minus the squared, decayed count of invalid direct messages. */
  readonly appSpecificScore = (peerId: string): number => {
    const count = this.directCount(peerId)
    return count === 0 ? 0 : this.config.invalidDeliveriesWeight * count * count
  }

  start (target: ScoreGuardTarget): void {
    if (this.target !== null) return
    if (typeof (target.pubsub as unknown as Partial<ScoredPubsub>).getScore !== 'function') {
      throw new TypeError('this gossipsub has no getScore(): peer scores cannot be read')
    }
    this.target = target
    target.pubsub.addEventListener('gossipsub:heartbeat', this.onHeartbeat)
  }

  stop (): void {
    this.target?.pubsub.removeEventListener('gossipsub:heartbeat', this.onHeartbeat)
    this.target = null
  }

  /** An invalid message from `peerId` outside gossipsub (a direct stream). */
  invalidMessage (peerId: string): void {
    this.invalidDirect++
    const now = this.clock.now()
    this.direct.set(peerId, { value: this.directCount(peerId) + 1, at: now })
  }

  /** Reads every connected peer's score; graylisted members are banned and disconnected. */
  check (): void {
    const target = this.target
    if (target === null) return
    const pubsub = target.pubsub as unknown as ScoredPubsub & GossipSub
    for (const peer of pubsub.getPeers()) {
      const id = peer.toString()
      const score = pubsub.getScore(id)
      const entry = this.scores.get(id) ?? { score, lowest: score, highest: score, offences: 0 }
      entry.score = score
      entry.lowest = Math.min(entry.lowest, score)
      entry.highest = Math.max(entry.highest, score)
      this.scores.set(id, entry)
      if (score < this.config.graylistThreshold && !this.components.gater.isBanned(id)) {
        entry.offences++
        this.graylisted++
        const banMs = Math.min(this.config.maxBanMs, this.config.banMs * 2 ** (entry.offences - 1))
        this.components.gater.ban(id, this.clock.now() + banMs)
        this.components.logger?.warn({ event: 'peer.graylisted', peerId: id, score, threshold: this.config.graylistThreshold, banMs, offences: entry.offences }, 'member graylisted: disconnected and banned')
      }
      if (this.components.gater.isBanned(id)) this.disconnect(target, peer, id)
    }
  }

  stats (): ScoreStats {
    return {
      thresholds: { gossip: this.config.gossipThreshold, publish: this.config.publishThreshold, graylist: this.config.graylistThreshold },
      graylisted: this.graylisted,
      disconnected: this.disconnected,
      invalidDirect: this.invalidDirect,
      scores: Object.fromEntries([...this.scores].map(([id, entry]) => [id, { ...entry }]))
    }
  }

  private disconnect (target: ScoreGuardTarget, peer: PeerId, id: string): void {
    if (this.closing.has(id)) return
    this.closing.add(id)
    target.hangUp(peer).then(() => {
      this.disconnected++
      this.components.logger?.info({ event: 'peer.disconnected', peerId: id }, 'graylisted member disconnected')
    }, (err: unknown) => {
      this.components.logger?.warn({ event: 'peer.disconnect.failed', peerId: id, err: (err as Error).message }, 'could not disconnect a graylisted member')
    }).finally(() => { this.closing.delete(id) })
  }

  private directCount (peerId: string): number {
    const entry = this.direct.get(peerId)
    if (entry === undefined) return 0
    const value = entry.value * this.config.invalidDeliveriesDecay ** ((this.clock.now() - entry.at) / this.config.decayIntervalMs)
    if (value < 0.1) {
      this.direct.delete(peerId)
      return 0
    }
    return value
  }
}
