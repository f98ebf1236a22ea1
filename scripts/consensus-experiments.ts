/**
 * The consensus experiments quoted in the README: rounds to a given distance from the pooled fit on
 * real data, exact Newton, link loss, and averaging against its spectral bound.
 *
 *   npx tsx scripts/consensus-experiments.ts
 */
import { averagingProtocol, createAveraging, roundsForAccuracy } from '../src/consensus/protocols/averaging.ts'
import { MemoryNetwork } from '../src/consensus/sim/memory-network.ts'
import { createRng } from '../src/consensus/rng.ts'
import { runSynchronous } from '../src/consensus/sim/simulation.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { loadProblem, runExperiment } from './lib.ts'

const infert = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const breast = await loadProblem('breast cancer', 'breast_cancer.csv', 'malignant')

const rows: string[] = ['| experiment | rounds to 1e-6 | rounds to 1e-8 | ADMM rounds | total rounds | messages | seconds |', '|---|---|---|---|---|---|---|']
function report (label: string, result: ReturnType<typeof runExperiment>): void {
  rows.push(`| ${label} | ${result.roundsTo(1e-6) ?? '-'} | ${result.roundsTo(1e-8) ?? '-'} | ${result.admmRounds ?? '-'} | ${result.simulation.rounds} | ${result.simulation.messages} | ${result.seconds.toFixed(2)} |`)
}

report('infert, lambda 1, 16-peer ring, ADMM', runExperiment({ problem: infert, peers: 16, topology: 'ring', params: { lambda: 1 }, seed: 1 }))
report('breast cancer, lambda 1, 16-peer ring, ADMM', runExperiment({ problem: breast, peers: 16, topology: 'ring', params: { lambda: 1 }, seed: 1 }))
report('infert, lambda 1, 16-peer ring, exact Newton', runExperiment({ problem: infert, peers: 16, topology: 'ring', params: { lambda: 1, algorithm: 'newton' }, seed: 1 }))
report('breast cancer, lambda 1, 16-peer ring, exact Newton', runExperiment({ problem: breast, peers: 16, topology: 'ring', params: { lambda: 1, algorithm: 'newton' }, seed: 1 }))
for (const seed of [1, 2, 3]) {
  const clean = runExperiment({ problem: infert, peers: 16, topology: 'ring', params: { lambda: 1 }, seed })
  const lossy = runExperiment({ problem: infert, peers: 16, topology: 'ring', params: { lambda: 1 }, seed, linkLoss: 0.3 })
  report(`infert, lambda 1, 16-peer ring, no loss (seed ${seed})`, clean)
  report(`infert, lambda 1, 16-peer ring, 30% links lost per round (seed ${seed}); ADMM rounds x${((lossy.admmRounds ?? 0) / (clean.admmRounds ?? 1)).toFixed(2)}`, lossy)
}
console.log(rows.join('\n'))

// Metropolis averaging on a 16-peer ring against ln(eps) / ln(rho)
const graph = buildTopology('ring', 16, createRng(1))
const values = graph.names.map((_, index) => [50 + 40 * Math.cos((2 * Math.PI * index) / 16) + 5 * createRng(index)()])
const mean = values.reduce((sum, [value]) => sum + (value as number), 0) / 16
const distance = (xs: number[]): number => Math.hypot(...xs.map((value) => value - mean))
const initial = distance(values.map(([value]) => value as number))
const bound = roundsForAccuracy(graph, 1e-6)
let reached = -1
const states = values.map((value, self) => createAveraging({ graph, self, value, job: 'avg', rounds: 3 * bound }))
runSynchronous({
  protocol: averagingProtocol, states, network: new MemoryNetwork({ graph, rng: createRng(1) }), maxRounds: 3 * bound + 5, deadlineTicks: 1,
  onRound: (round, current) => { if (reached < 0 && distance(current.map((state) => state.x[0] as number)) / initial < 1e-6) reached = round }
})
console.log(`\nMetropolis averaging, 16-peer ring: 1e-6 reached in ${reached} rounds; ln(1e-6)/ln(rho) = ${bound} (${(100 * (reached - bound) / bound).toFixed(1)}%)`)
