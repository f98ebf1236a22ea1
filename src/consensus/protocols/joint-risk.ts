import { ConsensusParamsError } from '../errors.ts'
import { graphFromAdjacency, type Graph } from '../graph.ts'
import type { MachineInput, Protocol, StepResult } from '../machine.ts'
import type { MaskSeeds } from './mask-seeds.ts'
import { createSecureSum, secureSumProtocol, type SecureSumState } from './secure-sum.ts'
import { createTreeSum, treeSumProtocol, type TreeSumState } from './tree-sum.ts'
import type { Rng } from '../types.ts'

/**
 * The joint risk of a federation: the sum and the mean of the regions' risk scores h, by one exact
 * masked sum (secure-sum.ts, or tree-sum.ts for large federations), so that no peer, neighbour or log
 * sees another region's h: every message carries only masked fixed-point contributions (or partial
 * sums of them), uniform on the ring to anyone who lacks one of the masks they contain.
 *
 * The summed vector of region i is [h_i, 1, o_1, ..., o_k]: the second entry counts the regions that
 * took part (the mean's divisor, checked rather than assumed), and slot 2 + j carries h_i when region
 * i is the j-th of the `openRegions` (regions that agreed to publish their h; every region knows the
 * list, it is part of the job) and 0 otherwise. So the open values arrive with the total, listed
 * alongside it, and a region that did not agree is never named in them. Since the total minus the
 * open values is the sum over the other regions, a list that leaves a single region out is refused.
 *
 * A region with a single graph neighbour would be visible to it (that neighbour holds both masks of
 * the region's only edge). The sum therefore runs on `jointRiskGraph(graph)`, which gives every such
 * region a second mask partner: the lowest-numbered other neighbour of its neighbour. Every peer
 * derives the same extra edges from the published graph; a real peer opens a direct, encrypted channel
 * along each (members may connect to any member).
 */
export interface JointRiskInit {
  /** the federation graph; the sum runs on jointRiskGraph(graph) */
  graph: Graph
  self: number
  /** this region's risk score, in [0, 1] */
  h: number
  job: string
  /** mask seeds come from here: a cryptographic keystream in a real peer, a seeded rng in simulation */
  rng: Rng
  /** the job's mask seeds (see mask-seeds.ts): edges its earlier sums seeded need no seeds' round here */
  seeds?: MaskSeeds
  /** region names that publish their h openly, in an order every peer shares */
  openRegions?: readonly string[]
  /** flood (about the diameter's rounds), tree (one vector per link, about 2 x depth rounds) or auto (flood up to 64 peers) */
  sumMethod?: 'flood' | 'tree' | 'auto'
  /** message kind (default 'joint-risk') */
  kind?: string
  /**
   * Region-level predictions fused into federation totals by the same masked sum (a region's forecast
   * counts, one per period): every peer learns the totals, no peer another region's values. Every
   * region gives the same number of values.
   */
  fused?: readonly number[]
}

export interface JointRiskResult {
  sum: number
  mean: number
  /** regions counted in the sum */
  regions: number
  /** the h of each region that publishes it */
  open: Array<{ region: string, h: number }>
  /** the federation totals of the fused values (empty when none were fused) */
  fused: number[]
}

export interface JointRiskState {
  readonly graph: Graph
  readonly openRegions: readonly string[]
  /** the masked sum that carries it: a flood, or beyond FLOOD_LIMIT members a spanning tree */
  readonly sum: { method: 'flood', inner: SecureSumState } | { method: 'tree', inner: TreeSumState }
  readonly kind: string
  /** how many fused values follow the open slots */
  readonly fused: number
}

/** One step of the sum machine, whichever it is. */
function sumStep (state: JointRiskState, input: MachineInput | null): StepResult<unknown> {
  const sum = state.sum
  if (sum.method === 'flood') return input === null ? secureSumProtocol.start(sum.inner) : secureSumProtocol.step(sum.inner, input)
  return input === null ? treeSumProtocol.start(sum.inner) : treeSumProtocol.step(sum.inner, input)
}

function sumRound (state: JointRiskState): number {
  return state.sum.method === 'flood' ? secureSumProtocol.round(state.sum.inner) : treeSumProtocol.round(state.sum.inner)
}

function sumDone (state: JointRiskState): boolean {
  return state.sum.method === 'flood' ? secureSumProtocol.done(state.sum.inner) : treeSumProtocol.done(state.sum.inner)
}

function sumResult (state: JointRiskState): Float64Array {
  return state.sum.method === 'flood' ? secureSumProtocol.result(state.sum.inner) : treeSumProtocol.result(state.sum.inner)
}

const FLOOD_LIMIT = 64

/** The largest fused value a region may give: far inside the masked sums' fixed-point range for any federation. */
const MAX_FUSED = 1e9

const augmentedGraphs = new WeakMap<Graph, Graph>()

/**
 * The graph the joint-risk sum runs on: the federation graph plus, for each node with exactly one
 * neighbour u, an edge to the lowest-numbered other neighbour of u (when u has one). Cached per graph.
 */
export function jointRiskGraph (graph: Graph): Graph {
  const cached = augmentedGraphs.get(graph)
  if (cached !== undefined) return cached
  const sets = graph.neighbours.map((list) => new Set(list))
  graph.neighbours.forEach((list, node) => {
    if (list.length !== 1) return
    const only = list[0] as number
    const partner = (graph.neighbours[only] ?? []).find((other) => other !== node)
    if (partner === undefined) return
    sets[node]?.add(partner)
    sets[partner]?.add(node)
  })
  const augmented = graphFromAdjacency(graph.names, sets.map((set) => [...set].sort((a, b) => a - b)))
  augmentedGraphs.set(graph, augmented)
  return augmented
}

export function createJointRisk (init: JointRiskInit): JointRiskState {
  const h = init.h
  if (!(Number.isFinite(h) && h >= 0 && h <= 1)) throw new ConsensusParamsError('h', `a risk score must be in [0, 1], got ${h}`)
  const openRegions = [...(init.openRegions ?? [])]
  const known = new Set(init.graph.names)
  for (const region of openRegions) if (!known.has(region)) throw new ConsensusParamsError('openRegions', `${region} is not a region of the federation`)
  if (new Set(openRegions).size !== openRegions.length) throw new ConsensusParamsError('openRegions', 'a region is listed twice')
  // the total minus the open values is the h of the regions that keep theirs: never a single one
  if (openRegions.length === init.graph.names.length - 1) throw new ConsensusParamsError('openRegions', 'all regions but one publish h, so the sum would reveal the last one\'s')
  const graph = jointRiskGraph(init.graph)
  const self = init.graph.names[init.self]
  if (self === undefined) throw new RangeError(`peer ${init.self} is not in the graph`)
  const fused = [...(init.fused ?? [])]
  if (!fused.every((entry) => Number.isFinite(entry) && Math.abs(entry) <= MAX_FUSED)) throw new ConsensusParamsError('fused', `fused values must be finite and at most ${MAX_FUSED} in size`)
  const value = new Float64Array(2 + openRegions.length + fused.length)
  value[0] = h
  value[1] = 1
  const openSlot = openRegions.indexOf(self)
  if (openSlot >= 0) value[2 + openSlot] = h
  value.set(fused, 2 + openRegions.length)
  const kind = init.kind ?? 'joint-risk'
  const method = init.sumMethod ?? 'auto'
  const tree = method === 'tree' || (method === 'auto' && graph.names.length > FLOOD_LIMIT)
  const sumInit = { graph, self: init.self, value, job: init.job, kind, rng: init.rng, ...(init.seeds === undefined ? {} : { seeds: init.seeds }) }
  return tree
    ? { graph, openRegions, kind, fused: fused.length, sum: { method: 'tree', inner: createTreeSum(sumInit) } }
    : { graph, openRegions, kind, fused: fused.length, sum: { method: 'flood', inner: createSecureSum(sumInit) } }
}

/** The sum machines update their state in place, so the joint risk's state stays the same object. */
function wrap (state: JointRiskState, stepped: StepResult<unknown>): StepResult<JointRiskState> {
  return { state, outbox: stepped.outbox, log: stepped.log }
}

export const jointRiskProtocol: Protocol<JointRiskState, JointRiskResult> = {
  start: (state) => wrap(state, sumStep(state, null)),
  step: (state, input: MachineInput) => wrap(state, sumStep(state, input)),
  round: sumRound,
  done: sumDone,
  result (state) {
    const total = sumResult(state)
    const regions = Math.round(total[1] as number)
    const sum = total[0] as number
    return {
      sum,
      mean: sum / regions,
      regions,
      open: state.openRegions.map((region, index) => ({ region, h: total[2 + index] as number })),
      fused: Array.from(total.subarray(2 + state.openRegions.length, 2 + state.openRegions.length + state.fused))
    }
  }
}
