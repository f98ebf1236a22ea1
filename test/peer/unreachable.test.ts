import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { createPeer } from '../../src/index.ts'
import { main } from '../../src/peer/cli/main.ts'
import { freePort } from '../helpers/process.ts'

let base = ''
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

async function init (dir: string, region: string): Promise<string> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    expect(await main(['init', '--dir', dir, '--region', region])).toBe(0)
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
  return /peer id (\S+)/.exec(stdout)?.[1] as string
}

describe('a peer whose graph neighbours do not answer', () => {
  it('warns once its wait is over, naming each unreachable neighbour by region and peer id', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-unreachable-'))
    const regions = ['alpha', 'beta', 'gamma']
    const members = []
    for (const region of regions) members.push({ region, peerId: await init(join(base, region), region), addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`] })
    const federation = join(base, 'federation.json')
    await writeFile(federation, JSON.stringify({
      version: 1,
      federationId: 'unreachable-test',
      members,
      graph: { topology: 'ring' },
      model: { family: 'binomial', outcome: 'case', features: [{ name: 'age', type: 'numeric' }], lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 100, roundDeadlineMs: 500, dropAfterRounds: 0 }
    }))
    const records: Array<Record<string, unknown>> = []
    const sink = new Writable({ write (chunk: Buffer, _encoding, done) { for (const line of chunk.toString().split('\n')) if (line !== '') records.push(JSON.parse(line) as Record<string, unknown>); done() } })
    // only alpha runs: beta and gamma, its two ring neighbours, never answer
    const peer = await createPeer({ dir: join(base, 'alpha'), federation, listen: [members[0]!.addresses[0]!], neighbourTimeoutMs: 800, logger: pino({ level: 'info' }, sink) }, { signal: AbortSignal.timeout(20_000) })
    try {
      const warning = records.find((record) => record.event === 'neighbours.unreachable')
      expect(warning).toBeDefined()
      expect(warning?.level).toBe(40)
      expect(warning?.unreachable).toEqual([{ region: 'beta', peerId: members[1]!.peerId }, { region: 'gamma', peerId: members[2]!.peerId }])
      expect(String(warning?.msg)).toMatch(/beta \(12D3Koo\w+\), gamma \(12D3Koo\w+\).*epimesh federation check/)
    } finally {
      await peer.stop()
    }
  }, 30_000)
})
