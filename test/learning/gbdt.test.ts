import { describe, expect, it } from 'vitest'
import {
  buildTreeData, createGbdtParams, edgesFromFineHistogram, featureImportance, fitGbdt, pooledBins, predictGbdt, type FeatureBins
} from '../../src/learning/gbdt.ts'
import { auc } from '../../src/learning/metrics.ts'
import { holdoutSplit, HOLDOUT_DATASETS, xgboostReference } from '../helpers/gbdt-data.ts'

describe('gradient-boosted trees (pure core)', () => {
  it('bin edges: one bin per value for a feature with few values, quantiles on fine-bin boundaries otherwise', () => {
    // values 1, 2, 3 over [0, 4) in 8 fine bins of 0.5 (fine bins 2, 4 and 6): each value in its own bin
    const few = edgesFromFineHistogram([0, 0, 0, 5, 0, 7, 0, 2, 0, 0], 0, 4, 32)
    expect([...few]).toEqual([2, 3])
    // 100 equal fine bins of one value each, 4 bins: edges at the lower boundaries of the 26th, 51st and 76th
    const many = edgesFromFineHistogram([0, ...new Array<number>(100).fill(1), 0], 0, 100, 4)
    expect([...many]).toEqual([25, 50, 75])
    // values above the range get a bin of their own when the feature has few values
    expect([...edgesFromFineHistogram([0, 3, 0, 0, 2], 0, 3, 8)]).toEqual([3])
  })

  it('missing values go to the side with the larger gain, and the model predicts them so', () => {
    const rows = Array.from({ length: 200 }, (_, index) => ({ x: index % 4 === 0 ? null : index % 100, y: index % 4 === 0 ? 1 : (index % 100 >= 50 ? 1 : 0) }))
    const data = buildTreeData(rows, 'y', [{ name: 'x', type: 'numeric' }])
    const params = createGbdtParams({ trees: 1, depth: 1, learningRate: 1, lambda: 0 })
    const model = fitGbdt(data, pooledBins(data, 8), params)
    const root = model.trees[0]?.nodes[0]
    // the missing rows are all positive, like the upper half: they go right with it
    expect(root?.split?.missingLeft).toBe(false)
    const predictions = predictGbdt(model, buildTreeData([{ x: null, y: 0 }, { x: 10, y: 0 }, { x: 90, y: 0 }], 'y', data.features))
    expect(predictions[0]).toBeCloseTo(predictions[2] as number, 12)
    expect(predictions[1]).toBeLessThan(0.5)
    expect(featureImportance(model)).toEqual([{ feature: 'x', gain: root?.split?.gain, splits: 1 }])
  })

  it('a factor splits one level against the rest', () => {
    const rows = Array.from({ length: 120 }, (_, index) => ({ region: ['north', 'south', 'west'][index % 3], y: index % 3 === 1 ? 1 : 0 }))
    const features = [{ name: 'region', type: 'categorical' as const, levels: ['north', 'south', 'west'] }]
    const data = buildTreeData(rows, 'y', features)
    const bins: FeatureBins[] = [{ type: 'categorical', levels: 3 }]
    const model = fitGbdt(data, bins, createGbdtParams({ trees: 1, depth: 1 }))
    expect(model.trees[0]?.nodes[0]?.split).toMatchObject({ feature: 0, bin: 1 })
  })

  it('is deterministic: the same data in another row order gives the same forest', () => {
    const rows = Array.from({ length: 300 }, (_, index) => ({ a: (index * 37) % 101, b: (index * 53) % 7, y: ((index * 37) % 101 > 60) !== ((index * 53) % 7 > 3) ? 1 : 0 }))
    const features = [{ name: 'a', type: 'numeric' as const }, { name: 'b', type: 'numeric' as const }]
    const forward = buildTreeData(rows, 'y', features)
    const backward = buildTreeData([...rows].reverse(), 'y', features)
    const params = createGbdtParams({ trees: 5, depth: 3 })
    const bins = pooledBins(forward, 16)
    expect(pooledBins(backward, 16)).toEqual(bins)
    const one = fitGbdt(forward, bins, params)
    const two = fitGbdt(backward, bins, params)
    const structure = (model: typeof one): unknown => model.trees.map((tree) => tree.nodes.map((node) => node.split === null ? null : [node.split.feature, node.split.bin, node.split.missingLeft]))
    expect(structure(two)).toEqual(structure(one))
    // sums in another order differ in the last bits only
    two.trees.forEach((tree, index) => { tree.nodes.forEach((node, at) => { expect(node.value).toBeCloseTo(one.trees[index]?.nodes[at]?.value as number, 12) }) })
  })

  it('on the held-out fifth of infert, wnv and breast cancer: AUC within 0.01 of XGBoost\'s with the same parameters', async () => {
    const reference = await xgboostReference()
    for (const { name } of HOLDOUT_DATASETS) {
      const { train, test } = await holdoutSplit(name, reference)
      expect([train.rows, test.rows]).toEqual([reference.datasets[name]?.trainRows, reference.datasets[name]?.testRows])
      const params = createGbdtParams({ ...reference.params })
      const model = fitGbdt(train, pooledBins(train, params.bins), params)
      const held = auc(test.y, predictGbdt(model, test))
      expect(Math.abs(held - (reference.datasets[name]?.auc as number)), name).toBeLessThan(0.01)
    }
  })
})
