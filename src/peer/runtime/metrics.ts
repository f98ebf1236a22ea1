import { isIP } from 'node:net'
import { randomBytes } from 'node:crypto'
import { lstat, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { EpimeshError } from '../../errors.ts'
import { startWebServer } from '../web/server.ts'
import type { JobProgress } from './job-kinds.ts'
import type { PeerStatus } from './peer.ts'

/**
 * The peer's Prometheus endpoint (`epimesh start --metrics [HOST:]PORT`): GET /metrics in the text
 * exposition format (version 0.0.4), behind a bearer token. The numbers come from what the peer
 * already counts (its status: transport, agreement, neighbours, job) and from the few things only this
 * module keeps (round durations, jobs finished and failed). Names are listed in the README.
 */

export class MetricsAddressError extends EpimeshError {
  readonly exitCode = 2
  constructor (value: string, reason: string) {
    super('METRICS_ADDRESS', `--metrics ${JSON.stringify(value.slice(0, 80))}: ${reason} (give PORT or HOST:PORT, HOST an IP address or localhost)`)
  }
}

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`; HOST an IP literal or localhost; 127.0.0.1 when none is given. */
export function parseMetricsAddress (value: string): { host: string, port: number } {
  return parseListenAddress(value, (reason) => new MetricsAddressError(value, reason))
}

/**
 * A local server's address as a flag gives it (`--metrics`, `--http`): `PORT`, `HOST:PORT` or
 * `[IPv6]:PORT`, HOST an IP literal or localhost, 127.0.0.1 when none is given; `fail` makes the error
 * for a reason.
 */
export function parseListenAddress (value: string, fail: (reason: string) => Error): { host: string, port: number } {
  if (value.length > 64) throw fail('too long')
  let host = '127.0.0.1'
  let portText = value
  const bracketed = /^\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(value)
  if (bracketed !== null) {
    host = bracketed[1] as string
    portText = bracketed[2] as string
    if (isIP(host) !== 6) throw fail('not an IPv6 address in brackets')
  } else if (value.includes(':')) {
    const at = value.lastIndexOf(':')
    host = value.slice(0, at)
    portText = value.slice(at + 1)
    if (host !== 'localhost' && isIP(host) !== 4) throw fail(`${JSON.stringify(host)} is not an IPv4 address or localhost`)
  }
  if (!/^\d{1,5}$/.test(portText)) throw fail('the port is not a number')
  const port = Number(portText)
  if (port > 65535) throw fail('the port is over 65535')
  return { host, port }
}

/** Round duration buckets, in seconds. */
export const ROUND_BUCKETS = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30])

/**
 * What the status does not hold: the time each round took, the rounds driven over all jobs, and the
 * jobs that finished or failed here since the start. Fed by the coordinator's progress reports.
 */
export class MetricsRecorder {
  readonly buckets = new Array<number>(ROUND_BUCKETS.length).fill(0)
  durationSum = 0
  durationCount = 0
  rounds = 0
  finished = 0
  failed = 0
  private last: { job: string, jobRound: number, at: number } | null = null
  private readonly failedSeen = new Set<string>()

  constructor (private readonly now: () => number = () => performance.now()) {}

  /** a progress report: each rise of the job's round ends a round (its time since the previous rise) */
  progress (progress: JobProgress): void {
    const at = this.now()
    const last = this.last
    if (last !== null && last.job === progress.job && progress.jobRound > last.jobRound) {
      const rounds = progress.jobRound - last.jobRound
      const seconds = (at - last.at) / 1000 / rounds
      for (let step = 0; step < rounds; step++) this.observe(seconds)
      this.rounds += rounds
    }
    if (last === null || last.job !== progress.job || progress.jobRound !== last.jobRound) this.last = { job: progress.job, jobRound: progress.jobRound, at }
  }

  jobFinished (): void { this.finished++ }

  /** a job that failed here (the ended list is bounded; each job is counted once) */
  jobFailed (job: string): void {
    if (this.failedSeen.has(job)) return
    if (this.failedSeen.size >= 4096) this.failedSeen.clear()
    this.failedSeen.add(job)
    this.failed++
  }

  private observe (seconds: number): void {
    this.durationSum += seconds
    this.durationCount++
    const index = ROUND_BUCKETS.findIndex((bound) => seconds <= bound)
    if (index >= 0) this.buckets[index] = (this.buckets[index] ?? 0) + 1
  }
}

/** The size in bytes of the files under `path` (a missing folder is 0); at most `limit` entries walked. */
export async function folderBytes (path: string, limit = 100_000): Promise<number> {
  let total = 0
  let seen = 0
  const walk = async (folder: string, depth: number): Promise<void> => {
    const names = await readdir(folder).catch(() => [] as string[])
    for (const name of names) {
      if (++seen > limit) return
      const entry = await lstat(join(folder, name)).catch(() => null)
      if (entry === null) continue
      if (entry.isDirectory() && depth < 8) await walk(join(folder, name), depth + 1)
      else if (entry.isFile()) total += entry.size
    }
  }
  await walk(path, 0)
  return total
}

const JOB_STATES = ['idle', 'running', 'finished', 'failed'] as const

function escapeLabel (value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function number (value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}

/** The exposition text of one peer's metrics. */
export function renderMetrics (status: PeerStatus, recorder: MetricsRecorder, storeBytes: number): string {
  const lines: string[] = []
  const metric = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: Array<[labels: Record<string, string>, value: number, suffix?: string]>): void => {
    lines.push(`# HELP epimesh_${name} ${help}`, `# TYPE epimesh_${name} ${type}`)
    for (const [labels, value, suffix = ''] of samples) {
      const entries = Object.entries(labels)
      const text = entries.length === 0 ? '' : `{${entries.map(([key, label]) => `${key}="${escapeLabel(label)}"`).join(',')}}`
      lines.push(`epimesh_${name}${suffix}${text} ${number(value)}`)
    }
  }
  const { transport, agreement, neighbours, job } = status
  metric('rounds_total', 'counter', 'Consensus rounds driven by this peer since it started, all jobs and phases.', [[{}, recorder.rounds]])
  let cumulative = 0
  metric('round_duration_seconds', 'histogram', 'Time each consensus round took on this peer, in seconds.', [
    ...ROUND_BUCKETS.map((bound, index): [Record<string, string>, number, string] => { cumulative += recorder.buckets[index] ?? 0; return [{ le: String(bound) }, cumulative, '_bucket'] }),
    [{ le: '+Inf' }, recorder.durationCount, '_bucket'],
    [{}, recorder.durationSum, '_sum'],
    [{}, recorder.durationCount, '_count']
  ])
  metric('messages_sent_total', 'counter', 'Consensus message copies handed to the network (a broadcast counts once per neighbour).', [[{}, transport.sent]])
  metric('messages_received_total', 'counter', 'Consensus messages received, before any check.', [[{}, transport.received]])
  metric('messages_accepted_total', 'counter', 'Consensus messages received that passed the transport\'s checks.', [[{}, transport.accepted]])
  metric('messages_rejected_total', 'counter', 'Consensus messages rejected, by rejection code.', Object.entries(transport.rejected).map(([code, count]) => [{ code }, count]))
  metric('send_failures_total', 'counter', 'Sends and broadcasts that failed to reach a neighbour.', [[{}, transport.sendFailures]])
  metric('bytes_sent_total', 'counter', 'Encoded consensus bytes sent (without framing, signatures or encryption).', [[{}, transport.bytesSent]])
  metric('bytes_received_total', 'counter', 'Encoded consensus bytes received (without framing, signatures or encryption).', [[{}, transport.bytesReceived]])
  metric('neighbours_connected', 'gauge', 'Graph neighbours this peer is connected to.', [[{}, neighbours.connected.length]])
  metric('neighbours_missing', 'gauge', 'Graph neighbours this peer is not connected to.', [[{}, neighbours.missing.length]])
  const state = job?.state ?? 'idle'
  metric('job_state', 'gauge', 'The state of the current (or last) job on this peer: 1 for the state it is in, 0 for the others.', JOB_STATES.map((name) => [{ state: name }, name === state ? 1 : 0]))
  metric('job_round', 'gauge', 'Rounds since the current (or last) job began, all phases together.', [[{}, job?.jobRound ?? 0]])
  metric('jobs_started_total', 'counter', 'Jobs the federation agreed on and this peer started.', [[{}, agreement?.started ?? 0]])
  metric('jobs_finished_total', 'counter', 'Jobs that ran to the end on this peer since it started.', [[{}, recorder.finished]])
  metric('jobs_failed_total', 'counter', 'Jobs that failed on this peer since it started.', [[{}, recorder.failed]])
  metric('jobs_refused_total', 'counter', 'Proposals refused by some member, as this peer heard.', [[{}, agreement?.refused ?? 0]])
  metric('jobs_expired_total', 'counter', 'Proposals that expired before every member accepted.', [[{}, agreement?.expired ?? 0]])
  metric('store_bytes', 'gauge', 'Size in bytes of the files of this peer\'s store folder.', [[{}, storeBytes]])
  return `${lines.join('\n')}\n`
}

export interface MetricsServer {
  readonly url: string
  readonly token: string
  close (): Promise<void>
}

/**
 * Serves GET /metrics with the text `collect` gives, on the peer's token-protected web server: without
 * the token (`Authorization: Bearer TOKEN`, as Prometheus sends it) every route answers 401.
 */
export async function startMetricsServer (address: { host: string, port: number }, collect: () => Promise<string>, token = randomBytes(24).toString('base64url')): Promise<MetricsServer> {
  const server = await startWebServer({
    host: address.host,
    port: address.port,
    token,
    routes: new Map([['/metrics', async () => ({ type: 'text/plain; version=0.0.4; charset=utf-8', body: await collect() })]])
  })
  return { url: `${server.url}/metrics`, token: server.token, close: async () => { await server.close() } }
}
