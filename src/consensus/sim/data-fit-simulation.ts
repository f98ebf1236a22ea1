import { buildDesign, INTERCEPT, termNames, type ModelSpec } from '../../learning/design.ts'
import type { FamilyName } from '../../learning/family.ts'
import { fitModel } from '../../learning/fit.ts'
import { relativeDistance } from '../../learning/linalg.ts'
import type { FitJobParams } from '../jobs/fit-job.ts'
import { PartitionError } from '../errors.ts'
import { graphFromEdges, spectralGap, type Graph } from '../graph.ts'
import { partitionByValue, splitRows, type SplitKind } from '../partition.ts'
import { createRng, forkRng } from '../rng.ts'
import { buildTopology } from '../topology.ts'
import type { Rng } from '../types.ts'
import { simulateFit, type FitTraceRow } from './fit-simulation.ts'

/**
 * One data set's federated fit in the simulator, as `epimesh simulate` and the library's `simulate`
 * run it: the rows dealt to peers (evenly, skewed, or one peer per value of a column), the graph
 * between the peers (a named topology or an edge list), every peer's fit-job machine over the
 * in-memory network, and the pooled fit of all the rows, which the federation must reproduce.
 */
export interface DataFitSimulationInput {
  /** the model's rows, with a value in every column the spec uses */
  rows: ReadonlyArray<Record<string, unknown>>
  spec: ModelSpec
  family: FamilyName
  /** one peer per distinct value, aligned with `rows`; without it the rows are split among `peers` */
  groups?: readonly string[]
  peers?: number
  split?: SplitKind
  /** a named topology (ring, line, star, complete, grid[:RxC], er:p, regular:k, smallworld:k,p); its name when `edges` are given */
  topology?: string
  /** the graph as an edge list between peer names (the groups' values, or the names of the nodes) */
  edges?: ReadonlyArray<readonly [string, string]>
  params: FitJobParams
  seed?: number
  /** probability that a link fails in a round */
  linkLoss?: number
  /** called with (round, max relative error) after every round */
  onRound?: (round: number, maxRelativeError: number) => void
  /** keep a row per round and peer: residuals, distance to the pooled fit, messages, bytes */
  trace?: boolean
}

/** The simulation's own defaults (the fit's are createFitJobParams'). */
export const DEFAULT_DATA_FIT_SIMULATION = Object.freeze({ peers: 16, split: 'even' as SplitKind, topology: 'ring', seed: 1, linkLoss: 0 })

/** What the simulation shows: the federation's model (peer 0's; every peer holds it), the pooled one, and how fast they met. */
export interface DataFitSimulation {
  rounds: number
  converged: boolean
  algorithm: FitJobParams['algorithm']
  topology: string
  peers: number
  rows: number
  coefficients: Record<string, number>
  standardErrors: Record<string, number>
  logLikelihood: number
  pooled: { coefficients: Record<string, number>, standardErrors: Record<string, number>, logLikelihood: number }
  /** max over peers of ||b_i - b_pooled|| / ||b_pooled||, at the end */
  relativeError: number
  standardErrorRelativeError: number
  /** the first round at which every peer was that close to the pooled fit, or null */
  roundsToRelativeError: { '1e-4': number | null, '1e-6': number | null, '1e-8': number | null }
  phaseRounds: Record<string, number>
  penalty: number | null
  newtonIterations: number | null
  messages: number
  bytes: number
  diameter: number
  spectralGap: number
  secondLargestEigenvalueModulus: number
  lambda: number
  standardize: boolean
  tolerance: number
  linkLoss: number
  seed: number
  /** max relative error over peers after each round */
  errorByRound: number[]
  /** where peer 0 entered each phase (the simulation's round) */
  phaseStarts: Array<{ phase: string, round: number }>
  /** with `trace`: a row per round and peer */
  trace?: FitTraceRow[]
}

const byTerm = (terms: readonly string[], values: ArrayLike<number>): Record<string, number> =>
  Object.fromEntries(terms.map((term, index) => [term, values[index] as number]))

/**
 * Which rows each simulated peer holds (evenly, skewed, or one peer per value of `groups`), and the
 * graph between the peers (a topology spec, or an edge list between their names).
 */
export function dealRows (input: { rows: number, peers: number, split: SplitKind, topology: string, groups?: readonly string[], edges?: ReadonlyArray<readonly [string, string]> }, rng: Rng): { parts: number[][], graph: Graph } {
  let names: string[] = []
  let parts: number[][] = []
  if (input.groups !== undefined) ({ names, parts } = partitionByValue(input.groups))
  let graph: Graph
  if (input.edges !== undefined) {
    graph = graphFromEdges(input.groups === undefined ? null : names, input.edges)
    if (input.groups === undefined) {
      names = [...graph.names]
      parts = splitRows(input.rows, names.length, input.split, forkRng(rng, 'split'))
    }
  } else {
    if (input.groups === undefined) {
      parts = splitRows(input.rows, input.peers, input.split, forkRng(rng, 'split'))
      names = parts.map((_, index) => `peer-${index}`)
    }
    graph = buildTopology(input.topology, names.length, forkRng(rng, 'topology'), names)
  }
  return { parts, graph }
}

export function simulateDataFit (options: DataFitSimulationInput): DataFitSimulation {
  const defaults = DEFAULT_DATA_FIT_SIMULATION
  const input = { ...options, peers: options.peers ?? defaults.peers, split: options.split ?? defaults.split, topology: options.topology ?? defaults.topology, seed: options.seed ?? defaults.seed, linkLoss: options.linkLoss ?? defaults.linkLoss }
  const { spec, family, params, seed } = input
  const terms = termNames(spec)
  const rng = createRng(seed)

  const { parts, graph } = dealRows({ ...input, rows: input.rows.length }, rng)

  const outcome = family === 'binomial' ? 'binary' : 'count'
  const blocks = parts.map((rows) => buildDesign(rows.map((index) => input.rows[index] as Record<string, unknown>), spec, { outcome }))
  const pooled = fitModel(buildDesign(input.rows, spec, { outcome }), terms, { family, lambda: params.lambda, standardize: params.standardize, tolerance: 1e-12, maxIterations: 100 })
  const reference = Float64Array.from(pooled.coefficients.estimate)
  const simulation = simulateFit({
    family,
    terms,
    interceptColumn: terms.indexOf(INTERCEPT) >= 0 ? terms.indexOf(INTERCEPT) : null,
    blocks,
    graph,
    params,
    seed,
    network: { linkLoss: input.linkLoss },
    reference,
    ...(input.onRound === undefined ? {} : { onRound: input.onRound }),
    trace: input.trace === true
  })

  const first = simulation.results[0]
  if (first === undefined) throw new PartitionError('no peers')
  const roundsTo = (threshold: number): number | null => {
    const index = simulation.errorByRound.findIndex((error) => error < threshold)
    return index < 0 ? null : index + 1
  }
  const gap = spectralGap(graph)
  return {
    rounds: simulation.rounds,
    converged: simulation.results.every((result) => result.converged),
    algorithm: params.algorithm,
    topology: input.topology,
    peers: graph.names.length,
    rows: input.rows.length,
    coefficients: byTerm(terms, first.coefficients),
    standardErrors: byTerm(terms, first.standardErrors),
    logLikelihood: first.logLikelihood,
    pooled: {
      coefficients: byTerm(terms, pooled.coefficients.estimate),
      standardErrors: byTerm(terms, pooled.coefficients.standardError),
      logLikelihood: pooled.logLikelihood
    },
    relativeError: Math.max(...simulation.results.map((result) => relativeDistance(result.coefficients, reference))),
    standardErrorRelativeError: Math.max(...simulation.results.map((result) => relativeDistance(result.standardErrors, pooled.coefficients.standardError))),
    roundsToRelativeError: { '1e-4': roundsTo(1e-4), '1e-6': roundsTo(1e-6), '1e-8': roundsTo(1e-8) },
    phaseRounds: first.phaseRounds,
    penalty: first.penalty,
    newtonIterations: first.newtonIterations,
    messages: simulation.messages,
    bytes: simulation.bytes,
    diameter: simulation.diameter,
    spectralGap: gap.gap,
    secondLargestEigenvalueModulus: gap.secondLargestModulus,
    lambda: params.lambda,
    standardize: params.standardize,
    tolerance: params.tolerance,
    linkLoss: input.linkLoss,
    seed,
    errorByRound: simulation.errorByRound,
    phaseStarts: simulation.phaseStarts,
    ...(simulation.trace === undefined ? {} : { trace: simulation.trace })
  }
}
