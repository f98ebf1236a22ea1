import '../../src/peer/polyfill.ts'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { tcp } from '@libp2p/tcp'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterAll, describe, expect, it } from 'vitest'
import { parseFederation } from '../../src/peer/federation.ts'
import { freePort, waitFor } from '../helpers/process.ts'
import { Cluster, makeMembers, TEST_MODEL } from './helpers.ts'

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const cluster = new Cluster()
const children: ChildProcess[] = []
let stranger: Libp2p | null = null
let base = ''
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  await stranger?.stop()
  await cluster.stop()
  if (base !== '') await rm(base, { recursive: true, force: true })
})

const cli = (args: string[]): { status: number | null, stdout: string, stderr: string } => {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30_000 })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr }
}

describe('a running peer refuses non-members', () => {
  it('refuses every connection attempt of a non-member, logs it with the peer id and direction, and counts it in status', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-refusals-'))
    const dir = join(base, 'alpha')
    const initialised = cli(['init', '--dir', dir, '--region', 'alpha'])
    expect(initialised.status, initialised.stderr).toBe(0)
    const alphaId = /peer id (\S+)/.exec(initialised.stdout)?.[1] as string
    const address = `/ip4/127.0.0.1/tcp/${await freePort()}`
    const [beta] = await makeMembers(1, 'beta')
    const document = {
      version: 1,
      federationId: 'refusals-test',
      members: [{ region: 'alpha', peerId: alphaId, addresses: [address] }, { region: 'beta', peerId: beta!.peerId }],
      graph: { topology: 'line' },
      bootstrap: [`${address}/p2p/${alphaId}`],
      model: TEST_MODEL
    }
    const federationFile = join(base, 'federation.json')
    await writeFile(federationFile, JSON.stringify(document))

    const child = spawn(process.execPath, [BIN, 'start', '--dir', dir, '--federation', federationFile, '--listen', address], { stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(child)
    let stderr = ''
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const exited = new Promise<number | null>((resolve) => { child.on('exit', (code) => { resolve(code) }) })
    // the other member, in this process: the peer waits for its neighbour before it writes its status
    const betaNode = await cluster.node({ federation: parseFederation(document, 'test'), privateKey: beta!.key })
    await cluster.transport(betaNode).start()
    await waitFor(async () => await access(join(dir, 'status.json')).then(() => true, () => false), 30_000)

    stranger = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
    const strangerId = stranger.peerId.toString()
    const attempts = 5
    for (let attempt = 0; attempt < attempts; attempt++) {
      // The dialler's upgrade may resolve before the peer, once Noise has authenticated the dialler,
      // refuses it (its muxer negotiation is optimistic): what counts is that the connection is gone at
      // once. Waiting for that also keeps the next attempt from reusing it.
      await stranger.dial(multiaddr(`${address}/p2p/${alphaId}`), { signal: AbortSignal.timeout(5_000) }).catch(() => null)
      await waitFor(async () => (stranger as Libp2p).getConnections(peerIdFromString(alphaId)).length === 0, 5_000, 20)
    }

    type Refusals = { byReason: Record<string, { inbound: number, outbound: number }>, recent: Array<{ peerId: string, direction: string, reason: string, count: number }> }
    type Status = { network?: { connections: Refusals } }
    // the peer refreshes DIR/status.json every 2 s; then `status` shows what it holds
    await waitFor(async () => {
      const status = JSON.parse(await readFile(join(dir, 'status.json'), 'utf8').catch(() => '{}')) as Status
      return (status.network?.connections.byReason['not-member']?.inbound ?? 0) >= attempts
    }, 15_000, 200)
    const shown = cli(['status', '--dir', dir, '--json'])
    expect(shown.status, shown.stderr).toBe(0)
    const counted = (JSON.parse(shown.stdout) as Status).network?.connections as Refusals
    expect(counted.byReason['not-member']).toEqual({ inbound: attempts, outbound: 0 })
    expect(counted.recent).toContainEqual(expect.objectContaining({ peerId: strangerId, direction: 'inbound', reason: 'not-member', count: attempts }))
    const text = cli(['status', '--dir', dir])
    expect(text.stdout).toContain(`connections refused: not a member ${attempts} inbound, 0 outbound`)

    // the log: a JSON line naming the peer and the direction (the first refusal; then at most one a minute)
    const logged = stderr.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.event === 'connection.refused')
    expect(logged).toHaveLength(1)
    expect(logged[0]).toMatchObject({ peerId: strangerId, direction: 'inbound', reason: 'not-member', refusals: 1, level: 40 })

    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    const status = JSON.parse(await readFile(join(dir, 'status.json'), 'utf8')) as { network: { gossipsub: { graylisted: number } } }
    expect(status.network.gossipsub.graylisted).toBe(0)
  }, 60_000)
})
