import { relativeDistance } from '../../learning/linalg.ts'
import { toOriginalScale } from '../../learning/standardize.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import type { DataBlock } from '../../learning/design.ts'
import type { FamilyName } from '../../learning/family.ts'
import { createFitJobState, fitIterate, fitJobProtocol, type FitJobParams, type FitJobResult, type FitJobState, type FitWarmStart } from '../jobs/fit-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { runSynchronous } from './simulation.ts'

/**
 * A whole federated fit in one process: one fit-job machine per peer, the in-memory network between
 * them, and the per-round distance of every peer's iterate from a reference solution (the pooled fit),
 * which only a simulation can see. The machines are the very ones a real peer runs.
 */
export interface FitSimulationInput {
  family: FamilyName
  terms: string[]
  interceptColumn: number | null
  /** one block of rows per peer, aligned with graph.names */
  blocks: DataBlock[]
  graph: Graph
  params: FitJobParams
  seed: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  /** the pooled solution on the original scale, to track the error per round */
  reference?: Float64Array
  /** a re-fit: each peer's warm start (aligned with graph.names), from its result of the previous fit */
  warmStarts?: ReadonlyArray<FitWarmStart | null>
  /** called with (round, max relative error) after every round, for progress reports */
  onRound?: (round: number, maxRelativeError: number) => void
}

export interface FitSimulationOutput {
  results: FitJobResult[]
  rounds: number
  messages: number
  bytes: number
  diameter: number
  /** max over peers of ||x_i - x*|| / ||x*|| per job round (original scale); empty without a reference */
  errorByRound: number[]
  seed: number
}

export function maxRelativeError (states: readonly FitJobState[], reference: Float64Array): number {
  let worst = 0
  for (const state of states) {
    const iterate = fitIterate(state)
    if (iterate === null) return Number.POSITIVE_INFINITY
    const scaling = state.fit.scaling
    const original = scaling === null ? iterate : toOriginalScale(iterate, scaling, state.fit.interceptColumn)
    worst = Math.max(worst, relativeDistance(original, reference))
  }
  return worst
}

export function simulateFit (input: FitSimulationInput): FitSimulationOutput {
  const { graph, params, seed } = input
  if (input.blocks.length !== graph.names.length) throw new RangeError(`${input.blocks.length} blocks for ${graph.names.length} peers`)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const states = input.blocks.map((block, self) => createFitJobState({
    job: `sim-${seed}`,
    graph,
    self,
    diameter,
    params,
    rng: forkRng(rng, `peer-${self}`),
    warmStart: input.warmStarts?.[self] ?? null,
    problem: createGlmProblem({ family: input.family, block, terms: input.terms, interceptColumn: input.interceptColumn })
  }))
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') })
  const errorByRound: number[] = []
  const reference = input.reference
  const run = runSynchronous({
    protocol: fitJobProtocol,
    states,
    network,
    maxRounds: 3 * params.maxRounds + 20 * (diameter + 3),
    onRound: reference === undefined
      ? undefined
      : (round: number, current: readonly FitJobState[]) => {
          const error = maxRelativeError(current, reference)
          errorByRound.push(error)
          input.onRound?.(round, error)
        }
  })
  return {
    results: run.states.map((state) => fitJobProtocol.result(state)),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    diameter,
    errorByRound,
    seed
  }
}
