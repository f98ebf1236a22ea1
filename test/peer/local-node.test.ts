import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createIdentity } from '../../src/peer/identity.ts'
import { PID_FILE } from '../../src/peer/lock.ts'
import { Store } from '../../src/store/store.ts'
import { filesUnder, notPrivate } from '../helpers/files.ts'
import { freePort, waitFor } from '../helpers/process.ts'

/**
 * The local node, through the command line: one `start` per data folder (a second is refused at
 * once; one killed with SIGKILL leaves no stale lock); `import` while the peer runs; every file in the
 * folder 0600 and every folder 0700; an identity key readable by others refused.
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const children: ChildProcess[] = []
let base = ''
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '') await rm(base, { recursive: true, force: true })
})

const cli = async (args: string[]): Promise<{ status: number | null, stdout: string, stderr: string }> => await new Promise((resolve) => {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  child.once('close', (status) => { resolve({ status, stdout, stderr }) })
})

const pidIn = async (dir: string): Promise<number> => Number((await readFile(join(dir, PID_FILE), 'utf8').catch(() => '')).trim())

describe('a peer\'s data folder', () => {
  it('one start at a time (none left stale by SIGKILL), import alongside, every file private, an exposed identity refused', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-local-node-'))
    // as init makes it (the operator test runs init itself)
    const dir = join(base, 'alpha')
    const { peerId: alpha } = await createIdentity(dir)
    await Store.use(dir, async (store) => { await store.configure({ region: 'alpha' }) })
    // a neighbour that never starts: alpha waits for it, which is all this test needs of a running peer
    const { peerId: beta } = await createIdentity(join(base, 'beta'))
    const federation = join(base, 'federation.json')
    const address = `/ip4/127.0.0.1/tcp/${await freePort()}`
    await writeFile(federation, JSON.stringify({
      version: 1,
      federationId: 'local-node-test',
      members: [{ region: 'alpha', peerId: alpha, addresses: [address] }, { region: 'beta', peerId: beta, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`] }],
      graph: { edges: [['alpha', 'beta']] },
      bootstrap: [address],
      model: { family: 'binomial', outcome: 'severe', features: [{ name: 'age', type: 'numeric' }], lambda: 1, algorithm: 'admm', tolerance: 1e-6, maxRounds: 100, roundDeadlineMs: 1000, dropAfterRounds: 0 }
    }))
    const start = (): ChildProcess => {
      const child = spawn(process.execPath, [BIN, 'start', '--dir', dir, '--federation', federation, '--listen', address], { stdio: ['ignore', 'ignore', 'pipe'] })
      child.stderr?.resume()
      children.push(child)
      return child
    }

    const first = start()
    await waitFor(async () => await pidIn(dir) === first.pid, 30_000)
    // while it runs: a second start on the folder, and the operator importing (the store is shared,
    // the folder lock is the peer's)
    const series = join(base, 'series.csv')
    await writeFile(series, 'date,count,population\n2024-01-01,12,100000\n2024-01-08,15,100000\n')
    const started = Date.now()
    const [second, imported] = await Promise.all([
      cli(['start', '--dir', dir, '--federation', federation, '--listen', address]).then((result) => ({ ...result, ms: Date.now() - started })),
      cli(['import', '--dir', dir, '--series', series])
    ])
    expect(second.status).toBe(2)
    expect(second.stderr).toContain('[PEER_ALREADY_RUNNING]')
    expect(second.stderr).not.toMatch(/\n\s+at /)
    expect(imported.status, imported.stderr).toBe(0)
    expect(first.exitCode).toBeNull()

    // everything the peer and the commands wrote into the folder is the user's alone
    const files = await filesUnder(dir)
    expect(files).toEqual(expect.arrayContaining(['identity.key', 'store.json', PID_FILE, 'store/CURRENT', 'peer.lock/LOCK']))
    expect(await notPrivate(dir)).toEqual([])

    first.kill('SIGKILL')
    await new Promise((resolve) => { first.once('exit', resolve) })
    // the lock died with its holder: the next start gets past it, to the identity key, which group
    // and others can read: refused
    await chmod(join(dir, 'identity.key'), 0o644)
    const exposed = await cli(['start', '--dir', dir, '--federation', federation, '--listen', address])
    expect(exposed.status).toBe(2)
    expect(exposed.stderr).toContain('[IDENTITY_EXPOSED]')
    const store = await Store.open(dir, { create: false })
    const points = (await store.readSeries()).map((point) => point.date)
    await store.close()
    expect(points).toEqual(['2024-01-01', '2024-01-08'])
    console.log(`second start refused in ${second.ms} ms (process start-up included)`)
  }, 120_000)
})
