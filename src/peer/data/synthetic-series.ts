import type { Rng } from '../../consensus/types.ts'
import { samplePoisson } from '../../learning/poisson.ts'

/**
 * Synthetic weekly case counts for the demonstration's provinces, drawn from a known endemic-epidemic
 * model (the kind `hhh4` fits), so that the forecasting job has series to work on. Nothing here is real
 * data; the populations are rounded census figures.
 *
 *   y_rt ~ Poisson(mu_rt),  mu_rt = endemic_rt + 0.45 y_r,t-1 + 0.08 sum_{j ~ r} y_j,t-1 * pop_r / pop_j
 *   endemic_rt = pop_r / 100,000 * exp(-1.2 + 0.9 sin(2 pi t / 52) + 0.5 cos(2 pi t / 52))
 *
 * with t counted in weeks since Monday 1970-01-05, so the season peaks where the job's season terms
 * (which use the same count) expect it.
 */
export interface ProvinceSeries {
  region: string
  population: number
  /** one row per week: its Monday, the week's count */
  weeks: Array<{ date: string, count: number }>
}

export const DEMO_POPULATIONS: Readonly<Record<string, number>> = Object.freeze({
  Shanghai: 24_870_000,
  Jiangsu: 85_260_000,
  Zhejiang: 66_270_000,
  Anhui: 61_270_000
})

const DAY_MS = 86_400_000
const EPOCH_WEEK_MS = Date.UTC(1970, 0, 5)

export function generateSeries (regions: readonly string[], neighbours: ReadonlyArray<readonly number[]>, options: { from: string, weeks: number, rng: Rng }): ProvinceSeries[] {
  const first = Date.parse(`${options.from}T00:00:00Z`)
  const firstWeek = Math.round((first - EPOCH_WEEK_MS) / (7 * DAY_MS))
  const populations = regions.map((region) => DEMO_POPULATIONS[region] ?? 10_000_000)
  const counts = regions.map(() => new Float64Array(options.weeks))
  for (let week = 0; week < options.weeks; week++) {
    const t = firstWeek + week
    const season = Math.exp(-1.2 + 0.9 * Math.sin(2 * Math.PI * t / 52) + 0.5 * Math.cos(2 * Math.PI * t / 52))
    regions.forEach((_, region) => {
      const population = populations[region] as number
      let mean = population / 100_000 * season
      if (week > 0) {
        mean += 0.45 * ((counts[region] as Float64Array)[week - 1] as number)
        for (const other of neighbours[region] ?? []) mean += 0.08 * ((counts[other] as Float64Array)[week - 1] as number) * population / (populations[other] as number)
      }
      ;(counts[region] as Float64Array)[week] = samplePoisson(mean, options.rng)
    })
  }
  return regions.map((region, index) => ({
    region,
    population: populations[index] as number,
    weeks: Array.from(counts[index] as Float64Array, (count, week) => ({ date: new Date(first + week * 7 * DAY_MS).toISOString().slice(0, 10), count }))
  }))
}

export function seriesCsv (series: ProvinceSeries): string {
  return `date,count,population\n${series.weeks.map((week) => `${week.date},${week.count},${series.population}`).join('\n')}\n`
}
