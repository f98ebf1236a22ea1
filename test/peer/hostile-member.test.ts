import '../../src/peer/polyfill.ts'
import { afterEach, describe, expect, it } from 'vitest'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobState } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { encodeConsensusMessage } from '../../src/peer/net/codec.ts'
import { peerTopic } from '../../src/peer/constants.ts'
import { federationGraph } from '../../src/peer/federation.ts'
import { driveRounds } from '../../src/peer/runtime/round-driver.ts'
import { createSecureRng } from '../../src/peer/runtime/secure-rng.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'
import { Cluster, makeFederation, makeMembers } from './helpers.ts'

const cluster = new Cluster()
afterEach(async () => { await cluster.stop() })

describe('a member that sends garbage during a job', () => {
  it('has its malformed, oversized and NaN-carrying messages rejected and counted, and the job still reaches R glm', async () => {
    const members = await makeMembers(4)
    const first = await cluster.node({ federation: makeFederation(members, { topology: 'ring' }), privateKey: members[0]!.key })
    const federation = makeFederation(members, { topology: 'ring', bootstrap: first.addresses() })
    const nodes = [first]
    for (const member of members.slice(1)) nodes.push(await cluster.node({ federation, privateKey: member.key }))
    await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 20_000 })))
    const transports = nodes.map((node) => cluster.transport(node))
    await Promise.all(transports.map(async (transport) => await transport.start()))

    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const graph = federationGraph(federation)
    const parts = splitRows(block.rows, 4, 'even', createRng(2))
    const states: FitJobState[] = nodes.map((node) => {
      const self = graph.names.indexOf(node.peerId)
      return createFitJobState({
        job: 'job-1', graph, self, diameter: diameter(graph), rng: createSecureRng(),
        problem: createGlmProblem({ family: 'binomial', block: selectRows(block, parts[self] as number[]), terms, interceptColumn: 0 }),
        params: createFitJobParams({ tolerance: 1e-10 })
      })
    })
    // Member 0 publishes garbage on its own topic, the one its neighbours read its round messages from,
    // while the job runs: random bytes, a valid message with a NaN put into its values, and a message
    // over the size limit, three times. Nine invalid messages cost it 9^2 = 81 points of score: below
    // zero, above every threshold (the first at -100), so it stays in the job. (Persistent garbage
    // gets a member graylisted and disconnected: scoring.test.ts.)
    const hostile = nodes[0]!
    const topic = peerTopic(federation.federationId, hostile.peerId)
    const valid = encodeConsensusMessage({ job: 'job-1', kind: 'admm', round: 3, from: hostile.peerId, values: Float64Array.of(1, 2, 3), data: new Uint8Array(0) })
    const nonFinite = Uint8Array.from(valid)
    // the values sit just before the data's 4-byte length and the (empty) data
    new DataView(nonFinite.buffer).setFloat64(valid.length - 4 - 8 * 3, Number.NaN, true)
    const garbage = [Uint8Array.from({ length: 40 }, (_, index) => (index * 37) % 256), nonFinite, new Uint8Array(1536 * 1024)]
    let published = 0
    const attack = (async () => {
      for (let burst = 0; burst < 3; burst++) {
        for (const bytes of garbage) await hostile.pubsub.publish(topic, bytes).then(() => { published++ }, () => {})
        await new Promise((resolve) => setTimeout(resolve, 200))
      }
    })()
    const results = await Promise.all(states.map(async (state, index) => (await driveRounds({ protocol: fitJobProtocol, state, transport: transports[index]!, rounds: transports[index]!.rounds.track('job-1'), roundDeadlineMs: 2000 })).result))
    await attack
    expect(published).toBe(9)
    for (const result of results) {
      expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result.standardErrors, R_INFERT.standardError)).toBeLessThan(1e-6)
    }
    const neighbours = graph.neighbours[graph.names.indexOf(hostile.peerId)]!.map((node) => graph.names[node])
    for (const [index, transport] of transports.entries()) {
      if (!neighbours.includes(nodes[index]!.peerId)) continue
      const rejected = transport.stats().rejected
      expect(rejected.MESSAGE_MALFORMED).toBeGreaterThan(0)
      expect(rejected.MESSAGE_NON_FINITE).toBeGreaterThan(0)
      expect(rejected.MESSAGE_TOO_LARGE).toBeGreaterThan(0)
      nodes[index]!.checkScores()
      const gossipsub = nodes[index]!.networkStats().gossipsub
      expect(gossipsub.scores[hostile.peerId]?.lowest).toBeLessThan(0)
      expect(gossipsub.scores[hostile.peerId]?.lowest).toBeGreaterThanOrEqual(gossipsub.thresholds.gossip)
      expect(gossipsub.graylisted).toBe(0)
    }
  }, 90_000)
})
