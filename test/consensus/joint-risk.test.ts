import { describe, expect, it } from 'vitest'
import { encodeVector, toBytes } from '../../src/consensus/protocols/fixed-point.ts'
import { graphFromEdges, type Graph } from '../../src/consensus/graph.ts'
import { createJointRisk, jointRiskGraph } from '../../src/consensus/protocols/joint-risk.ts'
import { simulateJointRisk } from '../../src/consensus/sim/joint-risk-simulation.ts'
import { createRng } from '../../src/consensus/rng.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import { loadFluBYBW, loadMeaslesDE } from '../helpers/forecast-data.ts'

/** Every way a message could plausibly carry h: float64 and float32 in both byte orders, and fixed point. */
function encodings (h: number): Uint8Array[] {
  const float64 = new DataView(new ArrayBuffer(8))
  const float32 = new DataView(new ArrayBuffer(4))
  const forms: Uint8Array[] = []
  for (const little of [true, false]) {
    float64.setFloat64(0, h, little)
    forms.push(new Uint8Array(float64.buffer.slice(0)))
    float32.setFloat32(0, h, little)
    forms.push(new Uint8Array(float32.buffer.slice(0)))
  }
  // the masked sums' fixed point (round(h 2^48), 128 bits little-endian), and its low 64 bits alone
  const fixed = toBytes(encodeVector([h]))
  forms.push(fixed, fixed.subarray(0, 8))
  return forms
}

/** Bytes as a latin-1 string (one character per byte), so that a byte search is a fast substring search. */
function latin1 (bytes: Uint8Array): string {
  let text = ''
  for (let start = 0; start < bytes.length; start += 4096) text += String.fromCharCode(...bytes.subarray(start, start + 4096))
  return text
}

function randomScores (count: number, seed: number): number[] {
  const rng = createRng(seed)
  return Array.from({ length: count }, () => rng())
}

function checkNothingLeaks (graph: Graph, h: readonly number[], messages: ConsensusMessage[], log: unknown[], open: ReadonlySet<string>): void {
  const logText = JSON.stringify(log)
  // every message's data, one after another (a match across two messages could only fail the test)
  const data = messages.map((message) => latin1(message.data)).join('')
  const values = new Set(messages.flatMap((message) => Array.from(message.values)))
  h.forEach((value, region) => {
    if (open.has(graph.names[region] as string)) return
    expect(values.has(value)).toBe(false)
    for (const form of encodings(value)) expect(data.includes(latin1(form))).toBe(false)
    expect(logText).not.toContain(String(value))
    expect(logText).not.toContain(value.toPrecision(6))
  })
}

describe('joint risk: the federation\'s sum of h by masked sums', () => {
  it('fluBYBW, 140 regions (spanning-tree sum): no message or log entry carries a region\'s h; the sum is exact', async () => {
    const { graph } = await loadFluBYBW()
    const h = randomScores(140, 11)
    const messages: ConsensusMessage[] = []
    const run = simulateJointRisk({ graph, h, seed: 4, keepLog: true, observe: (_, message) => { messages.push(message) } })
    expect(messages.length).toBeGreaterThan(500)
    expect(messages.some((message) => message.kind.endsWith('.up'))).toBe(true)
    checkNothingLeaks(graph, h, messages, run.log, new Set())
    // the search does find what is there: the total comes down the tree, with its region count of 140
    const data = messages.map((message) => latin1(message.data)).join('')
    expect(data.includes(latin1(toBytes(encodeVector([140]))))).toBe(true)
    const plain = h.reduce((sum, value) => sum + value, 0)
    for (const result of run.results) {
      expect(Math.abs(result.sum - plain)).toBeLessThan(1e-9)
      expect(Math.abs(result.mean - plain / 140)).toBeLessThan(1e-11)
      expect(result.regions).toBe(140)
      expect(result.open).toEqual([])
    }
  })

  it('measlesDE, 16 regions (flooding), two of them publishing h openly: the open values come with the total', async () => {
    const { graph } = await loadMeaslesDE()
    const h = randomScores(16, 12)
    const open = ['Bavaria', 'Saarland']
    const messages: ConsensusMessage[] = []
    const run = simulateJointRisk({ graph, h, seed: 9, openRegions: open, keepLog: true, observe: (_, message) => { messages.push(message) } })
    checkNothingLeaks(graph, h, messages, run.log, new Set(open))
    const plain = h.reduce((sum, value) => sum + value, 0)
    for (const result of run.results) {
      expect(Math.abs(result.sum - plain)).toBeLessThan(1e-9)
      expect(result.open.map((entry) => entry.region)).toEqual(open)
      result.open.forEach((entry) => expect(Math.abs(entry.h - (h[graph.names.indexOf(entry.region)] as number))).toBeLessThan(1e-12))
    }
  })

  it('with 10% of messages lost the sum still completes, exactly', async () => {
    const { graph } = await loadMeaslesDE()
    const h = randomScores(16, 13)
    const run = simulateJointRisk({ graph, h, seed: 21, network: { messageLoss: 0.1 } })
    const plain = h.reduce((sum, value) => sum + value, 0)
    for (const result of run.results) expect(Math.abs(result.sum - plain)).toBeLessThan(1e-9)
  })

  it('gives every region a second mask partner, so no single neighbour can unmask it', async () => {
    for (const { graph } of [await loadFluBYBW(), await loadMeaslesDE()]) {
      const augmented = jointRiskGraph(graph)
      expect(graph.neighbours.some((list) => list.length === 1)).toBe(true)
      augmented.neighbours.forEach((list, node) => {
        expect(list.length).toBeGreaterThanOrEqual(2)
        for (const other of graph.neighbours[node] ?? []) expect(list).toContain(other)
      })
    }
    // on a line a-b-c, each end gets the other end as its second partner
    const line = graphFromEdges(['a', 'b', 'c'], [['a', 'b'], ['b', 'c']])
    expect(jointRiskGraph(line).neighbours).toEqual([[1, 2], [0, 2], [0, 1]])
  })

  it('refuses an h outside [0, 1] and unknown open regions', () => {
    const graph = graphFromEdges(['a', 'b', 'c'], [['a', 'b'], ['b', 'c'], ['c', 'a']])
    expect(() => createJointRisk({ graph, self: 0, h: 1.5, job: 'j', rng: createRng(1) })).toThrow(expect.objectContaining({ code: 'CONSENSUS_PARAMS_INVALID', field: 'h' }))
    expect(() => createJointRisk({ graph, self: 0, h: Number.NaN, job: 'j', rng: createRng(1) })).toThrow(expect.objectContaining({ field: 'h' }))
    expect(() => createJointRisk({ graph, self: 0, h: 0.5, job: 'j', rng: createRng(1), openRegions: ['z'] })).toThrow(expect.objectContaining({ field: 'openRegions' }))
    // with b and c open, the sum minus their values would be a's h
    expect(() => createJointRisk({ graph, self: 0, h: 0.5, job: 'j', rng: createRng(1), openRegions: ['b', 'c'] })).toThrow(expect.objectContaining({ field: 'openRegions' }))
    expect(createJointRisk({ graph, self: 0, h: 0.5, job: 'j', rng: createRng(1), openRegions: ['a', 'b', 'c'] }).openRegions).toEqual(['a', 'b', 'c'])
  })
})
