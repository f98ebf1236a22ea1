/**
 * Lying members against the federation: infert on a 16-peer ring, consensus ADMM, every message
 * signed (simulated signatures), one or two members lying in each way the simulator knows, with
 * clipping off and on (its default). For each run: what the honest peers end with (a model, or the
 * job failed naming someone), the rounds, how far ADMM's own iterate was from the pooled fit when ADMM
 * ended (the error the lie leaves inside ADMM), and how far the final model is from the pooled fit of
 * the true data. Writes docs/trust.md.
 *
 *   npx tsx scripts/trust-experiment.ts [--max-rounds 1000]
 */
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { simulateAdversarialFit, type Liar, type Lie } from '../src/consensus/sim/adversary.ts'
import { createFitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng } from '../src/consensus/rng.ts'
import { buildTopology } from '../src/consensus/topology.ts'
import { relativeDistance } from '../src/learning/linalg.ts'
import { selectRows } from '../src/learning/design.ts'
import { fitModel } from '../src/learning/fit.ts'
import { toOriginalScale } from '../src/learning/standardize.ts'
import { loadProblem } from './lib.ts'

const argument = (name: string, fallback: number): number => {
  const index = process.argv.indexOf(name)
  return index < 0 ? fallback : Number(process.argv[index + 1])
}
const maxRounds = argument('--max-rounds', 1000)
const problem = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const peers = 16
const graph = buildTopology('ring', peers, createRng(1))
const blocks = splitRows(problem.block.rows, peers, 'even', createRng(1)).map((rows) => selectRows(problem.block, rows))
const pooled = Float64Array.from(fitModel(problem.block, problem.terms, { family: 'binomial', standardize: true, tolerance: 1e-13 }).coefficients.estimate)

const lies: Array<{ lie: Lie | 'none', label: string, factor?: number }> = [
  { lie: 'none', label: 'nobody lies' },
  { lie: 'false-stop', label: 'false stop (counter 1000, done flag)' },
  { lie: 'equivocate', label: 'equivocation (+-0.5 per neighbour)', factor: 0.5 },
  { lie: 'scale', label: 'iterate scaled x10', factor: 10 },
  { lie: 'stubborn', label: 'stubborn iterate (3 everywhere)', factor: 3 },
  { lie: 'frame', label: 'false alarm framing a neighbour' },
  { lie: 'inflate', label: 'its rows counted 20 times (a data lie)', factor: 20 }
]
const liarPeers = [[5], [3, 11]]

const rows = [
  '| lie | liars | clipping | honest peers end with | rounds | ADMM error when ADMM ended | final model error |',
  '|---|---|---|---|---|---|---|'
]
for (const { lie, label, factor } of lies) {
  for (const positions of lie === 'none' ? [[]] : liarPeers) {
    for (const clip of [null, 1]) {
      const liars: Liar[] = lie === 'none' ? [] : positions.map((peer, index) => ({ peer, lie, from: 3 + 2 * index, ...(factor === undefined ? {} : { factor }) }))
      const started = Date.now()
      const output = simulateAdversarialFit({ family: 'binomial', terms: problem.terms, interceptColumn: 0, graph, seed: 1, blocks, liars, params: createFitJobParams({ tolerance: 1e-10, maxRounds, clip }) })
      const honest = graph.names.map((_, peer) => peer).filter((peer) => !positions.includes(peer) || lie === 'none')
      const outcomes = new Map<string, number>()
      let admmError = 0
      let finalError = 0
      for (const peer of honest) {
        const result = output.results[peer]
        const failure = output.failures[peer] as { code?: string, offender?: string, rule?: string } | null
        const outcome = result !== null && result !== undefined
          ? (result.converged ? 'a converged model' : 'a model marked not converged')
          : failure?.code === 'MEMBER_MISBEHAVED' ? `failed, naming ${positions.map((position) => graph.names[position]).includes(failure.offender ?? '') ? 'a liar' : `an honest peer (${failure.offender})`} (${failure.rule})` : `failed: ${failure?.code ?? 'unfinished'}`
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1)
        const state = output.states[peer]
        const iterate = output.admmIterates[peer]
        const scaling = state?.fit.scaling ?? null
        if (iterate !== null && iterate !== undefined && state !== undefined) {
          admmError = Math.max(admmError, relativeDistance(scaling === null ? iterate : toOriginalScale(iterate, scaling, 0), pooled))
        }
        if (result !== null && result !== undefined) finalError = Math.max(finalError, relativeDistance(result.coefficients, pooled))
      }
      const ended = [...outcomes.entries()].map(([outcome, count]) => `${count} ${outcome}`).join('; ')
      const admm = output.admmIterates.some((iterate) => iterate !== null) ? admmError.toExponential(1) : '-'
      const final = [...outcomes.keys()].some((outcome) => outcome.startsWith('a ')) ? finalError.toExponential(1) : '-'
      rows.push(`| ${label} | ${positions.length === 0 ? '-' : positions.length} | ${clip === null ? 'off' : 'on'} | ${ended} | ${output.ticks} | ${admm} | ${final} |`)
      console.error(`${label}, ${positions.length} liar(s), clipping ${clip === null ? 'off' : 'on'}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
    }
  }
}

const text = `# Lying members: what each lie does

Measured with \`npx tsx scripts/trust-experiment.ts --max-rounds ${maxRounds}\`: infert (248 rows, 5 coefficients)
split evenly over ${peers} peers on a ring, consensus ADMM with tolerance 1e-10 and a budget of ${maxRounds} ADMM
rounds, every message signed, the liars at ring positions ${liarPeers.map((list) => list.join(' and ')).join(', or ')}
(the second liar starts two rounds later). "ADMM error" is the largest relative distance of an honest
peer's own ADMM iterate from the pooled fit when ADMM ended there, before the job's closing; "final
model error" the largest relative distance of an honest peer's final model from the pooled fit of the
true data (R's glm on all 248 rows). Clipping on is the default (a neighbour's iterate enters at most
1 x max(1, |start|) from the peer's own). Rounds are simulator ticks of the whole job.

${rows.join('\n')}
`
await writeFile(fileURLToPath(new URL('../docs/trust.md', import.meta.url)), text)
console.log(text)
