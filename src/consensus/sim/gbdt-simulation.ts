import { compareForests, fitGbdt, type GbdtModel, type GbdtParams, type TreeData } from '../../learning/gbdt.ts'
import type { SplitKind } from '../partition.ts'
import { dealRows } from './data-fit-simulation.ts'
import { createGbdtJobState, gbdtJobProtocol, type GbdtJobResult } from '../jobs/gbdt-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { finishedResults, runSynchronous } from './simulation.ts'

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
    results: finishedResults(run, graph.names),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    seed
  }
}

/** A researcher's rows grown into trees by a simulated federation, beside the pooled forest grown with the same bin edges. */
export interface GbdtDataSimulationInput {
  data: TreeData
  params: GbdtParams
  peers: number
  split: SplitKind
  topology: string
  /** one peer per distinct value, in row order (instead of `peers` and `split`) */
  groups?: readonly string[]
  edges?: ReadonlyArray<readonly [string, string]>
  seed: number
  linkLoss?: number
}

export interface GbdtDataSimulation {
  model: GbdtModel
  pooled: GbdtModel
  /** every peer took the pooled forest's splits (feature, bin, side of the missing values) */
  sameTrees: boolean
  /** the largest difference of a leaf value between any peer's forest and the pooled one */
  maxLeafDifference: number
  result: GbdtJobResult
  rounds: number
  messages: number
  bytes: number
  peers: number
  rows: number
  diameter: number
  topology: Graph
}

export function simulateGbdtData (input: GbdtDataSimulationInput): GbdtDataSimulation {
  const rng = createRng(input.seed)
  const { parts, graph } = dealRows({ rows: input.data.rows, peers: input.peers, split: input.split, topology: input.topology, ...(input.groups === undefined ? {} : { groups: input.groups }), ...(input.edges === undefined ? {} : { edges: input.edges }) }, rng)
  const blocks = parts.map((rows) => selectTreeRows(input.data, rows))
  const simulation = simulateGbdt({ data: blocks, graph, params: input.params, seed: input.seed, network: { linkLoss: input.linkLoss ?? 0 } })
  const first = simulation.results[0] as GbdtJobResult
  const pooled = fitGbdt(input.data, first.model.bins, { ...input.params })
  let same = true
  let difference = 0
  for (const result of simulation.results) {
    const compared = compareForests(result.model, pooled)
    same &&= compared.sameStructure
    difference = Math.max(difference, compared.maxLeafDifference)
  }
  return { model: first.model, pooled, sameTrees: same, maxLeafDifference: difference, result: first, rounds: simulation.rounds, messages: simulation.messages, bytes: simulation.bytes, peers: graph.names.length, rows: input.data.rows, diameter: graphDiameter(graph), topology: graph }
}

/** Some rows of tree data, in the order given. */
export function selectTreeRows (data: TreeData, rows: readonly number[]): TreeData {
  const pick = (column: Float64Array): Float64Array => Float64Array.from(rows, (row) => column[row] as number)
  return { rows: rows.length, features: data.features, columns: data.columns.map(pick), y: pick(data.y), ...(data.offset === undefined ? {} : { offset: pick(data.offset) }) }
}
