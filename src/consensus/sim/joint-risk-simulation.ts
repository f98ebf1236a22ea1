import { NotConvergedError } from '../../learning/errors.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord } from '../machine.ts'
import { createJointRisk, jointRiskGraph, jointRiskProtocol, type JointRiskResult } from '../protocols/joint-risk.ts'
import { createRng, forkRng } from '../rng.ts'
import type { ConsensusMessage } from '../types.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { runSynchronous } from './simulation.ts'

export interface JointRiskSimulation {
  results: JointRiskResult[]
  ticks: number
  messages: number
  bytes: number
  log: Array<LogRecord & { peer: number, tick: number }>
}

/**
 * The joint risk in the simulator: one machine per region (aligned with graph.names) on the in-memory
 * network over jointRiskGraph(graph). `observe` sees every message sent, for tests that inspect them.
 */
export function simulateJointRisk (input: {
  graph: Graph
  h: readonly number[]
  seed: number
  openRegions?: readonly string[]
  sumMethod?: 'flood' | 'tree' | 'auto'
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng'>
  keepLog?: boolean
  observe?: (from: number, message: ConsensusMessage) => void
}): JointRiskSimulation {
  const { graph } = input
  if (input.h.length !== graph.names.length) throw new RangeError(`${input.h.length} risk scores for ${graph.names.length} regions`)
  const rng = createRng(input.seed)
  const states = input.h.map((h, self) => createJointRisk({
    graph,
    self,
    h,
    job: `joint-risk-${input.seed}`,
    rng: forkRng(rng, `peer-${self}`),
    ...(input.openRegions === undefined ? {} : { openRegions: input.openRegions }),
    ...(input.sumMethod === undefined ? {} : { sumMethod: input.sumMethod })
  }))
  const network = new MemoryNetwork({ ...(input.network ?? {}), graph: jointRiskGraph(graph), rng: forkRng(rng, 'network') })
  const observe = input.observe
  if (observe !== undefined) {
    const send = network.send.bind(network)
    network.send = (from: number, message: ConsensusMessage): void => {
      observe(from, message)
      send(from, message)
    }
  }
  const run = runSynchronous({ protocol: jointRiskProtocol, states, network, maxRounds: 20 * (graph.names.length + 10), keepLog: input.keepLog === true })
  const results = run.results.map((result, peer) => {
    if (result === null) throw new NotConvergedError(`region ${graph.names[peer]} did not finish the joint-risk sum in ${run.ticks} ticks`)
    return result
  })
  return { results, ticks: run.ticks, messages: run.messages, bytes: run.bytes, log: run.log }
}
