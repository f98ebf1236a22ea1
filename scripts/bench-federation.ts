/**
 * A whole federated fit over real libp2p: N peers in one process (each its own libp2p node over TCP on
 * 127.0.0.1) on a ring, infert split evenly, ADMM or exact Newton to the network-agreed stop. Reports
 * the wall time of the job, the rounds, the median and mean time per round, the main thread's and the
 * whole process's CPU time per round (all peers share one event loop; verifications run beside it on
 * the thread pool), and the time to 1e-6 of the pooled fit (read off each round's iterates); and, over all peers, the connections refused, the members
 * graylisted, the lowest gossipsub score any peer gave another, and the messages rejected.
 *
 * Every message is signed with the sender's Ed25519 key and verified on receipt, as in a real peer
 * (SigningTransport); `--sign off` measures the transport without them. `--profile <file>` writes a V8
 * CPU profile of the rounds only (not the set-up); summarise it with scripts/profile-summary.ts.
 *
 *   npx tsx scripts/bench-federation.ts [--peers 16] [--algorithm admm|newton] [--via gossipsub|direct] [--sign on|off] [--crypto-slots <n>] [--profile <file>]
 */
import '../src/peer/polyfill.ts'
import { readFile, writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createFitJobParams, createFitJobState, fitJobProtocol, type FitJobState } from '../src/consensus/jobs/fit-job.ts'
import { maxRelativeError } from '../src/consensus/sim/fit-simulation.ts'
import { diameter } from '../src/consensus/graph.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng } from '../src/consensus/rng.ts'
import { selectRows } from '../src/learning/design.ts'
import { fitModel } from '../src/learning/fit.ts'
import { createGlmProblem } from '../src/learning/problem.ts'
import { parseFederation } from '../src/peer/federation.ts'
import { federationGraph } from '../src/peer/federation.ts'
import { createLibp2pTransport } from '../src/peer/net/libp2p-transport.ts'
import { CryptoSlots, ed25519Signer, ed25519Verifier, processCryptoSlots, SigningTransport } from '../src/peer/net/signing.ts'
import { createPeerNode, type PeerNode } from '../src/peer/net/node.ts'
import { driveRounds } from '../src/peer/runtime/round-driver.ts'
import { createSecureRng } from '../src/peer/runtime/secure-rng.ts'
import { loadProblem } from './lib.ts'
import type { Transport } from '../src/consensus/types.ts'

/** CPU time of the main thread so far (Linux: /proc, in clock ticks of 10 ms), or null elsewhere. */
async function mainThreadCpuMs (): Promise<number | null> {
  try {
    const stat = await readFile(`/proc/self/task/${process.pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // fields from the state on: utime and stime are the 12th and 13th
    return (Number(fields[11]) + Number(fields[12])) * 10
  } catch {
    return null
  }
}

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const peers = Number(option('peers', '16'))
const algorithm = option('algorithm', 'admm') as 'admm' | 'newton'
const via = option('via', 'gossipsub') as 'gossipsub' | 'direct'
const sign = option('sign', 'on')
const profilePath = process.argv.includes('--profile') ? option('profile', 'bench-federation.cpuprofile') : null
if (!Number.isInteger(peers) || peers < 3 || peers > 256) throw new Error(`--peers: a whole number from 3 to 256, got ${String(peers)}`)
if (algorithm !== 'admm' && algorithm !== 'newton') throw new Error(`--algorithm: admm or newton, got ${String(algorithm)}`)
if (via !== 'gossipsub' && via !== 'direct') throw new Error(`--via: gossipsub or direct, got ${String(via)}`)
if (sign !== 'on' && sign !== 'off') throw new Error(`--sign: on or off, got ${sign}`)
// how many signatures and verifications run at once on the thread pool (default: the process's, cores - 1)
const cryptoSlots = process.argv.includes('--crypto-slots') ? new CryptoSlots(Number(option('crypto-slots', '1'))) : processCryptoSlots

const infert = await loadProblem('infert', 'infert.csv', 'case', ['age', 'parity', 'induced', 'spontaneous'])
const pooled = fitModel(infert.block, infert.terms, { family: 'binomial', standardize: true, tolerance: 1e-13 })
const keys = await Promise.all(Array.from({ length: peers }, async () => await generateKeyPair('Ed25519')))
const regions = keys.map((_, index) => `region-${index}`)
const federation = parseFederation({
  version: 1,
  federationId: 'bench',
  members: keys.map((key, index) => ({ region: regions[index], peerId: peerIdFromPrivateKey(key).toString() })),
  graph: { topology: 'ring' },
  model: { family: 'binomial', outcome: 'case', features: infert.terms.slice(1).map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm, tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 2000, dropAfterRounds: 0 }
}, 'bench')
const nodes: PeerNode[] = []
for (const key of keys) {
  const node = await createPeerNode({ federation: { ...federation, bootstrap: nodes[0]?.addresses() ?? [] }, privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'] })
  await node.start()
  nodes.push(node)
}
await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 30_000 })))
const transports = nodes.map((node) => createLibp2pTransport({ broadcastVia: via }, { node }))
await Promise.all(transports.map(async (transport) => await transport.start()))
// each peer its own signer and verifier (with its own key cache), as in a real peer
const signing = sign === 'on' ? transports.map((transport, index) => new SigningTransport(transport, ed25519Signer(keys[index] as (typeof keys)[number]), ed25519Verifier(), undefined, { slots: cryptoSlots })) : null
const carriers: Transport[] = signing ?? transports

const graph = federationGraph(federation)
const parts = splitRows(infert.block.rows, peers, 'even', createRng(1))
const states: FitJobState[] = nodes.map((node) => {
  const self = graph.names.indexOf(node.peerId)
  return createFitJobState({
    job: 'bench', graph, self, diameter: diameter(graph),
    problem: createGlmProblem({ family: 'binomial', block: selectRows(infert.block, parts[self] as number[]), terms: infert.terms, interceptColumn: 0 }),
    params: createFitJobParams({ algorithm, tolerance: 1e-10 }),
    rng: createSecureRng()
  })
})
const reference = Float64Array.from(pooled.coefficients.estimate)
let reachedMs: number | null = null
const profiler = profilePath === null ? null : new Session()
if (profiler !== null) {
  profiler.connect()
  await profiler.post('Profiler.enable')
  await profiler.post('Profiler.start')
}
const started = performance.now()
const cpuAtStart = process.cpuUsage()
const mainAtStart = await mainThreadCpuMs()
const roundTimes: number[] = []
let lastRound = 0
let lastAt = started
await Promise.all(states.map(async (state, index) => {
  await driveRounds({
    protocol: fitJobProtocol, state, transport: carriers[index] as Transport, roundDeadlineMs: 2000,
    rounds: (transports[index] as ReturnType<typeof createLibp2pTransport>).rounds.track('bench'),
    onStep: () => {
      if (index !== 0) return
      const round = fitJobProtocol.round(state)
      if (round !== lastRound) {
        const now = performance.now()
        roundTimes.push((now - lastAt) / Math.max(1, round - lastRound))
        lastRound = round
        lastAt = now
      }
      if (reachedMs === null && maxRelativeError(states, reference) < 1e-6) reachedMs = performance.now() - started
    }
  })
}))
const totalMs = performance.now() - started
const cpu = process.cpuUsage(cpuAtStart)
const mainAtEnd = await mainThreadCpuMs()
if (profiler !== null && profilePath !== null) {
  const { profile } = await profiler.post('Profiler.stop')
  await writeFile(profilePath, JSON.stringify(profile))
  profiler.disconnect()
}
const sorted = [...roundTimes].sort((a, b) => a - b)
const result = fitJobProtocol.result(states[0] as FitJobState)
console.log(JSON.stringify({
  peers, algorithm, via, sign, rounds: result.rounds, seconds: totalMs / 1000, secondsTo1e6: reachedMs === null ? null : (reachedMs as number) / 1000,
  medianRoundMs: sorted[Math.floor(sorted.length / 2)], p90RoundMs: sorted[Math.floor(sorted.length * 0.9)], meanRoundMs: totalMs / result.rounds,
  // CPU time per round of the main thread (where every peer's event loop runs) and of the whole process
  // (with the thread pool's verifications and the garbage collector's helpers)
  mainThreadCpuMsPerRound: mainAtStart === null || mainAtEnd === null ? null : (mainAtEnd - mainAtStart) / result.rounds,
  cpuMsPerRound: (cpu.user + cpu.system) / 1000 / result.rounds,
  relativeError: maxRelativeError(states, reference),
  refusedConnections: nodes.reduce((sum, node) => sum + node.networkStats().connections.total, 0),
  graylisted: nodes.reduce((sum, node) => sum + node.networkStats().gossipsub.graylisted, 0),
  lowestScore: Math.min(...nodes.flatMap((node) => Object.values(node.networkStats().gossipsub.scores).map((entry) => entry.lowest))),
  rejectedMessages: transports.reduce((sum, transport) => sum + Object.values(transport.stats().rejected).reduce((total, count) => total + count, 0), 0),
  signatures: signing === null ? null : signing.reduce((sum, each) => { const stats = each.stats(); return { signed: sum.signed + stats.signed, verified: sum.verified + stats.verified, rejected: sum.rejected + stats.rejected } }, { signed: 0, verified: 0, rejected: 0 })
}))
await Promise.all(transports.map(async (transport) => { await transport.stop() }))
await Promise.all(nodes.map(async (node) => { await node.stop() }))
