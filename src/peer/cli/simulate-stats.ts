import { simulateStatsOnRows } from '../../consensus/sim/stats-simulation.ts'
import type { SplitKind } from '../../consensus/partition.ts'
import { readDataset } from '../data/dataset.ts'
import { statsRequestFromDataset } from '../data/stats-request.ts'

export interface SimulateStatsOptions {
  data: string
  outcome?: string
  features?: string[]
  factors?: string[]
  bins: number
  minimum: number
  peers: number
  split: SplitKind
  seed: number
  topology: string
}

export { printStats } from './stats-text.ts'

/** `simulate --stats`: the statistics job over a simulated federation; the JSON it prints. */
export async function runSimulateStats (options: SimulateStatsOptions): Promise<Record<string, unknown>> {
  const dataset = await readDataset(options.data)
  const { request, rows } = statsRequestFromDataset(dataset, {
    ...(options.features === undefined ? {} : { features: options.features }),
    ...(options.factors === undefined ? {} : { factors: options.factors }),
    ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
    bins: options.bins,
    minimum: options.minimum
  })
  const run = simulateStatsOnRows({ rows, request, peers: options.peers, split: options.split, topology: options.topology, seed: options.seed })
  return { ...run.stats, topology: options.topology, seed: options.seed, rounds: run.rounds, phaseRounds: run.phaseRounds, messages: run.messages, bytes: run.bytes }
}
