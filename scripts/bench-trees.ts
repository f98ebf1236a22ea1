/**
 * Boosted trees grown over real libp2p: N peers in one process (each its own libp2p node over TCP on
 * 127.0.0.1) on a ring, a data set split evenly, the tree job's script exactly as a peer runs it.
 * Reports the rounds, the consensus bytes sent (encoded messages, without framing, signatures or
 * encryption), the wall time, the heap, and whether every peer's forest equals the pooled forest grown
 * with the same bin edges (largest leaf difference).
 *
 *   npx tsx scripts/bench-trees.ts [--peers 16] [--data breast_cancer.csv --outcome malignant] [--trees 50] [--depth 4] [--bins 32]
 */
import '../src/peer/polyfill.ts'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createGbdtJobState, gbdtJobProtocol, type GbdtJobState } from '../src/consensus/jobs/gbdt-job.ts'
import { selectTreeRows } from '../src/consensus/sim/gbdt-simulation.ts'
import { diameter } from '../src/consensus/graph.ts'
import { splitRows } from '../src/consensus/partition.ts'
import { createRng } from '../src/consensus/rng.ts'
import { buildTreeData, compareForests, createGbdtParams, fitGbdt, type TreeFeature } from '../src/learning/gbdt.ts'
import { prepareModel, readDataset } from '../src/peer/data/dataset.ts'
import { federationGraph, parseFederation } from '../src/peer/federation.ts'
import { createLibp2pTransport } from '../src/peer/net/libp2p-transport.ts'
import { createPeerNode, type PeerNode } from '../src/peer/net/node.ts'
import { driveRounds } from '../src/peer/runtime/round-driver.ts'
import { createSecureRng } from '../src/peer/runtime/secure-rng.ts'
import { fixturePath } from './lib.ts'

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const peers = Number(option('peers', '16'))
const file = option('data', 'breast_cancer.csv')
const outcome = option('outcome', 'malignant')
const params = createGbdtParams({ trees: Number(option('trees', '50')), depth: Number(option('depth', '4')), bins: Number(option('bins', '32')), minNodeRows: 3 })

const dataset = await readDataset(fixturePath(file))
const prepared = prepareModel(dataset, { outcome, family: 'binomial' })
const features = prepared.spec.features.map((feature): TreeFeature => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' })
const data = buildTreeData(prepared.rows, outcome, features)

const keys = await Promise.all(Array.from({ length: peers }, async () => await generateKeyPair('Ed25519')))
const federation = parseFederation({
  version: 1,
  federationId: 'bench-trees',
  members: keys.map((key, index) => ({ region: `region-${index}`, peerId: peerIdFromPrivateKey(key).toString() })),
  graph: { topology: 'ring' },
  model: { kind: 'gbdt', family: 'binomial', outcome, features: features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: feature.levels } : { name: feature.name, type: 'numeric' }), lambda: params.lambda, algorithm: 'newton', tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 2000, dropAfterRounds: 0 }
}, 'bench-trees')
const nodes: PeerNode[] = []
for (const key of keys) {
  const node = await createPeerNode({ federation: { ...federation, bootstrap: nodes[0]?.addresses() ?? [] }, privateKey: key, listen: ['/ip4/127.0.0.1/tcp/0'] })
  await node.start()
  nodes.push(node)
}
await Promise.all(nodes.map(async (node) => await node.waitForNeighbours({ timeoutMs: 30_000 })))
const transports = nodes.map((node) => createLibp2pTransport({}, { node }))
await Promise.all(transports.map(async (transport) => await transport.start()))

const graph = federationGraph(federation)
const parts = splitRows(data.rows, peers, 'even', createRng(1))
const states: GbdtJobState[] = nodes.map((node) => {
  const self = graph.names.indexOf(node.peerId)
  return createGbdtJobState({ job: 'bench-trees', graph, self, diameter: diameter(graph), data: selectTreeRows(data, parts[self] as number[]), params, rng: createSecureRng() })
})
const started = performance.now()
await Promise.all(states.map(async (state, index) => {
  const transport = transports[index] as ReturnType<typeof createLibp2pTransport>
  await driveRounds({ protocol: gbdtJobProtocol, state, transport, roundDeadlineMs: 2000, rounds: transport.rounds.track('bench-trees') })
}))
const seconds = (performance.now() - started) / 1000
const results = states.map((state) => gbdtJobProtocol.result(state))
const first = results[0] as NonNullable<(typeof results)[number]>
const pooled = fitGbdt(data, first.model.bins, params)
const compared = results.map((result) => compareForests((result as typeof first).model, pooled))
console.log(JSON.stringify({
  peers,
  data: file,
  rows: data.rows,
  features: features.length,
  trees: first.model.trees.length,
  depth: params.depth,
  bins: params.bins,
  rounds: first.rounds,
  seconds,
  bytesSent: transports.reduce((sum, transport) => sum + transport.stats().bytesSent, 0),
  messagesSent: transports.reduce((sum, transport) => sum + transport.stats().sent, 0),
  heapMiB: process.memoryUsage().heapUsed / 2 ** 20,
  sameTreesAsPooled: compared.every((entry) => entry.sameStructure),
  maxLeafDifference: Math.max(...compared.map((entry) => entry.maxLeafDifference)),
  trainingAuc: first.metrics?.auc ?? null,
  rejectedMessages: transports.reduce((sum, transport) => sum + Object.values(transport.stats().rejected).reduce((total, count) => total + count, 0), 0)
}))
await Promise.all(transports.map(async (transport) => { await transport.stop() }))
await Promise.all(nodes.map(async (node) => { await node.stop() }))
