/**
 * Audit verification speed: a federated fit in the simulator on a ring, every peer writing the signed
 * round log a real peer writes (same machines, recorder, sealing, checkpoints, countersignatures),
 * then every log verified together, as `epimesh audit verify` does. Reports entries, bytes and
 * entries per second (best of three verifications), and optionally writes the files.
 *
 *   npx tsx scripts/bench-audit.ts [--peers 16] [--out DIR]
 */
import '../src/peer/polyfill.ts'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
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

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const peers = Number(option('peers', '16'))
const out = option('out', '')

const infert = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const keys = await Promise.all(Array.from({ length: peers }, async () => await generateKeyPair('Ed25519')))
const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
const graph = graphFromEdges(ids, ids.map((id, index) => [id, ids[(index + 1) % peers] as string]))
const parts = splitRows(infert.block.rows, peers, 'even', createRng(1))
const written = performance.now()
const run = await simulateAuditedFit({
  job: 'bench-audit',
  graph,
  keys,
  problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(infert.block, rows), terms: infert.terms, interceptColumn: 0 })),
  params: createFitJobParams({ tolerance: 1e-10 }),
  seed: 1
})
const writeSeconds = (performance.now() - written) / 1000
const files = run.files.map((file, index) => ({ name: `peer-${index}.jsonl`, text: file.text }))
if (out !== '') {
  await mkdir(out, { recursive: true })
  for (const file of files) await writeFile(join(out, file.name), file.text)
}
let best = Number.POSITIVE_INFINITY
let ok = false
let failures = 0
for (let repeat = 0; repeat < 3; repeat++) {
  const started = performance.now()
  const report = await verifyAuditTexts(files)
  best = Math.min(best, (performance.now() - started) / 1000)
  ok = report.ok
  failures = report.failures.length
}
const bytes = files.reduce((sum, file) => sum + Buffer.byteLength(file.text), 0)
console.log(JSON.stringify({
  peers,
  rounds: run.results[0]?.rounds,
  entries: run.entries,
  megabytes: Number((bytes / 1e6).toFixed(2)),
  simulateAndSignSeconds: Number(writeSeconds.toFixed(2)),
  verifySeconds: Number(best.toFixed(3)),
  entriesPerSecond: Math.round(run.entries / best),
  ok,
  failures
}))
