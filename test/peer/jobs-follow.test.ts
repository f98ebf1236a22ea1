import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPeer, type Peer } from '../../src/index.ts'
import { fixture } from '../helpers/data.ts'
import { freePort, waitFor } from '../helpers/process.ts'
import { cli } from '../helpers/cli.ts'

/**
 * Following jobs from the command line, with two regions' real peers (libp2p over 127.0.0.1, LevelDB
 * stores made by the commands): `propose` refuses when no peer runs on its folder; `jobs` lists a
 * finished job with its rounds, and a declined one with each region's reason; `propose --wait` exits
 * 0 when its job has finished, and non-zero naming each region's reason when it is declined.
 */
let base = ''
const regions = ['alpha', 'beta'] as const
const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
let federationFile = ''
const peers: Peer[] = []

const MODEL = { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'newton', tolerance: 1e-8, maxRounds: 50, roundDeadlineMs: 1000, dropAfterRounds: 0 }

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-jobs-'))
  const lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
  for (const [index, region] of regions.entries()) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status, initialised.stderr).toBe(0)
    const file = join(base, `${region}.csv`)
    await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 2 === index).join('\n')}\n`)
    const imported = await cli(['import', '--dir', dir, '--cases', file])
    expect(imported.status, imported.stderr).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
  }
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify({
    version: 1,
    federationId: 'jobs-test',
    members: members.map(({ region, peerId, address }) => ({ region, peerId, addresses: [address] })),
    graph: { topology: 'line' },
    model: MODEL
  }))
}, 30_000)

afterAll(async () => {
  await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('following jobs', () => {
  it('propose fails with NO_PEER_RUNNING (exit 2) when no peer runs on the folder, and leaves no proposal behind', async () => {
    const dir = members[0]!.dir
    const refused = await cli(['propose', '--dir', dir, '--federation', federationFile, '--job-id', 'orphan'])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/no peer runs on .*\[NO_PEER_RUNNING\]/)
    await expect(access(join(dir, 'proposals', 'orphan.json'))).rejects.toThrow()
  })

  it('a peer that ran and stopped leaves nothing that passes for a running one', async () => {
    const dir = members[0]!.dir
    // a peer started and stopped: its lock folder stays, and a pid file as a killed peer leaves it
    const alone = await createPeer({ dir, federation: { ...JSON.parse(await readFile(federationFile, 'utf8')) as object, members: [{ region: 'alpha', peerId: members[0]!.peerId, addresses: [members[0]!.address] }], graph: { topology: 'line' } }, listen: [members[0]!.address] }, { signal: AbortSignal.timeout(20_000) })
    await alone.stop()
    await writeFile(join(dir, 'peer.pid'), `${process.pid}\n`)
    const refused = await cli(['propose', '--dir', dir, '--federation', federationFile, '--job-id', 'orphan-2'])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toMatch(/NO_PEER_RUNNING/)
  })

  it('jobs --json lists a finished job with its kind and rounds, and a declined one with each region\'s reason', async () => {
    peers.push(...await Promise.all(members.map(async (member) => await createPeer({ dir: member.dir, federation: federationFile, listen: [member.address] }, { signal: AbortSignal.timeout(20_000) }))))
    const proposed = await cli(['propose', '--dir', members[0]!.dir, '--federation', federationFile, '--job-id', 'fit-1'])
    expect(proposed.status, proposed.stderr).toBe(0)
    type Listing = { jobs: Array<{ job: string, kind: string | null, state: string, rounds: number | null, reasons: Array<{ region: string, reason: string }> }> }
    const listing = async (dir: string): Promise<Listing> => {
      const listed = await cli(['jobs', '--dir', dir, '--json'])
      expect(listed.status, listed.stderr).toBe(0)
      return JSON.parse(listed.stdout) as Listing
    }
    await waitFor(async () => (await listing(members[1]!.dir)).jobs.some((job) => job.job === 'fit-1' && job.state === 'finished'), 20_000, 250)
    for (const member of members) {
      const fit = (await listing(member.dir)).jobs.find((job) => job.job === 'fit-1')
      expect(fit).toMatchObject({ kind: 'glm', state: 'finished' })
      expect(fit?.rounds).toBeGreaterThan(1)
      expect(fit?.rounds).toBeLessThan(50)
    }
    // a misspelt outcome, as an operator's edited federation file would carry it: every region declines
    const misspelt = join(base, 'misspelt.json')
    const document = JSON.parse(await readFile(federationFile, 'utf8')) as { model: Record<string, unknown> }
    await writeFile(misspelt, JSON.stringify({ ...document, model: { ...document.model, outcome: 'Death' } }))
    const bad = await cli(['propose', '--dir', members[0]!.dir, '--federation', misspelt, '--job-id', 'misspelt-1'])
    expect(bad.status, bad.stderr).toBe(0)
    await waitFor(async () => (await listing(members[0]!.dir)).jobs.some((job) => job.job === 'misspelt-1' && job.state === 'declined'), 20_000, 250)
    const declined = (await listing(members[0]!.dir)).jobs.find((job) => job.job === 'misspelt-1')
    expect(declined?.kind).toBe('glm')
    expect(declined?.rounds).toBeNull()
    expect(declined?.reasons.map((entry) => entry.region)).toContain('alpha')
    for (const entry of declined?.reasons ?? []) {
      expect(entry.reason).toMatch(/^no column "Death" in this region's records \(columns: /)
      // the store's own field for the hashed record id is no column of the region's
      expect(entry.reason).not.toContain('__id')
    }
    // the text listing shows the same
    const text = await cli(['jobs', '--dir', members[0]!.dir])
    expect(text.stdout).toMatch(/fit-1\s+glm\s+finished/)
    expect(text.stdout).toMatch(/misspelt-1\s+glm\s+declined[^\n]*\n( {4}\w+: [^\n]*\n)* {4}alpha: no column "Death"/)
  }, 60_000)

  it('propose --wait exits 0 once its job has finished, and non-zero naming the column when a misspelt outcome is declined', async () => {
    expect(peers).toHaveLength(2)
    const misspelt = join(base, 'misspelt.json')
    const started = Date.now()
    const declined = await cli(['propose', '--dir', members[0]!.dir, '--federation', misspelt, '--job-id', 'misspelt-2', '--wait', '--timeout', '20'])
    expect(declined.status).toBe(1)
    expect(declined.stderr).toMatch(/job misspelt-2 was declined: .*alpha: no column "Death" in this region's records \(columns: .*\[JOB_REFUSED\]/)
    expect(Date.now() - started).toBeLessThan(15_000)
    const fitted = await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--job-id', 'fit-2', '--algorithm', 'newton', '--wait', '--timeout', '20'])
    expect(fitted.status, fitted.stderr).toBe(0)
    expect(fitted.stdout).toMatch(/job fit-2 finished in \d+ rounds/)
    // --json: how the job ended on stdout, for a finished job and a declined one (still exit 1, the error on stderr)
    const fittedJson = await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--job-id', 'fit-3', '--algorithm', 'newton', '--wait', '--timeout', '20', '--json'])
    expect(fittedJson.status, fittedJson.stderr).toBe(0)
    const finished = JSON.parse(fittedJson.stdout) as { job: string, state: string, kind: string, rounds: number, reasons: unknown[] }
    expect(finished).toMatchObject({ job: 'fit-3', state: 'finished', kind: 'glm', reasons: [] })
    expect(finished.rounds).toBeGreaterThan(1)
    const declinedJson = await cli(['propose', '--dir', members[0]!.dir, '--federation', misspelt, '--job-id', 'misspelt-3', '--wait', '--timeout', '20', '--json'])
    expect(declinedJson.status).toBe(1)
    expect(declinedJson.stderr).toContain('[JOB_REFUSED]')
    const refusal = JSON.parse(declinedJson.stdout) as { job: string, state: string, reasons: Array<{ region: string, reason: string }>, error: { code: string } }
    expect(refusal).toMatchObject({ job: 'misspelt-3', state: 'declined', error: { code: 'JOB_REFUSED' } })
    expect(refusal.reasons.find((entry) => entry.region === 'alpha')?.reason).toMatch(/^no column "Death"/)
    // without --wait: that it was proposed
    expect(JSON.parse((await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--job-id', 'fit-4', '--json'])).stdout)).toEqual({ job: 'fit-4', state: 'proposed', refit: null })
    await waitFor(async () => JSON.parse((await cli(['jobs', '--dir', members[0]!.dir, '--json'])).stdout).jobs.some((job: { job: string, state: string }) => job.job === 'fit-4' && job.state === 'finished'), 20_000, 250)
    // --timeout without --wait, or out of range, is refused before anything is proposed
    expect((await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--timeout', '5'])).status).toBe(2)
    expect((await cli(['propose', '--dir', members[1]!.dir, '--federation', federationFile, '--wait', '--timeout', '-1'])).status).toBe(2)
  }, 60_000)

  it('after a restart the declines are still listed, and a declined proposal is not proposed again', async () => {
    await Promise.all(peers.splice(0).map(async (peer) => { await peer.stop() }))
    peers.push(...await Promise.all(members.map(async (member) => await createPeer({ dir: member.dir, federation: federationFile, listen: [member.address] }, { signal: AbortSignal.timeout(20_000) }))))
    // the proposals misspelt-1 to misspelt-3 are still in DIR/proposals; the peer polls it every second
    await new Promise((resolve) => setTimeout(resolve, 2500))
    for (const peer of peers) expect(peer.status().agreement).toMatchObject({ refused: 0, proposalsSeen: 0 })
    const listed = await cli(['jobs', '--dir', members[0]!.dir, '--json'])
    const jobs = (JSON.parse(listed.stdout) as { jobs: Array<{ job: string, state: string, reasons: Array<{ reason: string }> }> }).jobs
    expect(jobs.filter((job) => job.state === 'declined').map((job) => job.job).sort()).toEqual(['misspelt-1', 'misspelt-2', 'misspelt-3'])
    expect(jobs.filter((job) => job.state === 'finished').map((job) => job.job).sort()).toEqual(['fit-1', 'fit-2', 'fit-3', 'fit-4'])
    expect(jobs.find((job) => job.job === 'misspelt-1')?.reasons[0]?.reason).toMatch(/no column "Death"/)
  }, 60_000)
})
