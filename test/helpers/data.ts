import { fileURLToPath } from 'node:url'
import { prepareModel, readDataset } from '../../src/peer/data/dataset.ts'
import { buildDesign, termNames, type DataBlock, type FeatureSpec } from '../../src/learning/design.ts'

export function fixture (name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
}

export interface LoadedModel {
  block: DataBlock
  terms: string[]
  rows: Array<Record<string, unknown>>
}

/** A fixture data set as a design block, with the same preparation the commands use. */
export async function loadModel (name: string, options: { outcome: string, features?: string[], family?: 'binomial' | 'poisson', levels?: Record<string, string[]> }): Promise<LoadedModel> {
  const dataset = await readDataset(fixture(name))
  const prepared = prepareModel(dataset, { outcome: options.outcome, family: options.family ?? 'binomial', ...(options.features === undefined ? {} : { features: options.features }) })
  const features: FeatureSpec[] = prepared.spec.features.map((feature) => {
    const levels = options.levels?.[feature.name]
    return levels === undefined ? feature : { name: feature.name, type: 'categorical', levels }
  })
  const spec = { ...prepared.spec, features }
  return { block: buildDesign(prepared.rows, spec, { outcome: options.family === 'poisson' ? 'count' : 'binary' }), terms: termNames(spec), rows: prepared.rows }
}

export function relativeError (actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let worst = 0
  for (let index = 0; index < expected.length; index++) {
    worst = Math.max(worst, Math.abs((actual[index] as number) - (expected[index] as number)) / Math.abs(expected[index] as number))
  }
  return worst
}

/** R 4.2.2 glm(..., family = binomial), epsilon 1e-14 (the data sets' README). */
export const R_INFERT = {
  terms: ['(Intercept)', 'age', 'parity', 'induced', 'spontaneous'],
  estimate: [-2.8523903676543, 0.0531809874821, -0.7088300628699, 1.1896562106897, 1.9253382377823],
  standardError: [1.0042829136476, 0.0301415025465, 0.1809139321180, 0.2898752483250, 0.2986307023529],
  logLikelihood: -130.471683744
}

export const R_WNV = {
  terms: ['(Intercept)', 'age', 'male'],
  estimate: [-9.3759061290928, 0.0948090982322, 0.1737478499938],
  standardError: [1.398167821053, 0.018038124388, 0.464295981134],
  logLikelihood: -75.0306435738
}
