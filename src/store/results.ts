import type { StoreLayout } from './layout.ts'
import { checkedValue, storedForecastSchema, storedModelSchema, storedJobId, storedStatsSchema, storedValue, type StoredForecast, type StoredModel, type StoredStats } from './records.ts'

/**
 * The results of jobs a region keeps: each job's shared model, and for a forecasting job this region's
 * forecast. The store is the one place they live; `epimesh model` and `epimesh forecast` read them
 * from it (and `--json` exports one).
 */

function isForecastValue (value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'forecast' in value
}

function isStatsValue (value: unknown): boolean {
  return typeof value === 'object' && value !== null && 'stats' in value
}

/** Newest last: by creation time, then job id. */
function byCreation (a: { createdAt: string, job: string }, b: { createdAt: string, job: string }): number {
  return a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.job < b.job ? -1 : a.job > b.job ? 1 : 0
}

export async function putModel (layout: StoreLayout, model: StoredModel): Promise<void> {
  const checked = checkedValue(storedModelSchema, model, 'model')
  await layout.models.put(layout.modelKey(checked.job), checked)
}

export async function getModel (layout: StoreLayout, job: string): Promise<StoredModel | null> {
  const value = await layout.models.get(layout.modelKey(checkedValue(storedJobId, job, 'job id')))
  return value === undefined ? null : storedValue(storedModelSchema, value, 'model')
}

export async function putForecast (layout: StoreLayout, forecast: StoredForecast): Promise<void> {
  const checked = checkedValue(storedForecastSchema, forecast, 'forecast')
  await layout.models.put(layout.forecastKey(checked.job), checked)
}

export async function getForecast (layout: StoreLayout, job: string): Promise<StoredForecast | null> {
  const value = await layout.models.get(layout.forecastKey(checkedValue(storedJobId, job, 'job id')))
  return value === undefined ? null : storedValue(storedForecastSchema, value, 'forecast')
}

/** Every model, oldest first (the keys are tags, in no order: they are sorted here). */
export async function listModels (layout: StoreLayout): Promise<StoredModel[]> {
  const models: StoredModel[] = []
  for await (const value of layout.models.values()) if (!isForecastValue(value) && !isStatsValue(value)) models.push(storedValue(storedModelSchema, value, 'model'))
  return models.sort(byCreation)
}

/** Every forecast, oldest first. */
export async function listForecasts (layout: StoreLayout): Promise<StoredForecast[]> {
  const forecasts: StoredForecast[] = []
  for await (const value of layout.models.values()) if (isForecastValue(value)) forecasts.push(storedValue(storedForecastSchema, value, 'forecast'))
  return forecasts.sort(byCreation)
}

export async function putStats (layout: StoreLayout, stats: StoredStats): Promise<void> {
  const checked = checkedValue(storedStatsSchema, stats, 'statistics')
  await layout.models.put(layout.statsKey(checked.job), checked)
}

export async function getStats (layout: StoreLayout, job: string): Promise<StoredStats | null> {
  const value = await layout.models.get(layout.statsKey(checkedValue(storedJobId, job, 'job id')))
  return value === undefined ? null : storedValue(storedStatsSchema, value, 'statistics')
}

/** Every statistics job's result, oldest first. */
export async function listStats (layout: StoreLayout): Promise<StoredStats[]> {
  const list: StoredStats[] = []
  for await (const value of layout.models.values()) if (isStatsValue(value)) list.push(storedValue(storedStatsSchema, value, 'statistics'))
  return list.sort(byCreation)
}
