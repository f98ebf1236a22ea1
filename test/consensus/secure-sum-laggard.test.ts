import { describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { createMaskSeeds, type MaskSeeds } from '../../src/consensus/protocols/mask-seeds.ts'
import { BEHIND_FRESH_TICKS, createSecureSum, floodPatience, secureSumProtocol, type SecureSumState } from '../../src/consensus/protocols/secure-sum.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng, forkRng } from '../../src/consensus/rng.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { selectRows } from '../../src/learning/design.ts'
import { fitModel } from '../../src/learning/fit.ts'
import { loadModel, relativeError } from '../helpers/data.ts'

/**
 * A later sum of a job, whose members send their contributions as they enter it, while one member is
 * still in the job's previous phase: its neighbours see its messages of that phase arrive (the job
 * tells the sum: `behind`), and the sum waits for it, however long, without counting rounds towards
 * SUM_INCOMPLETE; a member that stops showing any sign of life still ends the sum with SUM_INCOMPLETE.
 */
const graph = buildTopology('ring', 8, createRng(1))
const LATE = 3
const late = graph.names[LATE] as string
const values = graph.names.map((_, self) => [self + 1, 10 * self])

/** The job's mask seeds, as its first sum left them. */
function seedsOfFirstSum (): MaskSeeds[] {
  const seeds = graph.names.map(() => createMaskSeeds())
  const rng = createRng(7)
  const states = graph.names.map((_, self) => createSecureSum({ graph, self, value: [0, 0], job: 'sum', kind: 'first', rng: forkRng(rng, self), seeds: seeds[self] }))
  const run = runSynchronous({ protocol: secureSumProtocol, states, network: new MemoryNetwork({ graph, rng: forkRng(rng, 'network') }), maxRounds: 100 })
  expect(run.states.every((state) => state.done)).toBe(true)
  return seeds
}

/**
 * The second sum: the late member is in the previous phase (not running this sum) until `arrives`, if
 * ever; its neighbours hear from it in that phase until `aliveUntil`.
 */
function secondSum (options: { arrives: number | null, aliveUntil: number, messageLoss: number }): { states: SecureSumState[], error: unknown, ticks: number, awaiting: boolean[] } {
  const seeds = seedsOfFirstSum()
  const rng = createRng(11)
  const states = graph.names.map((_, self) => createSecureSum({ graph, self, value: values[self]!, job: 'sum', kind: 'second', rng: forkRng(rng, self), seeds: seeds[self] }))
  const network = new MemoryNetwork({ graph, rng: forkRng(rng, 'network'), messageLoss: options.messageLoss })
  network.kill(late)
  let ticks = 0
  let error: unknown = null
  // at tick 150, which peers say they await a live member (a peer's driver then counts no stalled deadline)
  let awaiting: boolean[] = []
  try {
    runSynchronous({
      protocol: secureSumProtocol, states, network, maxRounds: 2000,
      beforeTick: (tick, net) => {
        ticks = tick
        if (tick === 150) awaiting = states.map((state) => secureSumProtocol.awaitsLiveMember?.(state) === true)
        if (tick === options.arrives) net.restart(late)
        if (tick < options.aliveUntil && (options.arrives === null || tick < options.arrives)) {
          // its messages of the previous phase reach its neighbours (a fifth of them lost)
          for (const neighbour of [LATE - 1, LATE + 1]) if (rng() >= options.messageLoss) secureSumProtocol.behind?.(states[neighbour]!, late)
        }
      }
    })
  } catch (caught) {
    error = caught
  }
  return { states, error, ticks, awaiting }
}

describe('a member still in the job\'s previous phase', () => {
  it('is waited for, however long it takes, and the sum is exact', () => {
    // 300 ticks: more than ten times the patience of this ring (3 x 4 + 12 rounds)
    expect(300).toBeGreaterThan(10 * floodPatience(graph))
    const { states, error, awaiting } = secondSum({ arrives: 300, aliveUntil: 300, messageLoss: 0.2 })
    expect(error).toBeNull()
    expect(awaiting).toEqual(graph.names.map((_, node) => node !== LATE))
    for (const state of states) {
      expect(state.done).toBe(true)
      expect(Array.from(secureSumProtocol.result(state))).toEqual([36, 280])
    }
    // while it waited, the others held their round rather than run ahead of it
    for (const state of states) expect(state.round).toBeLessThan(60)
  })

  it('that dies there ends the sum with SUM_INCOMPLETE naming it, within a bounded number of ticks', () => {
    const { error, ticks, awaiting } = secondSum({ arrives: null, aliveUntil: 200, messageLoss: 0.2 })
    expect(error).toMatchObject({ code: 'SUM_INCOMPLETE', missing: [late] })
    expect(awaiting).toEqual(graph.names.map((_, node) => node !== LATE))
    // news of it goes stale after BEHIND_FRESH_TICKS ticks, the waiting hops reach the cap (the members'
    // number) soon after, and then the usual patience runs (two ticks a deadline)
    const bound = 2 * (BEHIND_FRESH_TICKS + graph.names.length + floodPatience(graph) + 10)
    expect(ticks).toBeGreaterThan(200)
    expect(ticks - 200).toBeLessThanOrEqual(bound)
  })
})

describe('ADMM on a 20-peer line with a fifth of the messages lost', () => {
  it('completes although the middle peers leave ADMM long after the ends (seed 1 gave up in the consensus sum)', async () => {
    const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
    const pooled = fitModel(block, terms, { family: 'binomial', lambda: 1, standardize: true, tolerance: 1e-13 })
    const seed = 1
    const rng = createRng(seed)
    const parts = splitRows(block.rows, 20, 'even', forkRng(rng, 'split'))
    const simulation = simulateFit({
      family: 'binomial', terms, interceptColumn: 0, graph: buildTopology('line', 20, forkRng(rng, 'topology')), seed,
      network: { messageLoss: 0.2 },
      blocks: parts.map((rows) => selectRows(block, rows)),
      params: createFitJobParams({ algorithm: 'admm', lambda: 1, tolerance: 1e-10 })
    })
    expect(simulation.results).toHaveLength(20)
    for (const result of simulation.results) expect(relativeError(result.coefficients, pooled.coefficients.estimate)).toBeLessThan(1e-8)
  })
})
