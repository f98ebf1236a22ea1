/**
 * The audit's root cause, measured: one log of a 4-peer job (written by the simulator with the code a
 * peer runs) has one random bit flipped, N times, and each time `audit verify` must report exactly one
 * failure that does not follow from another, on the flipped line (or the one before, when a newline was
 * flipped). Prints the flips, those that broke the rule, and the failures reported in all.
 *
 *   npx tsx scripts/audit-root-cause.ts [--flips 400] [--seed 99]
 */
import '../src/peer/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createFitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { graphFromEdges } from '../src/consensus/graph.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng } from '../src/consensus/rng.ts'
import { selectRows } from '../src/learning/design.ts'
import { createGlmProblem } from '../src/learning/problem.ts'
import { simulateAuditedFit } from '../src/peer/audit/simulation.ts'
import { verifyAuditTexts } from '../src/peer/audit/verify.ts'
import { loadProblem } from './lib.ts'
const peers = 4
const infert = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const keys = await Promise.all(Array.from({ length: peers }, async () => await generateKeyPair('Ed25519')))
const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
const graph = graphFromEdges(ids, ids.map((id, index) => [id, ids[(index + 1) % peers] as string] as [string, string]))
const parts = splitRows(infert.block.rows, peers, 'even', createRng(3))
const run = await simulateAuditedFit({ job: 'job-audit', graph, keys, problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(infert.block, rows), terms: infert.terms, interceptColumn: 0 })), params: createFitJobParams({ tolerance: 1e-8 }), seed: 11 })
const original = Buffer.from((run.files[1] as { text: string }).text, 'utf8')
const headerEnd = original.indexOf(10)
const option = (name: string, fallback: number): number => { const index = process.argv.indexOf(`--${name}`); return index > 0 ? Number(process.argv[index + 1]) : fallback }
const flips = option('flips', 400)
const rng = createRng(option('seed', 99))
let bad = 0
let total = 0
let failures = 0
let alone = 0
for (let trial = 0; trial < flips; trial++) {
  const position = headerEnd + 1 + Math.floor(rng() * (original.length - headerEnd - 2))
  const tampered = Buffer.from(original)
  tampered[position] = (tampered[position] as number) ^ (1 << Math.floor(rng() * 8))
  const report = await verifyAuditTexts([{ name: 'f', text: tampered.toString('latin1') }])
  const line = original.subarray(0, position).toString('latin1').split('\n').length
  total++
  failures += report.failures.length
  const standing = report.failures.filter((f) => f.followsFrom === undefined)
  alone += standing.length
  if (report.ok || standing.length !== 1 || Math.abs((standing[0]?.line ?? 0) - line) > 1) {
    bad++
    if (bad < 5) console.log(JSON.stringify({ position, line, standing: standing.slice(0, 3) }))
  }
}
console.log(JSON.stringify({ flips: total, broken: bad, failures, standingAlone: alone }))
