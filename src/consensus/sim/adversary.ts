import { ADMM_MESSAGE_HEADER } from '../protocols/admm.ts'
import { encodeEvidence, simulatedSignatures } from '../audit/evidence.ts'
import { ALARM_KIND } from '../jobs/job.ts'
import { createFitJobState, fitJobProtocol, type FitJobParams, type FitJobResult, type FitJobState } from '../jobs/fit-job.ts'
import { diameter as graphDiameter, type Graph } from '../graph.ts'
import type { Protocol, StepResult } from '../machine.ts'
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-network.ts'
import { createRng, forkRng } from '../rng.ts'
import { runSynchronous } from './simulation.ts'
import type { ConsensusMessage } from '../types.ts'
import { createGlmProblem } from '../../learning/problem.ts'
import type { DataBlock } from '../../learning/design.ts'
import type { FamilyName } from '../../learning/family.ts'

/**
 * Lying members, for researchers and tests: the same fit-job machines as honest peers, with what a
 * lying member sends rewritten on its way out. Lies inside consensus ADMM:
 *
 * - false-stop: from round `from` on, its round messages claim the stop (counter 1000, done flag)
 * - equivocate: each neighbour gets a different iterate (its own plus or minus `factor` in every entry)
 * - scale:      its iterate times `factor` (10: the attack of a member scaling its iterates)
 * - stubborn:   a fixed iterate (`factor` in every entry) every round, with a counter of 0
 *
 * - frame:      at round `from`, an alarm accusing a neighbour, with that neighbour's own honest
 *               signed message as the "proof" (every member must see through it)
 *
 * and one about its data, which no protocol can tell from the truth:
 * - inflate:    its rows counted `factor` times (a region claiming many more cases than it has)
 */
export type Lie = 'false-stop' | 'equivocate' | 'scale' | 'stubborn' | 'inflate' | 'frame'

export interface Liar {
  /** the lying member's index in the graph */
  peer: number
  lie: Lie
  /** ADMM round from which it lies (default 3) */
  from?: number
  factor?: number
}

function isRoundMessage (message: ConsensusMessage): boolean {
  return (message.kind === 'admm' || message.kind === 'admm2') && message.to === undefined
}

/** A liar's outgoing ADMM round messages, rewritten; other messages pass unchanged. */
function rewrite (liar: Liar, graph: Graph, message: ConsensusMessage): ConsensusMessage[] {
  if (!isRoundMessage(message) || message.round < (liar.from ?? 3)) return [message]
  const values = Float64Array.from(message.values)
  const factor = liar.factor
  switch (liar.lie) {
    case 'false-stop':
      values[0] = 1000
      values[1] = 1
      return [{ ...message, values }]
    case 'scale': {
      const p = dimensionOf(graph, liar.peer, message)
      for (let index = ADMM_MESSAGE_HEADER; index < ADMM_MESSAGE_HEADER + p; index++) values[index] = (values[index] as number) * (factor ?? 10)
      return [{ ...message, values }]
    }
    case 'stubborn': {
      const p = dimensionOf(graph, liar.peer, message)
      values[0] = 0
      for (let index = ADMM_MESSAGE_HEADER; index < ADMM_MESSAGE_HEADER + p; index++) values[index] = factor ?? 3
      return [{ ...message, values }]
    }
    case 'equivocate': {
      const p = dimensionOf(graph, liar.peer, message)
      return (graph.neighbours[liar.peer] ?? []).map((neighbour, slot) => {
        const copy = Float64Array.from(values)
        const shift = (slot % 2 === 0 ? 1 : -1) * (factor ?? 0.5)
        for (let index = ADMM_MESSAGE_HEADER; index < ADMM_MESSAGE_HEADER + p; index++) copy[index] = (copy[index] as number) + shift
        return { ...message, values: copy, to: graph.names[neighbour] as string }
      })
    }
    case 'inflate':
    case 'frame':
      return [message]
  }
}

/** The framing liar's false alarm: a neighbour's honest signed round message, presented as out of range. */
function framing (liar: Liar, state: FitJobState): ConsensusMessage[] {
  const admm = state.fit.admmState
  if (state.current?.name !== 'admm' || admm === null || admm.round !== (liar.from ?? 3)) return []
  const history = admm.received[0]
  const honest = history === undefined ? undefined : [...history.values()].at(-1)
  if (honest === undefined) return []
  const { job, graph } = state.definition
  const evidence = encodeEvidence({ rule: 'range', offender: honest.from, reporter: graph.names[liar.peer] as string, messages: [honest], receipts: [], witnesses: [] })
  return [{ job, kind: ALARM_KIND, round: admm.round, from: graph.names[liar.peer] as string, values: new Float64Array(0), data: evidence }]
}

/** An ADMM message's iterate length: its values are the header, the iterate and one dual per owned edge. */
function dimensionOf (graph: Graph, peer: number, message: ConsensusMessage): number {
  const owned = (graph.neighbours[peer] ?? []).filter((other) => other > peer).length
  return (message.values.length - ADMM_MESSAGE_HEADER) / (1 + owned)
}

/** The network of an adversarial run: an equivocating liar's per-neighbour copies each go to that neighbour only, looking like broadcasts. */
class AdversaryNetwork extends MemoryNetwork {
  constructor (options: MemoryNetworkOptions, private readonly liars: ReadonlySet<number>) {
    super(options)
  }

  override send (from: number, message: ConsensusMessage): void {
    if (this.liars.has(from) && (message.kind === 'admm' || message.kind === 'admm2') && message.to !== undefined) {
      const { to, ...broadcast } = message
      this.sendTo(from, this.nodeOf(to), broadcast)
      return
    }
    super.send(from, message)
  }
}

export interface AdversarialFitInput {
  family: FamilyName
  terms: string[]
  interceptColumn: number | null
  blocks: DataBlock[]
  graph: Graph
  params: FitJobParams
  seed: number
  liars: readonly Liar[]
  network?: Omit<MemoryNetworkOptions, 'graph' | 'rng' | 'signers'>
  maxTicks?: number
}

export interface AdversarialFitOutput {
  /** per peer: its result, or null where it failed */
  results: Array<FitJobResult | null>
  /** per peer: the error it failed with, or null */
  failures: unknown[]
  /** per peer: ADMM's own iterate when ADMM ended there, before the closing (null: never got there) */
  admmIterates: Array<Float64Array | null>
  ticks: number
  messages: number
  states: FitJobState[]
}

/** Repeats a block's rows `factor` times (the inflate lie). */
function inflate (block: DataBlock, factor: number): DataBlock {
  const rows = block.rows * factor
  const x = new Float64Array(rows * block.cols)
  const y = new Float64Array(rows)
  const offset = block.offset === undefined ? undefined : new Float64Array(rows)
  for (let copy = 0; copy < factor; copy++) {
    x.set(block.x, copy * block.rows * block.cols)
    y.set(block.y, copy * block.rows)
    if (offset !== undefined && block.offset !== undefined) offset.set(block.offset, copy * block.rows)
  }
  return { ...block, rows, x, y, ...(offset === undefined ? {} : { offset }) }
}

/** A federated fit with lying members, every message signed (simulated signatures), every peer running the real machine. */
export function simulateAdversarialFit (input: AdversarialFitInput): AdversarialFitOutput {
  const { graph, params, seed } = input
  const rng = createRng(seed)
  const signatures = simulatedSignatures(`adversary-${seed}`)
  const byPeer = new Map(input.liars.map((liar) => [liar.peer, liar]))
  const diameter = graphDiameter(graph)
  const states = input.blocks.map((block, self) => {
    const liar = byPeer.get(self)
    return createFitJobState({
      job: `sim-${seed}`,
      graph,
      self,
      diameter,
      params,
      rng: forkRng(rng, `peer-${self}`),
      verifier: signatures.verifier,
      problem: createGlmProblem({ family: input.family, block: liar?.lie === 'inflate' ? inflate(block, liar.factor ?? 20) : block, terms: input.terms, interceptColumn: input.interceptColumn })
    })
  })
  const admmIterates: Array<Float64Array | null> = states.map(() => null)
  const framed = new Set<number>()
  const record = (state: FitJobState): void => {
    const self = state.definition.self
    if (admmIterates[self] === null && state.fit.admm !== null && state.current?.name === 'consensus') admmIterates[self] = Float64Array.from(state.fit.admm.x)
  }
  const protocol: Protocol<FitJobState, FitJobResult> = {
    ...fitJobProtocol,
    start (state) {
      return lying(state, fitJobProtocol.start(state))
    },
    step (state, message) {
      const stepped = lying(state, fitJobProtocol.step(state, message))
      record(state)
      return stepped
    }
  }
  function lying (state: FitJobState, stepped: StepResult<FitJobState>): StepResult<FitJobState> {
    const liar = byPeer.get(state.definition.self)
    if (liar === undefined) return stepped
    const outbox = stepped.outbox.flatMap((message) => rewrite(liar, graph, message))
    if (liar.lie === 'frame' && !framed.has(liar.peer)) {
      const alarm = framing(liar, state)
      if (alarm.length > 0) framed.add(liar.peer)
      outbox.push(...alarm)
    }
    return { ...stepped, outbox }
  }
  const network = new AdversaryNetwork({ ...(input.network ?? {}), graph, rng: forkRng(rng, 'network'), signers: signatures.signerFor }, new Set(byPeer.keys()))
  const run = runSynchronous({ protocol, states, network, maxRounds: input.maxTicks ?? 3 * params.maxRounds + 40 * (diameter + 3) })
  return { results: run.results, failures: run.failures, admmIterates, ticks: run.ticks, messages: run.messages, states: run.states }
}
