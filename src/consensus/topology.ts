import { TopologySpecError } from './errors.ts'
import { graphFromAdjacency, isConnected, type Graph } from './graph.ts'
import { randomInt } from './rng.ts'
import type { Rng } from './types.ts'

/**
 * Named topologies for simulation: ring, line, star, complete, grid (most square, or grid:RxC),
 * Erdős–Rényi er:p, random k-regular regular:k, Watts–Strogatz smallworld:k,p, and file:PATH (an edge
 * list, read by the caller). Random graphs are redrawn until connected, a bounded number of times.
 */
export type TopologySpec =
  | { kind: 'ring' } | { kind: 'line' } | { kind: 'star' } | { kind: 'complete' }
  | { kind: 'grid', rows: number | null, columns: number | null }
  | { kind: 'er', probability: number }
  | { kind: 'regular', degree: number }
  | { kind: 'smallworld', neighbours: number, probability: number }
  | { kind: 'file', path: string }

const RANDOM_TRIES = 200

function probabilityOf (text: string, spec: string): number {
  if (text.trim() === '') throw new TopologySpecError(`${spec}: a probability is missing`)
  const value = Number(text)
  if (!(value >= 0 && value <= 1)) throw new TopologySpecError(`${spec}: ${text} is not a probability`)
  return value
}

function positiveInteger (text: string, spec: string): number {
  if (text.trim() === '') throw new TopologySpecError(`${spec}: a number is missing`)
  const value = Number(text)
  if (!Number.isInteger(value) || value < 1) throw new TopologySpecError(`${spec}: ${text} is not a positive integer`)
  return value
}

/** Parses a topology spec; `file:PATH` comes back as { kind: 'file', path } for the caller to read. */
export function parseTopologySpec (spec: string): TopologySpec {
  const trimmed = spec.trim()
  const colon = trimmed.indexOf(':')
  const name = colon < 0 ? trimmed : trimmed.slice(0, colon)
  const argument = colon < 0 ? '' : trimmed.slice(colon + 1)
  switch (name) {
    case 'ring': case 'line': case 'star': case 'complete':
      if (argument !== '') throw new TopologySpecError(`${spec}: ${name} takes no argument`)
      return { kind: name }
    case 'grid': {
      if (argument === '') return { kind: 'grid', rows: null, columns: null }
      const match = /^(\d+)x(\d+)$/.exec(argument)
      if (match === null) throw new TopologySpecError(`${spec}: write grid or grid:RxC`)
      return { kind: 'grid', rows: positiveInteger(match[1] as string, spec), columns: positiveInteger(match[2] as string, spec) }
    }
    case 'er': return { kind: 'er', probability: probabilityOf(argument, spec) }
    case 'regular': return { kind: 'regular', degree: positiveInteger(argument, spec) }
    case 'smallworld': {
      const [k, p, extra] = argument.split(',')
      if (k === undefined || p === undefined || extra !== undefined) throw new TopologySpecError(`${spec}: write smallworld:k,p`)
      return { kind: 'smallworld', neighbours: positiveInteger(k, spec), probability: probabilityOf(p, spec) }
    }
    case 'file':
      if (argument === '') throw new TopologySpecError(`${spec}: write file:edges.csv`)
      return { kind: 'file', path: argument }
    default:
      throw new TopologySpecError(`unknown topology "${spec}" (ring, line, star, complete, grid[:RxC], er:p, regular:k, smallworld:k,p, file:PATH)`)
  }
}

function fromSets (names: readonly string[], sets: Array<Set<number>>): Graph {
  return graphFromAdjacency(names, sets.map((set) => [...set]))
}

function link (sets: Array<Set<number>>, a: number, b: number): void {
  sets[a]?.add(b)
  sets[b]?.add(a)
}

function emptySets (n: number): Array<Set<number>> {
  return Array.from({ length: n }, () => new Set<number>())
}

function mostSquare (n: number): [number, number] {
  let rows = Math.floor(Math.sqrt(n))
  while (n % rows !== 0) rows--
  return [rows, n / rows]
}

/**
 * A uniformly paired random k-regular multigraph is simple only with probability about
 * exp((1 - k^2) / 4), hopeless beyond k = 5; Steger and Wormald's variant pairs two random free stubs
 * only when they make a new edge between distinct nodes, and starts over in the rare case that no such
 * pair is left. Returns null on such a dead end.
 */
function drawRegular (n: number, k: number, rng: Rng): Array<Set<number>> | null {
  const drawn = emptySets(n)
  const free = Int32Array.from({ length: n * k }, (_, stub) => Math.floor(stub / k))
  let size = free.length
  let misses = 0
  while (size > 0) {
    const first = randomInt(rng, size)
    const second = randomInt(rng, size)
    const a = free[first] as number
    const b = free[second] as number
    if (a !== b && drawn[a]?.has(b) !== true) {
      link(drawn, a, b)
      // remove both stubs by moving the last ones into their places, the higher position first
      const high = Math.max(first, second)
      const low = Math.min(first, second)
      free[high] = free[--size] as number
      free[low] = free[--size] as number
      misses = 0
      continue
    }
    if (++misses > 64) {
      if (!anyPairLeft(free, size, drawn)) return null
      misses = 0
    }
  }
  return drawn
}

function anyPairLeft (free: Int32Array, size: number, drawn: Array<Set<number>>): boolean {
  for (let first = 0; first < size; first++) {
    for (let second = first + 1; second < size; second++) {
      const a = free[first] as number
      const b = free[second] as number
      if (a !== b && drawn[a]?.has(b) !== true) return true
    }
  }
  return false
}

function complement (sets: Array<Set<number>>): Array<Set<number>> {
  const n = sets.length
  const result = emptySets(n)
  for (let node = 0; node < n; node++) {
    for (let other = node + 1; other < n; other++) if (sets[node]?.has(other) !== true) link(result, node, other)
  }
  return result
}

function randomUntilConnected (spec: string, names: readonly string[], draw: () => Array<Set<number>> | null): Graph {
  for (let attempt = 0; attempt < RANDOM_TRIES; attempt++) {
    const sets = draw()
    if (sets === null) continue
    const graph = fromSets(names, sets)
    if (isConnected(graph)) return graph
  }
  throw new TopologySpecError(`${spec}: no connected graph with ${names.length} peers in ${RANDOM_TRIES} draws; raise the density`)
}

/**
 * The graph a spec names, over `peers` nodes called `names` (default peer-0, peer-1, ...). Random
 * topologies draw from `rng`, so a seed fixes the graph. Bad specs, impossible sizes and random
 * topologies that stay disconnected throw TopologySpecError naming the spec.
 */
export function buildTopology (spec: string, peers: number, rng: Rng, names?: readonly string[]): Graph {
  if (!Number.isInteger(peers) || peers < 1) throw new TopologySpecError(`a topology needs a positive number of peers, got ${peers}`)
  const nodeNames = names === undefined ? Array.from({ length: peers }, (_, index) => `peer-${index}`) : [...names]
  if (nodeNames.length !== peers) throw new TopologySpecError(`${nodeNames.length} names for ${peers} peers`)
  const parsed = parseTopologySpec(spec)
  const n = peers
  const sets = emptySets(n)
  switch (parsed.kind) {
    case 'ring':
      for (let node = 0; node < n; node++) if (n > 1) link(sets, node, (node + 1) % n)
      return fromSets(nodeNames, sets)
    case 'line':
      for (let node = 0; node + 1 < n; node++) link(sets, node, node + 1)
      return fromSets(nodeNames, sets)
    case 'star':
      for (let node = 1; node < n; node++) link(sets, 0, node)
      return fromSets(nodeNames, sets)
    case 'complete':
      for (let node = 0; node < n; node++) for (let other = node + 1; other < n; other++) link(sets, node, other)
      return fromSets(nodeNames, sets)
    case 'grid': {
      const [rows, columns] = parsed.rows === null ? mostSquare(n) : [parsed.rows, parsed.columns as number]
      if (rows * columns !== n) throw new TopologySpecError(`${spec}: a ${rows}x${columns} grid has ${rows * columns} peers, not ${n}`)
      for (let row = 0; row < rows; row++) {
        for (let column = 0; column < columns; column++) {
          const node = row * columns + column
          if (column + 1 < columns) link(sets, node, node + 1)
          if (row + 1 < rows) link(sets, node, node + columns)
        }
      }
      return fromSets(nodeNames, sets)
    }
    case 'er':
      return randomUntilConnected(spec, nodeNames, () => {
        const drawn = emptySets(n)
        for (let node = 0; node < n; node++) for (let other = node + 1; other < n; other++) if (rng() < parsed.probability) link(drawn, node, other)
        return drawn
      })
    case 'regular': {
      const k = parsed.degree
      if (k >= n || (n * k) % 2 !== 0) throw new TopologySpecError(`${spec}: a ${k}-regular graph on ${n} peers needs k < n and n*k even`)
      // A dense regular graph is the complement of a sparse one, which pairing draws far more easily.
      const dense = 2 * k > n - 1
      const drawDegree = dense ? n - 1 - k : k
      return randomUntilConnected(spec, nodeNames, () => {
        const drawn = drawRegular(n, drawDegree, rng)
        return drawn === null || !dense ? drawn : complement(drawn)
      })
    }
    case 'smallworld': {
      const k = parsed.neighbours
      if (k % 2 !== 0 || k >= n) throw new TopologySpecError(`${spec}: k must be even and smaller than the number of peers`)
      return randomUntilConnected(spec, nodeNames, () => {
        const drawn = emptySets(n)
        for (let node = 0; node < n; node++) for (let step = 1; step <= k / 2; step++) link(drawn, node, (node + step) % n)
        // Watts–Strogatz: each lattice edge (node, node + step), taken lap by lap, moves its far end to
        // a uniformly chosen peer that is neither the node nor already its neighbour, with probability p.
        for (let step = 1; step <= k / 2; step++) {
          for (let node = 0; node < n; node++) {
            const other = (node + step) % n
            const adjacent = drawn[node] as Set<number>
            if (rng() >= parsed.probability || !adjacent.has(other) || adjacent.size >= n - 1) continue
            let target = randomInt(rng, n)
            while (target === node || adjacent.has(target)) target = randomInt(rng, n)
            adjacent.delete(other)
            drawn[other]?.delete(node)
            link(drawn, node, target)
          }
        }
        return drawn
      })
    }
    case 'file':
      throw new TopologySpecError(`${spec}: read the edge list and use graphFromEdges`)
  }
}
