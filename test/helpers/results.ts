import type { StoredForecast, StoredModel } from '../../src/store/store.ts'

/** A model as a peer stores one at the end of a job, with the terms and estimates given. */
export function storedModel (job: string, terms: ReadonlyArray<readonly [string, number]> = [['(Intercept)', -1.5], ['age', 0.25]], createdAt = '2024-03-01T12:00:00.000Z'): StoredModel {
  return {
    job,
    createdAt,
    rounds: 42,
    converged: true,
    peers: 4,
    rows: 1200,
    logLikelihood: -512.25,
    penalty: null,
    coefficients: terms.map(([term, estimate]) => ({ term, estimate, standardError: 0.125, z: estimate / 0.125, pValue: 0.01 })),
    metrics: { auc: 0.75, brier: 0.18, hosmerLemeshow: { statistic: 7.5, df: 8, pValue: 0.48 } },
    dropped: []
  }
}

/** A region's outcome of a forecasting job, as a peer stores it. */
export function storedForecast (job: string, region: string, createdAt = '2024-03-01T12:00:00.000Z'): StoredForecast {
  return {
    job,
    region,
    createdAt,
    forecast: [{ step: 1, mean: 505.25, lower: 468, upper: 542 }],
    rate: 2.03,
    h: 0.1313,
    joint: { sum: 0.5869, mean: 0.1467, regions: 4, open: [] },
    model: storedModel(job, [['(Intercept)', 0.5]], createdAt)
  }
}
