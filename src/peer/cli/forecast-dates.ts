import type { StoredForecast } from '../../store/store.ts'

const DAY_MS = 86_400_000

/**
 * The first day of the forecast's step `step` (1: the period after the job's last), from the job's
 * proposal as the model's lineage keeps it (first day, periods, day or week); null when the lineage
 * does not say (a forecast stored by an earlier version).
 */
export function forecastPeriodStart (stored: StoredForecast, step: number): string | null {
  const parameters = stored.model.lineage?.parameters
  const from = parameters?.from
  const periods = parameters?.periods
  const period = parameters?.period
  if (typeof from !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(from) || typeof periods !== 'number' || (period !== 'day' && period !== 'week')) return null
  const first = Date.parse(`${from}T00:00:00Z`)
  if (!Number.isFinite(first)) return null
  const days = (periods + step - 1) * (period === 'week' ? 7 : 1)
  return new Date(first + days * DAY_MS).toISOString().slice(0, 10)
}

/** How `forecast` names a step: "week of 2024-03-04" or "2024-03-04", else "period +1". */
export function forecastPeriodLabels (stored: StoredForecast): (step: number) => string {
  const weekly = stored.model.lineage?.parameters.period === 'week'
  return (step) => {
    const start = forecastPeriodStart(stored, step)
    return start === null ? `period +${step}` : weekly ? `week of ${start}` : start
  }
}
