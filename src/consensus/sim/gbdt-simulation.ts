import type { GbdtParams, TreeData } from '../../learning/gbdt.ts'
import { createGbdtJobState, gbdtJobProtocol, type GbdtJobResult } from '../jobs/gbdt-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { runSynchronous } from './simulation.ts'

/** Boosted trees grown by a simulated federation: one job machine per peer on the in-memory network. */
export interface GbdtSimulationInput {
  /** one block of rows per peer, aligned with graph.names */
  data: TreeData[]
  graph: Graph
  params: GbdtParams
  seed: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
}

export interface GbdtSimulationOutput {
  results: GbdtJobResult[]
  rounds: number
  messages: number
  bytes: number
  seed: number
}

export function simulateGbdt (input: GbdtSimulationInput): GbdtSimulationOutput {
  const { graph, seed } = input
  if (input.data.length !== graph.names.length) throw new RangeError(`${input.data.length} blocks for ${graph.names.length} peers`)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const states = input.data.map((data, self) => createGbdtJobState({ job: `trees-${seed}`, graph, self, diameter, data, params: input.params, rng: forkRng(rng, `peer-${self}`) }))
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') })
  const run = runSynchronous({ protocol: gbdtJobProtocol, states, network, maxRounds: 50 * (diameter + 4) * input.params.trees * (input.params.depth + 1) + 1000 })
  return {
    results: run.results.map((result, peer) => {
      if (result === null) throw (run.failures[peer] ?? new RangeError(`peer ${graph.names[peer]} did not finish`))
      return result
    }),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    seed
  }
}
