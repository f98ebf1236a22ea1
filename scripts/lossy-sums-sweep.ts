/**
 * Fits under random message loss over many seeds: how many runs end in an error (SUM_INCOMPLETE or
 * another) and how many do not reach the pooled fit (infert, standardised, lambda = 1, an even split).
 *
 *   npx tsx scripts/lossy-sums-sweep.ts [--topology line] [--peers 20] [--loss 0.2] [--algorithm admm]
 *     [--seeds 30] [--first 1]
 */
import { createFitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng, forkRng } from '../src/consensus/rng.ts'
import { simulateFit } from '../src/consensus/sim/fit-simulation.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { selectRows } from '../src/learning/design.ts'
import { fitModel } from '../src/learning/fit.ts'
import { loadProblem } from './lib.ts'

function flag (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] ?? fallback) : fallback
}

const topology = flag('topology', 'line')
const peers = Number(flag('peers', '20'))
const loss = Number(flag('loss', '0.2'))
const algorithm = flag('algorithm', 'admm')
const seeds = Number(flag('seeds', '30'))
const first = Number(flag('first', '1'))
if (algorithm !== 'admm' && algorithm !== 'newton') throw new RangeError(`--algorithm ${algorithm}: admm or newton`)

const problem = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const pooled = fitModel(problem.block, problem.terms, { family: 'binomial', lambda: 1, standardize: true, tolerance: 1e-13 })
const failures: string[] = []
let worstRounds = 0
let totalRounds = 0
let completed = 0
for (let seed = first; seed < first + seeds; seed++) {
  const rng = createRng(seed)
  const parts = splitRows(problem.block.rows, peers, 'even', forkRng(rng, 'split'))
  const graph = buildTopology(topology, peers, forkRng(rng, 'topology'))
  try {
    const simulation = simulateFit({
      family: 'binomial', terms: problem.terms, interceptColumn: 0, graph, seed,
      network: { messageLoss: loss },
      blocks: parts.map((rows) => selectRows(problem.block, rows)),
      params: createFitJobParams({ algorithm, lambda: 1, tolerance: 1e-10 })
    })
    worstRounds = Math.max(worstRounds, simulation.rounds)
    totalRounds += simulation.rounds
    completed++
    let worst = 0
    for (const result of simulation.results) {
      result.coefficients.forEach((value, index) => {
        const expected = pooled.coefficients.estimate[index] as number
        worst = Math.max(worst, Math.abs(value - expected) / Math.abs(expected))
      })
    }
    if (simulation.results.length !== peers || worst > 1e-6) failures.push(`seed ${seed}: ${simulation.results.length} results, relative error ${worst.toExponential(2)}`)
  } catch (error) {
    failures.push(`seed ${seed}: ${(error as Error).name}: ${(error as Error).message}`)
  }
}
console.log(`${algorithm} on ${topology}:${peers}, ${loss * 100}% of messages lost, seeds ${first}-${first + seeds - 1}: ${failures.length} of ${seeds} failed; rounds of the runs that ended: mean ${completed === 0 ? '-' : Math.round(totalRounds / completed)}, most ${worstRounds}`)
for (const failure of failures) console.log(`  ${failure}`)
