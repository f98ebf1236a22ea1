/**
 * Scale benchmark: 1,000 peers on a random 4-regular graph holding 100,000 synthetic rows with 16
 * features (logistic model with known coefficients), fitted in the simulator by consensus ADMM (the
 * default) or by exact Newton over masked sums (--algorithm newton) to 1e-6 of the pooled fit. Prints
 * the wall time, the CPU time, the rounds and the peak memory (resident set).
 *
 *   npx tsx scripts/bench-scale.ts [--peers 1000] [--rows 100000] [--features 16] [--seed 1]
 *     [--algorithm admm|newton] [--until-target]
 *
 * --until-target ends the simulation when every peer is within 1e-6 of the pooled fit, instead of at the
 * job's end: the job's closing sends every member's statement to every member, which grows with the
 * square of the peers (10,000 peers: 10^8 statements held in one process).
 */
import { createFitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { simulateFit } from '../src/consensus/sim/fit-simulation.ts'
import { diameter } from '../src/consensus/graph.ts'
import { createRng, forkRng } from '../src/consensus/rng.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { concatBlocks, type DataBlock } from '../src/learning/design.ts'
import { fitModel } from '../src/learning/fit.ts'

function option (name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? Number(process.argv[index + 1]) : fallback
}
const peers = option('peers', 1000)
const rows = option('rows', 100_000)
const features = option('features', 16)
const seed = option('seed', 1)
const untilTarget = process.argv.includes('--until-target')
const algorithmIndex = process.argv.indexOf('--algorithm')
const algorithm = algorithmIndex > 0 ? process.argv[algorithmIndex + 1] : 'admm'
if (algorithm !== 'admm' && algorithm !== 'newton') {
  process.stderr.write(`--algorithm must be admm or newton, got ${String(algorithm)}\n`)
  process.exit(2)
}
for (const [name, value] of [['peers', peers], ['rows', rows], ['features', features], ['seed', seed]] as const) {
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive integer, got ${value}\n`)
    process.exit(2)
  }
}
if (rows < peers) {
  process.stderr.write(`--rows ${rows} gives no row to some of the ${peers} peers\n`)
  process.exit(2)
}

const rng = createRng(seed)
const truth = Array.from({ length: features + 1 }, (_, index) => index === 0 ? -1 : (rng() - 0.5))
const perPeer = Math.floor(rows / peers)
const blocks: DataBlock[] = Array.from({ length: peers }, (_, peer) => {
  const local = forkRng(rng, peer)
  const x = new Float64Array(perPeer * (features + 1))
  const y = new Float64Array(perPeer)
  // peers differ in their feature means: the data are not identically distributed
  const shift = Array.from({ length: features }, () => local() - 0.5)
  for (let row = 0; row < perPeer; row++) {
    let eta = truth[0] as number
    x[row * (features + 1)] = 1
    for (let column = 1; column <= features; column++) {
      const value = (shift[column - 1] as number) + Math.sqrt(-2 * Math.log(1 - local())) * Math.cos(2 * Math.PI * local())
      x[row * (features + 1) + column] = value
      eta += (truth[column] as number) * value
    }
    y[row] = local() < 1 / (1 + Math.exp(-eta)) ? 1 : 0
  }
  return { x, y, rows: perPeer, cols: features + 1 }
})
const terms = ['(Intercept)', ...Array.from({ length: features }, (_, index) => `x${index + 1}`)]
const graph = buildTopology('regular:4', peers, forkRng(rng, 'graph'))
const pooled = fitModel(concatBlocks(blocks), terms, { family: 'binomial', standardize: true, lambda: 1, tolerance: 1e-13 })
process.stderr.write(`${peers} peers, ${perPeer * peers} rows, ${features} features, diameter ${diameter(graph)}\n`)
const started = process.hrtime.bigint()
const cpuStarted = process.cpuUsage()
let reachedAt: number | null = null
let reachedSeconds: number | null = null
const simulation = simulateFit({
  family: 'binomial', terms, interceptColumn: 0, blocks, graph, seed,
  params: createFitJobParams({ algorithm, lambda: 1, tolerance: 1e-9, maxRounds: 3000 }),
  reference: Float64Array.from(pooled.coefficients.estimate),
  ...(untilTarget ? { stopBelow: 1e-6 } : {}),
  onRound: (round, error) => {
    if (reachedAt === null && error < 1e-6) {
      reachedAt = round
      reachedSeconds = Number(process.hrtime.bigint() - started) / 1e9
    }
    if (round % 50 === 0) process.stderr.write(`round ${round}: max relative error ${error.toExponential(2)}\n`)
  }
})
const seconds = Number(process.hrtime.bigint() - started) / 1e9
const cpu = process.cpuUsage(cpuStarted)
console.log(JSON.stringify({
  algorithm, peers, rows: perPeer * peers, features, diameter: diameter(graph),
  roundsTo1e6: reachedAt, secondsTo1e6: reachedSeconds,
  rounds: simulation.rounds, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6,
  stoppedAtTarget: simulation.stoppedEarly,
  messages: simulation.messages, bytes: simulation.bytes,
  converged: simulation.stoppedEarly ? null : simulation.results.every((result) => result.converged),
  phaseRounds: simulation.results[0]?.phaseRounds ?? null,
  // the whole process's peak resident set (the data and the pooled fit included), in MB
  peakRssMB: Math.round(process.resourceUsage().maxRSS / 1024)
}))
