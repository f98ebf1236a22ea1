import '../../src/peer/polyfill.ts'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { simulateAuditedFit } from '../../src/peer/audit/simulation.ts'
import { loadModel } from '../helpers/data.ts'

/**
 * The command as a shell runs it: `--version`, and a reader that stops early (`| head -1`, or one
 * that has closed its end before the first line) ends the command cleanly: exit 0, nothing on stderr.
 */
const bin = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
let dir = ''
let logs: string[] = []

async function shell (script: string): Promise<{ stdout: string, stderr: string, status: number }> {
  return await new Promise((resolve) => {
    execFile('bash', ['-c', `${script}; echo "status=\${PIPESTATUS[0]}" >&2`], { timeout: 30_000 }, (_error, stdout, stderr) => {
      const status = Number(/status=(\d+)\s*$/.exec(stderr)?.[1] ?? -1)
      resolve({ stdout, stderr: stderr.replace(/status=\d+\s*$/, ''), status })
    })
  })
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'epimesh-pipes-'))
  const keys = await Promise.all([0, 1, 2].map(async () => await generateKeyPair('Ed25519')))
  const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity'] })
  const parts = splitRows(block.rows, 3, 'even', createRng(2))
  const run = await simulateAuditedFit({
    job: 'job-pipes',
    graph: graphFromEdges(ids, [[ids[0] as string, ids[1] as string], [ids[1] as string, ids[2] as string]]),
    keys,
    problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(block, rows), terms, interceptColumn: 0 })),
    params: createFitJobParams({ tolerance: 1e-6 }),
    seed: 4
  })
  logs = await Promise.all(run.files.map(async (file, index) => {
    const path = join(dir, `log-${index}.jsonl`)
    await writeFile(path, file.text)
    return path
  }))
  await writeFile(join(dir, 'status.json'), JSON.stringify({ peerId: ids[0], region: 'Alpha', pid: 2 ** 22 + 17, updatedAt: '2026-01-01T00:00:00.000Z', neighbours: { connected: [], missing: [] }, job: null, transport: {} }))
}, 60_000)
afterAll(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

describe('the command in a shell', () => {
  test('epimesh --version prints the package version', async () => {
    const { version } = JSON.parse(await readFile(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }
    const result = await shell(`node ${bin} --version`)
    expect(result.status).toBe(0)
    expect(result.stdout).toBe(`epimesh ${version} (Node ${process.versions.node})\n`)
    expect(result.stderr).toBe('')
  })

  test('status | head -1 and audit show | head -1 end cleanly, also when the reader has closed before the first line', async () => {
    const status = `node ${bin} status --dir ${dir}`
    const show = `node ${bin} audit show ${logs.join(' ')} --round 20`
    const first = { [status]: /^Alpha \(12D3Koo\w+\) not running/, [show]: /^phase \w+, round \d+ of the phase \(job round 20 in / }
    for (const command of [status, show]) {
      const head = await shell(`${command} | head -1`)
      expect(head.status, command).toBe(0)
      expect(head.stderr, command).toBe('')
      expect(head.stdout, command).toMatch(first[command] as RegExp)
      expect(head.stdout.split('\n')).toHaveLength(2)
      // a reader that is gone before the first line: every write fails with EPIPE
      const closed = await shell(`${command} | true`)
      expect(closed.status, command).toBe(0)
      expect(closed.stderr, command).toBe('')
    }
  })
})
