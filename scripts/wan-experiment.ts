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
 *     [--hold 200] [--algorithms admm,newton] [--tolerance 1e-10] [--seed 1] [--keep] [--json]
 *
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
const interrupt = (): void => { say('interrupted: stopping the peers and tearing the network down'); controller.abort() }
process.once('SIGINT', interrupt)
process.once('SIGTERM', interrupt)

const delayMs = numberOption('delay', 20, 0, 1000)
const report: WanReport = await runWanExperiment({
  peers,
  topology,
  delayMs,
  holdProbability: numberOption('loss', 0.01, 0, 0.5),
  holdMs: numberOption('hold', 200, 0, 5000),
  algorithms: algorithms as Array<'admm' | 'newton'>,
  tolerance: numberOption('tolerance', 1e-10, 1e-14, 1e-2),
  seed: numberOption('seed', 1, 0, 2 ** 32 - 1),
  jobTimeoutMs: 300_000,
  say,
  signal: controller.signal,
  keep: process.argv.includes('--keep')
})
if (json) {
  process.stdout.write(`${JSON.stringify(report)}\n`)
} else {
  say('')
  say(`${report.peers} peers, ${report.topology} (diameter ${report.diameter}), one-way delay ${report.delayMs} ms (RTT ${report.rttMs} ms), ${(report.holdProbability * 100).toFixed(1)}% of segments held +${report.holdMs} ms; direct path between peers blocked: ${report.directPathBlocked}`)
  say(`${'job'.padEnd(7)} ${'rounds'.padStart(6)} ${'in rounds'.padStart(10)} ${'ms/round'.padStart(9)} ${'rounds x RTT'.padStart(13)} ${'wall'.padStart(7)} ${'vs pooled'.padStart(10)}`)
  for (const job of report.jobs) {
    say(`${job.algorithm.padEnd(7)} ${String(job.rounds).padStart(6)} ${`${job.roundSeconds.toFixed(2)} s`.padStart(10)} ${job.msPerRound.toFixed(1).padStart(9)} ${`${job.roundsTimesRttSeconds.toFixed(2)} s`.padStart(13)} ${`${job.wallSeconds.toFixed(1)} s`.padStart(7)} ${job.pooledRelativeError.toExponential(1).padStart(10)}`)
  }
  if (report.relay !== null) say(`relay: ${report.relay.connections} connections, ${report.relay.segments} segments (${report.relay.held} held), ${(report.relay.bytes / 1e6).toFixed(2)} MB; timers late by ${report.relay.latenessMeanMs.toFixed(2)} ms on average, ${report.relay.latenessMaxMs.toFixed(1)} ms at most`)
}
