import { EigenvalueDecomposition, Matrix } from 'ml-matrix'
import { GraphDisconnectedError, TopologySpecError } from './errors.ts'

/** An undirected graph over named peers: sorted neighbour lists, no self-loops, no duplicate edges. */
export interface Graph {
  readonly names: string[]
  readonly neighbours: number[][]
}

export function graphFromEdges (names: readonly string[] | null, edges: ReadonlyArray<readonly [string, string]>): Graph {
  const nodeNames = names === null ? [...new Set(edges.flatMap(([a, b]) => [a, b]))] : [...names]
  const index = new Map(nodeNames.map((name, position) => [name, position]))
  if (index.size !== nodeNames.length) throw new TopologySpecError('node names must be unique')
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

export function indexOf (graph: Graph, name: string): number {
  return graph.names.indexOf(name)
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

/** The longest shortest path; GraphDisconnectedError when some pair is not connected. */
export function diameter (graph: Graph): number {
  let longest = 0
  for (let node = 0; node < graph.names.length; node++) {
    const distance = distancesFrom(graph, node)
    for (const value of distance) {
      if (value < 0) throw new GraphDisconnectedError(`the graph is not connected: ${graph.names[node]} cannot reach every peer`)
      if (value > longest) longest = value
    }
  }
  return longest
}

/** Metropolis weights: W_ij = 1 / (1 + max(d_i, d_j)) on edges, W_ii = 1 - sum_j W_ij. */
export function metropolisWeights (graph: Graph, node: number): { self: number, neighbour: Float64Array } {
  const adjacent = graph.neighbours[node] ?? []
  const own = adjacent.length
  const neighbour = Float64Array.from(adjacent, (other) => 1 / (1 + Math.max(own, degree(graph, other))))
  let self = 1
  for (const weight of neighbour) self -= weight
  return { self, neighbour }
}

export function metropolisMatrix (graph: Graph): Float64Array {
  const n = graph.names.length
  const matrix = new Float64Array(n * n)
  for (let node = 0; node < n; node++) {
    const weights = metropolisWeights(graph, node)
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
 * consensus error falls like rho^k, so it needs about ln(eps) / ln(rho) rounds.
 */
export function spectralGap (graph: Graph): { secondLargestModulus: number, gap: number } {
  const n = graph.names.length
  if (n < 2) return { secondLargestModulus: 0, gap: 1 }
  const eigenvalues = symmetricEigenvalues(metropolisMatrix(graph), n)
  // the largest eigenvalue is 1 (the consensus direction); rho is the largest modulus among the rest
  const rest = eigenvalues.slice(0, -1)
  const secondLargestModulus = Math.max(...rest.map(Math.abs))
  return { secondLargestModulus, gap: 1 - secondLargestModulus }
}

/** The second-smallest and the largest eigenvalues of the graph Laplacian (for the ADMM penalty). */
export function laplacianExtremes (graph: Graph): { secondSmallest: number, largest: number } {
  const n = graph.names.length
  if (n < 2) return { secondSmallest: 1, largest: 1 }
  const laplacian = new Float64Array(n * n)
  for (let node = 0; node < n; node++) {
    laplacian[node * n + node] = degree(graph, node)
    for (const other of graph.neighbours[node] ?? []) laplacian[node * n + other] = -1
  }
  const eigenvalues = symmetricEigenvalues(laplacian, n)
  return { secondSmallest: eigenvalues[1] as number, largest: eigenvalues[n - 1] as number }
}
