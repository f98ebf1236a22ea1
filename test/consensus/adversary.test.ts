import { describe, expect, it } from 'vitest'
import { simulateAdversarialFit, type Liar } from '../../src/consensus/sim/adversary.ts'
import { createFitJobParams, type FitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { selectRows, type DataBlock } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'

const INFERT = { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] }

/** infert over 16 peers on a ring, ADMM, every message signed; `liars` rewrite what they send. */
async function run (liars: Liar[], params: Partial<FitJobParams> = {}) {
  const { block, terms } = await loadModel('infert.csv', INFERT)
  const graph = buildTopology('ring', 16, createRng(1))
  const blocks = splitRows(block.rows, 16, 'even', createRng(1)).map((rows) => selectRows(block, rows))
  const output = simulateAdversarialFit({ family: 'binomial', terms, interceptColumn: 0, graph, seed: 1, blocks, liars, params: createFitJobParams({ tolerance: 1e-10, ...params }) })
  const names = graph.names
  const honest = names.map((_, peer) => peer).filter((peer) => !liars.some((liar) => liar.peer === peer))
  return { output, names, honest, blocks, terms }
}

const codeOf = (failure: unknown): string | undefined => (failure as { code?: string } | null)?.code

describe('a lying member inside consensus ADMM', () => {
  it('announcing a false stop is named by every honest peer, and no honest peer reports a model', async () => {
    const { output, names, honest } = await run([{ peer: 5, lie: 'false-stop', from: 3 }])
    for (const peer of honest) {
      expect(output.results[peer], names[peer]).toBeNull()
      expect(output.failures[peer]).toMatchObject({ code: 'MEMBER_MISBEHAVED', offender: names[5], rule: 'stop-counter' })
    }
    // its neighbours caught it from its signed messages within a few rounds
    expect(output.ticks).toBeLessThan(60)
  })

  it('two liars of 16: each honest peer names one of them, and none reports a model', async () => {
    const { output, names, honest } = await run([{ peer: 3, lie: 'false-stop', from: 3 }, { peer: 11, lie: 'false-stop', from: 5 }])
    for (const peer of honest) {
      expect(output.results[peer]).toBeNull()
      expect(codeOf(output.failures[peer])).toBe('MEMBER_MISBEHAVED')
      expect([names[3], names[11]]).toContain((output.failures[peer] as { offender: string }).offender)
    }
  })

  it('sending its two neighbours different iterates is proven at the closing from their receipts, and named', async () => {
    const { output, names, honest } = await run([{ peer: 8, lie: 'equivocate', factor: 0.5 }], { maxRounds: 300 })
    for (const peer of honest) {
      expect(output.results[peer]).toBeNull()
      expect(output.failures[peer]).toMatchObject({ code: 'MEMBER_MISBEHAVED', offender: names[8], rule: 'equivocation' })
    }
  })

  it('an alarm that frames an honest neighbour with its own honest message is rejected, and the job ends at the pooled fit', async () => {
    const { output, honest } = await run([{ peer: 2, lie: 'frame', from: 6 }])
    expect(output.states.some((state) => state.alarmsRejected > 0)).toBe(true)
    for (const peer of honest) {
      const result = output.results[peer]
      expect(result, String(output.failures[peer])).not.toBeNull()
      expect(relativeError(result!.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
    }
  })

  it('a stubborn iterate, or one scaled by 10, costs rounds but not the model: the closing reaches the pooled fit', async () => {
    for (const liar of [{ peer: 6, lie: 'stubborn', factor: 3 }, { peer: 6, lie: 'scale', factor: 10 }] as Liar[]) {
      const { output, honest } = await run([liar], { maxRounds: 600 })
      for (const peer of honest) {
        const result = output.results[peer]
        expect(result, `${liar.lie}: ${String(output.failures[peer])}`).not.toBeNull()
        expect(result!.converged).toBe(true)
        expect(relativeError(result!.coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
      }
      // ADMM itself, held at the liar, had not reached the pooled fit: the closing's exact steps did
      expect(Math.max(...honest.map((peer) => relativeError(output.admmIterates[peer] ?? [], output.states[peer]!.result!.standardizedCoefficients)))).toBeGreaterThan(1e-6)
    }
  })

  it('without clipping, an iterate scaled by 10 pulls its neighbours out of range: they stop under their own names, never named as liars', async () => {
    const { output, names, honest } = await run([{ peer: 6, lie: 'scale', factor: 10 }], { clip: null, maxRounds: 600 })
    const codes = honest.map((peer) => codeOf(output.failures[peer]))
    expect(codes.every((code) => code === 'ADMM_DIVERGED' || code === 'JOB_ABORTED')).toBe(true)
    expect(codes).toContain('ADMM_DIVERGED')
    for (const peer of honest) expect((output.failures[peer] as { offender?: string }).offender).toBeUndefined()
    // the peers that diverged are the liar's neighbours
    const diverged = honest.filter((peer) => codeOf(output.failures[peer]) === 'ADMM_DIVERGED').map((peer) => names[peer])
    expect(diverged.every((name) => name === names[5] || name === names[7])).toBe(true)
  })

  it('a member lying consistently about its data is not caught: the model is the pooled fit of the data it claims', async () => {
    const { output, honest, blocks, terms } = await run([{ peer: 4, lie: 'inflate', factor: 20 }])
    const claimed: DataBlock[] = blocks.map((block, peer) => peer === 4 ? repeat(block, 20) : block)
    const pooled = fitModel(concat(claimed), terms, { family: 'binomial', standardize: true, tolerance: 1e-12 })
    for (const peer of honest) {
      const result = output.results[peer]
      expect(result).not.toBeNull()
      expect(relativeError(result!.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-6)
      expect(relativeError(result!.coefficients, R_INFERT.estimate)).toBeGreaterThan(0.05)
    }
  })
})

function repeat (block: DataBlock, times: number): DataBlock {
  return concat(Array.from({ length: times }, () => block))
}

function concat (blocks: DataBlock[]): DataBlock {
  const rows = blocks.reduce((sum, block) => sum + block.rows, 0)
  const cols = blocks[0]!.cols
  const x = new Float64Array(rows * cols)
  const y = new Float64Array(rows)
  let at = 0
  for (const block of blocks) {
    x.set(block.x, at * cols)
    y.set(block.y, at)
    at += block.rows
  }
  return { x, y, rows, cols }
}
