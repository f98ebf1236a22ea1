import { describe, expect, it } from 'vitest'
import {
  degree, DENSE_SPECTRUM_NODES, diameter, edges, graphFromEdges, indexOf, isConnected, laplacianExtremes, laplacianExtremesLanczos, metropolisMatrix,
  metropolisWeights, spectralGap, type Graph
} from '../../src/consensus/graph.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { buildTopology, parseTopologySpec } from '../../src/consensus/topology.ts'
import { readFile } from 'node:fs/promises'
import { fixture } from '../helpers/data.ts'

describe('topologies and their metrics', () => {
  it('closed-form diameters', () => {
    const rng = createRng(1)
    expect(diameter(buildTopology('ring', 16, rng))).toBe(8)
    expect(diameter(buildTopology('ring', 15, rng))).toBe(7)
    expect(diameter(buildTopology('line', 10, rng))).toBe(9)
    expect(diameter(buildTopology('star', 10, rng))).toBe(2)
    expect(diameter(buildTopology('complete', 10, rng))).toBe(1)
    expect(diameter(buildTopology('grid', 16, rng))).toBe(6)
    expect(diameter(buildTopology('grid:2x8', 16, rng))).toBe(8)
  })

  it('the ring Metropolis matrix has eigenvalues 1/3 + (2/3) cos(2 pi k / n)', () => {
    for (const n of [5, 8, 16]) {
      const expected = Math.max(...Array.from({ length: n - 1 }, (_, k) => Math.abs(1 / 3 + (2 / 3) * Math.cos((2 * Math.PI * (k + 1)) / n))))
      const { secondLargestModulus, gap } = spectralGap(buildTopology('ring', n, createRng(1)))
      expect(secondLargestModulus).toBeCloseTo(expected, 12)
      expect(gap).toBeCloseTo(1 - expected, 12)
    }
  })

  it('the Laplacian of a ring has eigenvalues 2 - 2 cos(2 pi k / n)', () => {
    const { secondSmallest, largest } = laplacianExtremes(buildTopology('ring', 16, createRng(1)))
    expect(secondSmallest).toBeCloseTo(2 - 2 * Math.cos((2 * Math.PI) / 16), 12)
    expect(largest).toBeCloseTo(4, 12)
  })

  it('Lanczos gives the dense decomposition\'s Laplacian extremes, and closed forms beyond the dense size', () => {
    for (const [spec, n] of [['regular:4', 200], ['ring', 250], ['er:0.05', 240], ['grid', 225], ['star', 100], ['smallworld:4,0.1', 256]] as const) {
      const graph = buildTopology(spec, n, createRng(3))
      expect(n).toBeLessThanOrEqual(DENSE_SPECTRUM_NODES)
      const dense = laplacianExtremes(graph)
      const lanczos = laplacianExtremesLanczos(graph)
      expect(Math.abs(lanczos.secondSmallest - dense.secondSmallest) / dense.secondSmallest, spec).toBeLessThan(1e-10)
      expect(Math.abs(lanczos.largest - dense.largest) / dense.largest, spec).toBeLessThan(1e-12)
    }
    // a 20x20 grid (400 nodes, past the dense size): the eigenvalues of a path's Laplacian are 2 - 2 cos(pi k / n), a grid's are sums of two
    const grid = laplacianExtremes(buildTopology('grid', 400, createRng(1)))
    expect(grid.secondSmallest).toBeCloseTo(2 - 2 * Math.cos(Math.PI / 20), 10)
    expect(grid.largest).toBeCloseTo(2 * (2 - 2 * Math.cos((19 * Math.PI) / 20)), 10)
    const ring = laplacianExtremes(buildTopology('ring', 301, createRng(1)))
    expect(ring.secondSmallest).toBeCloseTo(2 - 2 * Math.cos((2 * Math.PI) / 301), 10)
    expect(ring.largest).toBeCloseTo(2 - 2 * Math.cos((2 * Math.PI * 150) / 301), 10)
  })

  it('random graphs are connected, have the asked degree and depend only on the seed', () => {
    const regular = buildTopology('regular:4', 50, createRng(3))
    expect(regular.neighbours.every((list) => list.length === 4)).toBe(true)
    expect(isConnected(regular)).toBe(true)
    for (const spec of ['er:0.2', 'smallworld:4,0.2', 'regular:3']) {
      const first = buildTopology(spec, 30, createRng(9))
      const second = buildTopology(spec, 30, createRng(9))
      expect(isConnected(first)).toBe(true)
      expect(first.neighbours).toEqual(second.neighbours)
    }
    expect(buildTopology('er:0.2', 30, createRng(9)).neighbours).not.toEqual(buildTopology('er:0.2', 30, createRng(10)).neighbours)
  })

  it('reads a real adjacency: the 140 districts of Bavaria and Baden-Wuerttemberg', async () => {
    const text = await readFile(fixture('fluBYBW_adjacency.csv'), 'utf8')
    const edges = text.trim().split('\n').slice(1).map((line) => line.split(',').map((cell) => cell.replaceAll('"', '')) as [string, string])
    const graph = graphFromEdges(null, edges)
    expect(graph.names).toHaveLength(140)
    expect(isConnected(graph)).toBe(true)
    expect(graph.neighbours.reduce((sum, list) => sum + list.length, 0) / 2).toBe(336)
    expect(diameter(graph)).toBeGreaterThan(5)
  })

  it('rejects bad specifications with a typed error', () => {
    for (const spec of ['torus', 'er:1.5', 'regular:x', 'smallworld:3', 'grid:3by4']) {
      expect(() => parseTopologySpec(spec)).toThrow(expect.objectContaining({ code: 'TOPOLOGY_INVALID' }))
    }
    expect(() => buildTopology('regular:3', 5, createRng(1))).toThrow(expect.objectContaining({ code: 'TOPOLOGY_INVALID' }))
    expect(() => buildTopology('er:0', 10, createRng(1))).toThrow(expect.objectContaining({ code: 'TOPOLOGY_INVALID' }))
    expect(() => graphFromEdges(['a', 'b'], [['a', 'a']])).toThrow(expect.objectContaining({ code: 'TOPOLOGY_INVALID' }))
  })
})

const topology = (spec: string, peers: number): Graph => buildTopology(spec, peers, createRng(1))

describe('graphs from edge lists', () => {
  it('infers names in order of first mention, merges repeated edges and sorts neighbours', () => {
    const graph = graphFromEdges(null, [['b', 'a'], ['a', 'b'], ['c', 'a'], ['b', 'c'], ['c', 'b']])
    expect(graph.names).toEqual(['b', 'a', 'c'])
    expect(graph.neighbours).toEqual([[1, 2], [0, 2], [0, 1]])
    expect(edges(graph)).toEqual([[0, 1], [0, 2], [1, 2]])
    expect(indexOf(graph, 'c')).toBe(2)
    expect(indexOf(graph, 'z')).toBe(-1)
  })

  it('keeps given names, isolated nodes included', () => {
    const graph = graphFromEdges(['x', 'y', 'z'], [['x', 'y']])
    expect(graph.neighbours).toEqual([[1], [0], []])
    expect(degree(graph, 2)).toBe(0)
    expect(isConnected(graph)).toBe(false)
  })

  it('rejects self-loops, unknown and repeated names with TOPOLOGY_INVALID', () => {
    const code = (build: () => unknown): string | undefined => {
      try { build() } catch (error) { return (error as { code?: string }).code }
      return undefined
    }
    expect(code(() => graphFromEdges(null, [['a', 'a']]))).toBe('TOPOLOGY_INVALID')
    expect(code(() => graphFromEdges(['a', 'b'], [['a', 'c']]))).toBe('TOPOLOGY_INVALID')
    expect(code(() => graphFromEdges(['a', 'a'], []))).toBe('TOPOLOGY_INVALID')
  })
})

describe('graph metrics over many sizes', () => {
  it('diameters match the closed forms', () => {
    for (const n of [2, 5, 16, 17]) {
      expect(diameter(topology('ring', n))).toBe(Math.floor(n / 2))
      expect(diameter(topology('line', n))).toBe(n - 1)
      expect(diameter(topology('complete', n))).toBe(1)
    }
    expect(diameter(topology('star', 10))).toBe(2)
    expect(diameter(topology('grid', 12))).toBe(2 + 3)
    expect(diameter(topology('grid:2x8', 16))).toBe(1 + 7)
    expect(diameter(topology('ring', 1))).toBe(0)
  })

  it('refuses the diameter of a disconnected graph with GRAPH_DISCONNECTED', () => {
    const graph = graphFromEdges(['a', 'b', 'c'], [['a', 'b']])
    expect(() => diameter(graph)).toThrowError(expect.objectContaining({ code: 'GRAPH_DISCONNECTED' }))
  })

  it('Metropolis weights are symmetric, doubly stochastic and aligned with the neighbour lists', () => {
    const graph = buildTopology('er:0.3', 20, createRng(5))
    const n = graph.names.length
    const matrix = metropolisMatrix(graph)
    for (let row = 0; row < n; row++) {
      let rowSum = 0
      for (let column = 0; column < n; column++) {
        rowSum += matrix[row * n + column]!
        expect(matrix[row * n + column]).toBe(matrix[column * n + row])
        expect(matrix[row * n + column]).toBeGreaterThanOrEqual(0)
      }
      expect(rowSum).toBeCloseTo(1, 14)
    }
    const rows = metropolisWeights(graph)
    graph.neighbours.forEach((adjacent, node) => {
      expect(rows[node]!.self).toBe(matrix[node * n + node])
      adjacent.forEach((other, slot) => {
        expect(rows[node]!.neighbour[slot]).toBe(1 / (1 + Math.max(degree(graph, node), degree(graph, other))))
      })
      expect(metropolisWeights(graph, node)).toEqual(rows[node])
    })
    expect(() => metropolisWeights(graph, n)).toThrow(RangeError)
  })

  it('the ring spectrum is 1/3 + (2/3) cos(2 pi k / n)', () => {
    for (const n of [5, 8, 16, 31]) {
      const { secondLargestModulus, gap } = spectralGap(topology('ring', n))
      const expected = Math.max(1 / 3 + (2 / 3) * Math.cos(2 * Math.PI / n), Math.abs(1 / 3 + (2 / 3) * Math.cos(2 * Math.PI * Math.floor(n / 2) / n)))
      expect(secondLargestModulus).toBeCloseTo(expected, 12)
      expect(gap).toBeCloseTo(1 - expected, 12)
    }
    expect(spectralGap(topology('complete', 7)).secondLargestModulus).toBeCloseTo(0, 12)
    expect(spectralGap(graphFromEdges(['a', 'b', 'c'], [['a', 'b']])).gap).toBeCloseTo(0, 12)
  })

  it('Laplacian extremes match the closed forms', () => {
    const ring = laplacianExtremes(topology('ring', 12))
    expect(ring.secondSmallest).toBeCloseTo(2 - 2 * Math.cos(2 * Math.PI / 12), 12)
    expect(ring.largest).toBeCloseTo(4, 12)
    const star = laplacianExtremes(topology('star', 9))
    expect(star.secondSmallest).toBeCloseTo(1, 12)
    expect(star.largest).toBeCloseTo(9, 12)
    const complete = laplacianExtremes(topology('complete', 6))
    expect(complete.secondSmallest).toBeCloseTo(6, 12)
    expect(complete.largest).toBeCloseTo(6, 12)
  })
})
