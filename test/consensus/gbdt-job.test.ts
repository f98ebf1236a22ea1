import { describe, expect, it } from 'vitest'
import { simulateGbdt } from '../../src/consensus/sim/gbdt-simulation.ts'
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
})
