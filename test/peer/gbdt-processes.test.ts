import { readdir, rm } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { runEpimesh } from '../helpers/process.ts'
import { gbdtModelFromJson, predictTrees, readCsv } from '../../src/index.ts'

/**
 * Boosted trees grown by separate peer processes over libp2p on 127.0.0.1 (the demo command starts one
 * `epimesh start` per region): every region's stored forest equals the pooled forest grown with the
 * same bin edges, split for split, leaves to 1e-9, for a binary outcome and for counts; the round logs
 * carry the forest in their final entries and verify offline.
 */
const INFERT = fileURLToPath(new URL('../fixtures/infert.csv', import.meta.url))
const folders: string[] = []
afterAll(async () => { await Promise.all(folders.map(async (folder) => { await rm(folder, { recursive: true, force: true }) })) })

const run = runEpimesh

interface TreeDemo {
  job: string
  kind: string
  trees: number
  rows: number
  sameTreesAsPooled: boolean
  maxLeafDifference: number
  metrics: { auc: number } | null
  federation: string
  peers: Array<{ region: string, dir: string }>
}

describe('boosted trees over separate peer processes', () => {
  it('4 peers: logistic and Poisson forests equal the pooled ones, every region stores the forest, the logs verify', async () => {
    const cases: Array<{ args: string[], trees: number }> = [
      { args: ['--outcome', 'case', '--features', 'age,parity,induced,spontaneous,education', '--trees', '6', '--depth', '3'], trees: 6 },
      { args: ['--outcome', 'spontaneous', '--family', 'poisson', '--features', 'age,parity,induced,education', '--trees', '4', '--depth', '2'], trees: 4 }
    ]
    for (const [index, entry] of cases.entries()) {
      const { code, stdout, stderr } = await run(['demo', '--data', INFERT, '--peers', '4', '--model', 'gbdt', ...entry.args, '--seed', String(index + 1), '--json'], 150_000)
      expect(code, stderr).toBe(0)
      const summary = JSON.parse(stdout) as TreeDemo
      folders.push(dirname(summary.federation))
      expect(summary.kind).toBe('gbdt')
      expect(summary.trees).toBe(entry.trees)
      expect(summary.rows).toBe(248)
      expect(summary.sameTreesAsPooled).toBe(true)
      expect(summary.maxLeafDifference).toBeLessThan(1e-9)
      if (index === 0) expect(summary.metrics?.auc).toBeGreaterThan(0.7)
      else expect(summary.metrics).toBeNull()

      const forests: string[] = []
      for (const peer of summary.peers) {
        const shown = await run(['model', '--dir', peer.dir, '--job', summary.job, '--json'], 30_000)
        expect(shown.code, shown.stderr).toBe(0)
        const model = JSON.parse(shown.stdout) as { kind?: string, forest?: { trees: unknown[] }, coefficients: unknown[], lineage?: { algorithm: string, ownRows: number, dataDigest: string, regions: string[] } }
        expect(model.kind).toBe('gbdt')
        // its lineage: the tree job, this region's own rows and a digest of them, the regions
        expect(model.lineage).toMatchObject({ algorithm: 'gbdt', regions: summary.peers.map((member) => member.region) })
        expect(model.lineage?.ownRows).toBeGreaterThanOrEqual(62)
        expect(model.lineage?.dataDigest).toMatch(/^[0-9a-f]{64}$/)
        expect(model.coefficients).toEqual([])
        expect(model.forest?.trees).toHaveLength(entry.trees)
        forests.push(JSON.stringify(model.forest))
        if (peer === summary.peers[0]) {
          const text = await run(['model', '--dir', peer.dir, '--job', summary.job], 30_000)
          expect(text.stdout).toMatch(new RegExp(`${entry.trees} boosted trees`))
          expect(text.stdout).toMatch(/feature\s+gain\s+share\s+splits/)
        }
      }
      // every region holds the very same forest
      expect(new Set(forests).size).toBe(1)

      if (index === 0) {
        // the operator scores records with the stored forest: each record's probability, as the forest gives it
        const inputs = join(dirname(summary.federation), 'inputs')
        const casesFile = join(inputs, (await readdir(inputs)).find((name) => name.endsWith('-cases.csv')) as string)
        const scored = await run(['predict', '--dir', summary.peers[1]!.dir, '--job', summary.job, '--cases', casesFile, '--json'], 30_000)
        expect(scored.code, scored.stderr).toBe(0)
        const result = JSON.parse(scored.stdout) as { kind: string, predictions: Array<{ row: number, fit: number, link: number }> }
        expect(result.kind).toBe('gbdt')
        const records = (await readCsv(casesFile)).rows
        const expected = predictTrees(gbdtModelFromJson(JSON.parse(forests[0] as string)), records)
        expect(result.predictions).toHaveLength(records.length)
        result.predictions.forEach((prediction, at) => { expect(prediction.fit).toBeCloseTo(expected[at] as number, 12) })

        const exports: string[] = []
        for (const peer of summary.peers) {
          const out = join(dirname(summary.federation), `${peer.region}.audit.jsonl`)
          const exported = await run(['audit', 'export', '--dir', peer.dir, '--job', summary.job, '--out', out], 30_000)
          expect(exported.code, exported.stderr).toBe(0)
          exports.push(out)
        }
        const verified = await run(['audit', 'verify', '--json', ...exports], 60_000)
        expect(verified.code, verified.stdout + verified.stderr).toBe(0)
        const report = JSON.parse(verified.stdout) as { ok: boolean, checks: Array<{ name: string, checked: number, failed: number }> }
        expect(report.ok).toBe(true)
        const checked = Object.fromEntries(report.checks.map((check) => [check.name, check.checked]))
        expect(checked['final models agree']).toBe(4)
        expect(checked['received = sent']).toBeGreaterThan(100)
      }
    }
  }, 400_000)
})
