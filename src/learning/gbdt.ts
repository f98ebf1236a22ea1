import { DimensionMismatchError, EmptyDataError, InvalidOutcomeError } from './errors.ts'
import { EpimeshError } from '../errors.ts'

/**
 * Second-order histogram gradient boosting (XGBoost's objective), pure and deterministic, written so
 * that a federation can grow the very same trees as one analyst with all the rows: every decision is
 * taken from sums over rows (gradient and Hessian histograms per node, feature and bin), and a sum is
 * the same whether one peer adds its rows or the federation adds its members' histograms.
 *
 * - Features: numeric ones by bin edges (a value v falls in the first bin b with v < edges[b], else the
 *   last), factors natively (one bin per level), and a missing value in a bin of its own.
 * - A numeric split at edge t sends bins 0..t (v < edges[t]) left; a factor split at level k sends that
 *   level left and the others right; missing values go to whichever side gives the larger gain (as
 *   XGBoost learns a default direction).
 * - Gain = 1/2 [GL^2 / (HL + lambda) + GR^2 / (HR + lambda) - G^2 / (H + lambda)] - gamma; a split needs
 *   a positive gain, both children at least minChildWeight of Hessian and at least minNodeRows rows.
 *   Leaf weight = -learningRate G / (H + lambda).
 * - Ties: gains within 1e-12 (relative) of the best are equal, and the first candidate in this order
 *   wins: lower feature index, lower bin, missing values right before left. Every peer computing from
 *   the same totals therefore takes the same split.
 * - Trees grow level by level to `depth`; a node not split is a leaf.
 */
export type GbdtFamily = 'binomial' | 'poisson'

export interface GbdtParams {
  family: GbdtFamily
  trees: number
  depth: number
  learningRate: number
  /** L2 penalty on leaf weights */
  lambda: number
  /** minimum gain of a split */
  gamma: number
  /** minimum Hessian sum in each child */
  minChildWeight: number
  /** bins per numeric feature */
  bins: number
  /** minimum rows in each child: the disclosure threshold of a federation (0 in a pooled fit) */
  minNodeRows: number
}

export const DEFAULT_GBDT_PARAMS: Readonly<GbdtParams> = Object.freeze({
  family: 'binomial',
  trees: 50,
  depth: 4,
  learningRate: 0.3,
  lambda: 1,
  gamma: 0,
  minChildWeight: 1,
  bins: 32,
  minNodeRows: 0
})

export class GbdtParamsError extends EpimeshError {
  static override readonly name = 'GbdtParamsError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string) {
    super('GBDT_PARAMS_INVALID', `tree parameter ${field}: ${message}`)
    this.field = field
  }
}

export function createGbdtParams (params: Partial<GbdtParams> = {}): GbdtParams {
  const merged: GbdtParams = { ...DEFAULT_GBDT_PARAMS, ...params }
  if (merged.family !== 'binomial' && merged.family !== 'poisson') throw new GbdtParamsError('family', 'must be binomial or poisson')
  const integer = (field: 'trees' | 'depth' | 'bins' | 'minNodeRows', min: number, max: number): void => {
    const value = merged[field]
    if (!Number.isInteger(value) || value < min || value > max) throw new GbdtParamsError(field, `must be an integer from ${min} to ${max}, got ${value}`)
  }
  integer('trees', 1, 10_000)
  integer('depth', 1, 12)
  integer('bins', 2, 1024)
  integer('minNodeRows', 0, 1_000_000)
  const range = (field: 'learningRate' | 'lambda' | 'gamma' | 'minChildWeight', min: number, max: number, openMin = false): void => {
    const value = merged[field]
    if (!Number.isFinite(value) || value > max || (openMin ? value <= min : value < min)) throw new GbdtParamsError(field, `must be ${openMin ? 'above' : 'at least'} ${min} and at most ${max}, got ${value}`)
  }
  range('learningRate', 0, 1, true)
  range('lambda', 0, 1e6)
  range('gamma', 0, 1e6)
  range('minChildWeight', 0, 1e6)
  return merged
}

export type TreeFeature = { name: string, type: 'numeric' } | { name: string, type: 'categorical', levels: string[] }

/** Rows for trees: one column per feature (a numeric value, or a level's index; NaN when missing). */
export interface TreeData {
  rows: number
  features: TreeFeature[]
  columns: Float64Array[]
  y: Float64Array
  /** log exposure added to the margin (Poisson), as a GLM's offset */
  offset?: Float64Array
}

/** How each feature is cut into bins: numeric edges, or a factor's levels. */
export type FeatureBins = { type: 'numeric', edges: Float64Array } | { type: 'categorical', levels: number }

export function binCount (bins: FeatureBins): number {
  return bins.type === 'numeric' ? bins.edges.length + 1 : bins.levels
}

/**
 * Builds tree data from records: numeric features as numbers, factors as the index of their level,
 * missing cells (null, empty, NaN) as NaN; an unknown level or a bad outcome is a typed error.
 */
export function buildTreeData (rows: ReadonlyArray<Record<string, unknown>>, outcome: string, features: readonly TreeFeature[], options: { family?: GbdtFamily, offset?: string } = {}): TreeData {
  const n = rows.length
  if (n === 0) throw new EmptyDataError('the data have no rows')
  const columns = features.map(() => new Float64Array(n))
  const y = new Float64Array(n)
  const offset = options.offset === undefined ? undefined : new Float64Array(n)
  const family = options.family ?? 'binomial'
  rows.forEach((row, index) => {
    const label = Number(row[outcome])
    if (!Number.isFinite(label) || (family === 'binomial' ? label !== 0 && label !== 1 : label < 0 || !Number.isInteger(label))) {
      throw new InvalidOutcomeError(`row ${index}: outcome ${outcome} must be ${family === 'binomial' ? '0 or 1' : 'a count'}, got ${String(row[outcome])}`)
    }
    y[index] = label
    features.forEach((feature, column) => {
      const cell = row[feature.name]
      const values = columns[column] as Float64Array
      if (cell === null || cell === undefined || cell === '' || (typeof cell === 'number' && Number.isNaN(cell))) {
        values[index] = Number.NaN
      } else if (feature.type === 'numeric') {
        const value = typeof cell === 'number' ? cell : Number(cell)
        if (!Number.isFinite(value)) throw new DimensionMismatchError(`row ${index}: ${feature.name} is not a number: ${String(cell).slice(0, 80)}`)
        values[index] = value
      } else {
        const level = feature.levels.indexOf(String(cell))
        if (level < 0) throw new DimensionMismatchError(`row ${index}: ${feature.name} has level ${String(cell).slice(0, 80)}, not one of ${feature.levels.join(', ')}`)
        values[index] = level
      }
    })
    if (offset !== undefined) offset[index] = Number(row[options.offset as string])
  })
  return { rows: n, features: [...features], columns, y, ...(offset === undefined ? {} : { offset }) }
}

/** Each row's bin per feature; the missing bin is binCount(bins). */
export function binRows (data: TreeData, bins: readonly FeatureBins[]): Uint16Array[] {
  if (bins.length !== data.features.length) throw new RangeError(`${bins.length} bin specs for ${data.features.length} features`)
  return data.columns.map((values, feature) => {
    const spec = bins[feature] as FeatureBins
    const out = new Uint16Array(data.rows)
    const missing = binCount(spec)
    for (let row = 0; row < data.rows; row++) {
      const value = values[row] as number
      if (Number.isNaN(value)) out[row] = missing
      else if (spec.type === 'categorical') out[row] = value
      else out[row] = upperBound(spec.edges, value)
    }
    return out
  })
}

/** The first index b with value < edges[b], or edges.length. */
function upperBound (edges: Float64Array, value: number): number {
  let low = 0
  let high = edges.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (value < (edges[middle] as number)) high = middle
    else low = middle + 1
  }
  return low
}

/**
 * Numeric bin edges from a histogram of fine bins over [low, high] (counts of the values below, in
 * each of `fine` equal bins, and above), chosen as XGBoost's `hist` sketch chooses its cuts, on
 * fine-bin boundaries:
 * - a feature with at most `bins` occupied fine bins (few distinct values: counts, small integers) gets
 *   an edge below every occupied fine bin but the first, so that each of its values has a bin;
 * - otherwise the edges are the `bins` quantiles: the i-th edge is the lower boundary of the fine bin
 *   where the cumulative count first exceeds i/bins of the total, so that the value at the quantile
 *   starts a bin (XGBoost's cut is the value at the quantile, with v < cut to the left); no repeats,
 *   and no edge below every value.
 * A federation adds its members' fine histograms with a masked sum, so every member computes the same
 * edges from the same totals, and no member's values are revealed.
 */
/** Fine bins per requested bin in the histogram the bin edges come from. */
export const FINE_PER_BIN = 8

export function edgesFromFineHistogram (counts: ArrayLike<number>, low: number, high: number, bins: number): Float64Array {
  const fine = counts.length - 2
  if (fine < 1 || !(high > low)) return new Float64Array(0)
  let total = 0
  for (let index = 0; index < counts.length; index++) total += counts[index] as number
  if (total <= 0) return new Float64Array(0)
  const width = (high - low) / fine
  const edges: number[] = []
  let occupied = 0
  for (let index = 1; index <= fine; index++) if ((counts[index] as number) > 0) occupied++
  if (occupied + ((counts[0] as number) > 0 ? 1 : 0) + ((counts[fine + 1] as number) > 0 ? 1 : 0) <= bins) {
    let below = (counts[0] as number) > 0
    for (let index = 0; index < fine; index++) {
      if ((counts[index + 1] as number) === 0) continue
      if (below) edges.push(low + index * width)
      below = true
    }
    if ((counts[fine + 1] as number) > 0 && below) edges.push(high)
    return Float64Array.from(edges)
  }
  let cumulative = counts[0] as number
  let next = 1
  for (let index = 0; index < fine && next < bins; index++) {
    const before = cumulative
    cumulative += counts[index + 1] as number
    while (next < bins && cumulative > (next * total) / bins) {
      const edge = low + index * width
      if (before > 0 && (edges.length === 0 || edge > (edges[edges.length - 1] as number))) edges.push(edge)
      next++
    }
  }
  if (next < bins && (counts[fine + 1] as number) > 0 && (edges.length === 0 || high > (edges[edges.length - 1] as number))) edges.push(high)
  return Float64Array.from(edges)
}

export function fineHistogram (values: Float64Array, low: number, high: number, fine: number): Float64Array {
  const counts = new Float64Array(fine + 2)
  const width = (high - low) / fine
  for (const value of values) {
    if (Number.isNaN(value)) continue
    if (value < low) counts[0] = (counts[0] as number) + 1
    else if (value >= high) counts[fine + 1] = (counts[fine + 1] as number) + 1
    else {
      const bin = Math.min(fine - 1, Math.floor((value - low) / width))
      counts[bin + 1] = (counts[bin + 1] as number) + 1
    }
  }
  return counts
}

/** Where each feature's slots sit in one node's histogram: per feature, its bins and the missing bin, three numbers each (G, H, rows). */
export interface HistogramLayout {
  readonly offsets: Int32Array
  readonly slots: Int32Array
  /** numbers per node */
  readonly width: number
}

export function histogramLayout (bins: readonly FeatureBins[]): HistogramLayout {
  const offsets = new Int32Array(bins.length)
  const slots = new Int32Array(bins.length)
  let width = 0
  bins.forEach((spec, feature) => {
    offsets[feature] = width
    slots[feature] = binCount(spec) + 1
    width += 3 * (binCount(spec) + 1)
  })
  return { offsets, slots, width }
}

/** Gradient and Hessian of each row's loss at its margin (log-odds, or log mean with the offset in it). */
export function gradients (family: GbdtFamily, y: Float64Array, margin: Float64Array, gradient: Float64Array, hessian: Float64Array): void {
  for (let row = 0; row < y.length; row++) {
    const eta = margin[row] as number
    if (family === 'binomial') {
      const p = 1 / (1 + Math.exp(-eta))
      gradient[row] = p - (y[row] as number)
      hessian[row] = Math.max(p * (1 - p), 1e-16)
    } else {
      const mu = Math.exp(eta)
      gradient[row] = mu - (y[row] as number)
      hessian[row] = mu
    }
  }
}

/**
 * This peer's histograms for the open nodes, in their order: node after node, `layout.width` numbers
 * each. Rows in no open node add nothing.
 */
export function nodeHistograms (binned: readonly Uint16Array[], gradient: Float64Array, hessian: Float64Array, nodeOfRow: Int32Array, open: readonly number[], layout: HistogramLayout): Float64Array {
  const out = new Float64Array(open.length * layout.width)
  const position = new Map(open.map((node, index) => [node, index]))
  for (let row = 0; row < nodeOfRow.length; row++) {
    const index = position.get(nodeOfRow[row] as number)
    if (index === undefined) continue
    const base = index * layout.width
    const g = gradient[row] as number
    const h = hessian[row] as number
    for (let feature = 0; feature < binned.length; feature++) {
      const slot = base + (layout.offsets[feature] as number) + 3 * ((binned[feature] as Uint16Array)[row] as number)
      out[slot] = (out[slot] as number) + g
      out[slot + 1] = (out[slot + 1] as number) + h
      out[slot + 2] = (out[slot + 2] as number) + 1
    }
  }
  return out
}

export interface TreeNode {
  depth: number
  /** sums over the node's rows */
  gradient: number
  hessian: number
  rows: number
  /** a split: feature, bin (numeric: edge index t, bins 0..t go left; factor: the level that goes left), where missing values go */
  split: { feature: number, bin: number, threshold: number | null, missingLeft: boolean, gain: number } | null
  left: number
  right: number
  /** leaf weight (already times the learning rate); 0 for inner nodes */
  value: number
}

export interface Tree {
  nodes: TreeNode[]
}

interface Candidate { feature: number, bin: number, missingLeft: boolean, gain: number, left: [number, number, number], right: [number, number, number] }

const TIE = 1e-12

function score (g: number, h: number, lambda: number): number {
  return (g * g) / (h + lambda)
}

/** The best split of one node from its histogram (the federation's totals), or null. */
export function bestSplit (histogram: Float64Array, offset: number, layout: HistogramLayout, bins: readonly FeatureBins[], params: GbdtParams): Candidate | null {
  const { lambda, gamma, minChildWeight, minNodeRows } = params
  let best: Candidate | null = null
  // node totals from feature 0's slots (every feature's slots add up to the same rows)
  let totalG = 0
  let totalH = 0
  let totalN = 0
  for (let slot = 0; slot < (layout.slots[0] as number); slot++) {
    const at = offset + (layout.offsets[0] as number) + 3 * slot
    totalG += histogram[at] as number
    totalH += histogram[at + 1] as number
    totalN += histogram[at + 2] as number
  }
  const parent = score(totalG, totalH, lambda)
  const consider = (candidate: Candidate): void => {
    if (best === null || candidate.gain > best.gain + TIE * Math.max(1, Math.abs(best.gain))) best = candidate
  }
  const valid = (g: [number, number, number], other: [number, number, number]): boolean =>
    g[1] >= minChildWeight && other[1] >= minChildWeight && g[2] >= Math.max(1, minNodeRows) && other[2] >= Math.max(1, minNodeRows)
  bins.forEach((spec, feature) => {
    const base = offset + (layout.offsets[feature] as number)
    const count = binCount(spec)
    const missing: [number, number, number] = [histogram[base + 3 * count] as number, histogram[base + 3 * count + 1] as number, histogram[base + 3 * count + 2] as number]
    const present: [number, number, number] = [totalG - missing[0], totalH - missing[1], totalN - missing[2]]
    const evaluate = (left: [number, number, number], bin: number): void => {
      // missing values right, then left
      for (const missingLeft of [false, true]) {
        const l: [number, number, number] = missingLeft ? [left[0] + missing[0], left[1] + missing[1], left[2] + missing[2]] : left
        const r: [number, number, number] = [totalG - l[0], totalH - l[1], totalN - l[2]]
        if (!valid(l, r)) continue
        const gain = 0.5 * (score(l[0], l[1], lambda) + score(r[0], r[1], lambda) - parent) - gamma
        if (gain > 0) consider({ feature, bin, missingLeft, gain, left: l, right: r })
        if (missing[2] === 0) break
      }
    }
    if (spec.type === 'numeric') {
      const left: [number, number, number] = [0, 0, 0]
      for (let bin = 0; bin < count - 1; bin++) {
        left[0] += histogram[base + 3 * bin] as number
        left[1] += histogram[base + 3 * bin + 1] as number
        left[2] += histogram[base + 3 * bin + 2] as number
        if (left[2] === 0 || left[2] === present[2]) continue
        evaluate([left[0], left[1], left[2]], bin)
      }
    } else {
      for (let level = 0; level < count; level++) {
        const one: [number, number, number] = [histogram[base + 3 * level] as number, histogram[base + 3 * level + 1] as number, histogram[base + 3 * level + 2] as number]
        if (one[2] === 0 || one[2] === present[2]) continue
        evaluate(one, level)
      }
    }
  })
  return best
}

/** The node totals (G, H, rows) of one node's histogram. */
function nodeTotals (histogram: Float64Array, offset: number, layout: HistogramLayout): [number, number, number] {
  let g = 0
  let h = 0
  let n = 0
  for (let slot = 0; slot < (layout.slots[0] as number); slot++) {
    const at = offset + (layout.offsets[0] as number) + 3 * slot
    g += histogram[at] as number
    h += histogram[at + 1] as number
    n += histogram[at + 2] as number
  }
  return [g, h, n]
}

/**
 * A tree growing level by level, the same for one analyst and for a federation: at each level it asks
 * for sums over rows (`request`), each member computes its share (`contribution`), and the totals
 * (`accept`) decide the splits. Two economies keep the sums small, as XGBoost's hist method does:
 * - of two siblings only the one with fewer rows is summed; the other's histogram is its parent's
 *   minus it;
 * - at the last level every open node becomes a leaf, so only each node's totals (G, H, rows) are summed.
 */
export class TreeGrowth {
  readonly tree: Tree = newTree()
  private open: number[] = [0]
  /** full histograms of the nodes split at the previous level, by node */
  private parents = new Map<number, Float64Array>()
  /** the nodes whose histograms (or totals) the current level sums, in order */
  private summed: number[] = [0]
  private totalsOnly: boolean

  constructor (private readonly params: GbdtParams, private readonly bins: readonly FeatureBins[], private readonly layout: HistogramLayout) {
    this.totalsOnly = params.depth === 0
  }

  get done (): boolean {
    return this.open.length === 0
  }

  /** The values this level sums, per member: the histograms of the nodes it sums, or their totals only. */
  contribution (binned: readonly Uint16Array[], gradient: Float64Array, hessian: Float64Array, nodeOfRow: Int32Array): Float64Array {
    if (!this.totalsOnly) return nodeHistograms(binned, gradient, hessian, nodeOfRow, this.summed, this.layout)
    const position = new Map(this.summed.map((node, index) => [node, index]))
    const out = new Float64Array(3 * this.summed.length)
    for (let row = 0; row < nodeOfRow.length; row++) {
      const index = position.get(nodeOfRow[row] as number)
      if (index === undefined) continue
      out[3 * index] = (out[3 * index] as number) + (gradient[row] as number)
      out[3 * index + 1] = (out[3 * index + 1] as number) + (hessian[row] as number)
      out[3 * index + 2] = (out[3 * index + 2] as number) + 1
    }
    return out
  }

  /** The level's totals are in: split what gains, make leaves of the rest, and plan the next level. */
  accept (totals: Float64Array): void {
    const { tree, params, layout } = this
    if (this.totalsOnly) {
      this.summed.forEach((id, index) => {
        const node = tree.nodes[id] as TreeNode
        node.gradient = totals[3 * index] as number
        node.hessian = totals[3 * index + 1] as number
        node.rows = totals[3 * index + 2] as number
        node.value = -params.learningRate * node.gradient / (node.hessian + params.lambda)
      })
      this.open = []
      return
    }
    // full histograms of every open node: summed, or the parent's minus the summed sibling
    const histograms = new Map<number, Float64Array>()
    this.summed.forEach((id, index) => histograms.set(id, totals.subarray(index * layout.width, (index + 1) * layout.width)))
    for (const id of this.open) {
      if (histograms.has(id)) continue
      const parent = tree.nodes.findIndex((node) => node.left === id || node.right === id)
      const sibling = (tree.nodes[parent] as TreeNode).left === id ? (tree.nodes[parent] as TreeNode).right : (tree.nodes[parent] as TreeNode).left
      const whole = this.parents.get(parent) as Float64Array
      const part = histograms.get(sibling) as Float64Array
      histograms.set(id, whole.map((value, index) => value - (part[index] as number)))
    }
    const next: number[] = []
    const parents = new Map<number, Float64Array>()
    for (const id of this.open) {
      const node = tree.nodes[id] as TreeNode
      const histogram = histograms.get(id) as Float64Array
      const [g, h, n] = nodeTotals(histogram, 0, layout)
      node.gradient = g
      node.hessian = h
      node.rows = n
      const candidate = node.depth < params.depth ? bestSplit(histogram, 0, layout, this.bins, params) : null
      if (candidate === null) {
        node.value = -params.learningRate * g / (h + params.lambda)
        continue
      }
      const spec = this.bins[candidate.feature] as FeatureBins
      node.split = { feature: candidate.feature, bin: candidate.bin, threshold: spec.type === 'numeric' ? spec.edges[candidate.bin] as number : null, missingLeft: candidate.missingLeft, gain: candidate.gain }
      node.left = tree.nodes.length
      tree.nodes.push(emptyNode(node.depth + 1, candidate.left))
      node.right = tree.nodes.length
      tree.nodes.push(emptyNode(node.depth + 1, candidate.right))
      next.push(node.left, node.right)
      parents.set(id, Float64Array.from(histogram))
    }
    this.open = next
    this.parents = parents
    this.totalsOnly = next.length > 0 && (tree.nodes[next[0] as number] as TreeNode).depth >= params.depth
    // of each pair of siblings, the one with fewer rows (the left one on a tie) is summed
    this.summed = this.totalsOnly
      ? [...next]
      : next.filter((_, index) => {
          if (index % 2 === 1) return false
          const left = tree.nodes[next[index] as number] as TreeNode
          const right = tree.nodes[next[index + 1] as number] as TreeNode
          return left.rows <= right.rows
        }).concat(next.filter((_, index) => {
          if (index % 2 === 0) return false
          const left = tree.nodes[next[index - 1] as number] as TreeNode
          const right = tree.nodes[next[index] as number] as TreeNode
          return right.rows < left.rows
        })).sort((a, b) => a - b)
  }
}

/** A new node; `expected` are the (G, H, rows) its parent's split promised it, until its own totals come. */
function emptyNode (depth: number, expected: [number, number, number] = [0, 0, 0]): TreeNode {
  return { depth, gradient: expected[0], hessian: expected[1], rows: expected[2], split: null, left: -1, right: -1, value: 0 }
}

export function newTree (): Tree {
  return { nodes: [emptyNode(0)] }
}

/** Moves each row of an open node that was split to its child. */
export function routeRows (tree: Tree, binned: readonly Uint16Array[], bins: readonly FeatureBins[], nodeOfRow: Int32Array): void {
  for (let row = 0; row < nodeOfRow.length; row++) {
    const node = tree.nodes[nodeOfRow[row] as number] as TreeNode
    if (node.split === null) continue
    nodeOfRow[row] = goesLeft(node.split, (binned[node.split.feature] as Uint16Array)[row] as number, bins[node.split.feature] as FeatureBins) ? node.left : node.right
  }
}

function goesLeft (split: NonNullable<TreeNode['split']>, bin: number, spec: FeatureBins): boolean {
  if (bin === binCount(spec)) return split.missingLeft
  return spec.type === 'numeric' ? bin <= split.bin : bin === split.bin
}

/** A fitted forest: everything `predictGbdt` needs to apply it to new records exactly. */
export interface GbdtModel {
  params: GbdtParams
  features: TreeFeature[]
  bins: FeatureBins[]
  /** the margin every prediction starts from (log-odds or log rate) */
  baseMargin: number
  trees: Tree[]
}

/** Each row's margin: the base, its offset, and every tree's leaf. */
export function gbdtMargins (model: GbdtModel, data: TreeData): Float64Array {
  const binned = binRows(data, model.bins)
  const margin = new Float64Array(data.rows).fill(model.baseMargin)
  if (data.offset !== undefined) for (let row = 0; row < data.rows; row++) margin[row] = (margin[row] as number) + (data.offset[row] as number)
  for (const tree of model.trees) addTree(tree, binned, model.bins, margin)
  return margin
}

/** Adds one tree's leaf values to the rows' margins. */
export function addTree (tree: Tree, binned: readonly Uint16Array[], bins: readonly FeatureBins[], margin: Float64Array): void {
  for (let row = 0; row < margin.length; row++) {
    let node = tree.nodes[0] as TreeNode
    while (node.split !== null) {
      node = tree.nodes[goesLeft(node.split, (binned[node.split.feature] as Uint16Array)[row] as number, bins[node.split.feature] as FeatureBins) ? node.left : node.right] as TreeNode
    }
    margin[row] = (margin[row] as number) + node.value
  }
}

/** Predicted probabilities (binomial) or means (Poisson) for the rows. */
export function predictGbdt (model: GbdtModel, data: TreeData): Float64Array {
  const margin = gbdtMargins(model, data)
  return margin.map((eta) => model.params.family === 'binomial' ? 1 / (1 + Math.exp(-eta)) : Math.exp(eta))
}

/** The margin trees start from: the pooled log-odds (binomial) or log rate (Poisson) of the outcome. */
export function baseMargin (family: GbdtFamily, outcomeSum: number, rows: number, exposureSum: number): number {
  if (family === 'binomial') {
    const rate = Math.min(Math.max(outcomeSum / rows, 1e-6), 1 - 1e-6)
    return Math.log(rate / (1 - rate))
  }
  return Math.log(Math.max(outcomeSum, 0.5) / exposureSum)
}

/** Total gain of each feature's splits over the forest, in feature order. */
export function featureImportance (model: GbdtModel): Array<{ feature: string, gain: number, splits: number }> {
  const gain = new Float64Array(model.features.length)
  const splits = new Int32Array(model.features.length)
  for (const tree of model.trees) {
    for (const node of tree.nodes) {
      if (node.split === null) continue
      gain[node.split.feature] = (gain[node.split.feature] as number) + node.split.gain
      splits[node.split.feature] = (splits[node.split.feature] as number) + 1
    }
  }
  return model.features.map((feature, index) => ({ feature: feature.name, gain: gain[index] as number, splits: splits[index] as number }))
}

/**
 * The pooled fit: one analyst with every row. A federation's fit (consensus/jobs/gbdt-job.ts) takes the
 * same decisions from the same totals, so with the same bin edges it grows the same trees.
 */
export function fitGbdt (data: TreeData, bins: readonly FeatureBins[], params: GbdtParams): GbdtModel {
  const binned = binRows(data, bins)
  const layout = histogramLayout(bins)
  let exposure = 0
  let outcome = 0
  for (let row = 0; row < data.rows; row++) {
    outcome += data.y[row] as number
    exposure += data.offset === undefined ? 1 : Math.exp(data.offset[row] as number)
  }
  const model: GbdtModel = { params, features: [...data.features], bins: [...bins], baseMargin: baseMargin(params.family, outcome, data.rows, exposure), trees: [] }
  const margin = new Float64Array(data.rows).fill(model.baseMargin)
  if (data.offset !== undefined) for (let row = 0; row < data.rows; row++) margin[row] = (margin[row] as number) + (data.offset[row] as number)
  const gradient = new Float64Array(data.rows)
  const hessian = new Float64Array(data.rows)
  for (let index = 0; index < params.trees; index++) {
    gradients(params.family, data.y, margin, gradient, hessian)
    const growth = new TreeGrowth(params, bins, layout)
    const nodeOfRow = new Int32Array(data.rows)
    while (!growth.done) {
      growth.accept(growth.contribution(binned, gradient, hessian, nodeOfRow))
      routeRows(growth.tree, binned, bins, nodeOfRow)
    }
    addTree(growth.tree, binned, bins, margin)
    model.trees.push(growth.tree)
  }
  return model
}

/** Numeric bin edges for a pooled fit, by the same rule a federation uses: its range from the mean and SD, quantiles of fine bins. */
export function pooledBins (data: TreeData, bins: number, fine = FINE_PER_BIN * bins): FeatureBins[] {
  return data.features.map((feature, index) => {
    if (feature.type === 'categorical') return { type: 'categorical', levels: feature.levels.length }
    const values = data.columns[index] as Float64Array
    const range = binRange(values.reduce((count, value) => count + (Number.isNaN(value) ? 0 : 1), 0), values.reduce((sum, value) => sum + (Number.isNaN(value) ? 0 : value), 0), values.reduce((sum, value) => sum + (Number.isNaN(value) ? 0 : value * value), 0))
    return { type: 'numeric', edges: edgesFromFineHistogram(fineHistogram(values, range.low, range.high, fine), range.low, range.high, bins) }
  })
}

/**
 * The range fine histograms cover, from a feature's count, sum and sum of squares (what a masked sum
 * reveals): the mean plus or minus 4 population SDs, widened to at least 1e-9 around a constant.
 * Values outside fall in the end bins.
 */
export function binRange (count: number, sum: number, squares: number): { low: number, high: number } {
  if (count <= 0) return { low: 0, high: 1 }
  const mean = sum / count
  const sd = Math.sqrt(Math.max(0, squares / count - mean * mean))
  const half = Math.max(4 * sd, 1e-9 * Math.max(1, Math.abs(mean)))
  return { low: mean - half, high: mean + half }
}

/** A forest as plain JSON (edges as arrays): what a store keeps, an audit log's final entry records and a digest covers. */
export interface GbdtModelJson {
  params: GbdtParams
  features: TreeFeature[]
  bins: Array<{ type: 'numeric', edges: number[] } | { type: 'categorical', levels: number }>
  baseMargin: number
  trees: Array<{ nodes: TreeNode[] }>
}

export function gbdtModelToJson (model: GbdtModel): GbdtModelJson {
  return {
    params: { ...model.params },
    features: model.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' }),
    bins: model.bins.map((spec) => spec.type === 'numeric' ? { type: 'numeric', edges: Array.from(spec.edges) } : { type: 'categorical', levels: spec.levels }),
    baseMargin: model.baseMargin,
    trees: model.trees.map((tree) => ({ nodes: tree.nodes.map((node) => ({ ...node, split: node.split === null ? null : { ...node.split } })) }))
  }
}

export function gbdtModelFromJson (json: GbdtModelJson): GbdtModel {
  return {
    params: createGbdtParams(json.params),
    features: json.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: [...feature.levels] } : { name: feature.name, type: 'numeric' }),
    bins: json.bins.map((spec): FeatureBins => spec.type === 'numeric' ? { type: 'numeric', edges: Float64Array.from(spec.edges) } : { type: 'categorical', levels: spec.levels }),
    baseMargin: json.baseMargin,
    trees: json.trees.map((tree) => ({ nodes: tree.nodes.map((node) => ({ ...node, split: node.split === null ? null : { ...node.split } })) }))
  }
}

/** The log-likelihood of the rows at these margins (binomial; Poisson with its log y! term), as R's logLik counts it. */
export function treeLogLikelihood (family: GbdtFamily, y: Float64Array, margin: Float64Array): number {
  let total = 0
  for (let row = 0; row < y.length; row++) {
    const eta = margin[row] as number
    const label = y[row] as number
    if (family === 'binomial') {
      // log p = -log(1 + e^-eta), log(1 - p) = -log(1 + e^eta), computed without overflow
      total -= label === 1 ? softplus(-eta) : softplus(eta)
    } else {
      total += label * eta - Math.exp(eta) - logFactorial(label)
    }
  }
  return total
}

function softplus (x: number): number {
  return x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))
}

function logFactorial (n: number): number {
  // Stirling's series is exact to double precision well before 256
  if (n > 256) return n * Math.log(n) - n + 0.5 * Math.log(2 * Math.PI * n) + 1 / (12 * n) - 1 / (360 * n ** 3)
  let total = 0
  for (let k = 2; k <= n; k++) total += Math.log(k)
  return total
}

/** Whether two forests take the same splits (feature, bin, missing side) in every node, and their largest leaf difference. */
export function compareForests (a: GbdtModel, b: GbdtModel): { sameStructure: boolean, maxLeafDifference: number } {
  let same = a.trees.length === b.trees.length
  let difference = 0
  a.trees.forEach((tree, index) => {
    const other = b.trees[index]
    if (other === undefined || other.nodes.length !== tree.nodes.length) { same = false; return }
    tree.nodes.forEach((node, position) => {
      const twin = other.nodes[position] as TreeNode
      if ((node.split === null) !== (twin.split === null) || (node.split !== null && twin.split !== null && (node.split.feature !== twin.split.feature || node.split.bin !== twin.split.bin || node.split.missingLeft !== twin.split.missingLeft))) same = false
      difference = Math.max(difference, Math.abs(node.value - twin.value))
    })
  })
  return { sameStructure: same, maxLeafDifference: difference }
}
