import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { runEpimesh } from '../helpers/process.ts'
import { Store } from '../../src/store/store.ts'
import { relativeError, R_INFERT } from '../helpers/data.ts'

const INFERT = fileURLToPath(new URL('../fixtures/infert.csv', import.meta.url))
const folders: string[] = []
afterAll(async () => { await Promise.all(folders.map(async (folder) => { await rm(folder, { recursive: true, force: true }) })) })

const run = runEpimesh

describe('a federation of separate peer processes over libp2p on 127.0.0.1', () => {
  it('5 peers, each with a fifth of infert in its own folder, all reach R glm to 1e-6, and their exported round logs verify offline', async () => {
    const { code, stdout, stderr } = await run(['demo', '--data', INFERT, '--outcome', 'case', '--features', 'age,parity,induced,spontaneous', '--peers', '5', '--tolerance', '1e-10', '--json'], 100_000)
    expect(code, stderr).toBe(0)
    const summary = JSON.parse(stdout) as { job: string, federation: string, peers: Array<{ region: string, peerId: string, dir: string }> }
    folders.push(dirname(summary.federation))
    expect(summary.peers).toHaveLength(5)
    expect(new Set(summary.peers.map((peer) => peer.peerId)).size).toBe(5)
    for (const peer of summary.peers) {
      // the model lives in the peer's store: the command exports it
      const shown = await run(['model', '--dir', peer.dir, '--job', summary.job, '--json'], 30_000)
      expect(shown.code, shown.stderr).toBe(0)
      const model = JSON.parse(shown.stdout) as { job: string, converged: boolean, rows: number, coefficients: Array<{ term: string, estimate: number, standardError: number }> }
      expect(model.job).toBe(summary.job)
      expect(await readdir(peer.dir)).not.toContain('models')
      expect(model.converged).toBe(true)
      expect(model.rows).toBe(248)
      expect(model.coefficients.map((row) => row.term)).toEqual(R_INFERT.terms)
      expect(relativeError(model.coefficients.map((row) => row.estimate), R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(model.coefficients.map((row) => row.standardError), R_INFERT.standardError)).toBeLessThan(1e-6)
      // the peer's own rows stayed in its store: a fifth of the data set each
      const store = await Store.open(peer.dir, { create: false })
      const rows = await store.count()
      await store.close()
      expect(rows).toBeGreaterThanOrEqual(49)
      expect(rows).toBeLessThanOrEqual(50)
    }

    // the auditor's view: every peer's signed round log, exported and verified offline
    const exports: string[] = []
    for (const peer of summary.peers) {
      const out = join(dirname(summary.federation), `${peer.region}.audit.jsonl`)
      const exported = await run(['audit', 'export', '--dir', peer.dir, '--job', summary.job, '--out', out], 30_000)
      expect(exported.code, exported.stderr).toBe(0)
      exports.push(out)
    }
    const verified = await run(['audit', 'verify', '--json', ...exports], 60_000)
    expect(verified.code, verified.stdout + verified.stderr).toBe(0)
    const report = JSON.parse(verified.stdout) as { ok: boolean, entries: number, checks: Array<{ name: string, checked: number, failed: number }> }
    expect(report.ok).toBe(true)
    const checked = Object.fromEntries(report.checks.map((check) => [check.name, check.checked]))
    expect(checked['received = sent']).toBeGreaterThan(100)
    expect(checked['dual updates recomputed']).toBeGreaterThan(100)
    expect(checked.countersignatures).toBeGreaterThanOrEqual(5)
    expect(checked['end of log checkpointed']).toBe(5)
    // one changed byte in one log, and the verification fails
    const tampered = await readFile(exports[0] as string, 'utf8')
    const at = tampered.indexOf('"primalResidual":') + '"primalResidual":'.length
    await writeFile(exports[0] as string, `${tampered.slice(0, at)}${tampered[at] === '1' ? '2' : '1'}${tampered.slice(at + 1)}`)
    expect((await run(['audit', 'verify', ...exports], 60_000)).code).toBe(1)
  }, 180_000)
})
