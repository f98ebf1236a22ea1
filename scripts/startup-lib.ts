import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { createPeer, type JobRequest, type Peer } from '../src/index.ts'
import { createIdentity } from '../src/peer/identity.ts'
import { importCases } from '../src/store/import.ts'
import { Store } from '../src/store/store.ts'
import { fixturePath } from './lib.ts'
import { freePort } from '../src/peer/net/free-port.ts'

/**
 * A running federation in this process for timing how fast a proposal gets going: N regions' peers
 * (createPeer, each its own libp2p node over TCP on 127.0.0.1, its own data folder with infert's rows
 * dealt round-robin), on a ring. Each peer's log events are time-stamped as they are written, so that
 * the time from a proposal to every member's `job.start` (round 0 begins) and `job.round.first` (its
 * first round done) can be read off.
 */
export interface StartupFederation {
  peers: Peer[]
  /** when each event was first logged by each peer (performance.now()), by `${event} ${job}` */
  events: Array<Map<string, number>>
  stop: () => Promise<void>
}

export const STARTUP_MODEL = { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-6, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }

export async function startFederation (count: number): Promise<StartupFederation> {
  const base = await mkdtemp(join(tmpdir(), 'epimesh-startup-'))
  const lines = (await readFile(fixturePath('infert.csv'), 'utf8')).trim().split('\n')
  const members: Array<{ region: string, peerId: string, dir: string }> = []
  for (let index = 0; index < count; index++) {
    const region = `region-${index + 1}`
    const dir = join(base, region)
    const { peerId } = await createIdentity(dir)
    const file = join(base, `${region}.csv`)
    await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % count === index).join('\n')}\n`)
    await Store.use(dir, async (store) => {
      await store.configure({ region, peerId })
      await importCases(store, { file })
    })
    members.push({ region, peerId, dir })
  }
  const federation = {
    version: 1,
    federationId: 'startup-bench',
    members: await Promise.all(members.map(async ({ region, peerId }) => ({ region, peerId, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`] }))),
    graph: { topology: 'ring' },
    model: STARTUP_MODEL
  }
  const events = members.map(() => new Map<string, number>())
  const peers: Peer[] = []
  const stop = async (): Promise<void> => {
    await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
    await rm(base, { recursive: true, force: true })
  }
  try {
    const started = await Promise.allSettled(members.map(async (member, index) => {
      const seen = events[index] as Map<string, number>
      const stream = new Writable({
        write (chunk: Buffer, _encoding, done) {
          const at = performance.now()
          for (const line of chunk.toString().split('\n')) {
            if (line === '') continue
            const record = JSON.parse(line) as { event?: string, job?: string }
            const key = `${record.event ?? ''} ${record.job ?? ''}`
            if (record.event !== undefined && !seen.has(key)) seen.set(key, at)
          }
          done()
        }
      })
      return await createPeer({ dir: member.dir, federation, listen: federation.members[index]?.addresses ?? [], logger: pino({ level: 'info', base: null }, stream), watchProposals: false })
    }))
    for (const entry of started) if (entry.status === 'fulfilled') peers.push(entry.value)
    const failed = started.find((entry) => entry.status === 'rejected')
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason
  } catch (error) {
    await stop()
    throw error
  }
  return { peers, events, stop }
}


/** Times one proposal: from the call to every member's round 0 (`job.start`) and first round done, and to the proposer's outcome, in ms; returns once the job has settled at every member. */
export async function timeProposal (federation: StartupFederation, id: string, model: JobRequest['model'] = {}): Promise<{ start: number, firstRound: number, done: number }> {
  const proposed = performance.now()
  await (federation.peers[0] as Peer).propose({ id, model })
  const done = performance.now() - proposed
  // the job settles everywhere (each member's model stored and its audit log closed into the model's
  // lineage) before the next proposal: what is timed is a proposal to a federation at rest
  const until = Date.now() + 30_000
  while (!federation.events.every((seen) => seen.has(`model.lineage.sealed ${id}`))) {
    if (Date.now() > until) throw new Error(`job ${id} did not settle at every member within 30 s`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  const at = (event: string): number => Math.max(...federation.events.map((seen) => {
    const time = seen.get(`${event} ${id}`)
    if (time === undefined) throw new Error(`a peer logged no ${event} for job ${id}`)
    return time - proposed
  }))
  return { start: at('job.start'), firstRound: at('job.round.first'), done }
}

export function median (values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[middle] as number : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2
}
