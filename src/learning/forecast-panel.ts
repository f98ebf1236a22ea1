import { concatBlocks, type DataBlock } from './design.ts'
import {
  buildForecastDesign, forecastRegion, ForecastInputError, forecastTerms, incidencePer100k, neighbourMeanIncidence,
  type ForecastModelSpec, type PeriodForecast, type RegionHistory
} from './forecast.ts'

/**
 * Every region's series side by side, as a researcher's simulator holds them (a real peer holds only
 * its own series and its neighbours' shared incidence). Regions are aligned with `neighbours`, an
 * adjacency list by region index; every series starts at federation period 0.
 */
export interface SeriesPanel {
  regions: string[]
  /** counts[r][t] */
  counts: Float64Array[]
  populations: number[]
}

function checkPanel (panel: SeriesPanel, neighbours: ReadonlyArray<ReadonlyArray<number>>): number {
  const regions = panel.regions.length
  if (panel.counts.length !== regions || panel.populations.length !== regions || neighbours.length !== regions) {
    throw new ForecastInputError('panel', `${regions} regions, ${panel.counts.length} series, ${panel.populations.length} populations, ${neighbours.length} adjacency lists`)
  }
  const length = panel.counts[0]?.length ?? 0
  for (const series of panel.counts) if (series.length !== length) throw new ForecastInputError('panel', 'the regions\' series differ in length')
  return length
}

/**
 * Each region's history as its own peer would assemble it: its counts and population, and the mean of
 * its neighbours' incidence per 100,000, using the first `periods` periods (default all).
 */
export function panelHistories (panel: SeriesPanel, neighbours: ReadonlyArray<ReadonlyArray<number>>, periods?: number): RegionHistory[] {
  const length = checkPanel(panel, neighbours)
  const used = periods ?? length
  if (!(Number.isInteger(used) && used >= 0 && used <= length)) throw new ForecastInputError('periods', `must be an integer from 0 to ${length}, got ${used}`)
  const incidence = panel.counts.map((series, region) => incidencePer100k(series.subarray(0, used), panel.populations[region] as number))
  return panel.counts.map((series, region) => ({
    counts: series.subarray(0, used),
    population: panel.populations[region] as number,
    neighbourIncidence: neighbourMeanIncidence((neighbours[region] ?? []).map((other) => incidence[other] as Float64Array), used)
  }))
}

/** Each region's design block for periods from <= t < to: one block per region, for one peer each. */
export function panelDesigns (spec: ForecastModelSpec, histories: readonly RegionHistory[], range: { from?: number, to?: number } = {}): { blocks: DataBlock[], terms: string[] } {
  const blocks = histories.map((history) => buildForecastDesign(spec, history, range).block)
  return { blocks, terms: forecastTerms(spec) }
}

/** The pooled design: every region's rows in one block, what one analyst holding all series would fit. */
export function pooledDesign (spec: ForecastModelSpec, histories: readonly RegionHistory[], range: { from?: number, to?: number } = {}): { block: DataBlock, terms: string[] } {
  const { blocks, terms } = panelDesigns(spec, histories, range)
  return { block: concatBlocks(blocks), terms }
}

/**
 * Every region's forecast for the next `horizon` periods, iterated forward jointly: after each step
 * the regions' forecast means become the neighbour aggregate of the next step (the mean over
 * neighbours of forecast incidence per 100,000), as peers that share their forecasts with their
 * neighbours would do. With horizon 1 this is each region's one-step forecast from observed data only.
 */
export function forecastPanel (spec: ForecastModelSpec, coefficients: ArrayLike<number>, histories: readonly RegionHistory[], neighbours: ReadonlyArray<ReadonlyArray<number>>, options: { horizon: number, level?: number }): PeriodForecast[][] {
  if (histories.length !== neighbours.length) throw new ForecastInputError('panel', `${histories.length} histories for ${neighbours.length} adjacency lists`)
  const futures: number[][] = histories.map(() => [])
  let forecasts: PeriodForecast[][] = []
  for (let step = 1; step <= options.horizon; step++) {
    forecasts = histories.map((history, region) => forecastRegion(spec, coefficients, history, { horizon: step, neighbourFuture: futures[region] as number[], ...(options.level === undefined ? {} : { level: options.level }) }))
    if (step === options.horizon) break
    const incidence = forecasts.map((list, region) => (list[step - 1] as PeriodForecast).mean / (histories[region] as RegionHistory).population * 100_000)
    neighbours.forEach((list, region) => {
      const future = futures[region] as number[]
      future.push(list.length === 0 ? 0 : list.reduce((sum, other) => sum + (incidence[other] as number), 0) / list.length)
    })
  }
  return forecasts
}
