import { describe, expect, it } from 'vitest'
import { gbdtModelFromJson, gbdtModelToJson, predictTrees, readCsv, simulateTrees } from '../src/index.ts'
import { fixture } from './helpers/data.ts'

describe('the library: boosted trees', () => {
  it('simulateTrees grows the pooled forest over a simulated federation; predictTrees applies it, also after a JSON round trip', async () => {
    const data = await readCsv(fixture('infert.csv'))
    const result = simulateTrees({ data, outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous', 'education'], peers: 5, trees: 4, depth: 2, bins: 8 })
    expect(result.peers).toBe(5)
    expect(result.sameTrees).toBe(true)
    expect(result.maxLeafDifference).toBeLessThan(1e-9)
    expect(result.model.trees).toHaveLength(4)
    expect(result.importance.map((entry) => entry.feature)).toHaveLength(5)
    const p = predictTrees(result.model, data.rows)
    expect(p).toHaveLength(248)
    for (const value of p) expect(value > 0 && value < 1).toBe(true)
    const copy = gbdtModelFromJson(JSON.parse(JSON.stringify(gbdtModelToJson(result.model))))
    expect(Array.from(predictTrees(copy, data.rows))).toEqual(Array.from(p))
    // the training metrics the federation computed by masked sums
    expect(result.result.metrics?.auc).toBeGreaterThan(0.7)
    // a level no training row had is a clear error
    expect(() => predictTrees(result.model, [{ ...data.rows[0], education: '99+yrs' }])).toThrow(/education has level 99\+yrs/)
  })
})
