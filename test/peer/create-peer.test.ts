import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createPeer, type JobOutcome, type Peer, type PeerOptions } from '../../src/index.ts'
import { lockDataFolder } from '../../src/peer/lock.ts'
import { fixture, relativeError, R_INFERT } from '../helpers/data.ts'
import { freePort } from '../helpers/process.ts'
import { cli } from '../helpers/cli.ts'

/**
 * The library's peer: three regions' peers in this process, each on its own data folder made by the
 * commands, run a job together and stop; a start, a proposal and a stop each answer their signal.
 */
let base = ''
const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
let federationFile = ''
let federationDocument: Record<string, unknown> = {}
const peers: Peer[] = []
/** the outcomes each member's peer reported, by member */
const outcomes: JobOutcome[][] = [[], [], []]
const ranEverywhere = async (job: string): Promise<void> => {
  await vi.waitFor(() => { expect(outcomes.every((list) => list.some((entry) => entry.job === job))).toBe(true) }, { timeout: 60_000, interval: 100 })
}

/** The command line's own entry point in this process, quietly; its exit code. */
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-create-peer-'))
  const lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
  for (const [index, region] of ['alpha', 'beta', 'gamma'].entries()) {
    const dir = join(base, region)
    const initialised = await cli(['init', '--dir', dir, '--region', region])
    expect(initialised.status, initialised.stderr).toBe(0)
    const file = join(base, `${region}.csv`)
    await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
    const imported = await cli(['import', '--dir', dir, '--cases', file])
    expect(imported.status, imported.stderr).toBe(0)
    members.push({ region, peerId: /peer id (\S+)/.exec(initialised.stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
  }
  federationDocument = {
    version: 1,
    federationId: 'library-test',
    members: members.map(({ region, peerId, address }) => ({ region, peerId, addresses: [address] })),
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }
  federationFile = join(base, 'federation.json')
  await writeFile(federationFile, JSON.stringify(federationDocument))
})

afterAll(async () => {
  await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
  if (base !== '') await rm(base, { recursive: true, force: true })
})

const optionsOf = (index: number, extra: Partial<PeerOptions> = {}): PeerOptions => {
  const member = members[index] as (typeof members)[number]
  // the first member is given the federation as an object, the others as its file
  return { dir: member.dir, federation: index === 0 ? federationDocument : federationFile, listen: [member.address], ...extra }
}

describe('createPeer', () => {
  it('gives up a start when its signal aborts, and leaves the data folder free', async () => {
    // alone, the peer waits for its neighbours until the signal ends the start
    const started = Date.now()
    await expect(createPeer(optionsOf(0), { signal: AbortSignal.timeout(500) })).rejects.toMatchObject({ code: 'ABORTED' })
    expect(Date.now() - started).toBeLessThan(10_000)
    const lock = await lockDataFolder(members[0]?.dir as string)
    await lock.release()
    await expect(createPeer(optionsOf(0), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' })
  })

  it('runs a job with the other members and gives each its outcome', async () => {
    peers.push(...await Promise.all(members.map(async (_, index) => await createPeer(optionsOf(index, { onJob: (outcome) => { outcomes[index]?.push(outcome) } })))))
    expect(peers.map((peer) => peer.peerId)).toEqual(members.map((member) => member.peerId))
    expect(peers.map((peer) => peer.region)).toEqual(['alpha', 'beta', 'gamma'])
    expect(peers[1]?.addresses().some((address) => address.startsWith(members[1]?.address as string))).toBe(true)
    // one process per data folder, a library's peer as much as a command's
    await expect(createPeer(optionsOf(1))).rejects.toMatchObject({ code: 'PEER_ALREADY_RUNNING' })

    const proposer = peers[0] as Peer
    const outcome = await proposer.propose({ id: 'library-newton', model: { algorithm: 'newton' } })
    expect(outcome.job).toBe('library-newton')
    expect(outcome.forecast).toBeNull()
    expect(outcome.model!.converged).toBe(true)
    expect(outcome.model!.coefficients.map((row) => row.term)).toEqual(R_INFERT.terms)
    expect(relativeError(outcome.model!.coefficients.map((row) => row.estimate), R_INFERT.estimate)).toBeLessThan(1e-6)
    expect(relativeError(outcome.model!.coefficients.map((row) => row.standardError as number), R_INFERT.standardError)).toBeLessThan(1e-6)
    // every member ran it and holds the same model
    await ranEverywhere('library-newton')
    for (const list of outcomes) {
      const held = list.find((entry) => entry.job === 'library-newton') as JobOutcome
      expect(relativeError(held.model!.coefficients.map((row) => row.estimate), R_INFERT.estimate)).toBeLessThan(1e-6)
    }
    const status = peers[1]?.status()
    expect(status).toMatchObject({ peerId: members[1]?.peerId, region: 'beta', job: { job: 'library-newton' } })
    expect(status?.neighbours.connected).toHaveLength(2)
    expect(status?.agreement?.proposalsSeen).toBeGreaterThanOrEqual(1)
  }, 90_000)

  it('checks a proposal as the network would, and stops waiting when the signal aborts', async () => {
    const proposer = peers[0] as Peer
    await expect(proposer.propose({ model: { lambda: -1 } })).rejects.toMatchObject({ code: 'DATASET_INVALID' })
    await expect(proposer.propose({ id: '../escape' })).rejects.toMatchObject({ code: 'NAME_INVALID' })
    await expect(proposer.propose({}, { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' })
    // aborted before it starts, a proposal is withdrawn: the others hear a decline and never run it
    const withdrawing = new AbortController()
    const withdrawn = proposer.propose({ id: 'library-withdrawn' }, { signal: withdrawing.signal })
    withdrawing.abort()
    await expect(withdrawn).rejects.toMatchObject({ code: 'ABORTED' })
    // aborted once it runs, the wait ends at the signal and the job runs on, at every member
    const controller = new AbortController()
    const waiting = proposer.propose({ id: 'library-admm' }, { signal: controller.signal })
    await vi.waitFor(() => { expect(proposer.status().job?.job).toBe('library-admm') }, { timeout: 30_000, interval: 20 })
    controller.abort()
    await expect(waiting).rejects.toMatchObject({ code: 'ABORTED' })
    await ranEverywhere('library-admm')
    expect(outcomes.some((list) => list.some((entry) => entry.job === 'library-withdrawn'))).toBe(false)
    await vi.waitFor(() => { expect(peers[1]?.status().agreement?.refused).toBeGreaterThanOrEqual(1) }, { timeout: 10_000, interval: 50 })
    // a finished job keeps only its result: no job runs, at most two linger, and the journal holds
    // neither the inputs nor the mask seed
    await vi.waitFor(async () => {
      for (const peer of peers) expect(peer.status().agreement).toMatchObject({ running: 0, pending: 0 })
      for (const member of members) {
        const header = JSON.parse(await readFile(join(member.dir, 'jobs', 'library-admm', 'job.json'), 'utf8')) as Record<string, unknown>
        expect(header).toHaveProperty('finishedAt')
        expect(header).not.toHaveProperty('seed')
        await expect(readFile(join(member.dir, 'jobs', 'library-admm', 'inputs.log'))).rejects.toMatchObject({ code: 'ENOENT' })
      }
    }, { timeout: 10_000, interval: 100 })
    for (const peer of peers) expect(peer.status().agreement?.lingering).toBeLessThanOrEqual(2)
  }, 90_000)

  it('stops, releases its folder, and refuses proposals after', async () => {
    const peer = peers.shift() as Peer
    await peer.stop()
    await peer.stop()
    await expect(peer.propose()).rejects.toMatchObject({ code: 'ABORTED' })
    const lock = await lockDataFolder(members[0]?.dir as string)
    await lock.release()
  })
})
