import { buildStatsData, type StatsData, type StatsRequest, type StatsResult } from '../../learning/statistics.ts'
import type { SplitKind } from '../partition.ts'
import { dealRows } from './data-fit-simulation.ts'
import { createStatsJobState, statsJobProtocol, type StatsJobResult } from '../jobs/stats-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { finishedResults, runSynchronous } from './simulation.ts'

/** The statistics job in the simulator: one job machine per peer, each with its own rows. */
export interface StatsSimulationInput {
  request: StatsRequest
  /** one block of rows per peer, aligned with graph.names */
  data: StatsData[]
  graph: Graph
  seed: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
}

export interface StatsSimulationOutput {
  results: StatsJobResult[]
  rounds: number
  messages: number
  bytes: number
  seed: number
}

export function simulateStats (input: StatsSimulationInput): StatsSimulationOutput {
  const { graph, seed } = input
  if (input.data.length !== graph.names.length) throw new RangeError(`${input.data.length} blocks for ${graph.names.length} peers`)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const states = input.data.map((data, self) => createStatsJobState({ job: `stats-${seed}`, graph, self, diameter, request: input.request, data, rng: forkRng(rng, `peer-${self}`) }))
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') })
  const run = runSynchronous({ protocol: statsJobProtocol, states, network, maxRounds: 100 * (diameter + 4) })
  return {
    results: finishedResults(run, graph.names),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    seed
  }
}

/** A data set's rows split over simulated peers, and the statistics job run over them. */
export interface StatsRowsSimulationInput {
  rows: ReadonlyArray<Record<string, unknown>>
  request: StatsRequest
  peers: number
  split: SplitKind
  topology: string
  seed: number
}

export interface StatsRowsSimulationOutput {
  /** what every peer holds (they agree: the job's closing compares digests) */
  stats: StatsResult
  /** the rows each peer held */
  parts: number[][]
  graph: Graph
  rounds: number
  phaseRounds: Record<string, number>
  messages: number
  bytes: number
  seed: number
}

export function simulateStatsOnRows (input: StatsRowsSimulationInput): StatsRowsSimulationOutput {
  const rng = createRng(input.seed)
  const { parts, graph } = dealRows({ rows: input.rows.length, peers: input.peers, split: input.split, topology: input.topology }, rng)
  const data = parts.map((rows) => buildStatsData(rows.map((row) => input.rows[row] as Record<string, unknown>), input.request))
  const run = simulateStats({ request: input.request, data, graph, seed: input.seed })
  const first = run.results[0] as StatsJobResult
  return { stats: first.stats, parts, graph, rounds: run.rounds, phaseRounds: first.phaseRounds, messages: run.messages, bytes: run.bytes, seed: input.seed }
}
