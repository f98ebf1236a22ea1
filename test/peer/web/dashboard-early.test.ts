import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { cli } from '../../helpers/cli.ts'
import type { DashboardSnapshot } from '../../../src/peer/web/dashboard-data.ts'
import { freePort, waitFor } from '../../helpers/process.ts'

/**
 * `epimesh start --http` serves the operator's view as soon as the peer listens, before its wait for
 * the graph neighbours ends: with both neighbours down, the view is up well inside the 30 s wait and
 * shows both links as missing, which is what the operator opens it to find out.
 */

const BIN = fileURLToPath(new URL('../../../bin/epimesh.js', import.meta.url))
const REGIONS = ['alpha', 'beta', 'gamma']

let child: ChildProcess | null = null
let exited: Promise<number | null> = Promise.resolve(null)
let base = ''

afterAll(async () => {
  if (child !== null && child.exitCode === null) child.kill('SIGKILL')
  await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5000))])
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the operator\'s view while the neighbours are missing', () => {
  it('is served before the neighbour wait ends and shows both links missing', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-dashboard-early-'))
    const members: Array<{ region: string, peerId: string, addresses: string[] }> = []
    for (const region of REGIONS) {
      const initialised = await cli(['init', '--dir', join(base, region), '--region', region])
      expect(initialised.status).toBe(0)
      members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`] })
    }
    const federation = join(base, 'federation.json')
    await writeFile(federation, JSON.stringify({
      version: 1,
      federationId: 'dashboard-early-test',
      members,
      graph: { topology: 'ring' },
      model: { family: 'binomial', outcome: 'case', features: [{ name: 'age', type: 'number' }], lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 100, roundDeadlineMs: 2000, dropAfterRounds: 0 }
    }))
    const started = Date.now()
    let stdout = ''
    let login = ''
    let seenAfter = 0
    const spawned = spawn(process.execPath, [BIN, 'start', '--dir', join(base, 'alpha'), '--federation', federation, '--listen', members[0]?.addresses[0] as string, '--http', String(await freePort())], { stdio: ['ignore', 'pipe', 'pipe'] })
    child = spawned
    exited = new Promise((resolve) => { spawned.on('exit', (code) => { resolve(code) }) })
    spawned.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const found = /operator's view: (\S+)/.exec(stdout)
      if (found !== null && login === '') { login = found[1] as string; seenAfter = Date.now() - started }
    })
    spawned.stderr?.resume()
    await waitFor(async () => login !== '' || spawned.exitCode !== null, 25_000, 100)
    expect(login, `no address printed; stdout: ${stdout}`).not.toBe('')
    // the neighbour wait is 30 s; the view comes with the node, long before it ends
    expect(seenAfter).toBeLessThan(25_000)
    const url = new URL(login)
    const response = await fetch(`${url.origin}/api/state`, { headers: { authorization: `Bearer ${url.searchParams.get('token') ?? ''}` } })
    expect(response.status).toBe(200)
    const state = await response.json() as DashboardSnapshot
    expect(state.live).toBe(true)
    expect(state.region).toBe('alpha')
    const own = state.links.filter((link) => link.a === 'alpha' || link.b === 'alpha')
    expect(own).toHaveLength(2)
    expect(own.every((link) => link.state === 'missing')).toBe(true)
    // the peer is still in its neighbour wait: it has not yet said it is ready
    expect(spawned.exitCode).toBeNull()
  }, 60_000)
})
