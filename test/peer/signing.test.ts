import { describe, expect, it } from 'vitest'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { CryptoSlots, ed25519Signer, ed25519Verifier, fastPayload, SigningTransport, withCachedSigning, type AsyncMessageVerifier } from '../../src/peer/net/signing.ts'
import type { ConsensusMessage, Transport } from '../../src/consensus/types.ts'

/** An inner transport that records what goes out and lets the test inject what comes in. */
class Loopback implements Transport {
  readonly sent: ConsensusMessage[] = []
  private handler: ((message: ConsensusMessage) => void) | null = null
  constructor (readonly self: string) {}
  neighbours (): readonly string[] { return [] }
  async send (_to: string, message: ConsensusMessage): Promise<void> { this.sent.push(message) }
  async broadcast (message: ConsensusMessage): Promise<void> { this.sent.push(message) }
  onMessage (handler: (message: ConsensusMessage) => void): () => void {
    this.handler = handler
    return () => { this.handler = null }
  }

  inject (message: ConsensusMessage): void { this.handler?.(message) }
}

async function member (): Promise<{ id: string, signer: ReturnType<typeof ed25519Signer> }> {
  const key = await generateKeyPair('Ed25519')
  return { id: peerIdFromPrivateKey(key).toString(), signer: ed25519Signer(key) }
}

const message = (from: string, round: number, value = round): ConsensusMessage => ({ job: 'job-1', kind: 'admm', round, from, values: Float64Array.of(value, 1), data: new Uint8Array(0) })

/** Resolves once `check` holds, polling every few milliseconds; fails after a second. */
async function until (check: () => boolean): Promise<void> {
  for (let tries = 0; tries < 500 && !check(); tries++) await new Promise((resolve) => setTimeout(resolve, 2))
  expect(check()).toBe(true)
}

describe('SigningTransport with verification on the thread pool', () => {
  it('signs once per message, in the order sent, with signatures that verify offline', async () => {
    const alice = await member()
    const inner = new Loopback(alice.id)
    const transport = new SigningTransport(inner, alice.signer, ed25519Verifier())
    await Promise.all(Array.from({ length: 20 }, async (_, round) => { await (round % 2 === 0 ? transport.broadcast(message(alice.id, round)) : transport.send('bob', message(alice.id, round))) }))
    expect(inner.sent.map((sent) => sent.round)).toEqual(Array.from({ length: 20 }, (_, round) => round))
    expect(transport.stats().signed).toBe(20)
    const offline = ed25519Verifier()
    for (const sent of inner.sent) expect(offline.verify(alice.id, fastPayload(sent), sent.signature as Uint8Array)).toBe(true)
  })

  it('delivers valid messages in each sender\'s order and rejects, before any handler, a forged or missing signature', async () => {
    const [alice, bob, mallory] = [await member(), await member(), await member()]
    const inner = new Loopback('receiver')
    const rejected: ConsensusMessage[] = []
    const transport = new SigningTransport(inner, alice.signer, ed25519Verifier(), (refused) => { rejected.push(refused) })
    const delivered: ConsensusMessage[] = []
    transport.onMessage((received) => { delivered.push(received) })
    const signed = (author: typeof alice, unsigned: ConsensusMessage): ConsensusMessage => ({ ...unsigned, signature: author.signer.sign(fastPayload(unsigned)) })
    const inbound: ConsensusMessage[] = []
    for (let round = 0; round < 30; round++) {
      inbound.push(signed(alice, message(alice.id, round)))
      inbound.push(signed(bob, message(bob.id, round)))
    }
    // Mallory's key, Alice's name; a value changed after signing; no signature at all
    inbound.splice(7, 0, signed(mallory, message(alice.id, 100)))
    inbound.splice(20, 0, { ...signed(alice, message(alice.id, 101)), values: Float64Array.of(99, 1) })
    inbound.splice(33, 0, message(bob.id, 102))
    for (const each of inbound) inner.inject(each)
    expect(delivered).toEqual([]) // nothing is verified synchronously
    await until(() => delivered.length + rejected.length === inbound.length)
    expect(rejected.map((refused) => refused.round).sort()).toEqual([100, 101, 102])
    expect(delivered.filter((each) => each.from === alice.id).map((each) => each.round)).toEqual(Array.from({ length: 30 }, (_, round) => round))
    expect(delivered.filter((each) => each.from === bob.id).map((each) => each.round)).toEqual(Array.from({ length: 30 }, (_, round) => round))
    expect(transport.stats()).toMatchObject({ verified: 60, rejected: 3, overflow: 0 })
  })

  it('keeps a sender\'s order when verdicts come back out of order, runs at most the bound at once, and drops past the queue limit', async () => {
    const finish: Array<() => void> = []
    let running = 0
    let mostRunning = 0
    const verifier: AsyncMessageVerifier = {
      verify: () => true,
      verifyLater: (_from, _payload, signature, done) => {
        running++
        mostRunning = Math.max(mostRunning, running)
        finish.push(() => { running--; done(signature[0] !== 0xff) })
      }
    }
    const inner = new Loopback('receiver')
    const transport = new SigningTransport(inner, { sign: () => new Uint8Array(64) }, verifier, undefined, { slots: new CryptoSlots(3), maxPendingVerifications: 10 })
    const delivered: number[] = []
    transport.onMessage((received) => { delivered.push(received.round) })
    for (let round = 0; round < 12; round++) inner.inject({ ...message('alice', round), signature: new Uint8Array(64).fill(round === 4 ? 0xff : 1) })
    expect(transport.stats().overflow).toBe(2)
    expect(finish.length).toBe(3)
    // the third verdict first: round 2 waits for rounds 0 and 1
    finish[2]?.()
    expect(delivered).toEqual([])
    finish[0]?.()
    expect(delivered).toEqual([0])
    finish[1]?.()
    expect(delivered).toEqual([0, 1, 2])
    for (let next = 3; next < finish.length; next++) finish[next]?.()
    expect(mostRunning).toBe(3)
    expect(delivered).toEqual([0, 1, 2, 3, 5, 6, 7, 8, 9])
    expect(transport.stats()).toMatchObject({ verified: 9, rejected: 1, overflow: 2 })
  })

  it('drops verdicts that arrive after the last handler left', async () => {
    const alice = await member()
    const inner = new Loopback('receiver')
    const transport = new SigningTransport(inner, alice.signer, ed25519Verifier())
    const delivered: ConsensusMessage[] = []
    const unsubscribe = transport.onMessage((received) => { delivered.push(received) })
    const unsigned = message(alice.id, 1)
    inner.inject({ ...unsigned, signature: alice.signer.sign(fastPayload(unsigned)) })
    unsubscribe()
    const later: ConsensusMessage[] = []
    transport.onMessage((received) => { later.push(received) })
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(delivered).toEqual([])
    expect(later).toEqual([])
  })
})

describe('withCachedSigning', () => {
  it('signs as the original key does (Ed25519 is deterministic) and is otherwise that key', async () => {
    const key = await generateKeyPair('Ed25519')
    const cached = withCachedSigning(key)
    const message = new TextEncoder().encode('a gossipsub message')
    expect(await cached.sign(message)).toEqual(await key.sign(message))
    expect(await key.publicKey.verify(message, await cached.sign(message))).toBe(true)
    expect(cached.type).toBe('Ed25519')
    expect(cached.raw).toEqual(key.raw)
    expect(cached.equals(key)).toBe(true)
    expect(peerIdFromPrivateKey(cached).toString()).toBe(peerIdFromPrivateKey(key).toString())
  })
})

describe('CryptoSlots', () => {
  it('bounds the pool work of every transport that shares them, in arrival order', async () => {
    const slots = new CryptoSlots(1)
    const finish: Array<() => void> = []
    let running = 0
    let mostRunning = 0
    const verifier: AsyncMessageVerifier = {
      verify: () => true,
      verifyLater: (_from, _payload, _signature, done) => {
        running++
        mostRunning = Math.max(mostRunning, running)
        finish.push(() => { running--; done(true) })
      }
    }
    const delivered: string[] = []
    const inners = [new Loopback('a'), new Loopback('b')]
    for (const inner of inners) {
      const transport = new SigningTransport(inner, { sign: () => new Uint8Array(64) }, verifier, undefined, { slots })
      transport.onMessage((received) => { delivered.push(`${inner.self}${received.round}`) })
    }
    for (let round = 0; round < 3; round++) for (const inner of inners) inner.inject({ ...message('x', round), signature: new Uint8Array(64) })
    for (let next = 0; next < 6; next++) {
      expect(finish.length).toBe(next + 1)
      finish[next]?.()
    }
    expect(mostRunning).toBe(1)
    expect(delivered).toEqual(['a0', 'b0', 'a1', 'b1', 'a2', 'b2'])
    expect(() => new CryptoSlots(0)).toThrow(RangeError)
  })
})
