import { EigenvalueDecomposition, Matrix } from 'ml-matrix'
import { GraphDisconnectedError, TopologySpecError } from './errors.ts'

/**
 * An undirected graph over named peers: node i is names[i], neighbours[i] lists its neighbours' indices
 * in increasing order, without self-loops or repeats. Treat it as immutable: the helpers below cache
 * derived data per graph object.
 */
export interface Graph {
  readonly names: string[]
  readonly neighbours: number[][]
}

/**
 * A graph from an edge list. With `names` null the nodes are the names the edges mention, in order of
 * first mention; otherwise `names` fixes the nodes and their order (isolated nodes allowed). Repeated
 * edges, in either direction, are merged; a self-loop or an unknown name is a TopologySpecError.
 */
export function graphFromEdges (names: readonly string[] | null, edges: ReadonlyArray<readonly [string, string]>): Graph {
  const nodeNames = names === null ? [...new Set(edges.flatMap(([a, b]) => [a, b]))] : [...names]
  const index = new Map(nodeNames.map((name, position) => [name, position]))
  if (index.size !== nodeNames.length) throw new TopologySpecError('node names must be unique')
  if (index.has('')) throw new TopologySpecError('node names must not be empty')
  const sets = nodeNames.map(() => new Set<number>())
  for (const [a, b] of edges) {
    const from = index.get(a)
    const to = index.get(b)
    if (from === undefined || to === undefined) throw new TopologySpecError(`edge ${a}-${b} names a node that is not in the graph`)
    if (from === to) throw new TopologySpecError(`edge ${a}-${b} is a self-loop`)
    sets[from]?.add(to)
    sets[to]?.add(from)
  }
  return { names: nodeNames, neighbours: sets.map((set) => [...set].sort((x, y) => x - y)) }
}

export function graphFromAdjacency (names: readonly string[], neighbours: ReadonlyArray<ReadonlyArray<number>>): Graph {
  const edges: Array<[string, string]> = []
  neighbours.forEach((list, node) => {
    for (const other of list) if (other > node) edges.push([names[node] as string, names[other] as string])
  })
  return graphFromEdges(names, edges)
}

const nameIndexes = new WeakMap<Graph, Map<string, number>>()

/** The index of the node called `name`, or -1. Constant time after the first call on a graph. */
export function indexOf (graph: Graph, name: string): number {
  let index = nameIndexes.get(graph)
  if (index === undefined) {
    index = new Map(graph.names.map((nodeName, position) => [nodeName, position]))
    nameIndexes.set(graph, index)
  }
  return index.get(name) ?? -1
}

export function edges (graph: Graph): Array<[number, number]> {
  const list: Array<[number, number]> = []
  graph.neighbours.forEach((adjacent, node) => {
    for (const other of adjacent) if (other > node) list.push([node, other])
  })
  return list
}

export function degree (graph: Graph, node: number): number {
  return graph.neighbours[node]?.length ?? 0
}

function distancesFrom (graph: Graph, source: number): Int32Array {
  const distance = new Int32Array(graph.names.length).fill(-1)
  distance[source] = 0
  const queue = [source]
  for (let head = 0; head < queue.length; head++) {
    const node = queue[head] as number
    for (const other of graph.neighbours[node] ?? []) {
      if (distance[other] === -1) {
        distance[other] = (distance[node] as number) + 1
        queue.push(other)
      }
    }
  }
  return distance
}

export function isConnected (graph: Graph): boolean {
  if (graph.names.length === 0) return true
  return !distancesFrom(graph, 0).includes(-1)
}

/**
 * The longest shortest path (0 for a single node), by a breadth-first search from every node. A
 * disconnected graph has no finite diameter: it throws GraphDisconnectedError rather than returning
 * Infinity, because every caller (round budgets, flood lengths) would be wrong with it.
 */
export function diameter (graph: Graph): number {
  const cached = diameters.get(graph)
  if (cached !== undefined) return cached
  let longest = 0
  for (let node = 0; node < graph.names.length; node++) {
    const distance = distancesFrom(graph, node)
    for (const value of distance) {
      if (value < 0) throw new GraphDisconnectedError(`the graph is not connected: ${graph.names[node]} cannot reach every peer`)
      if (value > longest) longest = value
    }
  }
  diameters.set(graph, longest)
  return longest
}

const diameters = new WeakMap<Graph, number>()

export interface MetropolisWeights {
  /** W_ii */
  self: number
  /** W_ij for j = neighbours[i][slot], aligned with the neighbour list */
  neighbour: Float64Array
}

/**
 * Metropolis weights: W_ij = 1 / (1 + max(d_i, d_j)) on edges, W_ii = 1 - sum_j W_ij. W is symmetric and
 * doubly stochastic with a positive diagonal, so averaging with it preserves the sum and converges on
 * any connected graph; each peer computes its row from its own and its neighbours' degrees. Without a
 * node, the rows of every node.
 */
export function metropolisWeights (graph: Graph): MetropolisWeights[]
export function metropolisWeights (graph: Graph, node: number): MetropolisWeights
export function metropolisWeights (graph: Graph, node?: number): MetropolisWeights | MetropolisWeights[] {
  if (node === undefined) return graph.neighbours.map((_, each) => metropolisRow(graph, each))
  if (!Number.isInteger(node) || node < 0 || node >= graph.names.length) throw new RangeError(`node ${node} is not in the graph`)
  return metropolisRow(graph, node)
}

function metropolisRow (graph: Graph, node: number): MetropolisWeights {
  const adjacent = graph.neighbours[node] ?? []
  const own = adjacent.length
  const neighbour = Float64Array.from(adjacent, (other) => 1 / (1 + Math.max(own, degree(graph, other))))
  let self = 1
  for (const weight of neighbour) self -= weight
  return { self, neighbour }
}

/** The dense n×n Metropolis matrix, row-major. */
export function metropolisMatrix (graph: Graph): Float64Array {
  const n = graph.names.length
  const matrix = new Float64Array(n * n)
  for (let node = 0; node < n; node++) {
    const weights = metropolisRow(graph, node)
    matrix[node * n + node] = weights.self
    graph.neighbours[node]?.forEach((other, slot) => { matrix[node * n + other] = weights.neighbour[slot] as number })
  }
  return matrix
}

function symmetricEigenvalues (matrix: Float64Array, n: number): number[] {
  const rows = Array.from({ length: n }, (_, row) => Array.from(matrix.subarray(row * n, row * n + n)))
  return new EigenvalueDecomposition(new Matrix(rows), { assumeSymmetric: true }).realEigenvalues.slice().sort((a, b) => a - b)
}

/**
 * The second-largest eigenvalue modulus rho of the Metropolis matrix, and the gap 1 - rho: average
 * consensus error falls like rho^k, so it needs about ln(eps) / ln(rho) rounds. A disconnected graph
 * has 1 as a repeated eigenvalue, so rho = 1 and the gap is 0 (averaging never agrees). A dense
 * eigendecomposition, O(n^3): computed once per graph object and cached (treat graphs as immutable).
 */
export function spectralGap (graph: Graph): Readonly<{ secondLargestModulus: number, gap: number }> {
  const cached = spectralGaps.get(graph)
  if (cached !== undefined) return cached
  const n = graph.names.length
  let secondLargestModulus = 0
  if (n >= 2) {
    const eigenvalues = symmetricEigenvalues(metropolisMatrix(graph), n)
    // the largest eigenvalue is 1 (the consensus direction); rho is the largest modulus among the rest
    for (const eigenvalue of eigenvalues.slice(0, -1)) secondLargestModulus = Math.max(secondLargestModulus, Math.abs(eigenvalue))
  }
  const result = Object.freeze({ secondLargestModulus, gap: 1 - secondLargestModulus })
  spectralGaps.set(graph, result)
  return result
}

const spectralGaps = new WeakMap<Graph, Readonly<{ secondLargestModulus: number, gap: number }>>()
const laplacianSpectra = new WeakMap<Graph, Readonly<{ secondSmallest: number, largest: number }>>()

/**
 * The second-smallest (algebraic connectivity, 0 when disconnected) and the largest eigenvalues of the
 * graph Laplacian D - A, for the ADMM penalty default. A single node has no edges: both are reported as
 * 1 so that a penalty formula dividing by them stays finite.
 */
export function laplacianExtremes (graph: Graph): Readonly<{ secondSmallest: number, largest: number }> {
  const cached = laplacianSpectra.get(graph)
  if (cached !== undefined) return cached
  const n = graph.names.length
  let result: Readonly<{ secondSmallest: number, largest: number }> = Object.freeze({ secondSmallest: 1, largest: 1 })
  if (n >= 2) {
    const laplacian = new Float64Array(n * n)
    for (let node = 0; node < n; node++) {
      laplacian[node * n + node] = degree(graph, node)
      for (const other of graph.neighbours[node] ?? []) laplacian[node * n + other] = -1
    }
    const eigenvalues = symmetricEigenvalues(laplacian, n)
    result = Object.freeze({ secondSmallest: eigenvalues[1] as number, largest: eigenvalues[n - 1] as number })
  }
  laplacianSpectra.set(graph, result)
  return result
}
