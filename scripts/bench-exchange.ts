/**
 * Round-exchange benchmark: N peers in one process on a ring over real TCP loopback. Each round every
 * peer broadcasts one vector of 31 floats to its two neighbours and waits for both neighbours' round-k
 * vectors before it starts round k+1 (the same lock-step as the consensus machines).
 *
 *   npx tsx scripts/bench-exchange.ts --peers 16 --rounds 200 --via gossipsub|direct|both
 *
 * Options: --warmup <rounds> (not measured, default 20), --variant <name> (gossipsub settings: tuned
 * (the node's defaults), plain (library defaults, IP colocation penalty off so 16 peers on one address
 * can mesh at all), mesh-6 (tuned but with the library's mesh, D = 6), no-fast-id, no-flood,
 * heartbeat-1000), --seed-length <floats> (default 31),
 * --json (one JSON line per run), --profile <file> (V8 CPU profile of the measured rounds only; open it in
 * Chrome DevTools, or aggregate self time by package).
 *
 * Reported per run: median and p90 wall time per round (from the moment the last peer finished round
 * k-1 to the moment the last peer finished round k) and process CPU time per node per round. All peers
 * share one event loop here, so the wall time per round is roughly the total CPU the federation spends
 * on a round; on separate machines each peer pays only its own share.
 */
import '../src/peer/polyfill.ts'
import { writeFile } from 'node:fs/promises'
import { Session } from 'node:inspector/promises'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { parseFederation } from '../src/peer/federation.ts'
import { createPeerNode, type PeerNode } from '../src/peer/net/node.ts'
import { createLibp2pTransport, type BroadcastCarrier, type Libp2pTransport } from '../src/peer/net/libp2p-transport.ts'
import type { GossipsubOpts } from '@libp2p/gossipsub'
import type { ConsensusMessage } from '../src/consensus/types.ts'

interface Options {
  peers: number
  rounds: number
  warmup: number
  via: BroadcastCarrier[]
  variant: string
  vectorLength: number
  json: boolean
  /** write a V8 CPU profile of the measured rounds (not the set-up) to this file */
  profile: string | null
}

const VARIANTS: Record<string, { heartbeatIntervalMs?: number, gossipsub: Partial<GossipsubOpts> }> = {
  tuned: { gossipsub: {} },
  plain: {
    heartbeatIntervalMs: 1000,
    gossipsub: {
      D: 6,
      Dlo: 4,
      Dhi: 12,
      Dout: 2,
      Dscore: 4,
      fastMsgIdFn: undefined,
      allowedTopics: undefined,
      decodeRpcLimits: undefined,
      maxTopicBytesPerPeer: undefined,
      maxInboundDataLength: undefined,
      scoreParams: { IPColocationFactorWeight: 0 }
    }
  },
  'no-fast-id': { gossipsub: { fastMsgIdFn: undefined } },
  // without flood publish a publisher that has no mesh uses D fanout peers: D must be positive
  'no-flood': { gossipsub: { floodPublish: false, D: 6, Dlo: 4, Dhi: 12, Dout: 2, Dscore: 4 } },
  'mesh-6': { gossipsub: { D: 6, Dlo: 4, Dhi: 12, Dout: 2, Dscore: 4 } },
  'heartbeat-1000': { heartbeatIntervalMs: 1000, gossipsub: {} }
}

function parseOptions (argv: readonly string[]): Options {
  const value = (name: string, fallback: string): string => {
    const index = argv.indexOf(`--${name}`)
    return index >= 0 && argv[index + 1] !== undefined ? argv[index + 1] as string : fallback
  }
  const via = value('via', 'both')
  const options: Options = {
    peers: Number(value('peers', '16')),
    rounds: Number(value('rounds', '200')),
    warmup: Number(value('warmup', '20')),
    via: via === 'both' ? ['gossipsub', 'direct'] : [via as BroadcastCarrier],
    variant: value('variant', 'tuned'),
    vectorLength: Number(value('seed-length', '31')),
    json: argv.includes('--json'),
    profile: argv.includes('--profile') ? value('profile', 'bench.cpuprofile') : null
  }
  if (!Number.isInteger(options.peers) || options.peers < 3) throw new RangeError('--peers must be an integer >= 3')
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new RangeError('--rounds must be a positive integer')
  if (!Number.isInteger(options.warmup) || options.warmup < 0) throw new RangeError('--warmup must be a non-negative integer')
  for (const carrier of options.via) if (carrier !== 'gossipsub' && carrier !== 'direct') throw new RangeError('--via is gossipsub, direct or both')
  if (VARIANTS[options.variant] === undefined) throw new RangeError(`--variant is one of ${Object.keys(VARIANTS).join(', ')}`)
  return options
}

function quantile (sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const position = (sorted.length - 1) * q
  const low = Math.floor(position)
  const high = Math.ceil(position)
  return (sorted[low] as number) + ((sorted[high] as number) - (sorted[low] as number)) * (position - low)
}

async function run (options: Options, via: BroadcastCarrier): Promise<Record<string, unknown>> {
  const variant = VARIANTS[options.variant] as (typeof VARIANTS)[string]
  const keys = await Promise.all(Array.from({ length: options.peers }, async () => await generateKeyPair('Ed25519')))
  const members = keys.map((key, index) => ({ region: `r${index}`, peerId: peerIdFromPrivateKey(key).toString() }))
  const document = {
    version: 1,
    federationId: 'bench',
    members,
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'y', features: [{ name: 'x', type: 'numeric' }], lambda: 0, algorithm: 'admm', tolerance: 1e-6, maxRounds: 10, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }
  const nodes: PeerNode[] = []
  const transports: Libp2pTransport[] = []
  const setupStarted = performance.now()
  try {
    const nodeInit = { heartbeatIntervalMs: variant.heartbeatIntervalMs, gossipsub: variant.gossipsub, neighbourRetryInitialMs: 50, neighbourCheckIntervalMs: 500 }
    const first = await createPeerNode({ federation: parseFederation(document, 'bench'), privateKey: keys[0] as (typeof keys)[number], ...nodeInit })
    nodes.push(first)
    await first.start()
    const federation = parseFederation({ ...document, bootstrap: first.addresses() }, 'bench')
    for (const key of keys.slice(1)) {
      const node = await createPeerNode({ federation, privateKey: key, ...nodeInit })
      nodes.push(node)
      await node.start()
    }
    await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 60_000 })))
    for (const node of nodes) transports.push(createLibp2pTransport({ broadcastVia: via, readyTimeoutMs: 60_000 }, { node }))
    const ready = await Promise.all(transports.map(async (transport) => await transport.start()))
    const missing = ready.reduce((sum, report) => sum + report.missing.length, 0)
    if (missing > 0) throw new Error(`${missing} neighbour links not ready`)
    const setupMs = performance.now() - setupStarted

    const totalRounds = options.warmup + options.rounds
    const finishedAt = new Float64Array(totalRounds).fill(0)
    const finishedCount = new Int32Array(totalRounds)
    let cpuAtStart: NodeJS.CpuUsage | null = null
    let wallAtStart = 0
    const profiler = options.profile === null ? null : new Session()
    if (profiler !== null) {
      profiler.connect()
      await profiler.post('Profiler.enable')
    }
    let profiling: Promise<unknown> | null = null
    const vector = Float64Array.from({ length: options.vectorLength }, (_, index) => Math.sin(index + 1))

    const peerLoop = async (index: number): Promise<void> => {
      const transport = transports[index] as Libp2pTransport
      const expected = transport.neighbours().length
      const inbox = new Map<number, number>()
      let wake: (() => void) | null = null
      let current = 0
      transport.setRoundWindow(() => ({ min: Math.max(0, current - 1), max: current + 1 }))
      const unsubscribe = transport.onMessage((message: ConsensusMessage) => {
        inbox.set(message.round, (inbox.get(message.round) ?? 0) + 1)
        const resume = wake
        wake = null
        resume?.()
      })
      try {
        for (let round = 0; round < totalRounds; round++) {
          current = round
          if (round === options.warmup && index === 0) {
            // Every peer has finished the warm-up round before anyone can be past it by more than one.
            cpuAtStart = process.cpuUsage()
            wallAtStart = performance.now()
            if (profiler !== null) profiling = profiler.post('Profiler.start')
          }
          await transport.broadcast({ job: 'bench', kind: 'admm', round, from: transport.self, values: vector, data: new Uint8Array(0) })
          while ((inbox.get(round) ?? 0) < expected) {
            await new Promise<void>((resolve) => { wake = resolve })
          }
          inbox.delete(round)
          finishedCount[round] = (finishedCount[round] as number) + 1
          if (finishedCount[round] === options.peers) finishedAt[round] = performance.now()
        }
      } finally {
        unsubscribe()
      }
    }
    await Promise.all(transports.map(async (_, index) => { await peerLoop(index) }))
    const cpu = process.cpuUsage(cpuAtStart ?? undefined)
    const wallMs = performance.now() - wallAtStart
    if (profiler !== null && profiling !== null && options.profile !== null) {
      await profiling
      const { profile } = await profiler.post('Profiler.stop')
      await writeFile(options.profile.replace(/(\.cpuprofile)?$/, `-${via}.cpuprofile`), JSON.stringify(profile))
      profiler.disconnect()
    }

    const perRound: number[] = []
    for (let round = Math.max(1, options.warmup); round < totalRounds; round++) perRound.push((finishedAt[round] as number) - (finishedAt[round - 1] as number))
    perRound.sort((a, b) => a - b)
    const measured = options.rounds
    const stats = transports.map((transport) => transport.stats())
    const rejected = stats.reduce((sum, stat) => sum + Object.values(stat.rejected).reduce((a, b) => a + b, 0), 0)
    return {
      via,
      variant: via === 'gossipsub' ? options.variant : '-',
      peers: options.peers,
      rounds: measured,
      setupMs: Math.round(setupMs),
      medianMs: round2(quantile(perRound, 0.5)),
      p90Ms: round2(quantile(perRound, 0.9)),
      meanMs: round2(wallMs / measured),
      cpuMsPerNodePerRound: round2((cpu.user + cpu.system) / 1000 / options.peers / measured),
      cpuMsPerRound: round2((cpu.user + cpu.system) / 1000 / measured),
      messagesAccepted: stats.reduce((sum, stat) => sum + stat.accepted, 0),
      rejected
    }
  } finally {
    await Promise.allSettled(transports.map(async (transport) => { await transport.stop() }))
    await Promise.allSettled(nodes.map(async (node) => { await node.stop() }))
  }
}

function round2 (value: number): number {
  return Math.round(value * 100) / 100
}

const options = parseOptions(process.argv.slice(2))
for (const via of options.via) {
  const result = await run(options, via)
  if (options.json) {
    console.log(JSON.stringify(result))
  } else {
    console.log(`${String(result.via).padEnd(9)} ${String(result.variant).padEnd(14)} peers=${result.peers} rounds=${result.rounds} ` +
      `median=${result.medianMs} ms p90=${result.p90Ms} ms mean=${result.meanMs} ms cpu/node/round=${result.cpuMsPerNodePerRound} ms ` +
      `(setup ${result.setupMs} ms, accepted ${result.messagesAccepted}, rejected ${result.rejected})`)
  }
}
