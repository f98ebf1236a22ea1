import { describe, expect, it } from 'vitest'
import { admmProtocol, createAdmmParams, createAdmmState, type AdmmState } from '../../src/consensus/protocols/admm.ts'
import { diameter, type Graph } from '../../src/consensus/graph.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import type { LocalObjective } from '../../src/learning/objective.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { solveSymmetric } from '../../src/learning/linalg.ts'

/**
 * Quadratic local objectives f_i(x) = 1/2 (x - a_i)' Q_i (x - a_i) have a closed-form pooled optimum,
 * x* = (sum Q_i)^{-1} sum Q_i a_i: ADMM must reach it, and the tests can say exactly how close it is.
 */
function quadratic (q: Float64Array, a: Float64Array): LocalObjective {
  const p = a.length
  return {
    dimension: p,
    evaluate (point, gradient, hessian, wantHessian) {
      let value = 0
      for (let row = 0; row < p; row++) {
        let sum = 0
        for (let column = 0; column < p; column++) sum += (q[row * p + column] as number) * ((point[column] as number) - (a[column] as number))
        gradient[row] = sum
        value += 0.5 * ((point[row] as number) - (a[row] as number)) * sum
      }
      if (wantHessian) hessian.set(q)
      return value
    }
  }
}

function randomProblem (peers: number, p: number, seed: number): { objectives: LocalObjective[], optimum: Float64Array } {
  const rng = createRng(seed)
  const total = new Float64Array(p * p)
  const weighted = new Float64Array(p)
  const objectives: LocalObjective[] = []
  for (let peer = 0; peer < peers; peer++) {
    // Q = B B' + 0.1 I, positive definite, different on every peer.
    const b = Float64Array.from({ length: p * p }, () => rng() * 2 - 1)
    const q = new Float64Array(p * p)
    for (let row = 0; row < p; row++) {
      for (let column = 0; column < p; column++) {
        let sum = row === column ? 0.1 : 0
        for (let inner = 0; inner < p; inner++) sum += (b[row * p + inner] as number) * (b[column * p + inner] as number)
        q[row * p + column] = sum
      }
    }
    const a = Float64Array.from({ length: p }, () => rng() * 10 - 5)
    for (let index = 0; index < p * p; index++) total[index] = (total[index] as number) + (q[index] as number)
    for (let row = 0; row < p; row++) {
      for (let column = 0; column < p; column++) weighted[row] = (weighted[row] as number) + (q[row * p + column] as number) * (a[column] as number)
    }
    objectives.push(quadratic(q, a))
  }
  return { objectives, optimum: solveSymmetric(total, p, weighted) }
}

function maxRelativeError (states: readonly AdmmState[], optimum: Float64Array): number {
  let worst = 0
  for (const state of states) {
    let difference = 0
    let size = 0
    for (let index = 0; index < optimum.length; index++) {
      difference += ((state.x[index] as number) - (optimum[index] as number)) ** 2
      size += (optimum[index] as number) ** 2
    }
    worst = Math.max(worst, Math.sqrt(difference / size))
  }
  return worst
}

function runAdmm (graph: Graph, objectives: LocalObjective[], options: { seed: number, linkLoss?: number, messageLoss?: number, penalty?: number, tolerance?: number, maxRounds?: number }) {
  const p = objectives[0]?.dimension as number
  const states = objectives.map((objective, self) => createAdmmState({
    job: 'test',
    kind: 'admm',
    graph,
    self,
    diameter: diameter(graph),
    objective,
    start: new Float64Array(p),
    params: createAdmmParams({ penalty: options.penalty ?? 1, tolerance: options.tolerance ?? 1e-10, maxRounds: options.maxRounds ?? 3000 })
  }))
  const network = new MemoryNetwork({ graph, rng: createRng(options.seed), linkLoss: options.linkLoss ?? 0, messageLoss: options.messageLoss ?? 0 })
  return runSynchronous({ protocol: admmProtocol, states, network, maxRounds: (options.maxRounds ?? 3000) + 50 })
}

describe('consensus ADMM', () => {
  it('reaches the pooled optimum of quadratic objectives on a ring, every peer, and stops by itself', () => {
    const graph = buildTopology('ring', 8, createRng(1))
    const { objectives, optimum } = randomProblem(8, 3, 7)
    const run = runAdmm(graph, objectives, { seed: 1 })
    expect(run.states.every((state) => state.done && state.converged)).toBe(true)
    expect(maxRelativeError(run.states, optimum)).toBeLessThan(1e-7)
    expect(run.ticks).toBeLessThan(3000)
  })

  it('still reaches the pooled optimum when 30% of links fail in every round', () => {
    const graph = buildTopology('ring', 8, createRng(1))
    const { objectives, optimum } = randomProblem(8, 3, 7)
    const clean = runAdmm(graph, objectives, { seed: 2 })
    const lossy = runAdmm(graph, objectives, { seed: 2, linkLoss: 0.3 })
    expect(lossy.states.every((state) => state.converged)).toBe(true)
    expect(maxRelativeError(lossy.states, optimum)).toBeLessThan(1e-7)
    // rounds are ADMM iterations; a round with a lost message also waits for its deadline
    const rounds = (run: typeof clean): number => Math.max(...run.states.map((state) => state.round))
    expect(rounds(lossy)).toBeLessThan(1.6 * rounds(clean))
  })

  it('keeps per-edge duals consistent when single messages are lost one way only', () => {
    const graph = buildTopology('er:0.4', 10, createRng(5))
    const { objectives, optimum } = randomProblem(10, 4, 11)
    const run = runAdmm(graph, objectives, { seed: 3, messageLoss: 0.2 })
    expect(run.states.every((state) => state.converged)).toBe(true)
    expect(maxRelativeError(run.states, optimum)).toBeLessThan(1e-7)
    // lambda_ij = -lambda_ji on every edge once the run has settled
    for (const state of run.states) {
      const self = state.peer.self
      graph.neighbours[self]?.forEach((neighbour, slot) => {
        const other = run.states[neighbour] as AdmmState
        const back = graph.neighbours[neighbour]?.indexOf(self) as number
        const mine = state.lambdas[slot] as Float64Array
        const theirs = other.lambdas[back] as Float64Array
        for (let index = 0; index < mine.length; index++) expect(Math.abs((mine[index] as number) + (theirs[index] as number))).toBeLessThan(1e-6 * (1 + Math.abs(mine[index] as number)))
      })
    }
  })

  it('a per-peer dual fed with stale neighbour values converges to a wrong point, where per-edge duals do not', () => {
    // The naive variant: alpha_i += c * sum_j (x_i - x_j), using the last value heard from j when this
    // round's message is lost. It is run here by hand on the same problem and the same losses.
    const peers = 8
    const graph = buildTopology('ring', peers, createRng(1))
    const { objectives, optimum } = randomProblem(peers, 2, 21)
    const rng = createRng(9)
    const p = 2
    const c = 1
    const x = objectives.map(() => new Float64Array(p))
    const alpha = objectives.map(() => new Float64Array(p))
    const lastHeard = objectives.map((_, node) => (graph.neighbours[node] ?? []).map(() => new Float64Array(p)))
    const gradient = new Float64Array(p)
    const hessian = new Float64Array(p * p)
    for (let round = 0; round < 3000; round++) {
      // one-way loss: j's message to i is lost with probability 0.3, independently per direction
      for (let node = 0; node < peers; node++) {
        graph.neighbours[node]?.forEach((neighbour, slot) => {
          if (rng() >= 0.3) (lastHeard[node]?.[slot] as Float64Array).set(x[neighbour] as Float64Array)
        })
      }
      const next = x.map((xi, node) => {
        const heard = lastHeard[node] as Float64Array[]
        for (let index = 0; index < p; index++) {
          let sum = 0
          for (const xj of heard) sum += (xi[index] as number) - (xj[index] as number)
          ;(alpha[node] as Float64Array)[index] = ((alpha[node] as Float64Array)[index] as number) + c * sum
        }
        const objective = objectives[node] as LocalObjective
        objective.evaluate(xi, gradient, hessian, true)
        const rhs = new Float64Array(p)
        for (let index = 0; index < p; index++) {
          let center = 0
          for (const xj of heard) center += ((xi[index] as number) + (xj[index] as number)) / 2
          rhs[index] = (gradient[index] as number) + ((alpha[node] as Float64Array)[index] as number) + 2 * c * (heard.length * (xi[index] as number) - center)
          hessian[index * p + index] = (hessian[index * p + index] as number) + 2 * c * heard.length
        }
        const step = solveSymmetric(hessian, p, rhs)
        return xi.map((value, index) => value - (step[index] as number))
      })
      next.forEach((value, node) => (x[node] as Float64Array).set(value))
    }
    let naiveError = 0
    for (const xi of x) naiveError = Math.max(naiveError, Math.hypot(...xi.map((value, index) => value - (optimum[index] as number))) / Math.hypot(...optimum))
    expect(naiveError).toBeGreaterThan(1e-3)

    const run = runAdmm(graph, objectives, { seed: 9, messageLoss: 0.3 })
    expect(maxRelativeError(run.states, optimum)).toBeLessThan(1e-7)
  })

  it('rejects and counts malformed neighbour messages without losing the round', () => {
    const graph = buildTopology('line', 2, createRng(1))
    const { objectives } = randomProblem(2, 2, 3)
    const states = objectives.map((objective, self) => createAdmmState({
      job: 'j', kind: 'admm', graph, self, diameter: 1, objective, start: new Float64Array(2), params: createAdmmParams({ penalty: 1 })
    }))
    const [first] = states as [AdmmState]
    admmProtocol.start(first)
    // data: the dropped-peer bitmap, then the sender's echo of its one neighbour (round + 1, digest)
    const bad = { job: 'j', kind: 'admm', round: 0, from: graph.names[1] as string, values: Float64Array.of(0, 0, 0, 0, Number.NaN, 1), data: new Uint8Array(1 + 36) }
    admmProtocol.step(first, { type: 'message', message: bad })
    const short = { ...bad, values: Float64Array.of(0, 0) }
    admmProtocol.step(first, { type: 'message', message: short })
    const stranger = { ...bad, from: 'nobody', values: Float64Array.of(0, 0, 0, 0, 1, 1) }
    admmProtocol.step(first, { type: 'message', message: stranger })
    expect(first.rejectedMessages).toBe(3)
    expect(first.round).toBe(0)
    const good = { ...bad, values: Float64Array.of(0, 0, 0, 0, 1, 1) }
    const result = admmProtocol.step(first, { type: 'message', message: good })
    expect(first.round).toBe(1)
    expect(result.outbox).toHaveLength(1)
  })
})
