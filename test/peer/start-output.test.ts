import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixture } from '../helpers/data.ts'
import { cli } from '../helpers/cli.ts'
import { freePort, runEpimesh, waitFor } from '../helpers/process.ts'

/**
 * What `start` prints, with two regions' peers as their own processes over 127.0.0.1: `--json` gives
 * one JSON line per event on stdout (or, with a job to propose and --exit-after-job, one summary);
 * the log on stderr is JSON when piped, readable lines with --log-format pretty.
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const MODEL = { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'newton', tolerance: 1e-8, maxRounds: 50, roundDeadlineMs: 1000, dropAfterRounds: 0 }

let base = ''
let federationFile = ''
const members: Array<{ region: string, dir: string, address: string }> = []
const children: ChildProcess[] = []

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-start-'))
  const lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
  const entries = []
  for (const [index, region] of ['alpha', 'beta'].entries()) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region, '--json'])
    expect(initialised.status, initialised.stderr).toBe(0)
    const file = join(base, `${region}.csv`)
    await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 2 === index).join('\n')}\n`)
    expect((await cli(['import', '--dir', dir, '--cases', file])).status).toBe(0)
    const address = `/ip4/127.0.0.1/tcp/${await freePort()}`
    members.push({ region, dir, address })
    entries.push({ region, peerId: (JSON.parse(initialised.stdout) as { peerId: string }).peerId, addresses: [address] })
  }
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify({ version: 1, federationId: 'start-output', members: entries, graph: { topology: 'line' }, model: MODEL }))
}, 30_000)

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('start --json', () => {
  it('prints an event per line while it runs, and one summary of the job with --exit-after-job', async () => {
    const [alpha, beta] = members as [typeof members[number], typeof members[number]]
    // beta runs until stopped, printing its events
    const running = spawn(process.execPath, [BIN, 'start', '--dir', beta.dir, '--federation', federationFile, '--listen', beta.address, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(running)
    let events = ''
    let log = ''
    running.stdout?.on('data', (chunk: Buffer) => { events += chunk.toString() })
    running.stderr?.on('data', (chunk: Buffer) => { log += chunk.toString() })
    const exited = new Promise<number | null>((resolve) => { running.on('exit', (code) => { resolve(code) }) })
    // alpha proposes one job and exits after it (each waits for the other at start)
    const once = await runEpimesh(['start', '--dir', alpha.dir, '--federation', federationFile, '--listen', alpha.address, '--propose', '--job-id', 'j-1', '--exit-after-job', '--json', '--log-format', 'pretty'], 40_000)
    expect(once.code, once.stderr).toBe(0)
    const lines = once.stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    const summary = JSON.parse(lines[0] as string) as Record<string, unknown>
    expect(summary).toMatchObject({ job: 'j-1', state: 'finished', kind: 'glm', converged: true, region: 'alpha', peers: 2 })
    expect(summary.rounds).toBeGreaterThan(1)
    // --log-format pretty: readable lines on stderr (time, level, message, fields), no JSON
    expect(once.stderr).toMatch(/^\d{2}:\d{2}:\d{2}\.\d{3} INFO  peer started {2}.*addresses=/m)
    expect(once.stderr).not.toMatch(/^\{"level"/m)
    await waitFor(async () => events.includes('job.finished'), 20_000, 100)
    // a proposal beta's region declines (a misspelt outcome): a job.declined line with the reason
    const misspelt = join(base, 'misspelt.json')
    const document = JSON.parse(await readFile(federationFile, 'utf8')) as { model: Record<string, unknown> }
    await writeFile(misspelt, JSON.stringify({ ...document, model: { ...document.model, outcome: 'Death' } }))
    expect((await cli(['propose', '--dir', beta.dir, '--federation', misspelt, '--job-id', 'j-2'])).status).toBe(0)
    await waitFor(async () => events.includes('job.declined'), 20_000, 100)
    running.kill('SIGTERM')
    expect(await exited).toBe(0)
    const parsed = events.trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>)
    expect(parsed.map((event) => event.event)).toEqual(['peer.started', 'job.finished', 'job.declined', 'peer.stopped'])
    expect(parsed[2]).toMatchObject({ job: 'j-2', kind: 'glm', reasons: [{ region: 'beta', reason: expect.stringMatching(/^no column "Death"/) }] })
    expect(parsed[0]).toMatchObject({ region: 'beta', addresses: [expect.stringContaining('/tcp/')] })
    expect(parsed[1]).toMatchObject({ job: 'j-1', kind: 'glm', rounds: summary.rounds, converged: true })
    for (const event of parsed) expect(Number.isNaN(Date.parse(String(event.time)))).toBe(false)
    // the log stays on stderr, as JSON when stderr is no terminal
    expect(log.split('\n').find((line) => line.includes('peer started'))).toMatch(/^\{"level":30/)
  }, 60_000)
})
