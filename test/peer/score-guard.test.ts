import '../../src/peer/polyfill.ts'
import { createPeerScoreParams, PeerScore } from '@libp2p/gossipsub/score'
import { peerIdFromString } from '@libp2p/peer-id'
import { beforeAll, describe, expect, test } from 'vitest'
import { DEFAULT_PEER_NODE } from '../../src/peer/constants.ts'
import { MembershipGater } from '../../src/peer/net/gater.ts'
import { createPeerNodeInit, gossipsubOptions } from '../../src/peer/net/node.ts'
import { createScoreGuardInit, ScoreGuard, type ScoreGuardTarget } from '../../src/peer/net/score-guard.ts'
import { makeFederation, makeMembers, type Member } from './helpers.ts'
import type { GossipSub } from '@libp2p/gossipsub'
import type { ComponentLogger, PeerId } from '@libp2p/interface'

let members: Member[]
beforeAll(async () => { members = await makeMembers(16) })

const silent = { forComponent: () => Object.assign(() => {}, { error: () => {}, trace: () => {}, enabled: false }) } as unknown as ComponentLogger

describe('the score parameters, through the library\'s own score code', () => {
  const setup = (): { score: () => PeerScore, topics: string[], thresholds: { gossip: number, publish: number, graylist: number } } => {
    // a complete graph: a member shares every topic with every other, the most it can bank
    const federation = makeFederation(members, { topology: 'complete' })
    const options = gossipsubOptions(federation, createPeerNodeInit({ federation, privateKey: (members[0] as Member).key }))
    const params = createPeerScoreParams(options.scoreParams)
    const thresholds = options.scoreThresholds as { gossipThreshold: number, publishThreshold: number, graylistThreshold: number }
    return {
      score: () => {
        const score = new PeerScore(params, null, silent, { scoreCacheValidityMs: 0 })
        score.addPeer('member')
        return score
      },
      topics: Object.keys(params.topics),
      thresholds: { gossip: thresholds.gossipThreshold, publish: thresholds.publishThreshold, graylist: thresholds.graylistThreshold }
    }
  }

  test('a burst of invalid messages crosses the gossip, publish and graylist thresholds at 11, 15 and 21, even with the most a member can bank', () => {
    const { score, topics, thresholds } = setup()
    for (const banked of [false, true]) {
      const scores = score()
      if (banked) for (const topic of topics) for (let count = 0; count < 100; count++) scores.markFirstMessageDelivery('member', topic)
      expect(scores.score('member')).toBe(banked ? 10 : 0)
      const crossings: number[] = []
      let invalid = 0
      for (const threshold of [thresholds.gossip, thresholds.publish, thresholds.graylist]) {
        while (scores.score('member') >= threshold) {
          scores.markInvalidMessageDelivery('member', topics[1] as string)
          invalid++
        }
        crossings.push(invalid)
      }
      expect(crossings).toEqual([11, 15, 21])
    }
  })

  test('steady invalid messages: graylisted by the 23rd at one a second, the 51st at one every 4 s, never at one every 5 s', () => {
    const { score, topics, thresholds } = setup()
    const graylistedAfter = (periodSeconds: number): number | null => {
      const scores = score()
      let sent = 0
      let due = 0
      // one-second steps, as the library decays: the messages due in the second, then the decay
      for (let second = 0; second < 3600; second++) {
        for (; due < second + 1; due += periodSeconds) {
          scores.markInvalidMessageDelivery('member', topics[1] as string)
          sent++
          if (scores.score('member') < thresholds.graylist) return sent
        }
        scores.refreshScores()
      }
      return null
    }
    expect(graylistedAfter(1)).toBe(23)
    expect(graylistedAfter(2)).toBe(27)
    expect(graylistedAfter(4)).toBe(51)
    expect(graylistedAfter(5)).toBeNull()
  })

  test('an honest member, delivering valid messages only, never scores below 0', () => {
    const { score, topics } = setup()
    const scores = score()
    for (let second = 0; second < 120; second++) {
      for (const topic of topics) scores.markFirstMessageDelivery('member', topic)
      expect(scores.score('member')).toBeGreaterThanOrEqual(0)
      scores.refreshScores()
    }
  })
})

/** Gossipsub's part the guard reads, in memory. */
function fakeTarget (scores: Map<string, number>): ScoreGuardTarget & { hungUp: string[] } {
  const hungUp: string[] = []
  const pubsub = {
    getPeers: () => [...scores.keys()].map((id) => peerIdFromString(id)),
    getScore: (id: string) => scores.get(id) ?? 0,
    addEventListener: () => {},
    removeEventListener: () => {}
  } as unknown as GossipSub
  return { pubsub, hangUp: async (peer: PeerId) => { hungUp.push(peer.toString()) }, hungUp }
}

describe('the score guard', () => {
  test('bans and disconnects a member below the graylist threshold; each later offence doubles the ban, up to the longest', async () => {
    let now = 1_000_000
    const clock = { now: () => now }
    const gater = new MembershipGater({ members: members.map((member) => member.peerId) }, { clock })
    const guard = new ScoreGuard(createScoreGuardInit({ banMs: 60_000, maxBanMs: 200_000 }), { gater, clock })
    const [honest, hostile] = [(members[1] as Member).peerId, (members[2] as Member).peerId]
    const scores = new Map([[honest, 3], [hostile, -401]])
    const target = fakeTarget(scores)
    guard.start(target)
    const bans: number[] = []
    for (let offence = 0; offence < 4; offence++) {
      guard.check()
      await new Promise((resolve) => setImmediate(resolve))
      expect(gater.isBanned(hostile)).toBe(true)
      const until = Date.parse(gater.stats().banned.find((ban) => ban.peerId === hostile)?.until as string)
      bans.push(until - now)
      now = until + 1
      expect(gater.isBanned(hostile)).toBe(false)
    }
    expect(bans).toEqual([60_000, 120_000, 200_000, 200_000])
    expect(target.hungUp.filter((peer) => peer === hostile)).toHaveLength(4)
    expect(target.hungUp).not.toContain(honest)
    const stats = guard.stats()
    expect(stats.graylisted).toBe(4)
    expect(stats.disconnected).toBe(4)
    expect(stats.scores[honest]).toEqual({ score: 3, lowest: 3, highest: 3, offences: 0 })
    expect(stats.scores[hostile]?.offences).toBe(4)
    // a score at the threshold itself is not below it
    scores.set(hostile, -400)
    guard.check()
    expect(gater.isBanned(hostile)).toBe(false)
    guard.stop()
  })

  test('invalid messages on direct streams enter the score as -(count^2), decaying like gossipsub\'s invalid deliveries', () => {
    let now = 0
    const clock = { now: () => now }
    const gater = new MembershipGater({ members: members.map((member) => member.peerId) }, { clock })
    const guard = new ScoreGuard(createScoreGuardInit(), { gater, clock })
    const peer = (members[3] as Member).peerId
    expect(guard.appSpecificScore(peer)).toBe(0)
    for (let count = 0; count < 21; count++) guard.invalidMessage(peer)
    expect(guard.appSpecificScore(peer)).toBeCloseTo(-441, 9)
    // half-life 60 s: the count halves, its square quarters
    now += 60_000
    expect(guard.appSpecificScore(peer)).toBeCloseTo(-441 / 4, 6)
    now += 3600_000
    expect(guard.appSpecificScore(peer)).toBe(0)
    expect(guard.stats().invalidDirect).toBe(21)
  })

  test('defaults: a first ban of 5 minutes, the longest an hour', () => {
    const init = createScoreGuardInit()
    expect([init.banMs, init.maxBanMs]).toEqual([DEFAULT_PEER_NODE.banMs, DEFAULT_PEER_NODE.maxBanMs])
    expect(() => createScoreGuardInit({ graylistThreshold: -10, publishThreshold: -50 })).toThrow(RangeError)
  })
})
