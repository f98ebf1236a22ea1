import { Store } from '../../store/store.ts'
import { excerpt } from '../../consensus/ids.ts'
import type { ModelSpec } from '../federation.ts'
import { forecastRefreshId, storedForecastRefresh } from './forecast-refresh.ts'
import { checkProposal } from './peer.ts'
import type { JobProposal } from './proposal.ts'

/**
 * One scheduled re-fit (`start --refit-at`), at its time: the federation's regression proposed again as
 * `id`, warm-started from the latest regression model the region holds (a cold fit when it holds none),
 * and once it has run, the region's latest forecasting job refreshed on the series as imported now
 * (forecast-refresh.ts) as `id-forecast`. Each step is logged; a step that fails is logged and does not
 * stop the next one. `propose` proposes a job and resolves when it has run.
 */
export async function runScheduledRefit (options: {
  dir: string
  id: string
  proposer: string
  model: ModelSpec
  propose: (proposal: JobProposal) => Promise<unknown>
  log: (level: 'info' | 'warn', event: string, fields: Record<string, unknown>, message: string) => void
  signal: AbortSignal
}): Promise<void> {
  const { dir, id, proposer, model, log, signal } = options
  try {
    const parent = await Store.use(dir, async (store) => (await store.listModels()).filter((stored) => stored.specification?.kind === 'glm' && stored.duals !== undefined).at(-1) ?? null)
    const proposal = checkProposal({ id, proposer, ...(parent === null ? {} : { refit: parent.job }) }, model, `scheduled re-fit ${id}`)
    log('info', 'refit.proposed', { job: id, parent: parent?.job ?? null }, 'scheduled re-fit proposed')
    await options.propose(proposal)
  } catch (error) {
    if (!signal.aborted) log('warn', 'refit.failed', { reason: excerpt((error as Error).message, 300) }, 'the scheduled re-fit did not complete')
  }
  if (signal.aborted) return
  try {
    const refresh = await Store.use(dir, storedForecastRefresh)
    if (typeof refresh === 'string') {
      log('warn', 'forecast.refresh.skipped', { reason: excerpt(refresh, 300) }, 'the regional forecast is not refreshed')
      return
    }
    if (refresh === null) return
    const refreshId = forecastRefreshId(id)
    const proposal = checkProposal({ id: refreshId, proposer, forecast: refresh.forecast, refit: refresh.parent }, model, `scheduled forecast refresh ${refreshId}`)
    log('info', 'forecast.refresh.proposed', { job: refreshId, parent: refresh.parent, periods: refresh.forecast.periods, through: refresh.through }, 'forecast refresh proposed')
    await options.propose(proposal)
  } catch (error) {
    if (!signal.aborted) log('warn', 'forecast.refresh.failed', { reason: excerpt((error as Error).message, 300) }, 'the forecast refresh did not complete')
  }
}
