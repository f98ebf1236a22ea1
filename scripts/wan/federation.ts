import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { diameter } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { concatBlocks } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { prepareModel, readDataset } from '../../src/peer/data/dataset.ts'
import { federationGraph, parseFederation } from '../../src/peer/federation.ts'
import { createIdentity } from '../../src/peer/identity.ts'
import type { RelayStats } from '../../src/peer/net/delay-relay.ts'
import { localDesign } from '../../src/peer/runtime/checks.ts'
import { importCases } from '../../src/store/import.ts'
import { removeDefaultKey } from '../../src/store/keys.ts'
import type { CaseSchema } from '../../src/store/schema.ts'
import { Store, type StoredModel } from '../../src/store/store.ts'
import { createWanNetwork, inNamespace, type WanNetwork } from './namespaces.ts'

/**
 * A WAN-like federation: peers as separate `epimesh start` processes, each in its own network
 * namespace (./namespaces.ts), reaching each other only through the delaying relay
 * (src/peer/net/delay-relay.ts) that runs in the router namespace. The data are R's infert, split
 * evenly; each job's models are checked against the pooled fit, which only this experiment can compute.
 */

export interface WanOptions {
  peers: number
  topology: 'ring' | 'line'
  /** one-way delay of every link, each direction (ms) */
  delayMs: number
  /** fraction of TCP segments held back a retransmission time-out (loss as TCP shows it) */
  holdProbability: number
  holdMs: number
  algorithms: Array<'admm' | 'newton'>
  /** the jobs' stopping tolerance */
  tolerance: number
  seed: number
  /** one job's bound, start-up included (ms) */
  jobTimeoutMs: number
  say?: (line: string) => void
  signal?: AbortSignal
  /**
   * stop the peers once each has stored the model, instead of waiting for them to exit (an exiting peer
   * first waits for its audit log's last checkpoint, a few seconds): the wall time then ends there
   */
  stopWhenStored?: boolean
  /** keep the data folders (the network and processes always go) */
  keep?: boolean
}

export interface WanJobReport {
  algorithm: 'admm' | 'newton'
  /** the model's rounds (the fit's, its statistics and secure sums included) */
  rounds: number
  /** the job's rounds to its last phase: the fit's, then the federation's metrics and the closing agreement */
  jobRounds: number
  converged: boolean
  /** from starting the processes to the last one's exit (or, with stopWhenStored, to the last model stored): start-up, joining, agreement, rounds, audit */
  wallSeconds: number
  /** from starting the processes to the last one's peer running (node, tsx, libp2p, store) */
  startupSeconds: number
  /** from then to the first peer's job start: neighbours connected, the job proposed and agreed */
  agreementSeconds: number
  /** from the first peer's job start to the last peer's job done, off their logs */
  roundSeconds: number
  msPerRound: number
  /** the job's rounds x the links' round-trip time, and x their one-way delay */
  roundsTimesRttSeconds: number
  roundsTimesOneWaySeconds: number
  /** the largest relative difference of any peer's coefficient from the pooled fit */
  pooledRelativeError: number
  /** the machine's one-minute load average when the job ended (the peers share its cores with whatever else runs) */
  loadAverage: number
  /** every peer's estimates, in the order of the terms */
  estimates: number[][]
  terms: string[]
}

export interface WanReport {
  peers: number
  topology: string
  diameter: number
  delayMs: number
  rttMs: number
  holdProbability: number
  holdMs: number
  namespaces: string[]
  jobs: WanJobReport[]
  relay: RelayStats | null
  /** a direct connection from peer 1 to peer 2's own address, bypassing the relay, was refused */
  directPathBlocked: boolean
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const BIN = join(ROOT, 'bin/epimesh.js')
const RELAY = join(ROOT, 'scripts/wan/relay-process.ts')
const INFERT = join(ROOT, 'test/fixtures/infert.csv')
const FEATURES = ['age', 'parity', 'induced', 'spontaneous']
const PEER_PORT = 4001
const KILL_GRACE_MS = 3000

/** The children started here, stopped on the way out whatever happened. */
class Children {
  private readonly running = new Set<ChildProcess>()

  add (child: ChildProcess): ChildProcess {
    this.running.add(child)
    child.once('exit', () => { this.running.delete(child) })
    return child
  }

  /** SIGTERM to each child still running, SIGKILL to those still there after the grace period. */
  async stopAll (): Promise<void> {
    const left = [...this.running]
    const exited = left.map(async (child) => await new Promise<void>((resolve) => { if (child.exitCode !== null || child.signalCode !== null) resolve(); else child.once('exit', () => { resolve() }) }))
    for (const child of left) child.kill('SIGTERM')
    const grace = setTimeout(() => { for (const child of left) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }, KILL_GRACE_MS)
    await Promise.all(exited)
    clearTimeout(grace)
  }
}

interface PeerFolder { region: string, dir: string, peerId: string }

/** infert split evenly over the peers, each share imported into the peer's own store. */
async function preparePeers (base: string, peers: number, seed: number): Promise<PeerFolder[]> {
  const dataset = await readDataset(INFERT)
  const prepared = prepareModel(dataset, { outcome: 'case', family: 'binomial', features: FEATURES })
  const columns = ['case', ...FEATURES]
  const schema: CaseSchema = { version: 1, id: 'record', outcome: 'case', columns: Object.fromEntries(columns.map((column) => [column, { type: 'number' }])) }
  const parts = splitRows(prepared.rows.length, peers, 'even', createRng(seed))
  const folders: PeerFolder[] = []
  for (const [index, rows] of parts.entries()) {
    const region = `region-${index + 1}`
    const dir = join(base, region)
    const { peerId } = await createIdentity(dir)
    const csv = join(base, 'inputs', `${region}.csv`)
    await mkdir(join(base, 'inputs'), { recursive: true })
    await writeFile(csv, [['record', ...columns].join(','), ...rows.map((row) => [String(row + 1), ...columns.map((column) => String(prepared.rows[row]?.[column]))].join(','))].join('\n') + '\n')
    await Store.use(dir, async (store) => {
      await store.configure({ region, peerId })
      await importCases(store, { file: csv, schema })
    })
    folders.push({ region, dir, peerId })
  }
  return folders
}

/** Lines of a child's stream, as they come. */
function onLines (stream: NodeJS.ReadableStream | null, handle: (line: string) => void): void {
  let buffer = ''
  stream?.setEncoding('utf8')
  stream?.on('data', (chunk: string) => {
    buffer += chunk
    const lines = buffer.split('\n')
    buffer = lines.pop() ?? ''
    for (const line of lines) handle(line)
  })
}

/** Starts the relay in the router namespace; resolves once it listens. */
async function startRelay (network: WanNetwork, base: string, options: WanOptions, children: Children): Promise<{ stop: () => Promise<RelayStats | null> }> {
  const configPath = join(base, 'relay.json')
  await writeFile(configPath, JSON.stringify({
    routes: network.hosts.map((host) => ({ listen: { host: host.relayAddress, port: PEER_PORT }, target: { host: host.address, port: PEER_PORT } })),
    delayMs: options.delayMs,
    holdProbability: options.holdProbability,
    holdMs: options.holdMs,
    seed: options.seed
  }, null, 2))
  const maxSeconds = Math.ceil(options.algorithms.length * options.jobTimeoutMs / 1000) + 60
  const child = children.add(spawn('ip', inNamespace(network.router, process.execPath, ['--import', 'tsx', RELAY, configPath, String(maxSeconds)]), { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] }))
  let stats: RelayStats | null = null
  let errors = ''
  const listening = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`the relay did not start within 20 s: ${errors}`)) }, 20_000)
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the relay exited (${code}): ${errors}`)) })
    onLines(child.stdout, (line) => {
      let record: { event?: string, why?: string } & RelayStats
      try {
        record = JSON.parse(line) as typeof record
      } catch {
        errors = `${errors}${line}\n`.slice(-4000)
        return
      }
      const { event, why: _why, ...fields } = record
      if (event === 'relay.listening') { clearTimeout(timer); resolve() }
      if (event === 'relay.stats') stats = fields
    })
  })
  onLines(child.stderr, (line) => { errors = `${errors}${line}\n`.slice(-4000) })
  await listening
  return {
    stop: async () => {
      if (child.exitCode === null) {
        const exited = new Promise<void>((resolve) => { child.once('exit', () => { resolve() }) })
        child.kill('SIGTERM')
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, KILL_GRACE_MS))])
      }
      return stats
    }
  }
}

/** Whether a TCP connection from peer 1 straight to peer 2's own address (not through the relay) fails. */
async function directPathBlocked (network: WanNetwork): Promise<boolean> {
  const [first, second] = network.hosts
  if (first === undefined || second === undefined) return true
  const probe = `const s = require('node:net').connect({ host: '${second.address}', port: ${PEER_PORT}, timeout: 2000 }); s.on('connect', () => { process.stdout.write('connected'); s.destroy() }); s.on('error', (e) => { process.stdout.write(e.code) }); s.on('timeout', () => { process.stdout.write('timeout'); s.destroy() })`
  return await new Promise((resolve) => {
    const child = spawn('ip', inNamespace(first.namespace, process.execPath, ['-e', probe]), { stdio: ['ignore', 'pipe', 'ignore'] })
    let output = ''
    child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, 10_000)
    child.once('exit', () => { clearTimeout(timer); resolve(output !== 'connected' && output !== '') })
  })
}

/** One job: every peer's process in its namespace, the first proposing; times off their logs. */
async function runJob (network: WanNetwork, federationPath: string, folders: PeerFolder[], algorithm: 'admm' | 'newton', options: WanOptions, children: Children): Promise<{ jobId: string, wallSeconds: number, startupSeconds: number, agreementSeconds: number, roundSeconds: number, jobRounds: number }> {
  const say = options.say ?? (() => {})
  const jobId = `wan-${algorithm}-${network.id}`
  // each peer's log, kept with the data folders (--keep)
  const logs = join(dirname(federationPath), 'logs')
  await mkdir(logs, { recursive: true })
  const started = Date.now()
  const ready: number[] = []
  const starts: number[] = []
  const dones: number[] = []
  let stored = 0
  let lastRound = 0
  let allStored: () => void = () => {}
  const storedEverywhere = new Promise<'stored'>((resolve) => { allStored = () => { resolve('stored') } })
  const exits = folders.map(async (folder, index) => {
    const host = network.hosts[index] as WanNetwork['hosts'][number]
    const args = [BIN, 'start', '--dir', folder.dir, '--federation', federationPath, '--listen', `/ip4/${host.address}/tcp/${PEER_PORT}`, '--job-id', jobId, '--exit-after-job', ...(index === 0 ? ['--propose'] : [])]
    const child = children.add(spawn('ip', inNamespace(host.namespace, process.execPath, args), { stdio: ['ignore', 'ignore', 'pipe'] }))
    let tail = ''
    const log = createWriteStream(join(logs, `${folder.region}-${algorithm}.log`))
    child.once('exit', () => { log.end() })
    onLines(child.stderr, (line) => {
      log.write(`${line}\n`)
      tail = `${tail}${line}\n`.slice(-3000)
      try {
        const record = JSON.parse(line) as { event?: string, time?: string, level?: number, msg?: string, deadlines?: unknown, round?: unknown }
        if (record.event === 'job.phase' && typeof record.round === 'number') lastRound = Math.max(lastRound, record.round)
        if (record.msg === 'peer started' && record.time !== undefined) ready.push(Date.parse(record.time))
        if (record.event === 'job.start' && record.time !== undefined) starts.push(Date.parse(record.time))
        // the coordinator's job.done (the whole job, with its deadlines), not the fit's own at its stop
        if (record.event === 'job.done' && record.deadlines !== undefined && record.time !== undefined) dones.push(Date.parse(record.time))
        if (record.event === 'model.stored' && ++stored === folders.length && options.stopWhenStored === true) allStored()
        if ((record.level ?? 0) >= 50) say(`  ${folder.region}: ${record.msg ?? line}`)
      } catch {
        // not a log record
      }
    })
    return await new Promise<{ code: number, tail: string }>((resolve) => { child.once('exit', (code) => { resolve({ code: code ?? 1, tail }) }) })
  })
  let timer: NodeJS.Timeout | undefined
  const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => { resolve('timeout') }, options.jobTimeoutMs) })
  const aborted = new Promise<'aborted'>((resolve) => {
    if (options.signal?.aborted === true) resolve('aborted')
    options.signal?.addEventListener('abort', () => { resolve('aborted') }, { once: true })
  })
  const outcome = await Promise.race([Promise.all(exits), storedEverywhere, timedOut, aborted])
  const ended = Date.now()
  clearTimeout(timer)
  if (outcome === 'stored') await children.stopAll()
  if (outcome === 'timeout' || outcome === 'aborted') {
    await children.stopAll()
    const tails = await Promise.all(exits)
    throw new Error(`${algorithm} job ${outcome === 'timeout' ? `did not finish within ${options.jobTimeoutMs / 1000} s` : 'interrupted'}; the first peer's last log lines:\n${tails[0]?.tail ?? ''}`)
  }
  const failed = outcome === 'stored' ? -1 : outcome.findIndex((exit) => exit.code !== 0)
  if (failed >= 0 && outcome !== 'stored') throw new Error(`the peer of ${folders[failed]?.region} exited with ${outcome[failed]?.code}; its last log lines:\n${outcome[failed]?.tail}`)
  if (starts.length !== folders.length || dones.length !== folders.length) throw new Error(`expected every peer to log job.start and job.done, got ${starts.length} and ${dones.length}`)
  return {
    jobId,
    wallSeconds: (ended - started) / 1000,
    startupSeconds: (Math.max(...ready) - started) / 1000,
    agreementSeconds: (Math.min(...starts) - Math.max(...ready)) / 1000,
    roundSeconds: (Math.max(...dones) - Math.min(...starts)) / 1000,
    jobRounds: lastRound
  }
}

/**
 * Builds the namespaces, starts the relay, runs each job with a fresh set of peer processes, and tears
 * everything down after (processes, relay, namespaces and their veths; the data folders unless kept),
 * also when a job fails or the signal aborts.
 */
export async function runWanExperiment (options: WanOptions): Promise<WanReport> {
  const say = options.say ?? (() => {})
  const children = new Children()
  const base = await mkdtemp(join(tmpdir(), 'epimesh-wan-'))
  let network: WanNetwork | null = null
  let folders: PeerFolder[] = []
  let relay: { stop: () => Promise<RelayStats | null> } | null = null
  say(`data folders under ${base}`)
  const checkAborted = (): void => { if (options.signal?.aborted === true) throw new Error('interrupted') }
  try {
    folders = await preparePeers(base, options.peers, options.seed)
    checkAborted()
    network = await createWanNetwork(options.peers)
    say(`network ${network.id}: router ${network.router}, peers ${network.hosts.map((host) => `${host.namespace} (${host.address}, reached at ${host.relayAddress})`).join(', ')}`)
    const document = {
      version: 1,
      federationId: `wan-${network.id}`,
      description: 'A WAN-like federation: each peer in its own network namespace, the links through a delaying relay',
      members: folders.map((folder, index) => ({ region: folder.region, peerId: folder.peerId, addresses: [`/ip4/${network?.hosts[index]?.relayAddress}/tcp/${PEER_PORT}`] })),
      graph: { topology: options.topology },
      model: { family: 'binomial', outcome: 'case', features: FEATURES.map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: options.tolerance, maxRounds: 3000, roundDeadlineMs: 5000, dropAfterRounds: 0 }
    }
    checkAborted()
    relay = await startRelay(network, base, options, children)
    checkAborted()
    const blocked = await directPathBlocked(network)
    const graphDiameter = diameter(federationGraph(parseFederation(document, 'wan federation')))
    const blocks = await Promise.all(folders.map(async (folder) => await Store.use(folder.dir, async (store) => localDesign(await store.allRows(), parseFederation(document).model))))
    const pooled = fitModel(concatBlocks(blocks.map((entry) => entry.block)), blocks[0]?.terms ?? [], { family: 'binomial', lambda: 0, standardize: true, tolerance: 1e-13 })
    const jobs: WanJobReport[] = []
    for (const algorithm of options.algorithms) {
      const federationPath = join(base, `federation-${algorithm}.json`)
      await writeFile(federationPath, JSON.stringify({ ...document, model: { ...document.model, algorithm } }, null, 2))
      say(`${algorithm}: starting ${folders.length} peer processes`)
      const job = await runJob(network, federationPath, folders, algorithm, options, children)
      const models = await Promise.all(folders.map(async (folder) => await Store.use(folder.dir, async (store) => await store.getModel(job.jobId))))
      if (models.some((model) => model === null)) throw new Error(`a peer holds no model of job ${job.jobId}`)
      const stored = models as StoredModel[]
      const first = stored[0] as StoredModel
      const estimates = stored.map((model) => model.coefficients.map((row) => row.estimate))
      const pooledEstimates = Array.from(pooled.coefficients.estimate)
      const report: WanJobReport = {
        algorithm,
        rounds: first.rounds,
        jobRounds: job.jobRounds,
        converged: stored.every((model) => model.converged),
        wallSeconds: job.wallSeconds,
        startupSeconds: job.startupSeconds,
        agreementSeconds: job.agreementSeconds,
        roundSeconds: job.roundSeconds,
        msPerRound: job.roundSeconds * 1000 / Math.max(1, job.jobRounds),
        roundsTimesRttSeconds: job.jobRounds * 2 * options.delayMs / 1000,
        roundsTimesOneWaySeconds: job.jobRounds * options.delayMs / 1000,
        pooledRelativeError: Math.max(...estimates.flatMap((values) => values.map((value, index) => Math.abs(value - (pooledEstimates[index] as number)) / Math.max(1e-12, Math.abs(pooledEstimates[index] as number))))),
        loadAverage: loadavg()[0] as number,
        estimates,
        terms: first.coefficients.map((row) => row.term)
      }
      say(`${algorithm}: ${report.rounds} rounds in the fit, ${report.jobRounds} in the job, ${report.roundSeconds.toFixed(2)} s in rounds (${report.msPerRound.toFixed(1)} ms a round), ${report.wallSeconds.toFixed(1)} s wall (start-up ${report.startupSeconds.toFixed(1)} s, neighbours and agreement ${report.agreementSeconds.toFixed(1)} s); rounds x RTT ${report.roundsTimesRttSeconds.toFixed(2)} s; relative difference from the pooled fit ${report.pooledRelativeError.toExponential(2)}; load average ${report.loadAverage.toFixed(1)}`)
      jobs.push(report)
    }
    const stats = await relay.stop()
    relay = null
    return {
      peers: options.peers,
      topology: options.topology,
      diameter: graphDiameter,
      delayMs: options.delayMs,
      rttMs: 2 * options.delayMs,
      holdProbability: options.holdProbability,
      holdMs: options.holdMs,
      namespaces: [network.router, ...network.hosts.map((host) => host.namespace)],
      jobs,
      relay: stats,
      directPathBlocked: blocked
    }
  } finally {
    await relay?.stop().catch(() => null)
    await children.stopAll()
    await network?.teardown()
    if (options.keep !== true) {
      for (const folder of folders) await removeDefaultKey(folder.dir).catch(() => {})
      await rm(base, { recursive: true, force: true })
    } else {
      say(`data folders kept: ${base}`)
    }
  }
}
