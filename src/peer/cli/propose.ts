import { mkdir, rename, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { checkJobId, dataPath } from '../paths.ts'
import type { Command } from 'commander'
import { DEFAULT_TREE_SETTINGS, loadFederation, modelSchema, type ModelSpec } from '../federation.ts'
import { DatasetError } from '../data/dataset.ts'
import { parseForecastProposal, type ForecastProposal } from '../runtime/forecast-proposal.ts'
import { forecastRefreshId, storedForecastRefresh } from '../runtime/forecast-refresh.ts'
import { parseCandidateSettings, type CandidateSettings } from '../../learning/model-choice.ts'
import { ForecastInputError } from '../../learning/forecast.ts'
import { statsProposalSchema, type StatsProposal } from '../runtime/stats-proposal.ts'
import type { CaseSchema } from '../../store/schema.ts'
import { withStore } from './store-commands.ts'
import { NoPeerRunningError, peerRunning, requirePeerRunning } from '../lock.ts'
import { EpimeshError } from '../../errors.ts'
import { JobRefusedError } from '../runtime/checks.ts'
import { JobExpiredError } from '../runtime/coordinator.ts'
import { listJobs, type JobRecord } from '../runtime/job-records.ts'
import { dirOption, federationOption } from './dir-option.ts'

/**
 * A statistics job from this region's schema: each feature's type, a category's levels and a number's
 * bounds as the schema declares them, so that every other region can compare its own schema with it.
 */
export function statsProposalFromSchema (schema: CaseSchema | null, region: string, options: { features: string[], outcome?: string, bins?: number, minimum?: number }): StatsProposal {
  if (schema === null) throw new DatasetError('this region\'s store has no schema yet (import records first: epimesh import --cases)')
  const features = options.features.map((name) => {
    const rule = schema.columns[name]
    if (rule === undefined || 'action' in rule) throw new DatasetError(`--features: the schema has no column "${name}"${rule === undefined ? '' : ' that is stored as it is'} (columns: ${Object.keys(schema.columns).join(', ')})`)
    if (rule.type === 'number') return { name, type: 'numeric' as const, ...(rule.min !== undefined && rule.max !== undefined && rule.min < rule.max ? { low: rule.min, high: rule.max } : {}) }
    if (rule.type === 'category') return { name, type: 'categorical' as const, levels: [...rule.levels] }
    throw new DatasetError(`--features: column "${name}" is a ${rule.type} column; statistics take numbers and categories`)
  })
  if (options.outcome !== undefined && !(options.outcome in schema.columns)) throw new DatasetError(`--outcome: the schema has no column "${options.outcome}"`)
  const parsed = statsProposalSchema.safeParse({ features, outcome: options.outcome ?? null, schemaOf: region, ...(options.bins === undefined ? {} : { bins: options.bins }), ...(options.minimum === undefined ? {} : { minimum: options.minimum }) })
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new DatasetError(`statistics job: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`)
  }
  return parsed.data
}

/** A job that began and did not end with a result (its error, or the peer stopped while it ran). */
export class JobFailedError extends EpimeshError {
  static override readonly name = 'JobFailedError'
  constructor (message: string) { super('JOB_FAILED', message) }
}

/** `propose --wait` gave up waiting; the job itself goes on. */
export class WaitTimedOutError extends EpimeshError {
  static override readonly name = 'WaitTimedOutError'
  constructor (message: string) { super('WAIT_TIMED_OUT', message) }
}

/** The longest `propose --wait --timeout` (a week), and its default (an hour). */
export const WAIT_LIMITS = Object.freeze({ maxSeconds: 7 * 24 * 3600, defaultSeconds: 3600, pollMs: 500 })

function reasonsText (record: JobRecord): string {
  return record.reasons.length === 0 ? 'no reason was heard' : record.reasons.map(({ region, reason }) => `${region}: ${reason}`).join('; ')
}

/**
 * Waits until job `id` of the peer of `dir` has finished (resolves with it), or fails with its
 * regions' reasons: JOB_REFUSED (declined), JOB_EXPIRED, JOB_FAILED, NO_PEER_RUNNING (the peer stopped
 * first) or WAIT_TIMED_OUT. It polls what `epimesh jobs` reads (src/peer/runtime/job-records.ts).
 */
export async function waitForJob (dir: string, id: string, timeoutMs: number, pollMs: number = WAIT_LIMITS.pollMs): Promise<JobRecord> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const record = (await listJobs(dir)).find((entry) => entry.job === id)
    switch (record?.state) {
      case 'finished': return record
      case 'declined': throw new JobRefusedError(`job ${id} was declined: ${reasonsText(record)}`)
      case 'expired': throw new JobExpiredError(`job ${id} never started: ${reasonsText(record)}`)
      case 'failed': throw new JobFailedError(`job ${id} failed: ${reasonsText(record)}`)
      default: break
    }
    if (!(await peerRunning(dir)).running) throw new NoPeerRunningError(`the peer of ${dir} stopped before job ${id} ended (epimesh jobs --dir ${dir} shows where it stands)`)
    if (Date.now() >= until) throw new WaitTimedOutError(`job ${id} is still ${record?.state ?? 'unknown to the peer'} after ${Math.round(timeoutMs / 1000)} s; it goes on (epimesh jobs --dir ${dir} follows it)`)
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, Math.min(pollMs, until - Date.now()))))
  }
}

/**
 * `epimesh propose`: asks the running peer of DIR to propose a job to the federation: the federation's
 * model, with the options given here in its place. The peer picks the proposal up from DIR/proposals/
 * (the store belongs to the running process), announces it, and runs it once every member accepts.
 */
export function registerPropose (program: Command): void {
  program.command('propose')
    .description('propose a job to the federation through this region\'s running peer: the federation\'s classifier, with --forecast a regional forecasting job, or with --stats descriptive statistics')
    .addOption(dirOption('the peer\'s data folder'))
    .addOption(federationOption('the federation file', { required: true }))
    .option('--job-id <id>', 'job id (default: a random one)')
    .option('--algorithm <name>', 'admm or newton')
    .option('--lambda <l>', 'L2 penalty', Number)
    .option('--tolerance <t>', 'stopping tolerance', Number)
    .option('--max-rounds <r>', 'round limit', Number)
    .option('--model <kind>', 'glm (a regression) or gbdt (gradient-boosted trees), default the federation file\'s; with --forecast: endemic-epidemic (hhh4\'s negative binomial model, the default) or loglinear (a Poisson GLM)')
    .option('--trees <n>', 'trees: how many (default 50)', Number)
    .option('--depth <d>', 'trees: the deepest level (default 4)', Number)
    .option('--learning-rate <eta>', 'trees: shrinkage of each tree (default 0.3)', Number)
    .option('--gamma <g>', 'trees: the least gain a split must make (default 0)', Number)
    .option('--min-child-weight <w>', 'trees: the least Hessian sum in each child (default 1)', Number)
    .option('--bins <n>', 'trees: bins per numeric feature (default 32); statistics: bins of the weights of evidence (default 10)', Number)
    .option('--stats', 'descriptive statistics of the federation (counts, means, SDs, quantiles, correlations; with a binary --outcome WOE, IV, cross-tables) instead of the classifier', false)
    .option('--features <list>', 'statistics: the columns, comma-separated (types and levels from this region\'s schema)')
    .option('--outcome <column>', 'statistics: a binary outcome')
    .option('--minimum <n>', 'statistics: the disclosure minimum cell count (default 3)', Number)
    .option('--refit [job]', 're-fit the federation\'s model on the data as it is now, warm-started from the shared model of a job (default: the latest regression model this region holds); every member must hold it. When this region holds a forecast, its latest forecasting job is proposed again beside it (JOB-forecast) on the series as imported now')
    .option('--forecast', 'a regional forecasting job on the regions\' case-count series, instead of the federation\'s classifier', false)
    .option('--from <date>', 'forecasting: the first day of the first period (a Monday for weekly periods)')
    .option('--periods <n>', 'forecasting: how many periods of the series to fit on', Number)
    .option('--period <unit>', 'forecasting: week or day', 'week')
    .option('--horizon <n>', 'forecasting: periods to forecast (default: those the risk score averages)', Number)
    .option('--half-risk <rate>', 'forecasting: the 7-day incidence per 100,000 at which h = 1/2 (default 10)', Number)
    .option('--open-regions <list>', 'forecasting: regions that publish their h openly (each must agree: start --publish-risk)')
    .option('--unit-intercepts', 'forecasting, endemic-epidemic: each region its own endemic intercept, which only that region learns', false)
    .option('--wait', 'wait until the job has finished (exit 0), or exit non-zero naming each region\'s reason when it is declined, expires or fails', false)
    .option('--timeout <seconds>', `with --wait: give up waiting after this many seconds (default ${WAIT_LIMITS.defaultSeconds}; the job goes on)`, Number)
    .option('--candidates <designs>', 'forecasting, endemic-epidemic: designs for the federation to choose from by validation log score, \';\'-separated, each of harmonics=N, family=negbin1|poisson, unit-intercepts (e.g. "harmonics=1;harmonics=2;harmonics=1,unit-intercepts")')
    .option('--validation <n>', 'forecasting, with --candidates: periods at the end of the series on which the designs are scored (default 26)', Number)
    .option('--json', 'one JSON object on stdout: {job, state: "proposed"}, with --wait how it ended ({job, state, kind, rounds, converged, reasons}, also when it was declined, expired or failed)', false)
    .action(async (options: { dir: string, federation: string, jobId?: string, algorithm?: string, lambda?: number, tolerance?: number, maxRounds?: number, model?: string, trees?: number, depth?: number, learningRate?: number, gamma?: number, minChildWeight?: number, bins?: number, forecast: boolean, stats: boolean, features?: string, outcome?: string, minimum?: number, from?: string, periods?: number, period: string, horizon?: number, halfRisk?: number, openRegions?: string, refit?: string | boolean, unitIntercepts: boolean, wait: boolean, timeout?: number, candidates?: string, validation?: number, json: boolean }) => {
      if (options.timeout !== undefined && !options.wait) throw new DatasetError('--timeout applies to --wait')
      if (options.timeout !== undefined && !(Number.isFinite(options.timeout) && options.timeout > 0 && options.timeout <= WAIT_LIMITS.maxSeconds)) throw new DatasetError(`--timeout must be a number of seconds above 0 and at most ${WAIT_LIMITS.maxSeconds}`)
      const federation = await loadFederation(options.federation)
      if (options.algorithm !== undefined && options.algorithm !== 'admm' && options.algorithm !== 'newton') throw new DatasetError(`--algorithm must be admm or newton, got ${options.algorithm}`)
      for (const field of ['lambda', 'tolerance', 'maxRounds'] as const) {
        const value = options[field]
        if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new DatasetError(`--${field} must be a non-negative number`)
      }
      if (!options.forecast && options.model !== undefined && options.model !== 'glm' && options.model !== 'gbdt') throw new DatasetError(`--model must be glm or gbdt, got ${options.model}`)
      if (options.forecast && options.model !== undefined && options.model !== 'endemic-epidemic' && options.model !== 'loglinear') throw new DatasetError(`--model with --forecast must be endemic-epidemic or loglinear, got ${options.model}`)
      if (!options.forecast && options.unitIntercepts) throw new DatasetError('--unit-intercepts applies to a forecasting job (--forecast)')
      if (!options.forecast && (options.candidates !== undefined || options.validation !== undefined)) throw new DatasetError('--candidates and --validation apply to a forecasting job (--forecast)')
      let candidates: CandidateSettings[] | undefined
      try {
        candidates = options.candidates === undefined ? undefined : parseCandidateSettings(options.candidates)
      } catch (error) {
        if (error instanceof ForecastInputError) throw new DatasetError(`--candidates: ${error.message}`)
        throw error
      }
      const kind = (options.forecast ? federation.model.kind ?? 'glm' : options.model ?? federation.model.kind ?? 'glm') as 'glm' | 'gbdt'
      const treeFlags = { trees: options.trees, depth: options.depth, learningRate: options.learningRate, gamma: options.gamma, minChildWeight: options.minChildWeight, bins: options.stats ? undefined : options.bins }
      const given = Object.entries(treeFlags).filter(([, value]) => value !== undefined)
      if (kind !== 'gbdt' && given.length > 0) throw new DatasetError(`--${given.map(([name]) => name.replace(/[A-Z]/g, (letter) => `-${letter.toLowerCase()}`)).join(', --')} apply only to boosted trees (--model gbdt)`)
      if (options.stats && options.model === 'gbdt') throw new DatasetError(`a ${options.forecast ? 'forecasting' : 'statistics'} job has its own model: --model gbdt does not apply with --${options.forecast ? 'forecast' : 'stats'}`)
      const { kind: _kind, trees: _trees, ...base } = federation.model
      const model: ModelSpec = {
        ...base,
        ...(kind === 'gbdt' ? { kind, trees: { ...DEFAULT_TREE_SETTINGS, ...federation.model.trees, ...Object.fromEntries(given) } } : federation.model.kind === undefined ? {} : { kind }),
        ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm as 'admm' | 'newton' }),
        ...(options.lambda === undefined ? {} : { lambda: options.lambda }),
        ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
        ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds })
      }
      const checked = modelSchema.safeParse(model)
      if (!checked.success) {
        const issue = checked.error.issues[0]
        throw new DatasetError(`the proposed model is not valid: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`)
      }
      let forecast: ForecastProposal | undefined
      if (options.forecast) {
        if (options.from === undefined || options.periods === undefined) throw new DatasetError('a forecasting job needs --from DATE and --periods N')
        const value = {
          from: options.from,
          periods: options.periods,
          period: options.period,
          ...(options.model === undefined ? {} : { kind: options.model }),
          ...(options.unitIntercepts ? { unitIntercepts: true } : {}),
          ...(candidates === undefined ? {} : { candidates }),
          ...(options.validation === undefined ? {} : { validation: options.validation }),
          ...(options.horizon === undefined ? {} : { horizon: options.horizon }),
          ...(options.halfRisk === undefined ? {} : { halfRisk: options.halfRisk }),
          openRegions: options.openRegions === undefined ? [] : options.openRegions.split(',').map((region) => region.trim()).filter((region) => region !== ''),
          ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm }),
          ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
          ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds })
        }
        forecast = parseForecastProposal(value).proposal
      }
      let stats: StatsProposal | undefined
      if (options.stats) {
        if (options.forecast) throw new DatasetError('a job is --stats or --forecast, not both')
        const features = (options.features ?? '').split(',').map((name) => name.trim()).filter((name) => name !== '')
        if (features.length === 0) throw new DatasetError('a statistics job needs --features a,b,c')
        const { schema, region } = await withStore(options.dir, async (store) => ({ schema: await store.schema(), region: await store.region() }))
        stats = statsProposalFromSchema(schema, region ?? 'this region', {
          features,
          ...(options.outcome === undefined ? {} : { outcome: options.outcome }),
          ...(options.bins === undefined ? {} : { bins: options.bins }),
          ...(options.minimum === undefined ? {} : { minimum: options.minimum })
        })
      }
      let refit: string | undefined
      if (options.refit !== undefined && options.refit !== false) {
        if (options.forecast || options.stats || kind === 'gbdt') throw new DatasetError('--refit re-fits the federation\'s regression; a forecasting, statistics or tree job starts cold')
        const wanted = options.refit === true ? undefined : checkJobId(options.refit, '--refit')
        const parent = await withStore(options.dir, async (store) => wanted === undefined ? (await store.listModels()).filter((stored) => stored.specification?.kind === 'glm').at(-1) ?? null : await store.getModel(wanted))
        if (parent === null) throw new DatasetError(wanted === undefined ? `--refit: ${options.dir} holds no regression model to re-fit from (epimesh models lists them)` : `--refit: no model of job ${wanted} in ${options.dir}`)
        const spec = parent.specification
        if (spec?.kind !== 'glm' || parent.duals === undefined) throw new DatasetError(`--refit: the model of job ${parent.job} was not kept with what a re-fit starts from (a forecasting model, or one stored by an earlier version)`)
        const same = spec.family === model.family && spec.outcome === model.outcome && JSON.stringify(spec.features.map((feature) => [feature.name, feature.levels ?? null])) === JSON.stringify(model.features.map((feature) => [feature.name, feature.levels ?? null]))
        if (!same) throw new DatasetError(`--refit: the model of job ${parent.job} is not the federation's model (family, outcome, features): a re-fit keeps the model`)
        refit = parent.job
      }
      const id = options.jobId === undefined ? `job-${randomBytes(6).toString('hex')}` : checkJobId(options.jobId, '--job-id')
      // a proposal left for a peer that is not running would fire whenever one next starts, long after
      // the operator meant it: refused now, with the proposal not written
      await requirePeerRunning(options.dir, 'a proposal is run by the running peer of its data folder')
      await mkdir(dataPath(options.dir, 'proposals'), { recursive: true, mode: 0o700 })
      const path = dataPath(options.dir, 'proposals', id, '.json')
      // a re-fit refreshes the regional forecast too, when the region holds one: its forecasting job
      // proposed again beside the re-fit, on the series as imported now
      const refresh = refit === undefined ? null : await withStore(options.dir, storedForecastRefresh)
      if (typeof refresh === 'string') process.stderr.write(`warning: the regional forecast is not refreshed: ${refresh}\n`)
      const jobs = [{ id, path, proposal: { type: 'job.propose', id, proposer: '', model, ...(forecast === undefined ? {} : { forecast }), ...(stats === undefined ? {} : { stats }), ...(refit === undefined ? {} : { refit }) } }]
      if (refresh !== null && typeof refresh !== 'string') {
        const refreshId = forecastRefreshId(id)
        jobs.push({ id: refreshId, path: dataPath(options.dir, 'proposals', refreshId, '.json'), proposal: { type: 'job.propose', id: refreshId, proposer: '', model, forecast: refresh.forecast, refit: refresh.parent } })
      }
      for (const job of jobs) {
        await writeFile(`${job.path}.tmp`, JSON.stringify(job.proposal, null, 2), { mode: 0o600 })
        await rename(`${job.path}.tmp`, job.path)
      }
      if (!options.json) {
        process.stdout.write(`proposed job ${id}${refit === undefined ? '' : `, a re-fit from job ${refit}`}; the running peer announces it within a second (epimesh jobs --dir ${options.dir})\n`)
        if (refresh !== null && typeof refresh !== 'string') process.stdout.write(`proposed job ${jobs[1]?.id ?? ''}, the forecast of job ${refresh.parent} refreshed: ${refresh.forecast.periods} ${refresh.forecast.period}s from ${refresh.forecast.from}, this region's series through ${refresh.through}\n`)
      }
      if (!options.wait) {
        if (options.json) for (const job of jobs) process.stdout.write(`${JSON.stringify({ job: job.id, state: 'proposed', refit: job.proposal.refit ?? null })}\n`)
        return
      }
      for (const job of jobs) {
        let finished: JobRecord
        try {
          finished = await waitForJob(options.dir, job.id, (options.timeout ?? WAIT_LIMITS.defaultSeconds) * 1000)
        } catch (error) {
          // with --json, how it ended is on stdout too (the error, with its code, still on stderr and in the exit code)
          if (options.json && error instanceof EpimeshError) {
            const record = (await listJobs(options.dir).catch(() => [])).find((entry) => entry.job === job.id)
            process.stdout.write(`${JSON.stringify({ job: job.id, state: record?.state ?? 'unknown', kind: record?.kind ?? null, rounds: record?.rounds ?? null, reasons: record?.reasons ?? [], error: { code: error.code, message: error.message } })}\n`)
          }
          throw error
        }
        if (options.json) process.stdout.write(`${JSON.stringify({ job: job.id, state: finished.state, kind: finished.kind, rounds: finished.rounds, converged: finished.converged ?? null, reasons: [] })}\n`)
        else process.stdout.write(`job ${job.id} finished${finished.rounds === null ? '' : ` in ${finished.rounds} rounds`}${finished.converged === false ? ' (not converged)' : ''}\n`)
      }
    })
}
