import '../../src/peer/polyfill.ts'
import { KEEP_ALIVE } from '@libp2p/interface'
import { generateKey } from '@libp2p/pnet'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { afterEach, describe, expect, test } from 'vitest'
import { z } from 'zod'
import { encodeConsensusMessage } from '../../src/peer/net/codec.ts'
import { announceTopic, directProtocol, peerTopic } from '../../src/peer/constants.ts'
import { createPeerNode } from '../../src/peer/net/node.ts'
import { encodeFrame } from '../../src/peer/net/framing.ts'
import { anyRound } from '../../src/peer/net/libp2p-transport.ts'
import { Cluster, collect, makeFederation, makeMembers, message, type Member } from './helpers.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'

const cluster = new Cluster()
afterEach(async () => { await cluster.stop() })

const key = (members: Member[], index: number): Member => members[index] as Member
/** No round driver runs in these tests: their transports accept every job and round. */
const noDriver = { roundWindow: anyRound }
const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** A valid encoding with values[index] overwritten by a non-finite number. */
function withNonFinite (original: ConsensusMessage, index: number): Uint8Array {
  const bytes = encodeConsensusMessage(original)
  const valuesStart = bytes.length - original.data.length - 4 - 8 * original.values.length
  new DataView(bytes.buffer).setFloat64(valuesStart + 8 * index, Number.NaN, true)
  return bytes
}

describe('a federation on a line, joined through one bootstrap member', () => {
  test('neighbours find each other via the DHT and exchange broadcast and private messages; others see nothing', async () => {
    const members = await makeMembers(4)
    // Only member 0 is reachable up front; the others learn their neighbours' addresses from the DHT.
    const first = await cluster.node({ federation: makeFederation(members), privateKey: key(members, 0).key })
    const federation = makeFederation(members, { topology: 'line', bootstrap: first.addresses() })
    const nodes = [first]
    for (const index of [1, 2, 3]) nodes.push(await cluster.node({ federation, privateKey: key(members, index).key }))
    const status = await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 20_000 })))
    expect(status.map((entry) => entry.missing)).toEqual([[], [], [], []])
    const tags = (await nodes[3]!.libp2p.peerStore.get(peerIdFromString(key(members, 2).peerId))).tags
    expect(tags.has(KEEP_ALIVE)).toBe(true)

    const transports = nodes.map((node) => cluster.transport(node, noDriver))
    const inboxes = transports.map((transport) => collect(transport))
    const ready = await Promise.all(transports.map(async (transport) => await transport.start()))
    expect(ready.map((report) => report.missing)).toEqual([[], [], [], []])

    await Promise.all(transports.map(async (transport, index) => { await transport.broadcast(message(transport.self, 0, [index])) }))
    await transports[1]!.send(key(members, 2).peerId, message(key(members, 1).peerId, 0, [42], { kind: 'mask', to: key(members, 2).peerId }))
    await transports[2]!.send(key(members, 1).peerId, message(key(members, 2).peerId, 0, [43], { kind: 'mask', to: key(members, 1).peerId }))
    await inboxes[1]!.until((messages) => messages.length === 3)
    await inboxes[2]!.until((messages) => messages.length === 3)
    await inboxes[0]!.until((messages) => messages.length === 1)
    await inboxes[3]!.until((messages) => messages.length === 1)

    // A non-neighbour cannot push into a peer's direct channel either.
    const intruder = await nodes[0]!.libp2p.dialProtocol(peerIdFromString(key(members, 2).peerId), directProtocol(federation.federationId))
    try {
      intruder.send(encodeFrame(encodeConsensusMessage(message(key(members, 0).peerId, 0, [666], { to: key(members, 2).peerId }))))
    } catch {
      // the receiver may already have reset the stream
    }
    await expect(transports[0]!.send(key(members, 2).peerId, message(key(members, 0).peerId, 0, [1], { to: key(members, 2).peerId })))
      .rejects.toMatchObject({ code: 'PEER_NOT_A_NEIGHBOUR' })
    await sleep(300)

    const senders = inboxes.map((inbox) => inbox.messages.map((received) => `${received.from}:${received.kind}`).sort())
    const admm = (index: number): string => `${key(members, index).peerId}:admm`
    const mask = (index: number): string => `${key(members, index).peerId}:mask`
    expect(senders[0]).toEqual([admm(1)])
    expect(senders[1]).toEqual([admm(0), admm(2), mask(2)].sort())
    expect(senders[2]).toEqual([admm(1), admm(3), mask(1)].sort())
    expect(senders[3]).toEqual([admm(2)])
    expect(inboxes[1]!.messages.find((received) => received.kind === 'mask')?.values).toEqual(Float64Array.from([43]))
    expect(transports[2]!.stats().rejected.MESSAGE_NOT_NEIGHBOUR).toBeGreaterThanOrEqual(1)
    // Nothing private reached anyone but its addressee.
    for (const [index, inbox] of inboxes.entries()) {
      for (const received of inbox.messages) if (received.to !== undefined) expect(received.to).toBe(key(members, index).peerId)
    }

    // The same exchange with broadcasts over the direct streams.
    await Promise.all(transports.map(async (transport) => { await transport.stop() }))
    const direct = nodes.map((node) => cluster.transport(node, { ...noDriver, broadcastVia: 'direct' }))
    const directInboxes = direct.map((transport) => collect(transport))
    const directReady = await Promise.all(direct.map(async (transport) => await transport.start()))
    expect(directReady.map((report) => report.missing)).toEqual([[], [], [], []])
    await Promise.all(direct.map(async (transport, index) => { await transport.broadcast(message(transport.self, 1, [index, index])) }))
    await Promise.all(directInboxes.map(async (inbox, index) => { await inbox.until((messages) => messages.length === (index === 0 || index === 3 ? 1 : 2)) }))
    expect(directInboxes[1]!.messages.map((received) => received.from).sort()).toEqual([key(members, 0).peerId, key(members, 2).peerId].sort())
    expect(direct[1]!.stats().sent).toBe(2)
  })
})

describe('links to neighbours', () => {
  test('a neighbour connected but not yet serving the direct protocol is tried again, not reported missing', async () => {
    const members = await makeMembers(2)
    const seed = await cluster.node({ federation: makeFederation(members), privateKey: key(members, 0).key })
    const other = await cluster.node({ federation: makeFederation(members, { bootstrap: seed.addresses() }), privateKey: key(members, 1).key })
    await Promise.all([seed, other].map(async (node) => await node.waitForNeighbours({ timeoutMs: 10_000 })))
    const early = cluster.transport(seed, { ...noDriver, broadcastVia: 'direct', readyTimeoutMs: 10_000 })
    const late = cluster.transport(other, { ...noDriver, broadcastVia: 'direct', readyTimeoutMs: 10_000 })
    // the first dial reaches a node whose direct protocol is not registered yet (both peers starting at once)
    const starting = early.start()
    await sleep(400)
    const [earlyReady, lateReady] = await Promise.all([starting, late.start()])
    expect(earlyReady.missing).toEqual([])
    expect(lateReady.missing).toEqual([])
    const inbox = collect(late)
    await early.broadcast(message(key(members, 0).peerId, 0, [7]))
    await inbox.until((messages) => messages.length === 1)
    expect(inbox.messages[0]?.values).toEqual(Float64Array.from([7]))
  })

  test('a dropped link to a neighbour comes back, and both carriers work over it again', async () => {
    const members = await makeMembers(3)
    const seed = await cluster.node({ federation: makeFederation(members, { topology: 'line' }), privateKey: key(members, 0).key })
    const federation = makeFederation(members, { topology: 'line', bootstrap: seed.addresses() })
    const nodes = [seed, await cluster.node({ federation, privateKey: key(members, 1).key }), await cluster.node({ federation, privateKey: key(members, 2).key })]
    await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 15_000 })))
    const transports = nodes.map((node) => cluster.transport(node, noDriver))
    const inbox = collect(transports[2]!)
    await Promise.all(transports.map(async (transport) => await transport.start()))
    await transports[1]!.send(key(members, 2).peerId, message(key(members, 1).peerId, 0, [1], { to: key(members, 2).peerId }))
    await inbox.until((messages) => messages.length === 1)

    await nodes[1]!.libp2p.hangUp(peerIdFromString(key(members, 2).peerId))
    const status = await nodes[1]!.waitForNeighbours({ timeoutMs: 15_000 })
    expect(status.missing).toEqual([])
    expect((await transports[1]!.waitReady({ timeoutMs: 10_000 })).missing).toEqual([])
    await transports[1]!.broadcast(message(key(members, 1).peerId, 1, [2]))
    await transports[1]!.send(key(members, 2).peerId, message(key(members, 1).peerId, 1, [3], { kind: 'mask', to: key(members, 2).peerId }))
    await inbox.until((messages) => messages.length === 3)
    expect(inbox.messages.map((received) => received.values[0])).toEqual([1, 2, 3])
  })
})

describe('a neighbour that is gone', () => {
  test('sending to it fails at once instead of waiting for a dial to time out', async () => {
    const members = await makeMembers(2)
    const seed = await cluster.node({ federation: makeFederation(members), privateKey: key(members, 0).key })
    const other = await cluster.node({ federation: makeFederation(members, { bootstrap: seed.addresses() }), privateKey: key(members, 1).key })
    await seed.waitForNeighbours({ timeoutMs: 10_000 })
    // (no transport on the other node, so nothing subscribes to the seed's topic: do not wait for that)
    const transport = cluster.transport(seed, { ...noDriver, readyTimeoutMs: 100 })
    await transport.start()
    await other.stop()
    const started = Date.now()
    await expect(transport.send(key(members, 1).peerId, message(key(members, 0).peerId, 0, [1], { to: key(members, 1).peerId }))).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
    await expect(transport.broadcast(message(key(members, 0).peerId, 0, [1]))).rejects.toMatchObject({ code: 'PUBLISH_FAILED' })
    expect(transport.stats().sendFailures).toBe(2)
    await transport.stop()
    const direct = cluster.transport(seed, { ...noDriver, broadcastVia: 'direct', readyTimeoutMs: 200 })
    expect((await direct.start()).missing).toEqual([key(members, 1).peerId])
    await expect(direct.broadcast(message(key(members, 0).peerId, 0, [1]))).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
    expect(Date.now() - started).toBeLessThan(2_000)
  })
})

describe('membership and private networks', () => {
  test('a node that is not a member cannot connect, in either direction', async () => {
    const members = await makeMembers(2)
    const [outsider] = await makeMembers(1, 'outsider') as [Member]
    const member = await cluster.node({ federation: makeFederation(members), privateKey: key(members, 0).key })
    // The outsider even lists itself in its own copy of the file; the member's file does not.
    const outsiderNode = await cluster.node({ federation: makeFederation([...members, outsider]), privateKey: outsider.key })
    const memberId = peerIdFromString(key(members, 0).peerId)
    const outsiderId = peerIdFromString(outsider.peerId)
    // Inbound: the member refuses the outsider once Noise has authenticated it. The dialler's upgrade
    // may already have resolved by then (its muxer negotiation is optimistic), so what counts is that
    // the connection is gone at once and nothing can be opened on it.
    const attempt = await outsiderNode.libp2p.dial(multiaddr(member.addresses()[0] as string), { signal: AbortSignal.timeout(5_000) }).catch(() => null)
    const deadline = Date.now() + 5_000
    while (outsiderNode.libp2p.getConnections(memberId).length > 0 && Date.now() < deadline) await sleep(20)
    expect(outsiderNode.libp2p.getConnections(memberId)).toHaveLength(0)
    expect(attempt === null || attempt.status !== 'open').toBe(true)
    await expect(outsiderNode.libp2p.services.ping.ping(memberId, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    expect(member.libp2p.getConnections(outsiderId)).toHaveLength(0)
    // Outbound: the member does not even dial a non-member.
    await expect(member.libp2p.dial(multiaddr(outsiderNode.addresses()[0] as string), { signal: AbortSignal.timeout(5_000) })).rejects.toMatchObject({ name: 'DialDeniedError' })
    await sleep(100)
    expect(member.libp2p.getConnections(outsiderId)).toHaveLength(0)
    await expect(createPeerNode({ federation: makeFederation(members), privateKey: outsider.key })).rejects.toMatchObject({ code: 'PEER_NOT_A_MEMBER' })
  })

  test('a member with a different pre-shared key cannot connect; one with the same key can', async () => {
    const members = await makeMembers(3)
    const federation = makeFederation(members, { topology: 'line' })
    const psk = new Uint8Array(95)
    const otherPsk = new Uint8Array(95)
    generateKey(psk)
    generateKey(otherPsk)
    const host = await cluster.node({ federation, privateKey: key(members, 0).key, preSharedKey: psk })
    const same = await cluster.node({ federation, privateKey: key(members, 1).key, preSharedKey: psk })
    const other = await cluster.node({ federation, privateKey: key(members, 2).key, preSharedKey: otherPsk })
    const address = multiaddr(host.addresses()[0] as string)
    await same.libp2p.dial(address, { signal: AbortSignal.timeout(5_000) })
    await expect(other.libp2p.dial(address, { signal: AbortSignal.timeout(5_000) })).rejects.toThrow()
    expect(host.libp2p.getConnections(peerIdFromString(key(members, 2).peerId))).toEqual([])
    expect(host.libp2p.getConnections(peerIdFromString(key(members, 1).peerId)).length).toBeGreaterThan(0)
  })
})

describe('inbound validation', () => {
  test('malformed, oversized, non-finite, misattributed and out-of-window messages are counted and dropped; valid traffic flows', async () => {
    const members = await makeMembers(2)
    const [stranger] = await makeMembers(1, 'stranger') as [Member]
    const sender = key(members, 0).peerId
    const receiver = key(members, 1).peerId
    const seed = await cluster.node({ federation: makeFederation(members, { topology: 'line' }), privateKey: key(members, 0).key })
    const federation = makeFederation(members, { topology: 'line', bootstrap: seed.addresses() })
    const peer = await cluster.node({ federation, privateKey: key(members, 1).key })
    await peer.waitForNeighbours({ timeoutMs: 10_000 })
    const from = cluster.transport(seed, noDriver)
    const to = cluster.transport(peer, { maxMessageBytes: 4096, roundWindow: () => ({ min: 5, max: 10 }) })
    const inbox = collect(to)
    await Promise.all([from.start(), to.start()])

    const valid = (round: number, extra: Partial<ConsensusMessage> = {}): ConsensusMessage => message(sender, round, [round, 0.5], extra)
    const bad: Array<[string, Uint8Array]> = [
      ['MESSAGE_MALFORMED', Uint8Array.from([1, 2, 3])],
      ['MESSAGE_MALFORMED', encodeConsensusMessage(valid(6)).subarray(0, 30)],
      ['MESSAGE_TOO_LARGE', encodeConsensusMessage(valid(6, { values: new Float64Array(600) }))],
      ['MESSAGE_NON_FINITE', withNonFinite(valid(6), 1)],
      ['MESSAGE_WRONG_SENDER', encodeConsensusMessage({ ...valid(6), from: stranger.peerId })],
      ['MESSAGE_STALE_ROUND', encodeConsensusMessage(valid(4))],
      ['MESSAGE_FUTURE_ROUND', encodeConsensusMessage(valid(11))]
    ]
    // Over gossipsub: published raw on the sender's own topic, so gossipsub signs them as the sender's.
    const topic = peerTopic(federation.federationId, sender)
    for (const [, bytes] of bad) await seed.pubsub.publish(topic, bytes)
    await seed.pubsub.publish(topic, encodeConsensusMessage(valid(6, { to: receiver })))
    await from.broadcast(valid(7))
    await inbox.until((messages) => messages.length === 1)

    // Over the direct protocol: raw frames on a stream of their own, a valid one last on the same stream.
    const stream = await seed.libp2p.dialProtocol(peerIdFromString(receiver), directProtocol(federation.federationId))
    for (const [, bytes] of bad) stream.send(encodeFrame(bytes))
    stream.send(encodeFrame(encodeConsensusMessage(valid(6, { to: stranger.peerId }))))
    stream.send(encodeFrame(encodeConsensusMessage(valid(8, { to: receiver }))))
    await inbox.until((messages) => messages.length === 2)
    await from.send(receiver, valid(9, { to: receiver }))
    await inbox.until((messages) => messages.length === 3)

    expect(inbox.messages.map((received) => received.round)).toEqual([7, 8, 9])
    const stats = to.stats()
    const expected: Record<string, number> = {}
    for (const [code] of bad) expected[code] = (expected[code] ?? 0) + 2
    expected.MESSAGE_WRONG_RECIPIENT = 2
    for (const [code, count] of Object.entries(expected)) expect(stats.rejected[code as keyof typeof stats.rejected], code).toBe(count)
    expect(stats.accepted).toBe(3)
    expect(stats.received).toBe(stats.accepted + Object.values(stats.rejected).reduce((a, b) => a + b, 0))
    expect(from.stats().sent).toBe(2)
  })
})

describe('announcements', () => {
  test('JSON announcements reach every member; invalid ones are refused or dropped', async () => {
    const members = await makeMembers(3)
    const seed = await cluster.node({ federation: makeFederation(members, { topology: 'ring' }), privateKey: key(members, 0).key })
    const federation = makeFederation(members, { topology: 'ring', bootstrap: seed.addresses() })
    const others = [await cluster.node({ federation, privateKey: key(members, 1).key }), await cluster.node({ federation, privateKey: key(members, 2).key })]
    const topic = announceTopic(federation.federationId)
    expect(await seed.waitForSubscribers(topic, [key(members, 1).peerId, key(members, 2).peerId], { timeoutMs: 10_000 })).toEqual([])

    const proposal = z.object({ type: z.literal('proposal'), job: z.string(), rounds: z.number().int() })
    const received: Array<{ job: string, from: string }> = []
    for (const node of others) {
      node.announcements.subscribeJson(proposal, (value, from) => { received.push({ job: value.job, from }) })
      node.announcements.setValidator((announcement) => announcement.data.byteLength > 1000 ? 'reject' : 'accept')
    }
    const published = [
      await seed.announcements.publishJson({ type: 'status', job: 'x' }),
      await seed.announcements.publish(new TextEncoder().encode('not json')),
      await seed.announcements.publish(new Uint8Array(2000)),
      await seed.announcements.publishJson({ type: 'proposal', job: 'fit-1', rounds: 200 })
    ]
    // Validation is asynchronous inside gossipsub: wait for the counts rather than assume an order.
    const settled = (): boolean => received.length === 2 && others.every((node) => node.announcements.stats().received === 4)
    const deadline = Date.now() + 10_000
    while (!settled() && Date.now() < deadline) await sleep(20)
    expect({ received, stats: others.map((node) => node.announcements.stats()), published }).toMatchObject({
      received: [{ job: 'fit-1', from: key(members, 0).peerId }, { job: 'fit-1', from: key(members, 0).peerId }],
      stats: [{ accepted: 3, rejected: 1, jsonRejected: 2 }, { accepted: 3, rejected: 1, jsonRejected: 2 }]
    })
    await expect(seed.announcements.publish(new Uint8Array(300 * 1024))).rejects.toMatchObject({ code: 'ANNOUNCEMENT_REJECTED' })
  })
})
