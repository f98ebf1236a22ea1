import '../../src/peer/polyfill.ts'
import { beforeAll, expect, test } from 'vitest'
import { announceTopic, peerTopic } from '../../src/peer/constants.ts'
import { createLibp2pTransportInit } from '../../src/peer/net/libp2p-transport.ts'
import { createPeerNodeInit, gossipsubOptions } from '../../src/peer/net/node.ts'
import { makeFederation, makeMembers, type Member } from './helpers.ts'
import type { Federation } from '../../src/peer/federation.ts'

let members: Member[]
let federation: Federation

beforeAll(async () => {
  members = await makeMembers(3)
  federation = makeFederation(members, { topology: 'ring' })
})

test('node defaults are filled in and out-of-range settings name their field', () => {
  const config = createPeerNodeInit({ federation, privateKey: (members[0] as Member).key })
  expect(config.listen).toEqual(['/ip4/127.0.0.1/tcp/0'])
  expect(config.meshDegree).toBe(0)
  expect(config.preSharedKey).toBeNull()
  for (const [field, value] of [['dialTimeoutMs', 0], ['meshDegree', -1], ['maxMessageBytes', 8 * 1024 * 1024], ['listen', ['not an address']], ['banMs', 0], ['maxBanMs', 1000]] as const) {
    expect(() => createPeerNodeInit({ federation, privateKey: (members[0] as Member).key, [field]: value }))
      .toThrow(expect.objectContaining({ code: 'PEER_CONFIG_INVALID', field: field === 'listen' ? 'listen[0]' : field }))
  }
})

test('transport defaults and validation', () => {
  expect(createLibp2pTransportInit().broadcastVia).toBe('gossipsub')
  expect(() => createLibp2pTransportInit({ broadcastVia: 'carrier-pigeon' as 'direct' })).toThrow(expect.objectContaining({ code: 'PEER_CONFIG_INVALID', field: 'broadcastVia' }))
  expect(() => createLibp2pTransportInit({ readyTimeoutMs: -1 })).toThrow(expect.objectContaining({ field: 'readyTimeoutMs' }))
})

test('gossipsub is configured for a small authenticated consortium', () => {
  const options = gossipsubOptions(federation, createPeerNodeInit({ federation, privateKey: (members[0] as Member).key }))
  expect(options).toMatchObject({
    globalSignaturePolicy: 'StrictSign',
    floodPublish: true,
    D: 0,
    Dlo: 0,
    Dhi: 0,
    scoreParams: { IPColocationFactorWeight: 0 },
    heartbeatInterval: 700
  })
  expect([...(options.allowedTopics as string[])].sort()).toEqual([announceTopic('test-fed'), ...members.map((member) => peerTopic('test-fed', member.peerId))].sort())
  expect(options.maxInboundDataLength).toBe(4 * 1024 * 1024)
  expect(options.decodeRpcLimits?.maxSubscriptions).toBe(2 * (members.length + 1))
  // every federation topic is scored: invalid deliveries cost, first deliveries earn a little, no mesh quota
  const topics = options.allowedTopics as string[]
  expect(Object.keys(options.scoreParams?.topics ?? {}).sort()).toEqual([...topics].sort())
  for (const topic of topics) {
    expect(options.scoreParams?.topics?.[topic]).toMatchObject({ invalidMessageDeliveriesWeight: -1, meshMessageDeliveriesWeight: 0, timeInMeshWeight: 0 })
    expect(options.scoreParams?.topics?.[topic]?.firstMessageDeliveriesWeight).toBeGreaterThan(0)
  }
  expect(options.scoreThresholds).toMatchObject({ gossipThreshold: -100, publishThreshold: -200, graylistThreshold: -400 })
  const meshed = gossipsubOptions(federation, createPeerNodeInit({ federation, privateKey: (members[0] as Member).key, meshDegree: 6 }))
  expect(meshed).toMatchObject({ D: 6, Dlo: 4, Dhi: 12, Dout: 2 })
})
