/**
 * A warm-started re-fit against a cold one, in the simulator: 16 peers on a ring hold a data set split
 * evenly; 5% of the rows (chosen at random) arrive after a first fit. The re-fit on all rows starts from
 * the first fit's shared model and each peer's own ADMM duals (FitWarmStart); the cold fit starts as any
 * job does. Both run the whole fit job (ADMM, tolerance 1e-10, the default penalty rule), and each is
 * measured by the first round from which every peer's iterate stays within 1e-6 (relative) of the
 * pooled fit of all rows, and by the rounds to the network-agreed stop.
 *
 *   npx tsx scripts/refit-experiment.ts [--peers 16] [--share 0.05] [--seeds 5]
 */
import { createFitJobParams, type FitWarmStart } from '../src/consensus/jobs/fit-job.ts'
import { simulateFit, type FitSimulationOutput } from '../src/consensus/sim/fit-simulation.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng, forkRng } from '../src/consensus/rng.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { buildDesign, INTERCEPT, selectRows, termNames } from '../src/learning/design.ts'
import { generateCases } from '../src/peer/data/synthetic-cases.ts'
import { fitModel } from '../src/learning/fit.ts'
import { loadProblem, type Problem } from './lib.ts'

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const peers = Number(option('peers', '16'))
const share = Number(option('share', '0.05'))
const seeds = Number(option('seeds', '5'))

/** The first round from which the error stays below the threshold. */
function roundsTo (errors: readonly number[], threshold: number): number | null {
  let last = -1
  errors.forEach((error, round) => { if (!(error < threshold)) last = round })
  return last + 1 >= errors.length ? null : last + 2
}

/** 16 synthetic provinces of 500 cases each (the demo's generator, profiles varied), one per peer: the severity model. */
function provinces (count: number, cases: number): Problem & { parts: number[][] } {
  const rng = createRng(99)
  const rows: Array<Record<string, unknown>> = []
  const parts: number[][] = []
  for (let index = 0; index < count; index++) {
    const generated = generateCases({ region: `P${index}`, cases, meanAge: 38 + (index * 7) % 11, healthcareShare: 0.03 + 0.01 * (index % 5), contactShare: 0.35 + 0.02 * (index % 10) }, forkRng(rng, `p${index}`))
    parts.push(generated.map((_, row) => rows.length + row))
    rows.push(...generated)
  }
  const spec = { outcome: 'severe', features: ['age', 'max_temperature', 'lymphocytes', 'lung_imaging', 'prior_illness', 'contact', 'healthcare_worker'].map((name) => ({ name, type: 'numeric' as const })) }
  return { name: `synthetic provinces (${count} x ${cases} cases, 7 features)`, block: buildDesign(rows, spec), terms: termNames(spec), parts }
}

const problems: Array<Problem & { parts?: number[][] }> = [
  provinces(peers, 500),
  await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous']),
  await loadProblem('breast cancer (10 features)', 'breast_cancer.csv', 'malignant', ['mean_radius', 'mean_texture', 'mean_smoothness', 'mean_compactness', 'mean_concavity', 'mean_symmetry', 'mean_fractal_dimension', 'radius_error', 'texture_error', 'smoothness_error'])
]

const params = createFitJobParams({ algorithm: 'admm', tolerance: 1e-10, maxRounds: 5000 })
const median = (values: number[]): number => { const sorted = [...values].sort((a, b) => a - b); return sorted[Math.floor(sorted.length / 2)] as number }
for (const problem of problems) {
  const cold: number[] = []
  const warm: number[] = []
  const coldStop: number[] = []
  const warmStop: number[] = []
  const newtonRounds: Array<[number, number, number, number]> = []
  const warmPhases: Array<[number, number]> = []
  for (let seed = 1; seed <= seeds; seed++) {
    const rng = createRng(seed)
    const graph = buildTopology('ring', peers, forkRng(rng, 'topology'))
    const parts = problem.parts ?? splitRows(problem.block.rows, peers, 'even', forkRng(rng, 'split'))
    // the rows that arrive after the first fit: `share` of all, at random
    const late = new Set<number>()
    const pick = forkRng(rng, 'late')
    const lateCount = Math.round(share * problem.block.rows)
    while (late.size < lateCount) late.add(Math.floor(pick() * problem.block.rows))
    const before = parts.map((rows) => selectRows(problem.block, rows.filter((row) => !late.has(row))))
    const after = parts.map((rows) => selectRows(problem.block, rows))
    const interceptColumn = problem.terms.indexOf(INTERCEPT)
    const pooled = fitModel(problem.block, problem.terms, { family: 'binomial', standardize: true, tolerance: 1e-13 })
    const reference = Float64Array.from(pooled.coefficients.estimate)
    const run = (blocks: typeof after, warmStarts?: Array<FitWarmStart | null>, withReference = true): FitSimulationOutput =>
      simulateFit({ family: 'binomial', terms: problem.terms, interceptColumn, blocks, graph, params, seed, ...(withReference ? { reference } : {}), ...(warmStarts === undefined ? {} : { warmStarts }) })
    const first = run(before, undefined, false)
    const warmStarts = first.results.map((result) => ({ coefficients: result.coefficients, duals: result.duals }))
    const coldRun = run(after)
    const warmRun = run(after, warmStarts)
    if (process.env.TRACE === '1') for (const round of [0, 10, 15, 20, 25, 30, 40, 60, 80, 100, 150, 200, 300]) console.log(round, coldRun.errorByRound[round]?.toExponential(2), warmRun.errorByRound[round]?.toExponential(2))
    // exact Newton, cold and from the previous model (duals play no part)
    const newton = createFitJobParams({ algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000 })
    const newtonRun = (warmStarts?: Array<FitWarmStart | null>): FitSimulationOutput =>
      simulateFit({ family: 'binomial', terms: problem.terms, interceptColumn, blocks: after, graph, params: newton, seed, reference, ...(warmStarts === undefined ? {} : { warmStarts }) })
    const newtonCold = newtonRun()
    const newtonWarm = newtonRun(warmStarts)
    newtonRounds.push([roundsTo(newtonCold.errorByRound, 1e-6) ?? Number.NaN, roundsTo(newtonWarm.errorByRound, 1e-6) ?? Number.NaN, newtonCold.rounds, newtonWarm.rounds])
    cold.push(roundsTo(coldRun.errorByRound, 1e-6) ?? Number.NaN)
    warm.push(roundsTo(warmRun.errorByRound, 1e-6) ?? Number.NaN)
    coldStop.push(coldRun.rounds)
    warmStop.push(warmRun.rounds)
    // where the warm job's rounds went: its exact Newton steps from the previous model, and ADMM
    const warmSteps = warmRun.phaseStarts.filter((entry) => entry.phase.startsWith('refit-newton.')).length
    warmPhases.push([warmSteps, warmRun.results[0]?.phaseRounds.admm ?? Number.NaN])
    const worst = Math.max(...warmRun.results.map((result) => Math.max(...Array.from(result.coefficients, (value, index) => Math.abs(value - (reference[index] as number)) / Math.max(1, Math.abs(reference[index] as number))))))
    console.log(`${problem.name}, seed ${seed}: ADMM rounds to 1e-6 cold ${cold.at(-1)}, warm ${warm.at(-1)}; to the stop cold ${coldRun.rounds}, warm ${warmRun.rounds} (${warmSteps} Newton sums from the previous model, then ${warmPhases.at(-1)?.[1]} ADMM rounds); warm model's largest difference from the pooled fit ${worst.toExponential(2)}; exact Newton to 1e-6 cold ${newtonRounds.at(-1)?.[0]}, warm ${newtonRounds.at(-1)?.[1]}, to the stop cold ${newtonRounds.at(-1)?.[2]}, warm ${newtonRounds.at(-1)?.[3]}`)
  }
  const column = (index: number): number => median(newtonRounds.map((entry) => entry[index] as number))
  console.log(`${problem.name}: ${peers}-peer ring, ${(share * 100).toFixed(0)}% rows added, median of ${seeds} seeds. ADMM: rounds to 1e-6 cold ${median(cold)}, warm ${median(warm)} (ratio ${(median(warm) / median(cold)).toFixed(2)}); to the stop cold ${median(coldStop)}, warm ${median(warmStop)} (ratio ${(median(warmStop) / median(coldStop)).toFixed(2)}); the warm job's Newton sums from the previous model ${median(warmPhases.map((entry) => entry[0]))}, its ADMM rounds ${median(warmPhases.map((entry) => entry[1]))}. Exact Newton: to 1e-6 cold ${column(0)}, warm ${column(1)}; to the stop cold ${column(2)}, warm ${column(3)}`)
}
