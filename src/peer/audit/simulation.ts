import type { PrivateKey } from '@libp2p/interface'
import { AuditRecorder, finalRecord, graphRecord } from '../../consensus/audit/recorder.ts'
import { createFitJobState, fitJobProtocol, type FitJobParams, type FitJobResult, type FitJobState } from '../../consensus/jobs/fit-job.ts'
import { jobPosition, phaseIndex, phaseOf } from '../../consensus/jobs/job.ts'
import { diameter as graphDiameter, type Graph } from '../../consensus/graph.ts'
import type { Protocol } from '../../consensus/machine.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from '../../consensus/sim/memory-network.ts'
import { createRng, forkRng } from '../../consensus/rng.ts'
import { runSynchronous } from '../../consensus/sim/simulation.ts'
import type { LocalProblem } from '../../learning/local-problem.ts'
import { AuditTrail, auditFileText, canonicalJson, countersignStatement, messageDigest, signBytes, type Checkpoint } from './log.ts'
import { DEFAULT_CHECKPOINT_EVERY } from './service.ts'

/**
 * A federated fit in the simulator that writes the same signed round logs as real peers: one
 * recorder per peer on the very machines a peer runs, entries sealed with each peer's key,
 * checkpoints every K entries and at the end, countersigned by the graph neighbours. Used to study
 * and to test the audit on large jobs without a network; the graph's names must be the peers' ids.
 */
export interface AuditedSimulationInput {
  job: string
  graph: Graph
  keys: readonly PrivateKey[]
  problems: readonly LocalProblem[]
  params: FitJobParams
  seed: number
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  checkpointEvery?: number
  maxTicks?: number
  /** the regions' names, aligned with graph.names, as a federation file gives them to real peers */
  regions?: readonly string[]
}

export interface AuditedSimulationOutput {
  results: Array<FitJobResult | null>
  /** one exported file per peer, aligned with graph.names */
  files: Array<{ peer: string, text: string }>
  entries: number
}

interface Audited {
  job: FitJobState
  recorder: AuditRecorder
}

const auditedProtocol: Protocol<Audited, FitJobResult> = {
  start (state) {
    const stepped = fitJobProtocol.start(state.job)
    state.recorder.observe(null, stepped.outbox, stepped.log, jobPosition(state.job))
    return { state, outbox: stepped.outbox, log: stepped.log }
  },
  step (state, input) {
    const stepped = fitJobProtocol.step(state.job, input)
    state.recorder.observe(input, stepped.outbox, stepped.log, jobPosition(state.job))
    return { state, outbox: stepped.outbox, log: stepped.log }
  },
  round: (state) => fitJobProtocol.round(state.job),
  done: (state) => fitJobProtocol.done(state.job),
  result: (state) => fitJobProtocol.result(state.job)
}

export async function simulateAuditedFit (input: AuditedSimulationInput): Promise<AuditedSimulationOutput> {
  const { graph, params } = input
  const rng = createRng(input.seed)
  const diameter = graphDiameter(graph)
  const every = input.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY
  const states: Audited[] = graph.names.map((peer, self) => {
    const problem = input.problems[self] as LocalProblem
    const job = createFitJobState({ job: input.job, graph, self, diameter, problem, params: { ...params, recordVectors: true }, rng: forkRng(rng, `peer-${self}`) })
    const recorder = new AuditRecorder(
      { job: input.job, self: peer, digest: messageDigest, phaseOf, phaseOrdinal: (phase) => phaseIndex(job, phase) },
      { algorithm: params.algorithm, params: { ...params, recordVectors: true }, model: { family: problem.family, terms: [...problem.terms] }, graph: { ...graphRecord(graph), ...(input.regions === undefined ? {} : { regions: [...input.regions] }) }, diameter }
    )
    return { job, recorder }
  })
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network') })
  const run = runSynchronous({ protocol: auditedProtocol, states, network, maxRounds: input.maxTicks ?? 100_000 })
  const trails = graph.names.map((peer, self) => new AuditTrail(input.job, peer, input.keys[self] as PrivateKey, { keepEntries: true }))
  const own: Checkpoint[][] = graph.names.map(() => [])
  for (const [self, state] of run.states.entries()) {
    const result = run.results[self]
    if (result !== null && result !== undefined) {
      state.recorder.finish(finalRecord(result, params.tolerance))
    }
    const trail = trails[self] as AuditTrail
    for (const body of state.recorder.take()) {
      await trail.append([body])
      if (trail.length % every === 0) own[self]?.push(await trail.checkpoint())
    }
    if (trail.length % every !== 0) own[self]?.push(await trail.checkpoint())
  }
  // every neighbour countersigns every checkpoint; each peer holds its own and those it countersigned
  const witnessed: Checkpoint[][] = graph.names.map(() => [])
  for (const [self, checkpoints] of own.entries()) {
    for (const checkpoint of checkpoints) {
      for (const neighbour of graph.neighbours[self] ?? []) {
        const by = graph.names[neighbour] as string
        const sig = await signBytes(input.keys[neighbour] as PrivateKey, countersignStatement(checkpoint, by))
        checkpoint.countersignatures.push({ by, sig })
        witnessed[neighbour]?.push({ ...checkpoint, countersignatures: [{ by, sig }] })
      }
      checkpoint.countersignatures.sort((a, b) => a.by < b.by ? -1 : a.by > b.by ? 1 : 0)
    }
  }
  const files = graph.names.map((peer, self) => ({
    peer,
    text: auditFileText(input.job, peer, (trails[self] as AuditTrail).entries.map((entry) => canonicalJson(entry)), [...(own[self] ?? []), ...(witnessed[self] ?? [])])
  }))
  return { results: run.results, files, entries: trails.reduce((sum, trail) => sum + trail.entries.length, 0) }
}
