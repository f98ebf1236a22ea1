import { readdir, readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { runWanExperiment } from '../../scripts/wan/federation.ts'
import { namespaceSupport, wanNamespaces } from '../../scripts/wan/namespaces.ts'
import { R_INFERT, relativeError } from '../helpers/data.ts'

/**
 * Peers as separate processes, each in its own Linux network namespace, reaching each other only
 * through the delaying relay in a router namespace (scripts/wan-experiment.ts runs the full
 * experiment). Needs root and iproute2: skipped, with the reason printed, where namespaces cannot be
 * created.
 */
const support = await namespaceSupport()
if (!support.supported) process.stdout.write(`test/peer/wan.test.ts skipped: ${support.reason}\n`)

/** Processes whose command line names `text` (the run's data folder). */
async function processesNaming (text: string): Promise<number[]> {
  const found: number[] = []
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    const command = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '')
    if (command.includes(text)) found.push(Number(entry))
  }
  return found
}

/** The network's id and the data folder, from the experiment's first lines. */
function watcher (): { say: (line: string) => void, id: () => string, base: () => string } {
  let id = ''
  let base = ''
  return {
    say: (line) => {
      id = /^network ([0-9a-f]+):/.exec(line)?.[1] ?? id
      base = /^data folders under (\S+)/.exec(line)?.[1] ?? base
    },
    id: () => id,
    base: () => base
  }
}

describe('a WAN-like federation in network namespaces', () => {
  // Two peers keep it bounded: a peer process's start-up (node, tsx, libp2p) is most of the time, and
  // grows with the processes sharing the cores; scripts/wan-experiment.ts runs 3 and 4.
  it.skipIf(!support.supported)('2 peer processes, 20 ms each way and 1% of segments held 200 ms: exact Newton reaches R\'s glm, the rounds take at least rounds x the one-way delay, and nothing is left behind', async () => {
    const watch = watcher()
    const report = await runWanExperiment({ peers: 2, topology: 'line', delayMs: 20, holdProbability: 0.01, holdMs: 200, algorithms: ['newton'], tolerance: 1e-10, seed: 3, jobTimeoutMs: 35_000, stopWhenStored: true, say: watch.say })
    expect(report.directPathBlocked).toBe(true)
    expect(report.diameter).toBe(1)
    const [job] = report.jobs
    if (job === undefined) throw new Error('no job report')
    expect(job.converged).toBe(true)
    expect(job.terms).toEqual(R_INFERT.terms)
    expect(job.estimates).toHaveLength(2)
    for (const estimates of job.estimates) expect(relativeError(estimates, R_INFERT.estimate)).toBeLessThan(1e-6)
    expect(job.pooledRelativeError).toBeLessThan(1e-8)
    // every round waits for its neighbours' messages, each at least one delay on its way
    expect(job.jobRounds).toBeGreaterThanOrEqual(job.rounds)
    expect(job.roundSeconds).toBeGreaterThanOrEqual(job.jobRounds * 0.020)
    expect(job.roundsTimesRttSeconds).toBeCloseTo(job.jobRounds * 0.040, 9)
    // every byte between peers went through the relay, and about 1% of its segments were held
    const relay = report.relay
    if (relay === null) throw new Error('no relay statistics')
    expect(relay.connections).toBeGreaterThanOrEqual(1)
    expect(relay.segments).toBeGreaterThan(200)
    expect(relay.held).toBeGreaterThan(0)
    expect(relay.held / relay.segments).toBeLessThan(0.05)
    // torn down: namespaces (and their veths) and processes
    expect(await wanNamespaces(watch.id())).toEqual([])
    expect(await processesNaming(watch.base())).toEqual([])
  }, 50_000)

  it.skipIf(!support.supported)('a job that fails (here: out of time) still leaves no namespace and no process behind', async () => {
    const watch = watcher()
    await expect(runWanExperiment({ peers: 2, topology: 'line', delayMs: 20, holdProbability: 0, holdMs: 0, algorithms: ['newton'], tolerance: 1e-10, seed: 4, jobTimeoutMs: 1500, say: watch.say }))
      .rejects.toThrow(/did not finish within 1.5 s/)
    expect(watch.id()).toMatch(/^[0-9a-f]{6}$/)
    expect(await wanNamespaces(watch.id())).toEqual([])
    expect(await processesNaming(watch.base())).toEqual([])
  }, 30_000)
})
