/**
 * A peer's memory over many jobs: three regions' peers in this process (real libp2p on loopback, real
 * stores) run N jobs in a row (ADMM and exact Newton in turn, on infert split three ways); after jobs
 * 5, 10, 20, ... and N the heap is measured after a full garbage collection. A finished job keeps only
 * its result, so the heap after the last job should be no larger than after the fifth.
 *
 * Gossipsub keeps the ids of the messages it has seen for two minutes (its seen-cache), whatever the
 * jobs: after jobs 5 and N the peers therefore also idle for `--settle` seconds (default 130) and the
 * heap is measured again, so that the two figures compare like with like.
 *
 *   node --expose-gc --import tsx scripts/bench-memory.ts [--jobs 50] [--settle 130] [--json]
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { createPeer, type Peer } from '../src/index.ts'
import { main } from '../src/peer/cli/main.ts'
import { freePort } from '../src/peer/net/free-port.ts'

const { values } = parseArgs({ options: { jobs: { type: 'string', default: '50' }, settle: { type: 'string', default: '130' }, json: { type: 'boolean', default: false } } })
const settleMs = Number(values.settle) * 1000
if (!Number.isFinite(settleMs) || settleMs < 0 || settleMs > 3_600_000) throw new Error('--settle must be a number of seconds from 0 to 3600')
const jobs = Number(values.jobs)
if (!Number.isInteger(jobs) || jobs < 5 || jobs > 1000) throw new Error('--jobs must be an integer from 5 to 1000')
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run with node --expose-gc')


async function quietly (args: string[]): Promise<string> {
  const write = process.stdout.write.bind(process.stdout)
  let out = ''
  process.stdout.write = ((chunk: string | Uint8Array) => { out += String(chunk); return true }) as typeof process.stdout.write
  try {
    const status = await main(args)
    if (status !== 0) throw new Error(`epimesh ${args[0]} exited ${status}`)
    return out
  } finally {
    process.stdout.write = write
  }
}

function heapMiB (): number {
  for (let pass = 0; pass < 3; pass++) (gc as () => void)()
  return process.memoryUsage().heapUsed / 2 ** 20
}

const base = await mkdtemp(join(tmpdir(), 'epimesh-bench-memory-'))
const peers: Peer[] = []
try {
  const lines = (await readFile(new URL('../test/fixtures/infert.csv', import.meta.url), 'utf8')).trim().split('\n')
  const members: Array<{ region: string, peerId: string, addresses: string[] }> = []
  const dirs: string[] = []
  for (const [index, region] of ['alpha', 'beta', 'gamma'].entries()) {
    const dir = join(base, region)
    const init = await quietly(['init', '--dir', dir, '--region', region])
    const file = join(base, `${region}.csv`)
    await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
    await quietly(['import', '--dir', dir, '--cases', file])
    members.push({ region, peerId: /peer id (\S+)/.exec(init)?.[1] as string, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`] })
    dirs.push(dir)
  }
  const federation = {
    version: 1,
    federationId: 'bench-memory',
    members,
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }
  peers.push(...await Promise.all(members.map(async (member, index) => await createPeer({ dir: dirs[index] as string, federation, listen: member.addresses, watchProposals: false }))))
  const rows: Array<{ job: number, heapMiB: number, rssMiB: number, ms: number }> = []
  const settled: Array<{ job: number, heapMiB: number }> = []
  const marks = new Set([1, 5, 10, 20, 30, 40, jobs])
  const proposer = peers[0] as Peer
  for (let job = 1; job <= jobs; job++) {
    const started = Date.now()
    await proposer.propose({ id: `bench-${job}`, model: { algorithm: job % 2 === 0 ? 'newton' : 'admm' } })
    const ms = Date.now() - started
    if (marks.has(job)) {
      const row = { job, heapMiB: heapMiB(), rssMiB: process.memoryUsage().rss / 2 ** 20, ms }
      rows.push(row)
      if (process.env.EPIMESH_HEAP_SNAPSHOTS !== undefined) (await import('node:v8')).writeHeapSnapshot(join(process.env.EPIMESH_HEAP_SNAPSHOTS, `job-${job}.heapsnapshot`))
      if (!values.json) console.log(`after job ${String(job).padStart(3)}: heap ${row.heapMiB.toFixed(1)} MiB, rss ${row.rssMiB.toFixed(0)} MiB (the job took ${ms} ms)`)
    }
    if (job === 5 || job === jobs) {
      await new Promise((resolve) => setTimeout(resolve, settleMs))
      settled.push({ job, heapMiB: heapMiB() })
      if (process.env.EPIMESH_HEAP_SNAPSHOTS !== undefined) (await import('node:v8')).writeHeapSnapshot(join(process.env.EPIMESH_HEAP_SNAPSHOTS, `settled-${job}.heapsnapshot`))
      if (!values.json) console.log(`after job ${String(job).padStart(3)} and ${settleMs / 1000} s idle: heap ${(settled.at(-1)?.heapMiB ?? 0).toFixed(1)} MiB`)
    }
  }
  const fifth = settled[0]?.heapMiB ?? Number.NaN
  const last = settled[1]?.heapMiB ?? Number.NaN
  const status = proposer.status()
  if (values.json) console.log(JSON.stringify({ jobs, settleSeconds: settleMs / 1000, rows, settled, heapGrowthMiB: last - fifth, agreement: status.agreement }))
  else console.log(`heap after job ${jobs} minus heap after job 5, each after ${settleMs / 1000} s idle: ${(last - fifth).toFixed(1)} MiB (three peers in one process); lingering jobs ${status.agreement?.lingering}, running ${status.agreement?.running}`)
} finally {
  await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
  await rm(base, { recursive: true, force: true })
}
