import type { StoredForecast } from '../../store/store.ts'
import { parseForecastProposal, regionSeries } from '../runtime/forecast-proposal.ts'
import { forecastPeriodStart } from './forecast-dates.ts'
import { dateX, lineChartSvg, type PlotSeries } from './plot.ts'
import { EpimeshError } from '../../errors.ts'

/** A forecast that cannot be drawn (stored without the dates of its job). */
export class ForecastPlotError extends EpimeshError {
  static override readonly name = 'ForecastPlotError'
  readonly exitCode = 2
  constructor (message: string) { super('FORECAST_NOT_DRAWN', message) }
}

/** Periods of the observed series shown before the forecast (the last year of weeks), so that the forecast stands out. */
export const SHOWN_PERIODS = 52

/**
 * `forecast --plot`: this region's counts per period of the job (from the series in its store now),
 * the forecast mean and its 90% interval after them, on a time axis of dates. Returns the SVG and what
 * it shows, for the command's line about it.
 */
export async function forecastChart (stored: StoredForecast, points: ReadonlyArray<{ date: string, count: number, population?: number }>): Promise<{ svg: string, observed: number, note: string | null }> {
  const parameters = stored.model.lineage?.parameters ?? {}
  const first = forecastPeriodStart(stored, 1)
  if (first === null) throw new ForecastPlotError(`the forecast of job ${stored.job} was stored without its job's dates (an earlier version's): it cannot be drawn on a time axis`)
  const plan = parseForecastProposal({ from: parameters.from, periods: parameters.periods, period: parameters.period })
  const periodDays = plan.proposal.period === 'week' ? 7 : 1
  const series = regionSeries(plan, points)
  const line: PlotSeries[] = []
  let observed = 0
  let note: string | null = null
  // the forecast's line and band start from the last observed period, so that a forecast of a single
  // period shows as a segment and a fan rather than a point on the edge of the frame
  let anchor: readonly [number, number] | null = null
  if (typeof series === 'string') {
    note = `the observed series is not drawn: ${series}`
  } else {
    const from = Math.max(0, series.counts.length - SHOWN_PERIODS)
    const start = dateX(plan.proposal.from)
    line.push({ name: 'observed (the series in the store)', points: Array.from(series.counts.subarray(from), (count, index) => [start + (from + index) * periodDays * 86_400_000, count] as const) })
    observed = series.counts.length - from
    const last = series.counts.length - 1
    const lastCount = series.counts[last]
    if (observed > 0 && lastCount !== undefined) anchor = [start + last * periodDays * 86_400_000, lastCount]
  }
  const x = (step: number): number => dateX(forecastPeriodStart(stored, step) as string)
  const means = stored.forecast.map((period) => [x(period.step), period.mean] as const)
  const intervals = stored.forecast.map((period) => [x(period.step), period.lower, period.upper] as const)
  const before = anchor !== null && anchor[0] < (means[0]?.[0] ?? Number.POSITIVE_INFINITY)
  line.push({ name: 'forecast mean', points: before && anchor !== null ? [anchor, ...means] : means })
  const svg = await lineChartSvg(line, {
    title: `${stored.region}, job ${stored.job}: cases per ${plan.proposal.period} and the forecast from ${first}`,
    xTitle: `first day of the ${plan.proposal.period}`,
    yTitle: 'cases',
    timeX: true,
    legend: 'top-left',
    bands: [{ name: 'forecast: 90% interval', points: before && anchor !== null ? [[anchor[0], anchor[1], anchor[1]] as const, ...intervals] : intervals }],
    rules: [{ axis: 'x', value: x(1), label: 'forecast' }]
  })
  return { svg, observed, note }
}
