import { readForecastInputs } from '../../src/peer/data/forecast-files.ts'
import { fixture } from './data.ts'

/** Germany's population in 2006 (about 82.3 million), to turn measlesDE's population shares into residents. */
export const GERMANY_2006 = 82_300_000

export async function loadFluBYBW (): ReturnType<typeof readForecastInputs> {
  return readForecastInputs({ counts: fixture('fluBYBW_counts.csv'), population: fixture('fluBYBW_population.csv'), adjacency: fixture('fluBYBW_adjacency.csv') })
}

export async function loadMeaslesDE (): ReturnType<typeof readForecastInputs> {
  return readForecastInputs({ counts: fixture('measlesDE_counts.csv'), population: fixture('measlesDE_population.csv'), adjacency: fixture('measlesDE_adjacency.csv') }, { totalPopulation: GERMANY_2006 })
}
