/**
 * A WAN-like federation on one machine: N peers as separate `epimesh start` processes, each in its own
 * Linux network namespace, joined to a router namespace by veth pairs; every connection between peers
 * goes through a user-space relay in the router namespace that delays each direction by --delay ms and
 * holds --loss of the TCP segments back a further --hold ms (how a lost, retransmitted segment looks to
 * TCP's reader; the kernel here has no netem qdisc). Runs an ADMM job and an exact-Newton job on R's
 * infert split evenly, checks every peer's model against the pooled fit, and reports the wall time
 * against rounds x RTT. Everything (processes, relay, namespaces, veths, data folders) is removed after,
 * also on failure or Ctrl-C. Needs root and iproute2; says why and exits 0 where it cannot run.
 *
 *   npx tsx scripts/wan-experiment.ts [--peers 4] [--topology ring|line] [--delay 20] [--loss 0.01]
 *     [--hold 200] [--algorithms admm,newton] [--tolerance 1e-10] [--seed 1] [--baseline] [--keep] [--json]
 *
 * --baseline runs the same jobs with no delay and no loss first, for comparison.
 * --keep keeps the data folders and each peer's log (logs/REGION-ALGORITHM.log) and says where.
 */
import { namespaceSupport, WAN_MAX_PEERS } from './wan/namespaces.ts'
import { runWanExperiment, type WanReport } from './wan/federation.ts'

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] ?? '') : fallback
}
function numberOption (name: string, fallback: number, low: number, high: number): number {
  const value = Number(option(name, String(fallback)))
  if (!Number.isFinite(value) || value < low || value > high) {
    process.stderr.write(`--${name} must be a number from ${low} to ${high}\n`)
    process.exit(2)
  }
  return value
}

const peers = numberOption('peers', 4, 2, WAN_MAX_PEERS)
const topology = option('topology', 'ring')
const algorithms = option('algorithms', 'admm,newton').split(',')
if (!Number.isInteger(peers) || (topology !== 'ring' && topology !== 'line') || algorithms.some((name) => name !== 'admm' && name !== 'newton')) {
  process.stderr.write('--peers must be an integer, --topology ring or line, --algorithms a list of admm and newton\n')
  process.exit(2)
}
const json = process.argv.includes('--json')
const say = (line: string): void => { if (!json) process.stdout.write(`${line}\n`) }

const support = await namespaceSupport()
if (!support.supported) {
  process.stdout.write(`skipped: ${support.reason}\n`)
  process.exit(0)
}

const controller = new AbortController()
// on, not once: a Ctrl-C reaches this process twice (from the terminal, and relayed by tsx or npx), and
// a second signal without a listener would end it before its teardown
const interrupt = (): void => {
  if (controller.signal.aborted) return
  say('interrupted: stopping the peers and tearing the network down')
  controller.abort()
}
process.on('SIGINT', interrupt)
process.on('SIGTERM', interrupt)

const holdProbability = numberOption('loss', 0.01, 0, 0.5)
const holdMs = numberOption('hold', 200, 0, 5000)
const tolerance = numberOption('tolerance', 1e-10, 1e-14, 1e-2)
const seed = numberOption('seed', 1, 0, 2 ** 32 - 1)
// --baseline first runs the same jobs through the relay with no delay and no loss, on a network of its
// own, just before: the two runs share the machine's load of the moment, and the baseline shows what
// the rounds cost without the links
const links = [
  ...(process.argv.includes('--baseline') ? [{ delayMs: 0, holdProbability: 0 }] : []),
  { delayMs: numberOption('delay', 20, 0, 1000), holdProbability }
]
const reports: WanReport[] = []
for (const { delayMs, holdProbability } of links) {
  if (controller.signal.aborted) break
  say(`-- one-way delay ${delayMs} ms, ${(holdProbability * 100).toFixed(1)}% of segments held +${holdMs} ms`)
  const report = await runWanExperiment({
    peers,
    topology,
    delayMs,
    holdProbability,
    holdMs,
    algorithms: algorithms as Array<'admm' | 'newton'>,
    tolerance,
    seed,
    jobTimeoutMs: 300_000,
    say,
    signal: controller.signal,
    keep: process.argv.includes('--keep')
  }).catch((error: unknown) => {
    // the network and processes are gone by now (runWanExperiment tears them down before it rejects)
    process.stderr.write(`${controller.signal.aborted ? 'interrupted' : 'failed'}: ${(error as Error).message}\n`)
    process.exit(controller.signal.aborted ? 130 : 1)
  })
  reports.push(report)
}
if (json) {
  process.stdout.write(`${JSON.stringify(reports)}\n`)
} else {
  const first = reports[0]
  say('')
  if (first !== undefined) say(`${first.peers} peers, ${first.topology} (diameter ${first.diameter}); direct path between peers blocked: ${reports.every((report) => report.directPathBlocked)}`)
  say(`${'delay'.padStart(5)} ${'RTT'.padStart(4)} ${'loss'.padStart(5)} ${'job'.padEnd(7)} ${'rounds'.padStart(6)} ${'job'.padStart(4)} ${'in rounds'.padStart(10)} ${'ms/round'.padStart(9)} ${'rounds x RTT'.padStart(13)} ${'start-up'.padStart(9)} ${'wall'.padStart(7)} ${'vs pooled'.padStart(10)} ${'load'.padStart(5)}`)
  for (const report of reports) {
    for (const job of report.jobs) {
      say(`${String(report.delayMs).padStart(5)} ${String(report.rttMs).padStart(4)} ${`${(report.holdProbability * 100).toFixed(1)}%`.padStart(5)} ${job.algorithm.padEnd(7)} ${String(job.rounds).padStart(6)} ${String(job.jobRounds).padStart(4)} ${`${job.roundSeconds.toFixed(2)} s`.padStart(10)} ${job.msPerRound.toFixed(1).padStart(9)} ${`${job.roundsTimesRttSeconds.toFixed(2)} s`.padStart(13)} ${`${job.startupSeconds.toFixed(1)} s`.padStart(9)} ${`${job.wallSeconds.toFixed(1)} s`.padStart(7)} ${job.pooledRelativeError.toExponential(1).padStart(10)} ${job.loadAverage.toFixed(1).padStart(5)}`)
    }
  }
  for (const report of reports) {
    if (report.relay !== null) say(`relay at ${report.delayMs} ms: ${report.relay.connections} connections (${report.relay.failedDials} onward dials refused before the peer listened), ${report.relay.segments} segments (${report.relay.held} held), ${(report.relay.bytes / 1e6).toFixed(2)} MB; its timers late by ${report.relay.latenessMeanMs.toFixed(2)} ms on average, ${report.relay.latenessMaxMs.toFixed(1)} ms at most`)
  }
}
