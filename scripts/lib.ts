import { fileURLToPath } from 'node:url'
import { createFitJobParams, type FitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { simulateFit, type FitSimulationOutput } from '../src/consensus/sim/fit-simulation.ts'
import { spectralGap, type Graph } from '../src/consensus/graph.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng, forkRng } from '../src/consensus/rng.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { buildDesign, selectRows, termNames, type DataBlock } from '../src/learning/design.ts'
import { fitModel } from '../src/learning/fit.ts'
import { prepareModel, readDataset } from '../src/peer/data/dataset.ts'

export function fixturePath (name: string): string {
  return fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url))
}

export interface Problem { name: string, block: DataBlock, terms: string[] }

export async function loadProblem (name: string, file: string, outcome: string, features?: string[]): Promise<Problem> {
  const dataset = await readDataset(fixturePath(file))
  const prepared = prepareModel(dataset, { outcome, family: 'binomial', ...(features === undefined ? {} : { features }) })
  return { name, block: buildDesign(prepared.rows, prepared.spec), terms: termNames(prepared.spec) }
}

export interface Experiment {
  problem: Problem
  peers: number
  topology: string
  params: Partial<FitJobParams>
  seed: number
  linkLoss?: number
}

export interface ExperimentResult {
  simulation: FitSimulationOutput
  graph: Graph
  roundsTo: (threshold: number) => number | null
  admmRounds: number | null
  seconds: number
}

/** Runs one simulated federated fit and measures rounds to each accuracy against the pooled fit. */
export function runExperiment (experiment: Experiment): ExperimentResult {
  const { problem, peers, topology, seed } = experiment
  const params = createFitJobParams({ tolerance: 1e-10, maxRounds: 6000, ...experiment.params })
  const pooled = fitModel(problem.block, problem.terms, { family: 'binomial', lambda: params.lambda, standardize: params.standardize, tolerance: 1e-13 })
  const rng = createRng(seed)
  const parts = splitRows(problem.block.rows, peers, 'even', forkRng(rng, 'split'))
  const graph = buildTopology(topology, peers, forkRng(rng, 'topology'))
  const started = process.hrtime.bigint()
  const simulation = simulateFit({
    family: 'binomial', terms: problem.terms, interceptColumn: 0, graph, seed, params,
    blocks: parts.map((rows) => selectRows(problem.block, rows)),
    reference: Float64Array.from(pooled.coefficients.estimate),
    ...(experiment.linkLoss === undefined ? {} : { network: { linkLoss: experiment.linkLoss } })
  })
  const seconds = Number(process.hrtime.bigint() - started) / 1e9
  const roundsTo = (threshold: number): number | null => {
    const index = simulation.errorByRound.findIndex((error) => error < threshold)
    return index < 0 ? null : index + 1
  }
  return { simulation, graph, roundsTo, admmRounds: admmRoundsOf(simulation.results[0]?.phaseRounds), seconds }
}

export function gapOf (graph: Graph): number {
  return spectralGap(graph).gap
}

/** Rounds of the ADMM phases: the warm-up (`admm`) and, after the penalty is estimated again, `admm2`. */
function admmRoundsOf (phaseRounds: Record<string, number> | undefined): number | null {
  if (phaseRounds?.admm === undefined) return null
  return phaseRounds.admm + (phaseRounds.admm2 ?? 0)
}
