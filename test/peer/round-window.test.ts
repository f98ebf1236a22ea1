import '../../src/peer/polyfill.ts'
import { afterEach, describe, expect, test } from 'vitest'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobState } from '../../src/consensus/jobs/fit-job.ts'
import { jobPosition } from '../../src/consensus/jobs/job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { encodeConsensusMessage } from '../../src/peer/net/codec.ts'
import { peerTopic } from '../../src/peer/constants.ts'
import { federationGraph } from '../../src/peer/federation.ts'
import { driveRounds } from '../../src/peer/runtime/round-driver.ts'
import { RoundWindows, roundWindowsInit } from '../../src/peer/net/round-window.ts'
import { createSecureRng } from '../../src/peer/runtime/secure-rng.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'
import { Cluster, makeFederation, makeMembers, message } from './helpers.ts'

describe('round windows', () => {
  test('around this peer\'s own round in each kind; from 0 in a kind it has not reached; none for a job it does not run', () => {
    const windows = new RoundWindows({ ahead: 1000, behind: 64, keepFinished: 2 })
    expect(windows.window('job-1', 'admm')).toBeNull()
    const rounds = windows.track('job-1')
    expect(windows.window('job-1', 'admm')).toEqual({ min: 0, max: 1000 })
    rounds.update(12, [message('me', 0, [], { kind: 'stats' }), message('me', 3, [], { kind: 'stats' })])
    rounds.update(120, [message('me', 100, [], { kind: 'admm' }), message('me', 7, [], { kind: 'admm', job: 'other' })])
    expect(windows.window('job-1', 'stats')).toEqual({ min: 0, max: 1003 })
    expect(windows.window('job-1', 'admm')).toEqual({ min: 36, max: 1100 })
    expect(windows.window('job-1', 'final')).toEqual({ min: 0, max: 1120 })
    expect(windows.window('other', 'admm')).toBeNull()
  })

  test('a finished job keeps its last windows (the most recent few), a failed one is forgotten', () => {
    const windows = new RoundWindows({ ahead: 10, behind: 5, keepFinished: 2 })
    for (const job of ['a', 'b', 'c']) {
      const rounds = windows.track(job)
      rounds.update(40, [message('me', 40, [], { job })])
      rounds.end(true)
    }
    expect(windows.jobs()).toEqual({ running: [], finished: ['b', 'c'] })
    expect(windows.window('c', 'admm')).toEqual({ min: 35, max: 50 })
    expect(windows.window('a', 'admm')).toBeNull()
    windows.track('d').end(false)
    expect(windows.window('d', 'admm')).toBeNull()
    // a restart resumes a finished job's tracker where it stood
    windows.track('c')
    expect(windows.jobs()).toEqual({ running: ['c'], finished: ['b'] })
    expect(windows.window('c', 'admm')).toEqual({ min: 35, max: 50 })
  })

  test('behind: 4 x diameter + 16, at least 64; ahead: the ADMM machine\'s 1000', () => {
    expect(roundWindowsInit(2)).toEqual({ ahead: 1000, behind: 64, keepFinished: 8 })
    expect(roundWindowsInit(30)).toMatchObject({ behind: 136 })
  })
})

describe('the round window during a real job', () => {
  const cluster = new Cluster()
  afterEach(async () => { await cluster.stop() })

  test('stale and future rounds are refused and counted under their codes, unpenalised; honest asynchrony is never refused', async () => {
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
    const parts = splitRows(block.rows, 4, 'even', createRng(3))
    const states: FitJobState[] = nodes.map((node) => {
      const self = graph.names.indexOf(node.peerId)
      return createFitJobState({
        job: 'job-1', graph, self, diameter: diameter(graph), rng: createSecureRng(),
        problem: createGlmProblem({ family: 'binomial', block: selectRows(block, parts[self] as number[]), terms, interceptColumn: 0 }),
        // one ADMM stage, long enough to leave round 0 more than 64 rounds behind
        params: createFitJobParams({ tolerance: 1e-10, warmupRounds: 0 })
      })
    })
    // Member 0 runs the job honestly; once its ADMM round passes 80, two more messages go out on its
    // topic, well-formed and signed: one for ADMM round 0 (64 behind the neighbours' window floor and
    // more) and one 5000 rounds ahead of its own.
    const sender = nodes[0]!
    const topic = peerTopic(federation.federationId, sender.peerId)
    let injected: Promise<void> | null = null
    const results = await Promise.all(states.map(async (state, index) => (await driveRounds({
      protocol: fitJobProtocol, state, transport: transports[index]!, rounds: transports[index]!.rounds.track('job-1'), roundDeadlineMs: 2000,
      onStep: (current) => {
        const position = jobPosition(current)
        if (index !== 0 || injected !== null || position.phase !== 'admm' || position.round < 80) return
        injected = (async () => {
          for (const round of [0, position.round + 5000]) {
            await sender.pubsub.publish(topic, encodeConsensusMessage({ job: 'job-1', kind: 'admm', round, from: sender.peerId, values: Float64Array.of(0, 0, 0, 0, 0), data: new Uint8Array(0) }))
          }
        })()
      }
    })).result))
    expect(injected).not.toBeNull()
    await injected
    for (const result of results) expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)

    const neighbours = graph.neighbours[graph.names.indexOf(sender.peerId)]!.map((node) => graph.names[node])
    for (const [index, transport] of transports.entries()) {
      const rejected = transport.stats().rejected
      const isNeighbour = neighbours.includes(nodes[index]!.peerId)
      // each of member 0's neighbours refused exactly the two injected messages; nobody refused anything else
      expect(rejected.MESSAGE_STALE_ROUND).toBe(isNeighbour ? 1 : 0)
      expect(rejected.MESSAGE_FUTURE_ROUND).toBe(isNeighbour ? 1 : 0)
      expect(Object.values(rejected).reduce((sum, count) => sum + count, 0)).toBe(isNeighbour ? 2 : 0)
      // Ignore, not Reject: the sender's score is untouched
      nodes[index]!.checkScores()
      for (const entry of Object.values(nodes[index]!.networkStats().gossipsub.scores)) expect(entry.lowest).toBeGreaterThanOrEqual(0)
    }
  }, 60_000)
})
