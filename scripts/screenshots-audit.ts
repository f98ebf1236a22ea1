/**
 * The screenshot of the auditor's web page in the README (docs/audit-view.png): a consensus-ADMM fit
 * of infert on a ring of four regions, its signed logs written by the simulator with the code a peer
 * runs, served by `audit serve` and opened in headless Chromium (Debian's, driven by playwright-core)
 * with the slider moved to a round (the whole page); then the same logs with one field of one round
 * entry of one region changed (the top of the page: the verdict and the failures, root cause first).
 * --out FOLDER also keeps the honest logs.
 *
 *   npx tsx scripts/screenshots-audit.ts [--png docs/audit-view.png] [--failed-png docs/audit-view-failed.png] [--out logs] [--position 40]
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
import { serveAudit } from '../src/peer/web/audit-server.ts'
import { launchBrowser } from '../test/helpers/browser.ts'
import { loadProblem } from './lib.ts'

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const png = option('png', 'docs/audit-view.png')
const failedPng = option('failed-png', 'docs/audit-view-failed.png')
const out = option('out', '')
const position = Number(option('position', '40'))

const regions = ['Jiangsu', 'Shanghai', 'Zhejiang', 'Anhui']
const infert = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const keys = await Promise.all(regions.map(async () => await generateKeyPair('Ed25519')))
const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
const graph = graphFromEdges(ids, ids.map((id, index) => [id, ids[(index + 1) % ids.length] as string]))
const parts = splitRows(infert.block.rows, ids.length, 'even', createRng(2))
const run = await simulateAuditedFit({
  job: 'severity-2026-11',
  graph,
  keys,
  regions,
  problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(infert.block, rows), terms: infert.terms, interceptColumn: 0 })),
  params: createFitJobParams({ tolerance: 1e-8, lambda: 0.5 }),
  seed: 2
})
const files = run.files.map((file, index) => ({ name: `severity-2026-11.${regions[index] as string}.jsonl`, text: file.text }))
if (out !== '') {
  await mkdir(out, { recursive: true })
  for (const file of files) await writeFile(join(out, file.name), file.text)
}
// the tampered copy: Shanghai's 20th line, a round entry, says its deadline passed where it did not
const lines = (files[1] as { text: string }).text.split('\n')
lines[19] = (lines[19] as string).replace('"deadline":false', '"deadline":true')
const tampered = files.map((file, index) => index === 1 ? { ...file, text: lines.join('\n') } : file)

const browser = await launchBrowser()
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } })
  const served = await serveAudit({ files, host: '127.0.0.1', port: 0 })
  try {
    await page.goto(served.web.loginUrl)
    await page.waitForSelector('#round-peers[data-index="0"]')
    const target = Math.min(position, served.view.positions.length - 1)
    // the slider moved as a person drags it: its value set, an input event fired
    await page.locator('#round').evaluate((element, value) => {
      const slider = element as unknown as { value: string, dispatchEvent: (event: Event) => boolean }
      slider.value = String(value)
      slider.dispatchEvent(new Event('input'))
    }, target)
    await page.waitForSelector(`#round-peers[data-index="${target}"]`)
    await page.screenshot({ path: png, fullPage: true })
    console.log(JSON.stringify({ png, job: served.view.report.job, ok: served.view.report.ok, entries: served.view.report.entries, positions: served.view.positions.length, shown: target }))
  } finally {
    await served.close()
  }
  const broken = await serveAudit({ files: tampered, host: '127.0.0.1', port: 0 })
  try {
    await page.goto(broken.web.loginUrl)
    await page.waitForSelector('#round-peers[data-index="0"]')
    await page.screenshot({ path: failedPng })
    const cause = broken.view.report.failures.find((finding) => finding.rootCause === true)
    console.log(JSON.stringify({ png: failedPng, ok: broken.view.report.ok, failures: broken.view.report.failures.length, rootCause: cause === undefined ? null : `${cause.file}:${cause.line} ${cause.field}` }))
  } finally {
    await broken.close()
  }
} finally {
  await browser.close()
}
