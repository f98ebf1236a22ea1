import { expect, test } from 'vitest'
import { buildTopology } from '../../src/consensus/topology.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { createSecureSum, secureSumProtocol } from '../../src/consensus/protocols/secure-sum.ts'
import type { ConsensusMessage, Transport } from '../../src/consensus/types.ts'
import { driveRounds } from '../../src/peer/runtime/round-driver.ts'

/** A transport double whose neighbours never answer: it only records what is sent. */
function silentTransport (self: string, neighbours: string[]): Transport & { sent: ConsensusMessage[] } {
  const sent: ConsensusMessage[] = []
  return {
    self,
    sent,
    neighbours: () => neighbours,
    send: async (_to, message) => { sent.push(message) },
    broadcast: async (message) => { sent.push(message) },
    onMessage: () => () => {}
  }
}

test('a round that never completes is retried at every deadline, then the job fails with JOB_STALLED', async () => {
  const graph = buildTopology('ring', 4, createRng(1))
  const state = createSecureSum({ graph, self: 0, value: [1], job: 'job', kind: 'stats', rng: createRng(2) })
  const neighbours = (graph.neighbours[0] ?? []).map((node) => graph.names[node] as string)
  const transport = silentTransport(graph.names[0] as string, neighbours)
  await expect(driveRounds({ protocol: secureSumProtocol, state, transport, roundDeadlineMs: 5, maxStalledDeadlines: 4 })).rejects.toMatchObject({ code: 'JOB_STALLED', round: 0 })
  // the masks went out at the start and again at each of the four deadlines
  expect(transport.sent.length).toBe(neighbours.length * 5)
})
