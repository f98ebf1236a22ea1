/**
 * Boosted trees against the field, on infert, wnv and breast cancer with a held-out fifth (row i held
 * out when i % 5 == 4, as scripts/reference/xgboost-reference.py splits them): the federated forest
 * (16 simulated peers on a ring, the job's own code), the pooled forest with the same bin edges, the
 * federated logistic regression (exact Newton, same ring, standardised features and lambda = 1: wnv's
 * county factor separates the outcome without a penalty), and XGBoost's hist method with the same
 * parameters (its scores from test/fixtures/xgboost-reference.json). Held-out AUC and log-loss, and for
 * the federated fits the rounds, messages, bytes and time.
 *
 *   npx tsx scripts/gbdt-experiment.ts [--peers 16] [--json]
 */
import { createFitJobParams } from '../src/consensus/jobs/fit-job.ts'
import { simulateDataFit } from '../src/consensus/sim/data-fit-simulation.ts'
import { simulateGbdtData } from '../src/consensus/sim/gbdt-simulation.ts'
import { buildDesign, termNames, type ModelSpec } from '../src/learning/design.ts'
import { createGbdtParams, fitGbdt, predictGbdt } from '../src/learning/gbdt.ts'
import { auc, logLoss, predictMeans } from '../src/learning/metrics.ts'
import { HOLDOUT_DATASETS, holdoutSplit, xgboostReference } from '../test/helpers/gbdt-data.ts'

const peersIndex = process.argv.indexOf('--peers')
const peers = peersIndex > 0 ? Number(process.argv[peersIndex + 1]) : 16
const json = process.argv.includes('--json')
const reference = await xgboostReference()
const params = createGbdtParams({ ...reference.params, minNodeRows: 3 })
const rows: Array<Record<string, unknown>> = []

for (const { name } of HOLDOUT_DATASETS) {
  const { train, test, trainRows, testRows } = await holdoutSplit(name, reference)
  const expected = reference.datasets[name] as (typeof reference.datasets)[string]

  let started = performance.now()
  const federated = simulateGbdtData({ data: train, params, peers, split: 'even', topology: 'ring', seed: 1 })
  const treeSeconds = (performance.now() - started) / 1000
  const pooled = fitGbdt(train, federated.model.bins, params)
  const federatedP = predictGbdt(federated.model, test)
  const pooledP = predictGbdt(pooled, test)

  const spec: ModelSpec = {
    outcome: expected.outcome,
    features: train.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: feature.levels } : { name: feature.name, type: 'numeric' })
  }
  const stringify = (row: Record<string, unknown>): Record<string, unknown> => Object.fromEntries(Object.entries(row).map(([key, value]) => [key, expected.factors.includes(key) ? String(value) : value]))
  started = performance.now()
  const glm = simulateDataFit({ rows: trainRows.map(stringify) as never, spec, family: 'binomial', peers, split: 'even', topology: 'ring', params: createFitJobParams({ algorithm: 'newton', tolerance: 1e-10, lambda: 1 }), seed: 1 })
  const glmSeconds = (performance.now() - started) / 1000
  const block = buildDesign(testRows.map(stringify), spec, { outcome: 'binary' })
  const glmP = predictMeans('binomial', block, termNames(spec).map((term) => glm.coefficients[term] as number))

  rows.push({
    data: name,
    trainRows: train.rows,
    testRows: test.rows,
    federatedTrees: { auc: auc(test.y, federatedP), logLoss: logLoss(test.y, federatedP), rounds: federated.rounds, messages: federated.messages, bytes: federated.bytes, seconds: treeSeconds, sameTreesAsPooled: federated.sameTrees, maxLeafDifference: federated.maxLeafDifference },
    pooledTrees: { auc: auc(test.y, pooledP), logLoss: logLoss(test.y, pooledP) },
    federatedGlm: { auc: auc(block.y, glmP), logLoss: logLoss(block.y, glmP), rounds: glm.rounds, messages: glm.messages, bytes: glm.bytes, seconds: glmSeconds },
    xgboost: { auc: expected.auc, logLoss: expected.logLoss }
  })
}

if (json) {
  console.log(JSON.stringify({ peers, topology: 'ring', params: reference.params, xgboost: reference.xgboost, results: rows }))
} else {
  console.log(`held-out fifth; ${peers} peers on a ring; ${reference.params.trees} trees of depth ${reference.params.depth}, learning rate ${reference.params.learningRate}, lambda ${reference.params.lambda}, ${reference.params.bins} bins; XGBoost ${reference.xgboost} (hist)`)
  console.log('| data | federated trees AUC / log-loss | pooled trees | federated GLM | XGBoost | trees: rounds, MB, s | GLM: rounds, MB, s |')
  console.log('|---|---|---|---|---|---|---|')
  for (const row of rows as Array<Record<string, any>>) {
    const pair = (entry: { auc: number, logLoss: number }): string => `${entry.auc.toFixed(4)} / ${entry.logLoss.toFixed(4)}`
    console.log(`| ${row.data} | ${pair(row.federatedTrees)} | ${pair(row.pooledTrees)} | ${pair(row.federatedGlm)} | ${pair(row.xgboost)} | ${row.federatedTrees.rounds}, ${(row.federatedTrees.bytes / 1e6).toFixed(1)}, ${row.federatedTrees.seconds.toFixed(1)} | ${row.federatedGlm.rounds}, ${(row.federatedGlm.bytes / 1e6).toFixed(2)}, ${row.federatedGlm.seconds.toFixed(1)} |`)
  }
}
