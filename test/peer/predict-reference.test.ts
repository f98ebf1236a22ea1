import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges } from '../../src/consensus/graph.ts'
import { simulateFit } from '../../src/consensus/sim/fit-simulation.ts'
import { buildDesign, INTERCEPT, termNames, type ModelSpec } from '../../src/learning/design.ts'
import { readDataset } from '../../src/peer/data/dataset.ts'
import { scoreRecords } from '../../src/peer/cli/models.ts'
import { toStoredModel } from '../../src/peer/runtime/peer.ts'
import type { FeatureSpec as FederationFeature } from '../../src/peer/federation.ts'
import type { JobProposal } from '../../src/peer/runtime/proposal.ts'
import type { RowPrediction } from '../../src/learning/predict.ts'
import { fixture } from '../helpers/data.ts'

/**
 * `epimesh predict` against R (test/fixtures/predict-reference.json, made by
 * scripts/reference/predict-reference.R): each model fitted by the federation's own fit job over three
 * simulated peers, stored as a peer stores it (specification, covariance), and the held-out rows of
 * infert scored from the stored model.
 */
interface Reference { coefficients: number[], link: number[], linkSe: number[], fit: number[], se: number[], lower: number[], upper: number[] }

const EDUCATION = ['0-5yrs', '6-11yrs', '12+ yrs']

async function scenario (family: 'binomial' | 'poisson', outcome: string, names: string[], lambda: number): Promise<{ predictions: RowPrediction[], coefficients: number[] }> {
  const reference = JSON.parse(await readFile(fixture('predict-reference.json'), 'utf8')) as { heldOut: number[] }
  const { rows } = await readDataset(fixture('infert.csv'))
  const held = new Set(reference.heldOut.map((row) => row - 1))
  const train = rows.filter((_, index) => !held.has(index))
  const test = rows.filter((_, index) => held.has(index))
  const features: FederationFeature[] = names.map((name) => name === 'education' ? { name, type: 'categorical', levels: EDUCATION } : { name, type: 'numeric' })
  const spec: ModelSpec = { outcome, features: features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: feature.levels ?? [] } : { name: feature.name, type: 'numeric' }) }
  const terms = termNames(spec)
  // three regions holding a third of the training rows each
  const parts = [0, 1, 2].map((part) => train.filter((_, index) => index % 3 === part))
  const blocks = parts.map((part) => buildDesign(part, spec, { outcome: family === 'binomial' ? 'binary' : 'count' }))
  const graph = graphFromEdges(['a', 'b', 'c'], [['a', 'b'], ['b', 'c'], ['c', 'a']])
  const params = createFitJobParams({ algorithm: 'newton', lambda, tolerance: 1e-12, maxRounds: 400 })
  const simulation = simulateFit({ family, terms, interceptColumn: terms.indexOf(INTERCEPT), blocks, graph, params, seed: 7 })
  const result = simulation.results[0]
  if (result === undefined) throw new Error('no result')
  expect(result.converged).toBe(true)
  const proposal: JobProposal = {
    type: 'job.propose',
    id: 'reference',
    proposer: 'a',
    model: { family, outcome, features, lambda, algorithm: 'newton', tolerance: 1e-12, maxRounds: 400, roundDeadlineMs: 1000, dropAfterRounds: 0 }
  }
  const model = toStoredModel('reference', result, { proposal, input: { rows: blocks[0]?.rows ?? 0, digest: '0'.repeat(64) }, members: [{ region: 'A', peerId: 'a' }, { region: 'B', peerId: 'b' }, { region: 'C', peerId: 'c' }] })
  expect(model.specification).toMatchObject({ kind: 'glm', family, standardize: true, lambda })
  const scored = scoreRecords(model, test.map((values, index) => ({ row: index + 1, values })))
  for (const row of scored) expect('error' in row).toBe(false)
  return { predictions: scored as RowPrediction[], coefficients: model.coefficients.map((row) => row.estimate) }
}

/** Largest |a - b| / max(1, |b|). */
function worst (actual: readonly number[], expected: readonly number[]): number {
  expect(actual).toHaveLength(expected.length)
  return Math.max(...expected.map((value, index) => Math.abs((actual[index] as number) - value) / Math.max(1, Math.abs(value))))
}

async function compare (name: 'factors' | 'poisson' | 'penalised', family: 'binomial' | 'poisson', outcome: string, features: string[], lambda: number): Promise<void> {
  const reference = (JSON.parse(await readFile(fixture('predict-reference.json'), 'utf8')) as Record<string, Reference>)[name] as Reference
  const { predictions, coefficients } = await scenario(family, outcome, features, lambda)
  expect(worst(coefficients, reference.coefficients)).toBeLessThan(1e-8)
  for (const field of ['link', 'linkSe', 'fit', 'se', 'lower', 'upper'] as const) {
    expect(worst(predictions.map((row) => row[field]), reference[field]), field).toBeLessThan(1e-8)
  }
}

describe('predict equals R on held-out rows', () => {
  it('a logistic model with a factor (treatment contrasts): R predict(glm, type = "response" / "link", se.fit = TRUE)', async () => {
    await compare('factors', 'binomial', 'case', ['age', 'parity', 'education', 'spontaneous', 'induced'], 0)
  })

  it('a Poisson model with a factor: the rate and its standard error', async () => {
    await compare('poisson', 'poisson', 'spontaneous', ['age', 'parity', 'education'], 0)
  })

  it('a standardised, penalised logistic model (lambda 2): epimesh\'s definition computed in R', async () => {
    await compare('penalised', 'binomial', 'case', ['age', 'parity', 'education', 'spontaneous', 'induced'], 2)
  })
})
