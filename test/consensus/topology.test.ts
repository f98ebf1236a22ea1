import { describe, expect, it } from 'vitest'
import { degree, edges, isConnected, type Graph } from '../../src/consensus/graph.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { buildTopology, parseTopologySpec } from '../../src/consensus/topology.ts'

const codeOf = (build: () => unknown): string | undefined => {
  try { build() } catch (error) { return (error as { code?: string }).code }
  return undefined
}

const degrees = (graph: Graph): number[] => graph.names.map((_, node) => degree(graph, node))

describe('topology specs', () => {
  it('parses every kind, a file path included', () => {
    expect(parseTopologySpec('ring')).toEqual({ kind: 'ring' })
    expect(parseTopologySpec('grid')).toEqual({ kind: 'grid', rows: null, columns: null })
    expect(parseTopologySpec('grid:3x4')).toEqual({ kind: 'grid', rows: 3, columns: 4 })
    expect(parseTopologySpec('er:0.25')).toEqual({ kind: 'er', probability: 0.25 })
    expect(parseTopologySpec('regular:3')).toEqual({ kind: 'regular', degree: 3 })
    expect(parseTopologySpec('smallworld:4,0.1')).toEqual({ kind: 'smallworld', neighbours: 4, probability: 0.1 })
    expect(parseTopologySpec('file:edges.csv')).toEqual({ kind: 'file', path: 'edges.csv' })
  })

  it('rejects bad specs with TOPOLOGY_INVALID', () => {
    for (const spec of ['torus', 'ring:3', 'grid:3by4', 'er', 'er:', 'er:1.5', 'regular:0', 'regular:x', 'smallworld:4', 'smallworld:4,0.1,2', 'file:']) {
      expect(codeOf(() => parseTopologySpec(spec)), spec).toBe('TOPOLOGY_INVALID')
    }
    const rng = createRng(1)
    expect(codeOf(() => buildTopology('grid:3x3', 10, rng))).toBe('TOPOLOGY_INVALID')
    expect(codeOf(() => buildTopology('regular:3', 9, rng))).toBe('TOPOLOGY_INVALID')
    expect(codeOf(() => buildTopology('smallworld:3,0.1', 10, rng))).toBe('TOPOLOGY_INVALID')
    expect(codeOf(() => buildTopology('file:edges.csv', 10, rng))).toBe('TOPOLOGY_INVALID')
    expect(codeOf(() => buildTopology('ring', 3, rng, ['a', 'b']))).toBe('TOPOLOGY_INVALID')
    expect(codeOf(() => buildTopology('ring', 0, rng))).toBe('TOPOLOGY_INVALID')
  })

  it('names a sparse random graph that never connects', () => {
    expect(() => buildTopology('er:0.01', 40, createRng(1))).toThrowError(expect.objectContaining({ code: 'TOPOLOGY_INVALID', message: expect.stringContaining('er:0.01') }))
  })
})

describe('deterministic topologies', () => {
  it('have the expected edge counts and degrees', () => {
    const rng = createRng(1)
    expect(edges(buildTopology('ring', 10, rng))).toHaveLength(10)
    expect(edges(buildTopology('ring', 2, rng))).toHaveLength(1)
    expect(edges(buildTopology('line', 10, rng))).toHaveLength(9)
    expect(degrees(buildTopology('star', 10, rng))).toEqual([9, 1, 1, 1, 1, 1, 1, 1, 1, 1])
    expect(edges(buildTopology('complete', 10, rng))).toHaveLength(45)
    const grid = buildTopology('grid', 12, rng)
    expect(edges(grid)).toHaveLength(3 * 3 + 2 * 4)
    expect(buildTopology('ring', 3, rng, ['a', 'b', 'c']).names).toEqual(['a', 'b', 'c'])
    expect(buildTopology('line', 4, rng).names).toEqual(['peer-0', 'peer-1', 'peer-2', 'peer-3'])
  })
})

describe('random topologies', () => {
  it('Erdős–Rényi graphs are connected, with about p n (n - 1) / 2 edges', () => {
    for (let seed = 0; seed < 10; seed++) {
      const graph = buildTopology('er:0.2', 40, createRng(seed))
      expect(isConnected(graph)).toBe(true)
      expect(edges(graph).length).toBeGreaterThan(0.2 * 780 * 0.7)
      expect(edges(graph).length).toBeLessThan(0.2 * 780 * 1.3)
    }
  })

  it('k-regular graphs have degree k everywhere, sparse and dense', () => {
    for (const [n, k] of [[10, 3], [20, 4], [50, 6], [100, 8], [200, 12], [20, 15], [12, 11], [16, 8]] as const) {
      const graph = buildTopology(`regular:${k}`, n, createRng(n + k))
      expect(degrees(graph).every((value) => value === k), `${n} peers, degree ${k}`).toBe(true)
      expect(isConnected(graph)).toBe(true)
    }
  })

  it('small worlds keep n k / 2 edges, stay connected and rewire about a fraction p', () => {
    const lattice = buildTopology('smallworld:4,0', 30, createRng(1))
    expect(edges(lattice)).toHaveLength(60)
    expect(degrees(lattice).every((value) => value === 4)).toBe(true)
    let rewired = 0
    for (let seed = 0; seed < 10; seed++) {
      const graph = buildTopology('smallworld:4,0.2', 30, createRng(seed))
      expect(edges(graph)).toHaveLength(60)
      expect(isConnected(graph)).toBe(true)
      const latticeEdges = new Set(edges(lattice).map(([a, b]) => `${a}-${b}`))
      rewired += edges(graph).filter(([a, b]) => !latticeEdges.has(`${a}-${b}`)).length
    }
    expect(rewired / 600).toBeGreaterThan(0.12)
    expect(rewired / 600).toBeLessThan(0.28)
  })

  it('the same seed gives the same graph, another seed another', () => {
    for (const spec of ['er:0.2', 'regular:4', 'smallworld:4,0.3']) {
      const a = buildTopology(spec, 30, createRng(11))
      const b = buildTopology(spec, 30, createRng(11))
      const c = buildTopology(spec, 30, createRng(12))
      expect(b).toEqual(a)
      expect(c).not.toEqual(a)
    }
  })
})
