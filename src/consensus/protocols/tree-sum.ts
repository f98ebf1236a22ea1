import { addInto, decodeVector, encodeVector, fromBytes, LIMBS, toBytes } from './fixed-point.ts'
import { addEdgeMask, createMaskSeeds, edgeMask, SEED_BYTES, seedFor, type MaskSeeds } from './mask-seeds.ts'
import type { Graph } from '../graph.ts'
import type { LogRecord, MachineInput, Protocol, StepResult } from '../machine.ts'
import type { ConsensusMessage, Rng } from '../types.ts'

/**
 * The same exact masked sum as the flooding secure sum, for large federations: the masked
 * contributions are added up a spanning tree and the total comes back down it, so every link carries
 * one vector instead of one per peer (flooding moves m vectors over every link). It takes 1 + 2 x depth
 * rounds instead of about the diameter. The tree is a breadth-first tree from the first peer, which
 * every peer derives from the published graph; masks are on every graph edge, as in flooding, so a
 * partial sum tells a parent nothing about any one peer of the subtree that has another neighbour. The
 * masks come from the job's per-edge seeds (see mask-seeds.ts): seeds are exchanged in round 0 only
 * where this peer lacks one (the job's first sum); otherwise a leaf sends its partial sum at once.
 *
 * A lost message is sent again at the next deadline: a child resends its partial sum until the total
 * comes down, and a parent that already has the total answers a resent partial with it.
 */
export interface TreeSumInit {
  graph: Graph
  self: number
  value: ArrayLike<number>
  job: string
  kind: string
  rng: Rng
  /** the job's mask seeds, shared by its sums (default: this sum's own, exchanged in its round 0) */
  seeds?: MaskSeeds
}

export interface SpanningTree {
  parent: Int32Array
  children: number[][]
  depth: number
}

/** Breadth-first tree from node 0, neighbours visited in sorted order: the same on every peer. */
export function spanningTree (graph: Graph): SpanningTree {
  const n = graph.names.length
  const parent = new Int32Array(n).fill(-2)
  const level = new Int32Array(n)
  const children: number[][] = Array.from({ length: n }, () => [])
  parent[0] = -1
  const queue = [0]
  let depth = 0
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head] as number
    for (const other of graph.neighbours[node] ?? []) {
      if (parent[other] !== -2) continue
      parent[other] = node
      level[other] = (level[node] as number) + 1
      depth = Math.max(depth, level[other] as number)
      children[node]?.push(other)
      queue.push(other)
    }
  }
  if (parent.includes(-2)) throw new RangeError('the graph is not connected')
  return { parent, children, depth }
}

export interface TreeSumState {
  readonly graph: Graph
  readonly self: number
  readonly job: string
  readonly kind: string
  readonly length: number
  readonly tree: SpanningTree
  round: number
  readonly seeds: MaskSeeds
  readonly seedsOut: Uint8Array[]
  /** each neighbour slot's edge mask for this sum (null: the neighbour's seed is not in yet) */
  readonly masks: Array<Uint32Array | null>
  readonly value: Uint32Array
  contribution: Uint32Array | null
  /** partial sums received from each tree child, by child node */
  readonly partials: Map<number, Uint32Array>
  partialSent: boolean
  total: Uint32Array | null
  done: boolean
  rejected: number
}

export function createTreeSum (init: TreeSumInit, tree: SpanningTree = spanningTree(init.graph)): TreeSumState {
  const slots = init.graph.neighbours[init.self]
  if (slots === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const seeds = init.seeds ?? createMaskSeeds()
  const seedsOut = slots.map((node) => seedFor(seeds, node, init.rng))
  const words = init.value.length * LIMBS
  return {
    graph: init.graph,
    self: init.self,
    job: init.job,
    kind: init.kind,
    length: init.value.length,
    tree,
    round: 0,
    seeds,
    seedsOut,
    masks: slots.map((node) => edgeMask(seeds, init.self, node, init.kind, words)),
    value: encodeVector(init.value),
    contribution: null,
    partials: new Map(),
    partialSent: false,
    total: null,
    done: false,
    rejected: 0
  }
}

const name = (state: TreeSumState, node: number): string => state.graph.names[node] as string

function message (state: TreeSumState, kind: string, to: number, values: Uint32Array): ConsensusMessage {
  return { job: state.job, kind, round: state.round, from: name(state, state.self), to: name(state, to), values: new Float64Array(0), data: toBytes(values) }
}

/** Mask messages start with a flag byte: 1 when the sender already holds the recipient's mask. */
const HOLDS_YOURS = 1

/**
 * [u8 flag][this peer's 32-byte seed for the edge]. A seed without the flag is always answered with
 * ours, so that peers that each miss one seed (one-way losses around a cycle) cannot all wait for
 * ever; one with the flag needs no answer.
 */
function maskMessage (state: TreeSumState, slot: number): ConsensusMessage {
  const data = new Uint8Array(1 + SEED_BYTES)
  data[0] = state.masks[slot] === null ? 0 : HOLDS_YOURS
  data.set(state.seedsOut[slot] as Uint8Array, 1)
  const to = state.graph.neighbours[state.self]?.[slot] as number
  return { job: state.job, kind: `${state.kind}.mask`, round: state.round, from: name(state, state.self), to: name(state, to), values: new Float64Array(0), data }
}

function sendPartialOrTotal (state: TreeSumState, outbox: ConsensusMessage[]): void {
  if (state.contribution === null || state.total !== null) return
  const children = state.tree.children[state.self] ?? []
  if (children.some((child) => !state.partials.has(child))) return
  const partial = Uint32Array.from(state.contribution)
  for (const child of children) addInto(partial, state.partials.get(child) as Uint32Array)
  const parent = state.tree.parent[state.self] as number
  if (parent < 0) {
    finish(state, partial, outbox)
    return
  }
  state.partialSent = true
  state.round++
  outbox.push(message(state, `${state.kind}.up`, parent, partial))
}

function finish (state: TreeSumState, total: Uint32Array, outbox: ConsensusMessage[]): void {
  state.total = total
  state.round++
  for (const child of state.tree.children[state.self] ?? []) outbox.push(message(state, `${state.kind}.down`, child, total))
  state.done = true
}

/**
 * With every neighbour's mask in hand: the masked contribution, and up the tree if the children's
 * partials are in. After a seeds' round that round is counted; without one the sum starts at once.
 */
function contribute (state: TreeSumState, outbox: ConsensusMessage[], afterSeeds: boolean): void {
  if (!state.masks.every((mask) => mask !== null)) return
  const slots = state.graph.neighbours[state.self] ?? []
  const contribution = Uint32Array.from(state.value)
  state.masks.forEach((mask, slot) => { addEdgeMask(contribution, mask as Uint32Array, state.self, slots[slot] as number) })
  state.contribution = contribution
  if (afterSeeds) state.round++
  sendPartialOrTotal(state, outbox)
}

function slotOf (state: TreeSumState, from: string): number {
  const slots = state.graph.neighbours[state.self] ?? []
  for (let slot = 0; slot < slots.length; slot++) if (state.graph.names[slots[slot] as number] === from) return slot
  return -1
}

function receive (state: TreeSumState, incoming: ConsensusMessage, outbox: ConsensusMessage[], log: LogRecord[]): void {
  const slot = slotOf(state, incoming.from)
  const bytes = state.length * LIMBS * 4
  const isMask = incoming.kind === `${state.kind}.mask`
  const expected = isMask ? SEED_BYTES + 1 : bytes
  if (slot < 0 || incoming.data.length !== expected || (incoming.to !== undefined && incoming.to !== name(state, state.self)) || (isMask && (incoming.data[0] as number) > HOLDS_YOURS)) {
    state.rejected++
    log.push({ level: 'warn', event: 'tree-sum.message.rejected', fields: { kind: incoming.kind, from: incoming.from } })
    return
  }
  const node = state.graph.neighbours[state.self]?.[slot] as number
  if (isMask) {
    if (state.masks[slot] === null) {
      if (!state.seeds.received.has(node)) state.seeds.received.set(node, incoming.data.slice(1))
      state.masks[slot] = edgeMask(state.seeds, state.self, node, state.kind, state.length * LIMBS)
    }
    if (incoming.data[0] !== HOLDS_YOURS) outbox.push(maskMessage(state, slot))
    if (state.contribution === null) contribute(state, outbox, true)
    return
  }
  const values = fromBytes(incoming.data, 0, state.length * LIMBS)
  if (incoming.kind === `${state.kind}.up`) {
    if (state.tree.parent[node] !== state.self) return
    if (state.total !== null) {
      // the child missed the total: send it again
      outbox.push(message(state, `${state.kind}.down`, node, state.total))
      return
    }
    // A partial sent again (its sender's deadline passed before the total came down) changes nothing
    // here: this peer's own partial, if sent, is resent at its own deadline. Answering every duplicate
    // by sending this peer's partial again made every resend below travel to the root, each hop
    // counting a round: with 10,000 peers a peer's round passed 1,500 within 15 ticks, beyond the job's
    // round budget.
    if (state.partials.has(node)) return
    state.partials.set(node, values)
    sendPartialOrTotal(state, outbox)
    return
  }
  if (incoming.kind === `${state.kind}.down`) {
    if (state.tree.parent[state.self] !== node || state.total !== null) return
    finish(state, values, outbox)
  }
}

function isMine (state: TreeSumState, kind: string): boolean {
  return kind === `${state.kind}.mask` || kind === `${state.kind}.up` || kind === `${state.kind}.down`
}

export const treeSumProtocol: Protocol<TreeSumState, Float64Array> = {
  start (state) {
    // seeds only where this peer lacks the neighbour's; with all of them (a later sum of the job, or a
    // federation of one) the contribution is formed at once
    const outbox: ConsensusMessage[] = []
    state.masks.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
    contribute(state, outbox, false)
    return { state, outbox, log: [] }
  },

  step (state, input: MachineInput): StepResult<TreeSumState> {
    // a neighbour moving on to a later phase changes nothing here: this machine does not wait on it
    if (input.type === 'moved-on') return { state, outbox: [], log: [] }
    const outbox: ConsensusMessage[] = []
    const log: LogRecord[] = []
    if (input.type === 'message') {
      if (input.message.job === state.job && isMine(state, input.message.kind)) receive(state, input.message, outbox, log)
      return { state, outbox, log }
    }
    if (state.done || input.round !== state.round) return { state, outbox, log }
    // Deadline: send again whatever may have been lost.
    state.round++
    if (state.contribution === null) {
      state.masks.forEach((mask, slot) => { if (mask === null) outbox.push(maskMessage(state, slot)) })
    } else if (state.partialSent) {
      const parent = state.tree.parent[state.self] as number
      const partial = Uint32Array.from(state.contribution)
      for (const child of state.tree.children[state.self] ?? []) addInto(partial, state.partials.get(child) as Uint32Array)
      outbox.push(message(state, `${state.kind}.up`, parent, partial))
    }
    return { state, outbox, log }
  },

  round: (state) => state.round,
  done: (state) => state.done,

  result (state) {
    if (state.total === null) throw new RangeError(`the sum ${state.kind} has not completed`)
    return decodeVector(state.total)
  }
}
