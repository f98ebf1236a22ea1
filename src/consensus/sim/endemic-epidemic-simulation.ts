import type { EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { createEndemicEpidemicJobState, endemicEpidemicJobProtocol, type EndemicEpidemicJobResult } from '../jobs/endemic-epidemic-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import type { LogRecord } from '../machine.ts'
import type { ConsensusMessage } from '../types.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { runSynchronous } from './simulation.ts'

/**
 * The federated endemic-epidemic fit in one process: one job machine per region on the federation
 * graph, over the in-memory network. `observe` sees every message as it is sent (for tests of what
 * travels), and the machines' log records are returned with `keepLog`.
 */
export interface EndemicEpidemicSimulationInput {
  spec: EndemicEpidemicSpec
  /** each region's counts, aligned with graph.names, all starting at period 0 */
  counts: readonly Float64Array[]
  populations: readonly number[]
  graph: Graph
  /** fit on periods before this one; default all */
  to?: number
  seed: number
  tolerance?: number
  maxIterations?: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  observe?: (from: number, message: ConsensusMessage) => void
  keepLog?: boolean
}

export interface EndemicEpidemicSimulationOutput {
  results: EndemicEpidemicJobResult[]
  rounds: number
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

class ObservedNetwork extends MemoryNetwork {
  constructor (options: MemoryNetworkOptions, private readonly observe: (from: number, message: ConsensusMessage) => void) {
    super(options)
  }

  override send (from: number, message: ConsensusMessage): void {
    this.observe(from, message)
    super.send(from, message)
  }
}

export function simulateEndemicEpidemic (input: EndemicEpidemicSimulationInput): EndemicEpidemicSimulationOutput {
  const { graph, seed } = input
  if (input.counts.length !== graph.names.length || input.populations.length !== graph.names.length) throw new RangeError(`${input.counts.length} series and ${input.populations.length} populations for ${graph.names.length} peers`)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const maxIterations = input.maxIterations ?? 100
  const states = input.counts.map((counts, self) => createEndemicEpidemicJobState({
    job: `ee-${seed}`,
    graph,
    self,
    diameter,
    spec: input.spec,
    counts,
    population: input.populations[self] as number,
    start: 0,
    ...(input.to === undefined ? {} : { to: input.to }),
    ...(input.tolerance === undefined ? {} : { tolerance: input.tolerance }),
    maxIterations,
    rng: forkRng(rng, `peer-${self}`)
  }))
  const options: MemoryNetworkOptions = { ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') }
  const network = input.observe === undefined ? new MemoryNetwork(options) : new ObservedNetwork(options, input.observe)
  const run = runSynchronous({ protocol: endemicEpidemicJobProtocol, states, network, keepLog: input.keepLog === true, maxRounds: (2 * maxIterations + 10) * 4 * (diameter + 4) })
  return {
    results: run.results.map((result, peer) => {
      if (result === null) throw (run.failures[peer] ?? new RangeError(`peer ${graph.names[peer]} did not finish`))
      return result
    }),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    log: run.log
  }
}
