import { describe, expect, it } from 'vitest'
import { simulateGbdt } from '../../src/consensus/sim/gbdt-simulation.ts'
import { MemoryNetwork } from '../../src/consensus/sim/memory-network.ts'
import { runSynchronous } from '../../src/consensus/sim/simulation.ts'
import { createGbdtJobState, gbdtJobProtocol } from '../../src/consensus/jobs/gbdt-job.ts'
import { diameter } from '../../src/consensus/graph.ts'
import { forkRng } from '../../src/consensus/rng.ts'
import { encodeVector, toBytes } from '../../src/consensus/protocols/fixed-point.ts'
import type { ConsensusMessage } from '../../src/consensus/types.ts'
import { binRange, binRows, FINE_PER_BIN, fineHistogram, gradients, histogramLayout, TreeGrowth } from '../../src/learning/gbdt.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import { buildTopology } from '../../src/consensus/topology.ts'
import { buildTreeData, createGbdtParams, fitGbdt, type GbdtModel, type TreeData, type TreeFeature } from '../../src/learning/gbdt.ts'
import { auc } from '../../src/learning/metrics.ts'
import { predictGbdt } from '../../src/learning/gbdt.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { fixture } from '../helpers/data.ts'

async function treeData (file: string, outcome: string, family: 'binomial' | 'poisson' = 'binomial', factors: string[] = []): Promise<TreeData> {
  const dataset = await readDataset(fixture(file))
  const features: TreeFeature[] = dataset.columns.filter((column) => column !== outcome).map((name) => factors.includes(name)
    ? { name, type: 'categorical', levels: [...new Set(dataset.rows.map((row) => String(row[name])))].sort() }
    : { name, type: 'numeric' })
  return buildTreeData(dataset.rows, outcome, features, { family })
}

function rowsOf (data: TreeData, rows: readonly number[]): TreeData {
  return { rows: rows.length, features: data.features, columns: data.columns.map((column) => Float64Array.from(rows, (row) => column[row] as number)), y: Float64Array.from(rows, (row) => data.y[row] as number) }
}

/** Largest difference of leaf values, or Infinity when the two forests differ in any split. */
function forestDistance (a: GbdtModel, b: GbdtModel): number {
  if (a.trees.length !== b.trees.length) return Number.POSITIVE_INFINITY
  let worst = 0
  a.trees.forEach((tree, index) => {
    const other = b.trees[index]!
    if (tree.nodes.length !== other.nodes.length) worst = Number.POSITIVE_INFINITY
    tree.nodes.forEach((node, at) => {
      const twin = other.nodes[at]!
      if (twin === undefined || (node.split?.feature ?? -1) !== (twin.split?.feature ?? -1) || (node.split?.bin ?? -1) !== (twin.split?.bin ?? -1) || (node.split?.missingLeft ?? false) !== (twin.split?.missingLeft ?? false)) worst = Number.POSITIVE_INFINITY
      else worst = Math.max(worst, Math.abs(node.value - twin.value))
    })
  })
  return worst
}

describe('gradient-boosted trees grown by the federation', () => {
  it('breast cancer over 16 peers on a ring: the same trees as the pooled fit with the same bin edges, leaves to 1e-9', async () => {
    const data = await treeData('breast_cancer.csv', 'malignant')
    const graph = buildTopology('ring', 16, createRng(1))
    const params = createGbdtParams({ trees: 6, depth: 3, bins: 16, minNodeRows: 3 })
    const simulation = simulateGbdt({ data: splitRows(data.rows, 16, 'even', createRng(1)).map((rows) => rowsOf(data, rows)), graph, params, seed: 1 })
    const federated = simulation.results[0]!.model
    // every peer holds the same forest
    for (const result of simulation.results) expect(forestDistance(result.model, federated)).toBe(0)
    const pooled = fitGbdt(data, federated.bins, params)
    expect(forestDistance(federated, pooled)).toBeLessThan(1e-9)
    expect(pooled.trees.every((tree) => tree.nodes.length > 1)).toBe(true)
    // no leaf of fewer rows than the disclosure minimum
    for (const tree of federated.trees) for (const node of tree.nodes) if (node.split === null) expect(node.rows).toBeGreaterThanOrEqual(3)
    expect(simulation.results[0]!.metrics?.auc).toBeCloseTo(auc(data.y, predictGbdt(pooled, data)), 3)
  })

  it('infert with education as a factor, for the cases (binomial) and for the parity (Poisson counts): equal to the pooled fit', async () => {
    const infert = await treeData('infert.csv', 'case', 'binomial', ['education'])
    const graph = buildTopology('ring', 8, createRng(2))
    const params = createGbdtParams({ trees: 5, depth: 3, bins: 8, minNodeRows: 3 })
    const binomial = simulateGbdt({ data: splitRows(infert.rows, 8, 'even', createRng(3)).map((rows) => rowsOf(infert, rows)), graph, params, seed: 2 })
    expect(forestDistance(binomial.results[0]!.model, fitGbdt(infert, binomial.results[0]!.model.bins, params))).toBeLessThan(1e-9)
    expect(binomial.results[0]!.model.trees.some((tree) => tree.nodes.some((node) => node.split !== null && infert.features[node.split.feature]!.type === 'categorical'))).toBe(true)

    const counts = await treeData('infert.csv', 'parity', 'poisson', ['education'])
    const poissonParams = createGbdtParams({ family: 'poisson', trees: 4, depth: 2, bins: 8, minNodeRows: 3, learningRate: 0.2 })
    const poisson = simulateGbdt({ data: splitRows(counts.rows, 8, 'even', createRng(4)).map((rows) => rowsOf(counts, rows)), graph, params: poissonParams, seed: 3 })
    expect(forestDistance(poisson.results[0]!.model, fitGbdt(counts, poisson.results[0]!.model.bins, poissonParams))).toBeLessThan(1e-9)
    expect(poisson.results[0]!.metrics).toBeNull()
  })

  it('no message carries a region\'s own histogram in the clear, as floats or as fixed-point numbers, flooded (4 peers) or up a spanning tree (12)', async () => {
    const infert = await treeData('infert.csv', 'case', 'binomial', ['education'])
    for (const peers of [4, 12]) {
      const graph = buildTopology('ring', peers, createRng(5))
      const params = createGbdtParams({ trees: 2, depth: 2, bins: 8, minNodeRows: 3 })
      const blocks = splitRows(infert.rows, peers, 'even', createRng(6)).map((rows) => rowsOf(infert, rows))
      const rng = createRng(7)
      const states = blocks.map((data, self) => createGbdtJobState({ job: 'trees', graph, self, diameter: diameter(graph), data, params, rng: forkRng(rng, `peer-${self}`) }))
      const network = new MemoryNetwork({ graph, rng: forkRng(rng, 'network') })
      const sent: ConsensusMessage[] = []
      const send = network.send.bind(network)
      network.send = (from: number, message: ConsensusMessage): void => { sent.push(message); send(from, message) }
      const run = runSynchronous({ protocol: gbdtJobProtocol, states, network, maxRounds: 20_000 })
      const model = run.results[0]!.model

      // each region's private vectors: its fine histograms (bin edges) and its first level's gradient histogram
      const numeric = infert.features.flatMap((feature, index) => feature.type === 'numeric' ? [index] : [])
      const privateVectors = blocks.map((data) => {
        const fine = numeric.map((feature) => {
          const all = infert.columns[feature]!
          const range = binRange(all.length, all.reduce((a, b) => a + b, 0), all.reduce((a, b) => a + b * b, 0))
          return fineHistogram(data.columns[feature]!, range.low, range.high, FINE_PER_BIN * params.bins)
        })
        const margin = new Float64Array(data.rows).fill(model.baseMargin)
        const gradient = new Float64Array(data.rows)
        const hessian = new Float64Array(data.rows)
        gradients('binomial', data.y, margin, gradient, hessian)
        const level = new TreeGrowth(params, model.bins, histogramLayout(model.bins)).contribution(binRows(data, model.bins), gradient, hessian, new Int32Array(data.rows))
        return [...fine, level]
      })
      const totals = privateVectors[0]!.map((_, index) => {
        const total = new Float64Array(privateVectors[0]![index]!.length)
        for (const vectors of privateVectors) vectors[index]!.forEach((value, at) => { total[at] = total[at]! + value })
        return total
      })
      // windows of two neighbouring entries that another region also contributes to (a total that is
      // one region's own value is published by design), as floats and as the masked sums' fixed point
      let windows = 0
      const leaks: string[] = []
      const payloads = sent.map((message) => Buffer.from(message.data))
      for (const vectors of privateVectors) {
        vectors.forEach((vector, which) => {
          const total = totals[which]!
          const bytes = toBytes(encodeVector(vector))
          const width = bytes.length / vector.length
          for (let at = 0; at + 1 < vector.length; at++) {
            if (vector[at] === 0 || vector[at + 1] === 0 || vector[at] === total[at] || vector[at + 1] === total[at + 1]) continue
            windows++
            const fixed = Buffer.from(bytes.subarray(at * width, (at + 2) * width))
            const floats = Buffer.from(Float64Array.from([vector[at]!, vector[at + 1]!]).buffer)
            for (const [index, data] of payloads.entries()) {
              if (data.includes(fixed) || data.includes(floats)) leaks.push(`${sent[index]!.kind}: bytes`)
              const values = sent[index]!.values
              for (let position = 0; position + 1 < values.length; position++) {
                if (values[position] === vector[at] && values[position + 1] === vector[at + 1]) leaks.push(`${sent[index]!.kind}: values`)
              }
            }
          }
        })
      }
      expect(leaks).toEqual([])
      expect(windows).toBeGreaterThan(50)
      expect(sent.some((message) => message.kind.startsWith('level-'))).toBe(true)
      expect(sent.some((message) => message.kind.startsWith('tree-bins-'))).toBe(true)
    }
  }, 120_000)
})
