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
import { jobPosition } from '../jobs/job.ts'

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
  /** keep a row per round and peer (residuals, distance to the reference, messages, bytes) */
  trace?: boolean
  /**
   * end the run in the first round where every peer is within this relative distance of the reference
   * (which it needs), before the job's own end: for benchmarks of large federations, whose closing (every
   * member's statement to every member) grows with the square of the peers
   */
  stopBelow?: number
}

/** One peer in one round of a simulated fit, as `simulate --trace` writes it. */
export interface FitTraceRow {
  round: number
  peer: number
  phase: string
  phaseRound: number
  /** consensus-ADMM residuals while the peer is in an ADMM phase, else null (also before they are defined) */
  primalResidual: number | null
  dualResidual: number | null
  /** ||x_i - x*|| / ||x*|| on the original scale, null while the peer has no iterate or without a reference */
  distance: number | null
  /** what the peer sent in this round (one per recipient, lost ones included) */
  messages: number
  bytes: number
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
  /** where peer 0 entered each phase (the round of the simulation) */
  phaseStarts: Array<{ phase: string, round: number }>
  /** with `trace`: a row per round and peer */
  trace?: FitTraceRow[]
  /** the run ended at `stopBelow`, before the job's end: no results */
  stoppedEarly: boolean
}

function peerDistance (state: FitJobState, reference: Float64Array): number | null {
  const iterate = fitIterate(state)
  if (iterate === null) return null
  const scaling = state.fit.scaling
  return relativeDistance(scaling === null ? iterate : toOriginalScale(iterate, scaling, state.fit.interceptColumn), reference)
}

const finiteOrNull = (value: number | undefined): number | null => value !== undefined && Number.isFinite(value) ? value : null

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
  const stopBelow = input.stopBelow
  if (stopBelow !== undefined && reference === undefined) throw new RangeError('stopBelow needs a reference')
  let reached = false
  const phaseStarts: Array<{ phase: string, round: number }> = []
  const trace: FitTraceRow[] | undefined = input.trace === true ? [] : undefined
  const sentBefore = graph.names.map(() => 0)
  const bytesBefore = graph.names.map(() => 0)
  const observe = (round: number, current: readonly FitJobState[]): void => {
    const first = current[0]
    if (first !== undefined) {
      const phase = jobPosition(first).phase
      if (phaseStarts.at(-1)?.phase !== phase) phaseStarts.push({ phase, round })
    }
    if (reference !== undefined) {
      const error = maxRelativeError(current, reference)
      errorByRound.push(error)
      if (stopBelow !== undefined && error < stopBelow) reached = true
      input.onRound?.(round, error)
    }
    if (trace === undefined) return
    current.forEach((state, peer) => {
      const position = jobPosition(state)
      const admm = (position.phase === 'admm' || position.phase === 'admm2') ? state.fit.admmState : null
      trace.push({
        round,
        peer,
        phase: position.phase,
        phaseRound: position.round,
        primalResidual: finiteOrNull(admm?.primalResidual),
        dualResidual: finiteOrNull(admm?.dualResidual),
        distance: reference === undefined ? null : peerDistance(state, reference),
        messages: (network.sentBy[peer] as number) - (sentBefore[peer] as number),
        bytes: (network.bytesBy[peer] as number) - (bytesBefore[peer] as number)
      })
      sentBefore[peer] = network.sentBy[peer] as number
      bytesBefore[peer] = network.bytesBy[peer] as number
    })
  }
  const run = runSynchronous({
    protocol: fitJobProtocol,
    states,
    network,
    maxRounds: 3 * params.maxRounds + 20 * (diameter + 3),
    onRound: observe,
    until: () => reached
  })
  return {
    results: reached ? [] : run.states.map((state) => fitJobProtocol.result(state)),
    stoppedEarly: reached,
    rounds: run.ticks,
    messages: run.messages,
    bytes: run.bytes,
    diameter,
    errorByRound,
    seed,
    phaseStarts,
    ...(trace === undefined ? {} : { trace })
  }
}
