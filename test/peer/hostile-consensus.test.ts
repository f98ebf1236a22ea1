import '../../src/peer/polyfill.ts'
import { afterEach, describe, expect, it } from 'vitest'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobParams, type FitJobResult, type FitJobState } from '../../src/consensus/jobs/fit-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import type { ConsensusMessage, Transport } from '../../src/consensus/types.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { federationGraph } from '../../src/peer/federation.ts'
import { driveRounds } from '../../src/peer/runtime/round-driver.ts'
import { createSecureRng } from '../../src/peer/runtime/secure-rng.ts'
import { ed25519Signer, ed25519Verifier, SigningTransport } from '../../src/peer/net/signing.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'
import { Cluster, makeFederation, makeMembers } from './helpers.ts'

const cluster = new Cluster()
afterEach(async () => { await cluster.stop() })

/** What a hostile member's transport does to its consensus-ADMM round messages on their way out. */
type Rewrite = (message: ConsensusMessage, neighbours: readonly string[]) => Array<{ to: string | null, message: ConsensusMessage }>

/** A member whose transport rewrites its round messages, below its own (honest) machine and above its signing. */
class HostileTransport implements Transport {
  readonly self: string
  constructor (private readonly inner: Transport, private readonly rewrite: Rewrite) { this.self = inner.self }
  neighbours (): readonly string[] { return this.inner.neighbours() }
  async send (to: string, message: ConsensusMessage): Promise<void> { await this.inner.send(to, message) }
  async broadcast (message: ConsensusMessage): Promise<void> {
    for (const { to, message: rewritten } of this.rewrite(message, this.inner.neighbours())) {
      // a "broadcast" to one neighbour only: over the direct stream, with no recipient in it
      if (to === null) await this.inner.broadcast(rewritten)
      else await this.inner.send(to, rewritten).catch(() => {})
    }
  }

  onMessage (handler: (message: ConsensusMessage) => void): () => void { return this.inner.onMessage(handler) }
}

const isRound = (message: ConsensusMessage): boolean => (message.kind === 'admm' || message.kind === 'admm2') && message.round >= 3

async function federationWithHostile (rewrite: Rewrite, params: Partial<FitJobParams>): Promise<{ outcomes: Array<PromiseSettledResult<FitJobResult>>, hostile: string, honest: number[] }> {
  const members = await makeMembers(4)
  const first = await cluster.node({ federation: makeFederation(members, { topology: 'ring' }), privateKey: members[0]!.key })
  const federation = makeFederation(members, { topology: 'ring', bootstrap: first.addresses() })
  const nodes = [first]
  for (const member of members.slice(1)) nodes.push(await cluster.node({ federation, privateKey: member.key }))
  await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 20_000 })))
  const raw = nodes.map((node) => cluster.transport(node))
  await Promise.all(raw.map(async (transport) => await transport.start()))
  const verifier = ed25519Verifier()
  const transports: Transport[] = raw.map((transport, index) => new SigningTransport(transport, ed25519Signer(members[index]!.key), verifier))
  transports[0] = new HostileTransport(transports[0]!, rewrite)

  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
  const graph = federationGraph(federation)
  const parts = splitRows(block.rows, 4, 'even', createRng(2))
  const states: FitJobState[] = nodes.map((node) => {
    const self = graph.names.indexOf(node.peerId)
    return createFitJobState({
      job: 'job-1', graph, self, diameter: diameter(graph), rng: createSecureRng(), verifier,
      problem: createGlmProblem({ family: 'binomial', block: selectRows(block, parts[self] as number[]), terms, interceptColumn: 0 }),
      params: createFitJobParams({ tolerance: 1e-10, ...params })
    })
  })
  const outcomes = await Promise.allSettled(states.map(async (state, index) => (await driveRounds({ protocol: fitJobProtocol, state, transport: transports[index]!, rounds: raw[index]!.rounds.track('job-1'), roundDeadlineMs: 1500, maxStalledDeadlines: 20 })).result))
  return { outcomes, hostile: nodes[0]!.peerId, honest: [1, 2, 3] }
}

describe('a hostile member inside consensus ADMM, over libp2p', () => {
  it('a false stop: every honest peer fails the job naming the liar from its signed messages, none reports a model', async () => {
    const { outcomes, hostile, honest } = await federationWithHostile((message) => {
      if (!isRound(message)) return [{ to: null, message }]
      const values = Float64Array.from(message.values)
      values[0] = 1000
      values[1] = 1
      return [{ to: null, message: { ...message, values } }]
    }, {})
    for (const index of honest) {
      const outcome = outcomes[index]!
      expect(outcome.status).toBe('rejected')
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'MEMBER_MISBEHAVED', offender: hostile })
    }
  }, 90_000)

  it('equivocation: each neighbour gets its own iterate; the closing proves it and every honest peer names the liar', async () => {
    const { outcomes, hostile, honest } = await federationWithHostile((message, neighbours) => {
      if (!isRound(message)) return [{ to: null, message }]
      return neighbours.map((to, slot) => {
        const values = Float64Array.from(message.values)
        // it never claims to have converged (that alone would be caught from its residuals)
        values[0] = 0
        for (let index = 4; index < 9; index++) values[index] = (values[index] as number) + (slot === 0 ? 0.5 : -0.5)
        return { to, message: { ...message, values } }
      })
    }, { maxRounds: 150 })
    for (const index of honest) {
      const outcome = outcomes[index]!
      expect(outcome.status).toBe('rejected')
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({ code: 'MEMBER_MISBEHAVED', offender: hostile, rule: 'equivocation' })
    }
  }, 120_000)

  it('honest peers that sign and check every message reach R glm to 1e-6', async () => {
    const { outcomes } = await federationWithHostile((message) => [{ to: null, message }], {})
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('fulfilled')
      const result = (outcome as PromiseFulfilledResult<FitJobResult>).value
      expect(result.converged).toBe(true)
      expect(relativeError(result.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
    }
  }, 90_000)
})
