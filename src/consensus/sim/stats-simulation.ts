import type { StatsData, StatsRequest } from '../../learning/descriptive.ts'
import { createStatsJobState, statsJobProtocol, type StatsResult } from '../jobs/stats-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { runSynchronous } from './simulation.ts'

/** The statistics job in the simulator: one machine per peer, each with its own rows. */
export function simulateStats (input: { request: StatsRequest, data: StatsData[], graph: Graph, seed: number, network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'> }): { results: StatsResult[], rounds: number, messages: number, bytes: number } {
  const { graph, seed } = input
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const states = input.data.map((data, self) => createStatsJobState({ job: `stats-${seed}`, graph, self, diameter, request: input.request, data, rng: forkRng(rng, `peer-${self}`) }))
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') })
  const run = runSynchronous({ protocol: statsJobProtocol, states, network, maxRounds: 100 * (diameter + 4) })
  return {
    results: run.results.map((result, peer) => {
      if (result === null) throw (run.failures[peer] ?? new RangeError(`peer ${graph.names[peer]} did not finish`))
      return result
    }),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes
  }
}
