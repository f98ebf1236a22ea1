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

/** Above this many nodes the Laplacian's extremes come from Lanczos iterations instead of a dense eigendecomposition. */
export const DENSE_SPECTRUM_NODES = 256

/**
 * The second-smallest (algebraic connectivity, 0 when disconnected) and the largest eigenvalues of the
 * graph Laplacian D - A, for the ADMM penalty default. A single node has no edges: both are reported as
 * 1 so that a penalty formula dividing by them stays finite. Up to DENSE_SPECTRUM_NODES nodes by a dense
 * eigendecomposition (O(n^3)); beyond, by Lanczos on the sparse Laplacian (see laplacianExtremesLanczos),
 * which 10,000 peers need (a dense decomposition would take hours and gigabytes). Both are pure functions
 * of the graph, so every peer computes the same values.
 */
export function laplacianExtremes (graph: Graph): Readonly<{ secondSmallest: number, largest: number }> {
  const cached = laplacianSpectra.get(graph)
  if (cached !== undefined) return cached
  const n = graph.names.length
  let result: Readonly<{ secondSmallest: number, largest: number }> = Object.freeze({ secondSmallest: 1, largest: 1 })
  if (n > DENSE_SPECTRUM_NODES) {
    result = Object.freeze(laplacianExtremesLanczos(graph))
  } else if (n >= 2) {
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

/** y = (D - A) v */
function applyLaplacian (graph: Graph, v: Float64Array, y: Float64Array): void {
  for (let node = 0; node < v.length; node++) {
    const adjacent = graph.neighbours[node] ?? []
    let sum = adjacent.length * (v[node] as number)
    for (const other of adjacent) sum -= v[other] as number
    y[node] = sum
  }
}

/**
 * The number of eigenvalues below x of the symmetric tridiagonal matrix with diagonal `alpha` and
 * off-diagonal `beta` (beta[j] joins j and j + 1), by Sturm's sequence.
 */
function countBelow (alpha: readonly number[], beta: readonly number[], size: number, x: number): number {
  let count = 0
  let d = 1
  for (let j = 0; j < size; j++) {
    const off = j === 0 ? 0 : (beta[j - 1] as number) ** 2
    d = (alpha[j] as number) - x - (j === 0 ? 0 : off / d)
    if (d === 0) d = -1e-300
    if (d < 0) count++
  }
  return count
}

/** The `index`-th smallest eigenvalue (0-based) of a symmetric tridiagonal matrix, by bisection inside [low, high]. */
function tridiagonalEigenvalue (alpha: readonly number[], beta: readonly number[], size: number, index: number, low: number, high: number): number {
  let a = low
  let b = high
  for (let iteration = 0; iteration < 200 && b - a > 1e-15 * Math.max(1, Math.abs(a), Math.abs(b)); iteration++) {
    const middle = 0.5 * (a + b)
    if (countBelow(alpha, beta, size, middle) > index) b = middle
    else a = middle
  }
  return 0.5 * (a + b)
}

/**
 * The Laplacian's second-smallest and largest eigenvalues by Lanczos iterations in the subspace
 * orthogonal to the all-ones vector (the kernel of a connected graph's Laplacian), where the smallest
 * eigenvalue is the second-smallest of the whole matrix; the mean is removed at every iteration so that
 * rounding cannot bring the kernel back. Without reorthogonalisation the basis loses orthogonality as
 * Ritz values converge, which only repeats converged values (Paige): the extremes are still right, and
 * an iteration costs one product with the sparse Laplacian (10,000 peers: milliseconds, where a dense
 * decomposition takes hours). The start vector is fixed (a hash of the node index) and the arithmetic
 * sequential, so the result is a pure function of the graph. Ritz values approach the extremes from
 * inside; the iteration stops when both have moved by less than 1e-13 relative over ten iterations.
 */
export function laplacianExtremesLanczos (graph: Graph, maxIterations = 3000): { secondSmallest: number, largest: number } {
  const n = graph.names.length
  if (n < 2) return { secondSmallest: 1, largest: 1 }
  let maxDegree = 0
  for (const adjacent of graph.neighbours) maxDegree = Math.max(maxDegree, adjacent.length)
  const bound = 2 * maxDegree + 1
  const alpha: number[] = []
  const beta: number[] = []
  const removeMean = (vector: Float64Array): void => {
    let mean = 0
    for (let index = 0; index < n; index++) mean += vector[index] as number
    mean /= n
    for (let index = 0; index < n; index++) vector[index] = (vector[index] as number) - mean
  }
  let v = new Float64Array(n)
  for (let index = 0; index < n; index++) {
    let hash = Math.imul(index + 1, 0x9e3779b1)
    hash = Math.imul(hash ^ (hash >>> 15), 0x85ebca6b)
    hash ^= hash >>> 13
    v[index] = ((hash >>> 0) / 4294967296) - 0.5
  }
  removeMean(v)
  let length = 0
  for (let index = 0; index < n; index++) length += (v[index] as number) ** 2
  length = Math.sqrt(length)
  for (let index = 0; index < n; index++) v[index] = (v[index] as number) / length
  let before = new Float64Array(n)
  let w = new Float64Array(n)
  let previous = { low: Number.NaN, high: Number.NaN }
  const extremes = (): { secondSmallest: number, largest: number } => ({
    secondSmallest: tridiagonalEigenvalue(alpha, beta, alpha.length, 0, -1, bound),
    largest: tridiagonalEigenvalue(alpha, beta, alpha.length, alpha.length - 1, -1, bound)
  })
  for (let k = 0; k < maxIterations; k++) {
    applyLaplacian(graph, v, w)
    let a = 0
    for (let index = 0; index < n; index++) a += (w[index] as number) * (v[index] as number)
    alpha.push(a)
    const b = k === 0 ? 0 : beta[k - 1] as number
    for (let index = 0; index < n; index++) w[index] = (w[index] as number) - a * (v[index] as number) - b * (before[index] as number)
    removeMean(w)
    let norm = 0
    for (let index = 0; index < n; index++) norm += (w[index] as number) ** 2
    norm = Math.sqrt(norm)
    // an invariant subspace: its Ritz values are exact
    if (norm < 1e-12 * bound) break
    if (alpha.length % 10 === 0) {
      const { secondSmallest: low, largest: high } = extremes()
      if (Math.abs(low - previous.low) <= 1e-13 * high && Math.abs(high - previous.high) <= 1e-13 * high) break
      previous = { low, high }
    }
    beta.push(norm)
    const next = before
    for (let index = 0; index < n; index++) next[index] = (w[index] as number) / norm
    before = v
    v = next
    w = new Float64Array(n)
  }
  return extremes()
}
