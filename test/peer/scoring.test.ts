import '../../src/peer/polyfill.ts'
import { peerIdFromString } from '@libp2p/peer-id'
import { afterEach, describe, expect, test } from 'vitest'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobState } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { peerTopic } from '../../src/peer/constants.ts'
import { federationGraph } from '../../src/peer/federation.ts'
import { driveRounds } from '../../src/peer/runtime/round-driver.ts'
import { createSecureRng } from '../../src/peer/runtime/secure-rng.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'
import { waitFor } from '../helpers/process.ts'
import { Cluster, collect, makeFederation, makeMembers, message } from './helpers.ts'
import type { PeerNode } from '../../src/peer/net/node.ts'

const cluster = new Cluster()
afterEach(async () => { await cluster.stop() })

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

/** Four members on a ring, linked, with their transports started. */
async function ring (): Promise<{ nodes: PeerNode[], transports: ReturnType<Cluster['transport']>[], federation: ReturnType<typeof makeFederation> }> {
  const members = await makeMembers(4)
  const first = await cluster.node({ federation: makeFederation(members, { topology: 'ring' }), privateKey: members[0]!.key })
  const federation = makeFederation(members, { topology: 'ring', bootstrap: first.addresses() })
  const nodes = [first]
  for (const member of members.slice(1)) nodes.push(await cluster.node({ federation, privateKey: member.key }))
  await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 20_000 })))
  const transports = nodes.map((node) => cluster.transport(node))
  await Promise.all(transports.map(async (transport) => await transport.start()))
  return { nodes, transports, federation }
}

describe('gossipsub peer scoring over real libp2p', () => {
  test('a member that publishes 100 invalid messages on its round topic is graylisted by its neighbours, disconnected, kept out, and heard no more', async () => {
    const { nodes, transports, federation } = await ring()
    const [hostile, right, opposite, left] = nodes as [PeerNode, PeerNode, PeerNode, PeerNode]
    const neighbours = [right, left]
    for (const transport of transports) transport.rounds.track('job-1')
    const inboxes = transports.map((transport) => collect(transport))
    // before: its valid round messages reach both neighbours
    await transports[0]!.broadcast(message(hostile.peerId, 0, [1]))
    await inboxes[1]!.until((messages) => messages.length === 1)
    await inboxes[3]!.until((messages) => messages.length === 1)

    const topic = peerTopic(federation.federationId, hostile.peerId)
    let published = 0
    for (let count = 0; count < 100; count++) {
      const garbage = Uint8Array.from({ length: 40 }, (_, index) => (index * 37 + count) % 256)
      await hostile.pubsub.publish(topic, garbage).then(() => { published++ }, () => {})
      await sleep(20)
    }
    const hostileId = peerIdFromString(hostile.peerId)
    await waitFor(async () => neighbours.every((node) => node.libp2p.getConnections(hostileId).length === 0), 10_000)
    for (const [index, node] of [[1, right], [3, left]] as const) {
      const stats = node.networkStats()
      expect(stats.gossipsub.graylisted).toBe(1)
      expect(stats.gossipsub.disconnected).toBe(1)
      expect(stats.gossipsub.scores[hostile.peerId]?.lowest).toBeLessThan(stats.gossipsub.thresholds.graylist)
      expect(stats.connections.banned.map((ban) => ban.peerId)).toEqual([hostile.peerId])
      // it needed at least 21 invalid messages to cross the threshold; once graylisted, the rest were not even read
      const malformed = transports[index]!.stats().rejected.MESSAGE_MALFORMED
      expect(malformed).toBeGreaterThanOrEqual(21)
      expect(malformed).toBeLessThan(100)
      expect(published).toBeGreaterThanOrEqual(malformed)
    }

    // Its redials are refused (its own link loop redials too), and nothing it sends arrives any more.
    await hostile.libp2p.dial(right.libp2p.getMultiaddrs()[0]!).catch(() => {})
    await waitFor(async () => right.networkStats().connections.byReason.graylisted.inbound > 0 && left.networkStats().connections.byReason.graylisted.inbound > 0, 10_000)
    await transports[0]!.broadcast(message(hostile.peerId, 1, [2])).catch(() => {})
    await sleep(1000)
    expect(neighbours.every((node) => node.libp2p.getConnections(hostileId).length === 0)).toBe(true)
    expect(inboxes[1]!.messages).toHaveLength(1)
    expect(inboxes[3]!.messages).toHaveLength(1)
    // the honest links are untouched, and the member that is not its neighbour never graylisted anyone
    expect(opposite.neighbourStatus().missing).toEqual([])
    expect(opposite.networkStats().gossipsub.graylisted).toBe(0)
  }, 60_000)

  test('an honest federation runs a job over the same settings with no one graylisted, every score >= 0, and nothing refused', async () => {
    const { nodes, transports, federation } = await ring()
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const graph = federationGraph(federation)
    const parts = splitRows(block.rows, 4, 'even', createRng(5))
    const states: FitJobState[] = nodes.map((node) => {
      const self = graph.names.indexOf(node.peerId)
      return createFitJobState({
        job: 'job-1', graph, self, diameter: diameter(graph), rng: createSecureRng(),
        problem: createGlmProblem({ family: 'binomial', block: selectRows(block, parts[self] as number[]), terms, interceptColumn: 0 }),
        params: createFitJobParams({ tolerance: 1e-10 })
      })
    })
    const results = await Promise.all(states.map(async (state, index) => (await driveRounds({ protocol: fitJobProtocol, state, transport: transports[index]!, rounds: transports[index]!.rounds.track('job-1'), roundDeadlineMs: 2000 })).result))
    for (const result of results) expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
    // gossipsub caches a score for a heartbeat, and a busy machine may run a whole job between two
    // heartbeats: read again (within the first-delivery counters' 10 s half-life) until the neighbours'
    // deliveries show
    for (const node of nodes) {
      await waitFor(async () => {
        node.checkScores()
        return Object.values(node.networkStats().gossipsub.scores).some((entry) => entry.highest > 0)
      }, 5000).catch(() => {})
    }
    for (const [index, node] of nodes.entries()) {
      node.checkScores()
      const stats = node.networkStats()
      expect(stats.gossipsub.graylisted).toBe(0)
      expect(stats.connections.total).toBe(0)
      const scores = Object.values(stats.gossipsub.scores)
      // the scores were read (at heartbeats during the job), never went below 0, and the neighbours'
      // first deliveries of their round messages show in them
      expect(scores.length).toBeGreaterThanOrEqual(2)
      for (const entry of scores) expect(entry.lowest).toBeGreaterThanOrEqual(0)
      expect(Math.max(...scores.map((entry) => entry.highest))).toBeGreaterThan(0)
      expect(Object.values(transports[index]!.stats().rejected).every((count) => count === 0)).toBe(true)
    }
  }, 60_000)
})
