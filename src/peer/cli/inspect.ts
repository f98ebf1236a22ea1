import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { checkJobId } from '../paths.ts'
import type { Command } from 'commander'
import { EpimeshError } from '../../errors.ts'
import { OptionInvalidError } from '../../store/errors.ts'
import { featureImportance, gbdtModelFromJson } from '../../learning/gbdt.ts'
import type { StoredForecast } from '../../store/store.ts'
import { withStore } from './store-commands.ts'
import { formatPValues, modelDetailLines, modelFooterLines } from './models.ts'
import { dirOption } from './dir-option.ts'
import { phaseLabel } from './phase-names.ts'
import { forecastPeriodLabels, forecastPeriodStart } from './forecast-dates.ts'

/**
 * `epimesh status`, `epimesh model` and `epimesh forecast`: what a peer is doing (from the status file
 * it keeps), and the shared models and forecasts it holds (from its store, which the running peer
 * opens only for moments). `--json` prints one model or forecast as JSON: the way to export one.
 */
class NothingYetError extends EpimeshError {
  static override readonly name = 'NothingYetError'
  readonly exitCode = 2
  constructor (message: string) { super('NOTHING_YET', message) }
}

/** A statistic that may be undefined (null, as the store keeps a standard error the Hessian cannot give), formatted. */
export function stat (value: number | null, format: (value: number) => string): string {
  return value === null ? 'NA' : format(value)
}

async function readJson<T> (path: string, what: string): Promise<T> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as T
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new NothingYetError(`no ${what} in ${path}`)
    throw error
  }
}

function alive (pid: unknown): boolean {
  if (typeof pid !== 'number') return false
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

const REASONS: Record<string, string> = { 'not-member': 'not a member', graylisted: 'graylisted', 'connection-limit': 'over the connections per peer', 'inbound-rate': 'over the inbound rate per peer' }

/** The gater's refusals and the gossipsub scores, as `start` writes them into status.json. */
function networkLines (network: Record<string, any> | undefined): string[] {
  if (network === undefined || network === null) return []
  const lines: string[] = []
  const connections = network.connections ?? {}
  const byReason = Object.entries<Record<string, number>>(connections.byReason ?? {})
    .filter(([, count]) => Number(count.inbound) + Number(count.outbound) > 0)
    .map(([reason, count]) => `${REASONS[reason] ?? reason} ${count.inbound} inbound, ${count.outbound} outbound`)
  lines.push(`connections refused: ${byReason.length === 0 ? 'none' : byReason.join('; ')}`)
  for (const ban of connections.banned ?? []) lines.push(`  banned until ${ban.until}: ${ban.peerId}`)
  const gossipsub = network.gossipsub ?? {}
  const scores = Object.entries<{ score: number, lowest: number }>(gossipsub.scores ?? {})
  const lowest = scores.reduce<[string, number] | null>((low, [peer, entry]) => low === null || entry.lowest < low[1] ? [peer, entry.lowest] : low, null)
  lines.push(`peer scores: ${gossipsub.graylisted ?? 0} graylisted (threshold ${gossipsub.thresholds?.graylist ?? '?'}), ${gossipsub.disconnected ?? 0} disconnected, ${gossipsub.invalidDirect ?? 0} invalid direct messages` +
    (lowest === null ? '' : `; lowest ${Number(lowest[1]).toPrecision(3)} (${lowest[0]})`))
  return lines
}

/**
 * The status file's job in words: its kind, the phase by name (not its protocol tag), the round within
 * the phase and the rounds since the job began, and the ADMM residuals when it is in ADMM.
 */
export function jobStatusLine (job: Record<string, any>): string {
  const state = job.state === undefined || job.state === 'running' ? '' : ` (${String(job.state)})`
  const kind = typeof job.kind === 'string' ? ` (${KINDS[job.kind] ?? job.kind})` : ''
  const rounds = `round ${Number(job.round)} of this phase${typeof job.jobRound === 'number' ? `, ${job.jobRound} since the job began` : ''}`
  const residuals = job.primalResidual === undefined ? '' : `; primal residual ${Number(job.primalResidual).toExponential(2)}, dual residual ${Number(job.dualResidual).toExponential(2)}`
  return `job ${job.job}${kind}${state}: ${phaseLabel(String(job.phase))}, ${rounds}${residuals}`
}

/** `status --wait`: its default and longest wait, and how often it looks. */
export const READY_WAIT = Object.freeze({ defaultSeconds: 60, maxSeconds: 3600, pollMs: 250 })

/** The peer of `dir` is not running with all its neighbours within the time given. */
export class PeerNotReadyError extends EpimeshError {
  static override readonly name = 'PeerNotReadyError'
  constructor (message: string) { super('PEER_NOT_READY', message) }
}

/** Waits until the peer of `dir` runs (its status file written by a live process) with no graph neighbour missing. */
async function waitUntilReady (dir: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs
  let last = 'its status file is not written yet (the peer writes it once it has met its neighbours, or given up waiting for them)'
  for (;;) {
    const status = await readFile(join(dir, 'status.json'), 'utf8').then((text) => JSON.parse(text) as Record<string, any>, () => null)
    if (status !== null) {
      const missing: unknown[] = Array.isArray(status.neighbours?.missing) ? status.neighbours.missing : []
      if (!alive(status.pid)) last = 'no peer process runs on it'
      else if (missing.length > 0) last = `${missing.length} graph neighbour${missing.length === 1 ? ' is' : 's are'} not connected`
      else return
    }
    if (Date.now() >= until) throw new PeerNotReadyError(`the peer of ${dir} is not ready after ${Number((timeoutMs / 1000).toPrecision(3))} s: ${last}`)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(READY_WAIT.pollMs, until - Date.now()))))
  }
}

const KINDS: Record<string, string> = { glm: 'regression', forecast: 'regional forecast', gbdt: 'boosted trees', stats: 'descriptive statistics' }

export function registerInspect (program: Command): void {
  program.command('status')
    .description('the peer\'s neighbours and links, its current job, phase, round and residuals, the messages and connections it refused, and its neighbours\' scores')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--json', 'one JSON object on stdout', false)
    .option('--wait', `first wait until the peer runs with every graph neighbour connected (for scripts, after start ... &); exit 1 if it is not so within --timeout seconds (default ${READY_WAIT.defaultSeconds})`, false)
    .option('--timeout <seconds>', 'with --wait: how long to wait', Number)
    .action(async (options: { dir: string, json: boolean, wait: boolean, timeout?: number }) => {
      if (options.timeout !== undefined && !options.wait) throw new OptionInvalidError('--timeout applies to --wait')
      if (options.timeout !== undefined && !(Number.isFinite(options.timeout) && options.timeout > 0 && options.timeout <= READY_WAIT.maxSeconds)) throw new OptionInvalidError(`--timeout must be a number of seconds above 0 and at most ${READY_WAIT.maxSeconds}`)
      if (options.wait) await waitUntilReady(options.dir, (options.timeout ?? READY_WAIT.defaultSeconds) * 1000)
      const status = await readJson<Record<string, any>>(join(options.dir, 'status.json'), 'status (has the peer been started?)')
      const running = alive(status.pid)
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ running, ...status })}\n`)
        return
      }
      const out = (line: string): void => { process.stdout.write(`${line}\n`) }
      out(`${status.region} (${status.peerId}) ${running ? `running, pid ${status.pid}` : 'not running'}; updated ${status.updatedAt}`)
      const neighbours = status.neighbours ?? {}
      out(`neighbours: ${(neighbours.connected ?? []).length} connected, ${(neighbours.missing ?? []).length} missing`)
      if (status.job !== null && status.job !== undefined) {
        const job = status.job
        out(jobStatusLine(job))
      } else {
        out('no job running')
      }
      const transport = status.transport ?? {}
      const rejected = Object.entries(transport.rejected ?? {}).filter(([, count]) => Number(count) > 0)
      out(`messages: ${transport.sent ?? 0} sent, ${transport.accepted ?? 0} accepted, ${rejected.length === 0 ? 'none rejected' : `rejected ${rejected.map(([code, count]) => `${code} ${count}`).join(', ')}`}`)
      for (const line of networkLines(status.network)) out(line)
      if (status.lastModel !== undefined) out(`latest model: job ${status.lastModel}`)
      const forecast = status.lastForecast
      if (forecast !== undefined && forecast !== null) out(`latest forecast: job ${forecast.job}${forecast.periods === null ? '' : ` over ${forecast.periods} periods`}${forecast.parent === null ? '' : `, refreshing job ${forecast.parent}`} (${forecast.createdAt}); h = ${Number(forecast.h).toFixed(4)}, joint risk mean ${Number(forecast.jointRiskMean).toFixed(4)} (epimesh forecast)`)
    })

  program.command('model')
    .description('the latest shared model this peer holds (or one job\'s, or the list of them): coefficients, standard errors, z, p')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--job <id>', 'a given job instead of the latest regression or trees (a forecasting job\'s model by its job)')
    .option('--list', 'every model it holds, oldest first', false)
    .option('--json', 'one JSON object on stdout (with --list, an array)', false)
    .action(async (options: { dir: string, job?: string, list: boolean, json: boolean }) => {
      const job = options.job === undefined ? undefined : checkJobId(options.job, '--job')
      const out = (line: string): void => { process.stdout.write(`${line}\n`) }
      if (options.list) {
        const models = await withStore(options.dir, async (store) => await store.listModels())
        if (options.json) out(JSON.stringify(models))
        else if (models.length === 0) out('no model yet')
        else for (const model of models) out(`${model.createdAt}  job ${model.job}: ${model.forest !== undefined ? `${model.forest.trees.length} boosted trees` : `${model.converged ? 'converged' : 'NOT converged'}`} in ${model.rounds} rounds; ${model.rows} records in ${model.peers} regions${model.forest !== undefined ? '' : `; ${model.coefficients.length} terms`}`)
        return
      }
      // by default the latest model of the federation's classifier (a regression or trees); a forecasting
      // job's model only when there is no other (forecast shows it, and --job names it)
      const model = await withStore(options.dir, async (store) => {
        if (job !== undefined) return await store.getModel(job)
        const models = await store.listModels()
        return models.filter((stored) => stored.specification?.kind !== 'forecast').at(-1) ?? models.at(-1) ?? null
      })
      if (model === null) throw new NothingYetError(job === undefined ? `no model yet in ${options.dir}` : `no model of job ${job} in ${options.dir}`)
      if (options.json) {
        out(JSON.stringify(model))
        return
      }
      if (model.forest !== undefined) {
        const forest = gbdtModelFromJson(model.forest)
        const { params } = forest
        out(`job ${model.job}: ${forest.trees.length} boosted trees (${params.family}, depth ${params.depth}, learning rate ${params.learningRate}, lambda ${params.lambda}, gamma ${params.gamma}, min child weight ${params.minChildWeight}, ${params.bins} bins) in ${model.rounds} rounds; ${model.rows} records in ${model.peers} regions; training log-likelihood ${stat(model.logLikelihood, (value) => value.toFixed(4))}`)
        const importance = featureImportance(forest).sort((a, b) => b.gain - a.gain)
        const total = importance.reduce((sum, entry) => sum + entry.gain, 0)
        out(`${'feature'.padEnd(22)} ${'gain'.padStart(12)} ${'share'.padStart(8)} ${'splits'.padStart(8)}`)
        for (const entry of importance) out(`${entry.feature.padEnd(22)} ${entry.gain.toPrecision(6).padStart(12)} ${(total > 0 ? `${(100 * entry.gain / total).toFixed(1)}%` : '-').padStart(8)} ${String(entry.splits).padStart(8)}`)
      } else {
        out(`job ${model.job}: ${model.converged ? 'converged' : 'NOT converged'} in ${model.rounds} rounds; ${model.rows} records in ${model.peers} regions; log-likelihood ${stat(model.logLikelihood, (value) => value.toFixed(4))}`)
      }
      if (model.forest === undefined) out(`${'term'.padEnd(22)} ${'estimate'.padStart(12)} ${'std. error'.padStart(12)} ${'z'.padStart(8)} ${'p'.padStart(10)}`)
      const pValues = formatPValues(model.coefficients.map((row) => row.pValue))
      for (const [index, row] of model.coefficients.entries()) {
        out(`${row.term.padEnd(22)} ${row.estimate.toPrecision(7).padStart(12)} ${stat(row.standardError, (value) => value.toPrecision(6)).padStart(12)} ${stat(row.z, (value) => value.toFixed(2)).padStart(8)} ${(pValues[index] as string).padStart(10)}`)
      }
      if (model.metrics !== null) {
        const { auc, brier, hosmerLemeshow } = model.metrics
        out(`computed by the federation: AUC ${stat(auc, (value) => value.toFixed(4))}, Brier ${stat(brier, (value) => value.toFixed(4))}, Hosmer-Lemeshow ${stat(hosmerLemeshow.statistic, (value) => value.toFixed(3))} on ${hosmerLemeshow.df} df (p = ${stat(hosmerLemeshow.pValue, (value) => value.toFixed(4))})`)
      }
      if (model.dropped.length > 0) out(`peers dropped during the job: ${model.dropped.join(', ')}`)
      for (const line of modelDetailLines(model)) out(line)
      if (model.forest === undefined) for (const line of modelFooterLines(model)) out(line)
    })

  program.command('stats')
    .description('the latest descriptive statistics of the federation this peer holds (or one job\'s, or the list of them): counts, means, SDs, quantiles, correlations, WOE, IV, cross-tables')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--job <id>', 'a given statistics job instead of the latest')
    .option('--list', 'every statistics job\'s result it holds, oldest first', false)
    .option('--json', 'one JSON object on stdout (with --list, an array)', false)
    .action(async (options: { dir: string, job?: string, list: boolean, json: boolean }) => {
      const job = options.job === undefined ? undefined : checkJobId(options.job, '--job')
      const out = (line: string): void => { process.stdout.write(`${line}\n`) }
      const all = await withStore(options.dir, async (store) => await store.listStats())
      if (options.list) {
        if (options.json) out(JSON.stringify(all))
        else if (all.length === 0) out('no statistics yet (propose a job: epimesh propose --stats --features a,b,c)')
        else for (const entry of all) out(`${entry.createdAt}  job ${entry.job}: ${entry.stats.rows} records in ${entry.stats.peers} regions; ${Object.keys(entry.stats.features).join(', ')}`)
        return
      }
      const stored = job === undefined ? all.at(-1) ?? null : all.find((entry) => entry.job === job) ?? null
      if (stored === null) throw new NothingYetError(job === undefined ? `no statistics yet in ${options.dir} (propose a job: epimesh propose --stats --features a,b,c)` : `no statistics of job ${job} in ${options.dir}`)
      if (options.json) {
        out(JSON.stringify(stored))
        return
      }
      out(`job ${stored.job} (${stored.createdAt}, ${stored.rounds} rounds)`)
      const { printStats, printOwnStanding } = await import('./stats-text.ts')
      printStats(stored.stats as unknown as Parameters<typeof printStats>[0], out)
      if (stored.own !== undefined) printOwnStanding(stored.stats as unknown as Parameters<typeof printStats>[0], stored.own, out)
    })

  program.command('forecast')
    .description('this region\'s latest forecast (mean and 90% interval per period), its risk score h, the federation\'s joint risk and total forecast')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--job <id>', 'a given forecasting job instead of the latest')
    .option('--list', 'every forecast it holds, oldest first', false)
    .option('--json', 'one JSON object on stdout (with --list, an array)', false)
    .option('--plot <file.svg>', 'also draw it: this region\'s counts per period, the forecast mean and its 90% interval, dates on the x-axis')
    .action(async (options: { dir: string, job?: string, list: boolean, json: boolean, plot?: string }) => {
      const job = options.job === undefined ? undefined : checkJobId(options.job, '--job')
      const out = (line: string): void => { process.stdout.write(`${line}\n`) }
      if (options.list) {
        if (options.plot !== undefined) throw new OptionInvalidError('--plot draws one forecast: leave out --list')
        const forecasts = await withStore(options.dir, async (store) => await store.listForecasts())
        if (options.json) out(JSON.stringify(forecasts))
        else if (forecasts.length === 0) out('no forecast yet (propose one: epimesh propose --forecast)')
        else for (const forecast of forecasts) out(`${forecast.createdAt}  job ${forecast.job}: ${forecast.forecast.length} periods; h = ${forecast.h.toFixed(4)}; joint risk of ${forecast.joint.regions} regions, mean ${forecast.joint.mean.toFixed(4)}`)
        return
      }
      const stored: StoredForecast | null = await withStore(options.dir, async (store) => job === undefined ? await store.latestForecast() : await store.getForecast(job))
      if (stored === null) throw new NothingYetError(job === undefined ? `no forecast yet in ${options.dir} (propose one: epimesh propose --forecast)` : `no forecast of job ${job} in ${options.dir}`)
      if (options.plot !== undefined) {
        const points = await withStore(options.dir, async (store) => await store.readSeries())
        // vega loads only for a plot
        const { forecastChart } = await import('./forecast-plot.ts')
        const { svg, observed, note } = await forecastChart(stored, points)
        await writeFile(options.plot, svg)
        if (!options.json) out(`plot written to ${options.plot}: ${observed} observed periods, ${stored.forecast.length} forecast${note === null ? '' : `; ${note}`}`)
      }
      if (options.json) {
        // each period with its first day (null for a forecast stored without its proposal)
        out(JSON.stringify({ ...stored, forecast: stored.forecast.map((period) => ({ ...period, start: forecastPeriodStart(stored, period.step) })) }))
        return
      }
      const label = forecastPeriodLabels(stored)
      out(`${stored.region}, job ${stored.job}: forecast cases (mean and 90% interval)`)
      const settings = stored.settings
      const parent = stored.model.lineage?.parent ?? null
      if (settings !== undefined || parent !== null) out(`fitted ${settings === undefined ? '' : `on ${String(settings.periods)} ${String(settings.period)}s of the series from ${String(settings.from)}`}${settings !== undefined && parent !== null ? ', ' : ''}${parent === null ? '' : `refreshing the forecast of job ${parent}`} (${stored.createdAt})`)
      for (const period of stored.forecast) out(`  ${label(period.step)}: ${period.mean.toFixed(2).padStart(9)}  [${period.lower}, ${period.upper}]`)
      out(`forecast 7-day incidence ${stored.rate.toFixed(2)} per 100,000; risk score h = ${stored.h.toFixed(4)} (known to this region only)`)
      out(`joint risk of the ${stored.joint.regions} regions: sum ${stored.joint.sum.toFixed(4)}, mean ${stored.joint.mean.toFixed(4)}`)
      for (const open of stored.joint.open) out(`  published by ${open.region}: h = ${open.h.toFixed(4)}`)
      if (stored.joint.total !== undefined && stored.joint.total.length > 0) {
        out(`the federation's forecast cases, every region's fused by a masked sum (this region's share stays its own):`)
        for (const period of stored.joint.total) out(`  ${label(period.step)}: ${period.mean.toFixed(2).padStart(9)}`)
      }
    })
}
