import { describe, expect, it } from 'vitest'
import { diameter, graphFromEdges, isConnected, laplacianExtremes, spectralGap } from '../../src/consensus/graph.ts'
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
