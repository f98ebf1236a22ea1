import '../../src/peer/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { parseFederation, type Federation, type Topology } from '../../src/peer/federation.ts'
import { createPeerNode, type PeerNode, type PeerNodeInit } from '../../src/peer/net/node.ts'
import { createLibp2pTransport, type Libp2pTransport, type Libp2pTransportInit } from '../../src/peer/net/libp2p-transport.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import type { PrivateKey } from '@libp2p/interface'

export interface Member {
  region: string
  key: PrivateKey
  peerId: string
}

export async function makeMembers (count: number, prefix = 'region'): Promise<Member[]> {
  return await Promise.all(Array.from({ length: count }, async (_, index) => {
    const key = await generateKeyPair('Ed25519')
    return { region: `${prefix}-${index}`, key, peerId: peerIdFromPrivateKey(key).toString() }
  }))
}

export const TEST_MODEL = {
  family: 'binomial',
  outcome: 'severe',
  features: [{ name: 'age', type: 'numeric' }],
  lambda: 1,
  algorithm: 'admm',
  tolerance: 1e-6,
  maxRounds: 100,
  roundDeadlineMs: 2000,
  dropAfterRounds: 5
} as const

export function federationJson (members: readonly Member[], options: { topology?: Topology, edges?: Array<[string, string]>, bootstrap?: string[], psk?: string, federationId?: string } = {}): Record<string, unknown> {
  return {
    version: 1,
    federationId: options.federationId ?? 'test-fed',
    members: members.map((member) => ({ region: member.region, peerId: member.peerId })),
    graph: options.edges !== undefined ? { edges: options.edges } : { topology: options.topology ?? 'line' },
    ...(options.bootstrap !== undefined ? { bootstrap: options.bootstrap } : {}),
    ...(options.psk !== undefined ? { psk: options.psk } : {}),
    model: structuredClone(TEST_MODEL)
  }
}

export function makeFederation (members: readonly Member[], options: Parameters<typeof federationJson>[1] = {}): Federation {
  return parseFederation(federationJson(members, options), 'test')
}

/** Fast retry timings for tests on loopback. */
export const FAST_LINKS: Partial<PeerNodeInit> = {
  neighbourRetryInitialMs: 50,
  neighbourRetryMaxMs: 500,
  neighbourCheckIntervalMs: 500,
  dialTimeoutMs: 5_000
}

/** Tracks every node started so that afterEach can stop them all, whatever a test did. */
export class Cluster {
  readonly nodes: PeerNode[] = []
  readonly transports: Libp2pTransport[] = []

  async node (init: PeerNodeInit): Promise<PeerNode> {
    const node = await createPeerNode({ ...FAST_LINKS, ...init })
    this.nodes.push(node)
    await node.start()
    return node
  }

  transport (node: PeerNode, init: Libp2pTransportInit = {}): Libp2pTransport {
    const transport = createLibp2pTransport({ readyTimeoutMs: 10_000, ...init }, { node })
    this.transports.push(transport)
    return transport
  }

  async stop (): Promise<void> {
    await Promise.allSettled(this.transports.map(async (transport) => { await transport.stop() }))
    await Promise.allSettled(this.nodes.map(async (node) => { await node.stop() }))
    this.transports.length = 0
    this.nodes.length = 0
  }
}

export function message (from: string, round: number, values: number[], extra: Partial<ConsensusMessage> = {}): ConsensusMessage {
  return { job: 'job-1', kind: 'admm', round, from, values: Float64Array.from(values), data: new Uint8Array(0), ...extra }
}

/** Collects what a transport delivers; `until` waits (bounded) for a condition on the collected list. */
export function collect (transport: Libp2pTransport): { messages: ConsensusMessage[], until: (check: (messages: ConsensusMessage[]) => boolean, timeoutMs?: number) => Promise<void> } {
  const messages: ConsensusMessage[] = []
  transport.onMessage((received) => { messages.push(received) })
  return {
    messages,
    until: async (check, timeoutMs = 10_000) => {
      const deadline = Date.now() + timeoutMs
      while (!check(messages)) {
        if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms; got ${messages.length} messages`)
        await new Promise((resolve) => setTimeout(resolve, 20))
      }
    }
  }
}
