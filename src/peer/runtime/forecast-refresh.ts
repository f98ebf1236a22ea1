import type { SeriesPoint, Store, StoredForecast } from '../../store/store.ts'
import { excerpt } from '../../consensus/ids.ts'
import { forecastProposalSchema, parseForecastProposal, type ForecastProposal } from './forecast-proposal.ts'

/**
 * A re-fit's refresh of the regional forecast. When the federation's regression is re-fitted (`propose
 * --refit`, `start --refit-at`), the latest forecasting job this region holds is proposed again beside
 * it: the same settings (model, candidates, horizon, risk mapping, open regions, algorithm), from the
 * same first day, over the periods through the latest date of this region's series, so that the day's
 * imported counts give a new forecast, h and joint risk. The refreshed job names the job it refreshes
 * (its lineage's parent). Every member fits on its own series over those periods, as for any forecast.
 */
export interface ForecastRefresh {
  /** the forecasting job refreshed */
  parent: string
  /** the refreshed job's settings */
  forecast: ForecastProposal
  /** the latest date of this region's series */
  through: string
}

const DAY_MS = 86_400_000
const MAX_PERIODS = 20_000

/** The refresh's job id: the re-fit's, with `-forecast` (shortened to stay a job id). */
export function forecastRefreshId (refitId: string): string {
  return `${refitId.slice(0, 64 - '-forecast'.length)}-forecast`
}

/**
 * The refresh of `previous` (this region's latest forecast) on `series` (this region's series now):
 * null when there is no forecast to refresh, a reason when there is one and it cannot be refreshed.
 */
export function forecastRefresh (previous: StoredForecast | null, series: readonly SeriesPoint[]): ForecastRefresh | string | null {
  if (previous === null) return null
  if (previous.settings === undefined) return `the forecast of job ${previous.job} was kept without its settings (by an earlier version): propose the forecasting job again with propose --forecast`
  const parsed = forecastProposalSchema.safeParse(previous.settings)
  if (!parsed.success) return `the settings kept with the forecast of job ${previous.job} are not a forecasting job's: ${excerpt(parsed.error.issues[0]?.message ?? 'invalid', 200)}`
  const settings = parsed.data
  const first = Date.parse(`${settings.from}T00:00:00Z`)
  let last = Number.NEGATIVE_INFINITY
  let through = ''
  for (const point of series) {
    const day = Date.parse(`${point.date}T00:00:00Z`)
    if (Number.isFinite(day) && day > last) {
      last = day
      through = point.date
    }
  }
  if (!Number.isFinite(last)) return 'this region\'s store holds no case-count series (epimesh import --series)'
  const periodDays = settings.period === 'week' ? 7 : 1
  // through the period of the latest date, never fewer periods than the job refreshed
  const periods = Math.min(MAX_PERIODS, Math.max(settings.periods, Math.floor(Math.round((last - first) / DAY_MS) / periodDays) + 1))
  const forecast = { ...settings, periods }
  try {
    parseForecastProposal(forecast)
  } catch (error) {
    return `the forecast of job ${previous.job} over ${periods} periods: ${(error as Error).message}`
  }
  return { parent: previous.job, forecast, through }
}

/** The refresh of this region's latest forecast on its series as the store holds them now (see forecastRefresh). */
export async function storedForecastRefresh (store: Store): Promise<ForecastRefresh | string | null> {
  return forecastRefresh(await store.latestForecast(), await store.readSeries())
}
