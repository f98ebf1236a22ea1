import '../../src/peer/polyfill.ts'
import { Writable } from 'node:stream'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import pino from 'pino'
import { beforeAll, expect, test } from 'vitest'
import { MembershipGater } from '../../src/peer/net/gater.ts'
import { makeMembers, type Member } from './helpers.ts'

let members: Member[]
let strangers: Member[]
beforeAll(async () => {
  members = await makeMembers(3)
  strangers = await makeMembers(2, 'stranger')
})

const id = (member: Member): ReturnType<typeof peerIdFromString> => peerIdFromString(member.peerId)

/** A pino logger whose JSON lines end up in `lines`. */
function memoryLogger (): { logger: pino.Logger, lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({ write (chunk: Buffer, _encoding, done) { lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>); done() } })
  return { logger: pino({ level: 'debug' }, stream), lines }
}

test('only members get through, either way; every refusal is counted by reason and direction and logged with the peer id, at most once a minute per peer', async () => {
  let now = 0
  const { logger, lines } = memoryLogger()
  const gater = new MembershipGater({ members: members.map((member) => member.peerId) }, { logger, clock: { now: () => now } })
  const [stranger, other] = strangers as [Member, Member]
  for (const member of members) {
    expect(gater.denyDialPeer(id(member))).toBe(false)
    expect(gater.denyInboundEncryptedConnection(id(member))).toBe(false)
    expect(gater.filterMultiaddrForPeer(id(member))).toBe(true)
  }
  for (let attempt = 0; attempt < 5; attempt++) expect(gater.denyInboundEncryptedConnection(id(stranger))).toBe(true)
  expect(gater.denyDialPeer(id(other))).toBe(true)
  expect(gater.denyDialMultiaddr(multiaddr(`/ip4/127.0.0.1/tcp/4001/p2p/${other.peerId}`))).toBe(true)
  expect(gater.denyDialMultiaddr(multiaddr('/ip4/127.0.0.1/tcp/4001'))).toBe(false)
  expect(gater.filterMultiaddrForPeer(id(stranger))).toBe(false)
  const stats = gater.stats()
  expect(stats.byReason['not-member']).toEqual({ inbound: 5, outbound: 2 })
  expect(stats.total).toBe(7)
  expect(stats.recent[0]).toMatchObject({ peerId: other.peerId, direction: 'outbound', reason: 'not-member', count: 2 })
  expect(stats.recent[1]).toMatchObject({ peerId: stranger.peerId, direction: 'inbound', reason: 'not-member', count: 5 })
  await new Promise((resolve) => setImmediate(resolve))
  const warned = lines.filter((line) => line.level === 40)
  expect(warned.map((line) => [line.peerId, line.direction, line.refusals])).toEqual([[stranger.peerId, 'inbound', 1], [other.peerId, 'outbound', 1]])
  expect(lines.filter((line) => line.event === 'connection.refused')).toHaveLength(7)
  now += 60_000
  gater.denyInboundEncryptedConnection(id(stranger))
  await new Promise((resolve) => setImmediate(resolve))
  expect(lines.filter((line) => line.level === 40).at(-1)).toMatchObject({ peerId: stranger.peerId, refusals: 6 })
})

test('a banned member is refused both ways until its ban ends', () => {
  let now = 0
  const gater = new MembershipGater({ members: members.map((member) => member.peerId) }, { clock: { now: () => now } })
  const banned = members[1] as Member
  gater.ban(banned.peerId, 1000)
  gater.ban(banned.peerId, 500) // never shortens a ban
  expect(gater.denyInboundEncryptedConnection(id(banned))).toBe(true)
  expect(gater.denyDialPeer(id(banned))).toBe(true)
  expect(gater.denyOutboundUpgradedConnection(id(banned))).toBe(true)
  expect(gater.denyDialPeer(id(members[0] as Member))).toBe(false)
  expect(gater.stats().byReason.graylisted).toEqual({ inbound: 1, outbound: 2 })
  expect(gater.stats().banned).toEqual([{ peerId: banned.peerId, until: new Date(1000).toISOString() }])
  now = 1000
  expect(gater.denyInboundEncryptedConnection(id(banned))).toBe(false)
  expect(gater.stats().banned).toEqual([])
})

test('per member: at most so many open connections, and so many new inbound ones in a window', () => {
  let now = 0
  const open = new Map<string, number>()
  const gater = new MembershipGater({ members: members.map((member) => member.peerId), maxConnectionsPerPeer: 2, maxInboundPerPeer: 3, inboundPerPeerWindowMs: 10_000 }, { clock: { now: () => now } })
  gater.attach((peer) => open.get(peer.toString()) ?? 0)
  const member = members[0] as Member
  open.set(member.peerId, 2)
  expect(gater.denyInboundEncryptedConnection(id(member))).toBe(true)
  open.set(member.peerId, 1)
  const admitted = Array.from({ length: 5 }, () => !gater.denyInboundEncryptedConnection(id(member)))
  expect(admitted).toEqual([true, true, true, false, false])
  // another member is not held to this one's count
  expect(gater.denyInboundEncryptedConnection(id(members[1] as Member))).toBe(false)
  now = 10_001
  expect(gater.denyInboundEncryptedConnection(id(member))).toBe(false)
  expect(gater.stats().byReason).toMatchObject({ 'connection-limit': { inbound: 1, outbound: 0 }, 'inbound-rate': { inbound: 2, outbound: 0 } })
})
