import { SumOutOfRangeError } from '../errors.ts'
import type { Graph } from '../graph.ts'
import { MAX_FIXED_MAGNITUDE } from '../protocols/fixed-point.ts'
import { createMaskSeeds, type MaskSeeds } from '../protocols/mask-seeds.ts'
import { createSecureSum, secureSumProtocol, type SecureSumState } from '../protocols/secure-sum.ts'
import { createTreeSum, spanningTree, treeSumProtocol, type SpanningTree, type TreeSumState } from '../protocols/tree-sum.ts'
import type { Rng } from '../types.ts'
import { phase, run, type Phase } from './job.ts'

/**
 * The phases jobs are made of, ready to yield from a script: an exact masked sum (flooding for small
 * federations, a spanning tree for large ones) whose values every member flags when they would not fit
 * the fixed-point range, so that a diverged value fails the job naming its peer instead of crashing it.
 */
export interface MaskedSumOptions {
  /** flood (about diameter rounds), tree (one vector per link), or auto (flooding up to 64 peers) */
  method?: 'flood' | 'tree' | 'auto'
  /** the members whose values are summed (node indices); default every peer */
  members?: readonly number[]
  /** add the flag slots, one bit per peer (default true); sumTotal then checks them */
  flags?: boolean
}

/** What a masked sum needs of the job: who and where this peer is, and its masks' randomness and seeds. */
export interface SumPeer {
  job: string
  graph: Graph
  self: number
  rng: Rng
  /**
   * the job's per-edge mask seeds: its first sum exchanges them, every later one derives its masks from
   * them and needs no round for masks (see mask-seeds.ts); absent, each sum exchanges its own
   */
  maskSeeds?: MaskSeeds
}

/** A job's peer with its mask seeds: new, empty ones at the job's start (a peer that has them keeps them). */
export function withMaskSeeds<P extends SumPeer> (peer: P): P & { maskSeeds: MaskSeeds } {
  return peer.maskSeeds !== undefined ? peer as P & { maskSeeds: MaskSeeds } : { ...peer, maskSeeds: createMaskSeeds() }
}

/** The largest magnitude one peer's value may have in a masked sum of `peers` members (see fixed-point.ts). */
export function maskedSumBound (graph: Graph, peers = graph.names.length): number {
  return MAX_FIXED_MAGNITUDE / (4 * Math.max(1, peers))
}

const trees = new WeakMap<Graph, SpanningTree>()

/** One exact masked sum as a phase named `name`: its result is the total (with the flags; see sumTotal). */
/** A masked sum's phase, whichever way it travels. */
export type SumPhase = Phase<SecureSumState, Float64Array> | Phase<TreeSumState, Float64Array>

export function maskedSum (peer: SumPeer, name: string, value: Float64Array, options: MaskedSumOptions = {}): SumPhase {
  const { graph } = peer
  const contribution = options.flags === false ? value : flagged(peer, value)
  const members = options.members
  const init = { graph, self: peer.self, value: contribution, job: peer.job, kind: name, rng: peer.rng, ...(peer.maskSeeds === undefined ? {} : { seeds: peer.maskSeeds }), ...(members === undefined ? {} : { members }) }
  const requested = options.method ?? 'auto'
  // a spanning tree is over the whole graph: a sum over fewer members floods
  const method = members !== undefined ? 'flood' : requested === 'auto' ? (graph.names.length <= 64 ? 'flood' : 'tree') : requested
  if (method === 'flood') return phase(name, secureSumProtocol, createSecureSum(init))
  let tree = trees.get(graph)
  if (tree === undefined) {
    tree = spanningTree(graph)
    trees.set(graph, tree)
  }
  return phase(name, treeSumProtocol, createTreeSum(init, tree))
}

/**
 * Flags per slot: peer k's flag is bit k mod 48 of slot floor(k / 48), the value 2^(bit - 48), which the
 * fixed-point encoding (48 fractional bits, see fixed-point.ts) holds exactly; distinct bits add without
 * carries, so the total of a slot is, times 2^48, the integer whose set bits are the peers that flagged.
 * One slot per peer would make every sum's vectors, and every link's bytes, grow with the federation
 * (10,000 peers: 10,000 values per vector); packed, they take 1/48 of that.
 */
export const FLAGS_PER_SLOT = 48
const FLAG_SCALE = 2 ** FLAGS_PER_SLOT

/** The flag slots a flagged sum over `graph` carries after its values. */
export function flagSlots (graph: Graph): number {
  return Math.ceil(graph.names.length / FLAGS_PER_SLOT)
}

/**
 * A contribution with the federation's flag slots after the values: a peer whose values would not fit
 * the fixed-point range (an iterate that diverged) contributes zeros and its flag instead of throwing,
 * so that the sum completes everywhere and every peer fails the job naming it.
 */
function flagged (peer: SumPeer, value: Float64Array): Float64Array {
  const out = new Float64Array(value.length + flagSlots(peer.graph))
  const bound = maskedSumBound(peer.graph)
  if (value.every((entry) => Number.isFinite(entry) && Math.abs(entry) < bound)) out.set(value)
  else out[value.length + Math.floor(peer.self / FLAGS_PER_SLOT)] = 2 ** (peer.self % FLAGS_PER_SLOT) / FLAG_SCALE
  return out
}

/**
 * A flagged sum's total without its flags; SUM_OUT_OF_RANGE naming the peers that flagged theirs. A
 * slot whose total is no set of flags (only a member writing into others' flags makes one) fails the
 * sum too, naming the peers whose flags that slot holds.
 */
export function sumTotal (total: Float64Array, graph: Graph, name: string): Float64Array {
  const slots = flagSlots(graph)
  const length = total.length - slots
  const flaggedPeers: string[] = []
  for (let slot = 0; slot < slots; slot++) {
    const first = slot * FLAGS_PER_SLOT
    const count = Math.min(FLAGS_PER_SLOT, graph.names.length - first)
    const bits = (total[length + slot] as number) * FLAG_SCALE
    if (bits === 0) continue
    const readable = Number.isInteger(bits) && bits > 0 && bits < 2 ** count
    for (let bit = 0, rest = bits; bit < count; bit++, rest = Math.floor(rest / 2)) {
      if (!readable || rest % 2 === 1) flaggedPeers.push(graph.names[first + bit] as string)
    }
  }
  if (flaggedPeers.length > 0) throw new SumOutOfRangeError(name, flaggedPeers)
  return total.subarray(0, length)
}

/** Values per masked sum of a long vector: a chunk of 16 bytes per value stays well under a message's limit. */
export const SUM_CHUNK = 16_384

/** A sum of `values` by as many masked sums as its length needs, named `${name}-${chunk}.${counter}`. */
export function * chunkedSum (peer: SumPeer, name: string, counter: number, values: Float64Array, options: MaskedSumOptions = {}): Generator<Phase, Float64Array, unknown> {
  const total = new Float64Array(values.length)
  for (let start = 0, chunk = 0; start < values.length; start += SUM_CHUNK, chunk++) {
    const part = values.subarray(start, Math.min(values.length, start + SUM_CHUNK))
    const phaseName = `${name}-${chunk}.${counter}`
    total.set(sumTotal(yield * run(maskedSum(peer, phaseName, Float64Array.from(part), options)), peer.graph, phaseName), start)
  }
  return total
}
