import type { EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { checkValidationWindow } from '../../learning/model-choice.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import { createModelChoiceJobState, modelChoiceJobProtocol, type ModelChoiceJobResult } from '../jobs/model-choice-job.ts'
import type { LogRecord } from '../machine.ts'
import { createRng, forkRng } from '../rng.ts'
import type { ConsensusMessage } from '../types.ts'
import { MemoryNetwork, ObservedNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { finishedResults, runSynchronous } from './simulation.ts'

/**
 * Model choice by the federation in one process (jobs/model-choice-job.ts): one job machine per region
 * on the federation graph, over the in-memory network. Each region is given its counts up to the end of
 * the validation window only: the periods after it (a held-out tail) take no part in the choice.
 */
export interface ModelChoiceSimulationInput {
  candidates: readonly EndemicEpidemicSpec[]
  /** each region's counts, aligned with graph.names, all starting at period 0 */
  counts: readonly Float64Array[]
  populations: readonly number[]
  graph: Graph
  validation: { from: number, to: number }
  seed: number
  maxIterations?: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  observe?: (from: number, message: ConsensusMessage) => void
  keepLog?: boolean
}

export interface ModelChoiceSimulationOutput {
  results: ModelChoiceJobResult[]
  rounds: number
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

export function simulateModelChoice (input: ModelChoiceSimulationInput): ModelChoiceSimulationOutput {
  const { graph, seed, validation } = input
  if (input.counts.length !== graph.names.length || input.populations.length !== graph.names.length) throw new RangeError(`${input.counts.length} series and ${input.populations.length} populations for ${graph.names.length} peers`)
  checkValidationWindow(validation)
  const rng = createRng(seed)
  const diameter = graphDiameter(graph)
  const maxIterations = input.maxIterations ?? 100
  const states = input.counts.map((counts, self) => createModelChoiceJobState({
    job: `mc-${seed}`,
    graph,
    self,
    diameter,
    candidates: input.candidates,
    validation,
    counts: counts.subarray(0, validation.to),
    population: input.populations[self] as number,
    start: 0,
    maxIterations,
    rng: forkRng(rng, `peer-${self}`)
  }))
  const options: MemoryNetworkOptions = { ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') }
  const network = input.observe === undefined ? new MemoryNetwork(options) : new ObservedNetwork(options, input.observe)
  const perFit = (2 * maxIterations + 10) * 4 * (diameter + 4)
  const run = runSynchronous({ protocol: modelChoiceJobProtocol, states, network, keepLog: input.keepLog === true, maxRounds: perFit * input.candidates.length + 8 * (diameter + 4) })
  return {
    results: finishedResults(run, graph.names),
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    log: run.log
  }
}
