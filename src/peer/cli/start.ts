import { readFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Command } from 'commander'
import pino from 'pino'
import { DatasetError } from '../data/dataset.ts'
import { Store } from '../../store/store.ts'
import { loadFederation } from '../federation.ts'
import { loadIdentity } from '../identity.ts'
import { checkProposal, startPeerRuntime, type JobOutcome, type PeerRuntime, type PeerStatus } from '../runtime/peer.ts'
import type { JobProposal } from '../runtime/proposal.ts'
import { checkJobId } from '../paths.ts'
import { excerpt } from '../../consensus/ids.ts'
import { withDataFolderLock } from '../lock.ts'
import { parseMetricsAddress } from '../runtime/metrics.ts'
import { nextRefitAt, parseRefitSchedule, refitJobId, type RefitSchedule } from '../runtime/schedule.ts'
import { runScheduledRefit } from '../runtime/scheduled-refit.ts'
import { dirOption, federationOption } from './dir-option.ts'
import { chooseLogFormat, prettyDestination } from './log-format.ts'

/**
 * `epimesh start`: runs this region's peer until stopped. It joins the federation (one reachable
 * member is enough), keeps the links to its graph neighbours, answers job proposals against its own
 * disclosure policy, runs the jobs it accepted, and keeps each shared model in its store.
 * The peer itself is src/peer/runtime/peer.ts; this command adds the job it was asked to propose or
 * wait for, and the stop signals.
 */
interface StartOptions {
  dir: string
  federation: string
  listen: string[]
  propose: boolean
  /** a proposal file (as epimesh propose writes): propose that job */
  proposal?: string
  publishRisk: boolean
  jobId?: string
  exitAfterJob: boolean
  cases?: string
  /** re-fit the federation's regression on a schedule (daily@HH:MM or every@N[s|m|h]) */
  refitAt?: string
  /** serve Prometheus metrics on [HOST:]PORT */
  metrics?: string
  /** serve the operator's web view on [HOST:]PORT */
  http?: string
  /** the warning levels of h in the web view: yellow,orange,red */
  warningLevels?: string
  /** events as JSON lines on stdout (with --exit-after-job, one summary of the job) */
  json?: boolean
  /** the log on stderr: json or pretty (default: pretty on a terminal, else json) */
  logFormat?: string
}

/** A job's outcome in a line of `start --json`: its kind, rounds, convergence and size. */
export function jobSummary (outcome: JobOutcome): Record<string, unknown> {
  if (outcome.stats !== null) return { job: outcome.job, kind: 'stats', rounds: outcome.stats.rounds, rows: outcome.stats.stats.rows, peers: outcome.stats.stats.peers }
  const model = outcome.model
  const kind = outcome.forecast !== null ? 'forecast' : model?.kind ?? 'glm'
  return {
    job: outcome.job,
    kind,
    rounds: model?.rounds ?? null,
    converged: model?.converged ?? null,
    rows: model?.rows ?? null,
    peers: model?.peers ?? null,
    ...(outcome.forecast === null ? {} : { h: outcome.forecast.h, jointRiskMean: outcome.forecast.joint.mean })
  }
}

/** A proposal file named on the command line (start --proposal): the federation's model with the file's changes, checked like any proposal. */
async function readProposal (path: string, model: JobProposal['model'], id: string, proposer: string): Promise<JobProposal> {
  let value: Partial<JobProposal>
  try {
    value = JSON.parse(await readFile(path, 'utf8')) as Partial<JobProposal>
  } catch (error) {
    throw new DatasetError(`cannot read the proposal ${path}: ${excerpt((error as Error).message, 200)}`)
  }
  if (typeof value !== 'object' || value === null) throw new DatasetError(`${path}: not a proposal object`)
  return checkProposal({ id, proposer, model: value.model, forecast: value.forecast, stats: value.stats, refit: value.refit }, model, path)
}

export async function runStart (options: StartOptions): Promise<number> {
  // one peer process per data folder, for the whole of its life (src/peer/lock.ts)
  return await withDataFolderLock(options.dir, async () => await runPeer(options))
}

async function runPeer (options: StartOptions): Promise<number> {
  const metrics = options.metrics === undefined ? undefined : parseMetricsAddress(options.metrics)
  // the web view's module (and vega's) only when asked for
  const web = options.http === undefined ? null : await import('../web/dashboard.ts')
  const http = options.http === undefined || web === null ? undefined : web.parseHttpAddress(options.http)
  const levels = options.warningLevels === undefined ? undefined : (await import('../web/dashboard-data.ts')).parseWarningLevels(options.warningLevels)
  const format = chooseLogFormat(options.logFormat, process.stderr.isTTY === true)
  const colour = format === 'pretty' && process.stderr.isTTY === true && process.env.NO_COLOR === undefined
  const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, format === 'json' ? pino.destination(2) : prettyDestination(process.stderr, { colour }))
  const federation = await loadFederation(options.federation)
  const identity = await loadIdentity(options.dir)
  const { peerId } = identity
  if (options.jobId !== undefined) checkJobId(options.jobId, '--job-id')
  const schedule = options.refitAt === undefined ? null : parseRefitSchedule(options.refitAt)
  const controller = new AbortController()
  const stop = (): void => { controller.abort() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)

  // --json: one JSON line per event on stdout (the log stays on stderr); with --exit-after-job only the job's summary
  const oneJob = options.exitAfterJob || options.propose || options.proposal !== undefined || options.jobId !== undefined
  const emit = options.json === true && !oneJob ? (event: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), ...event })}\n`) } : null
  const outcomes = new Map<string, JobOutcome>()
  const onJob = (outcome: JobOutcome): void => {
    outcomes.set(outcome.job, outcome)
    emit?.({ event: 'job.finished', ...jobSummary(outcome) })
  }
  let peer: PeerRuntime | null = null
  let watchEnded: NodeJS.Timeout | null = null
  // set by onListening, inside a callback (hence the cast: the compiler cannot see the assignment)
  let dashboard = null as { close: () => Promise<void> } | null
  try {
    // the operator's view is served as soon as the node listens: it shows the neighbours connecting
    const onListening = web === null || http === undefined
      ? undefined
      : async (live: { status: () => PeerStatus, metricsText: () => Promise<string> }): Promise<void> => {
        const view = await web.startDashboard({ dir: options.dir, federation, live, address: http, ...(levels === undefined ? {} : { levels }) })
        dashboard = view
        if (options.json !== true) process.stdout.write(`operator's view: ${view.loginUrl} (open it once; the token is also in ${join(options.dir, web.TOKEN_FILE)}; scripts: Authorization: Bearer TOKEN, Prometheus text at ${view.url}/metrics)\n`)
        else emit?.({ event: 'dashboard.started', url: view.url, tokenFile: join(options.dir, web.TOKEN_FILE) })
      }
    peer = await startPeerRuntime({ dir: options.dir, federation, identity, listen: options.listen, publishRisk: options.publishRisk, ...(options.cases === undefined ? {} : { cases: options.cases }), ...(metrics === undefined ? {} : { metrics }), ...(onListening === undefined ? {} : { onListening }), logger, onJob }, { signal: controller.signal })
    const started = peer
    if (emit !== null) {
      emit({ event: 'peer.started', peerId, region: started.region ?? null, addresses: started.addresses(), metrics: started.metrics === null ? null : { url: started.metrics.url, tokenFile: join(options.dir, 'metrics.token') } })
      // the jobs that end without a result (declined with each region's reason, expired, failed), as they end
      const seen = new Set(started.status().ended.map((entry) => `${entry.job}/${entry.state}`))
      watchEnded = setInterval(() => {
        for (const entry of started.status().ended) {
          const key = `${entry.job}/${entry.state}`
          if (seen.has(key)) continue
          seen.add(key)
          emit({ event: `job.${entry.state}`, job: entry.job, kind: entry.kind, reasons: entry.reasons })
        }
      }, 500)
      watchEnded.unref()
    } else if (peer.metrics !== null && options.json !== true) process.stdout.write(`metrics: ${peer.metrics.url} (Authorization: Bearer ${peer.metrics.token}; also in ${join(options.dir, 'metrics.token')})\n`)
    const { coordinator, journal } = peer
    const jobId = options.jobId ?? `job-${randomBytes(6).toString('hex')}`
    // A job begun here before a stop (a crash, a kill) and not finished is resumed from its journal.
    const begun = (await journal.list()).includes(jobId) && !(await Store.use(options.dir, async (store) => await store.hasResult(jobId)))
    if (oneJob) {
      await (begun
        ? coordinator.resume(jobId).then((result) => { if (result === null) throw new Error(`job ${jobId} has no usable journal`); return result })
        : options.proposal !== undefined
          ? coordinator.propose(await readProposal(options.proposal, federation.model, jobId, peerId), { signal: controller.signal })
          : options.propose
            ? coordinator.propose({ type: 'job.propose', id: jobId, proposer: peerId, model: federation.model } satisfies JobProposal, { signal: controller.signal })
            : coordinator.waitFor(jobId, { signal: controller.signal }))
      // stay for neighbours still finishing the last sum (the audit log records those answers, then
      // closes), and a moment more for the neighbours' countersignatures of the last checkpoint
      await coordinator.auditClosed(jobId)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      if (options.json === true) {
        const outcome = outcomes.get(jobId)
        process.stdout.write(`${JSON.stringify({ ...(outcome === undefined ? { job: jobId } : jobSummary(outcome)), state: 'finished', peerId, region: peer.region ?? null })}\n`)
      }
      return 0
    }
    // Until stopped: answer proposals from any member, and run proposals that an operator drops into
    // DIR/proposals/ (epimesh propose), once each.
    peer.watchProposals()
    if (schedule !== null) scheduleRefits(peer, schedule, federation.model, controller.signal, options.dir, logger)
    await new Promise<void>((resolve) => { controller.signal.addEventListener('abort', () => { resolve() }, { once: true }) })
    return 0
  } finally {
    if (watchEnded !== null) clearInterval(watchEnded)
    await dashboard?.close()
    await peer?.stop()
    emit?.({ event: 'peer.stopped', peerId })
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
  }
}

/**
 * Proposes a re-fit of the federation's regression at each time of the schedule, warm-started from the
 * latest regression model this region holds (a cold fit when it holds none), and then refreshes the
 * region's latest forecast (runScheduledRefit), while the peer runs.
 */
function scheduleRefits (peer: PeerRuntime, schedule: RefitSchedule, model: JobProposal['model'], signal: AbortSignal, dir: string, logger: pino.Logger): void {
  let timer: NodeJS.Timeout | null = null
  const arm = (): void => {
    if (signal.aborted) return
    const at = nextRefitAt(schedule, new Date())
    logger.info({ event: 'refit.scheduled', at: at.toISOString() }, 'next re-fit scheduled')
    timer = setTimeout(() => { void fire(at) }, Math.max(0, at.getTime() - Date.now()))
  }
  const fire = async (at: Date): Promise<void> => {
    await runScheduledRefit({
      dir,
      id: refitJobId(at),
      proposer: peer.peerId,
      model,
      propose: async (proposal) => await peer.coordinator.propose(proposal, { signal }),
      log: (level, event, fields, message) => { logger[level]({ event, ...fields }, message) },
      signal
    })
    arm()
  }
  signal.addEventListener('abort', () => { if (timer !== null) clearTimeout(timer) }, { once: true })
  arm()
}

export function registerStart (program: Command): void {
  program.command('start')
    .description('run this region\'s peer: join the federation, answer job proposals, run the jobs it accepts')
    .addOption(dirOption('the peer\'s data folder (from epimesh init)'))
    .addOption(federationOption('the federation file shared by all members', { required: true }))
    .option('--listen <multiaddr...>', 'listen addresses', ['/ip4/127.0.0.1/tcp/0'])
    .option('--cases <file>', 'read the records from this CSV file instead of the store')
    .option('--propose', 'propose a job with the federation\'s model as soon as the neighbours are up', false)
    .option('--proposal <file>', 'propose the job in this file (as epimesh propose writes it) as soon as the neighbours are up')
    .option('--publish-risk', 'agree to publish this region\'s risk score openly when a forecasting job lists it', false)
    .option('--job-id <id>', 'the job to propose, or to wait for')
    .option('--exit-after-job', 'stop after one job', false)
    .option('--metrics <[host:]port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (HOST 127.0.0.1 unless given), behind a bearer token printed at start and written to DIR/metrics.token')
    .option('--json', 'JSON lines on stdout, one per event: peer.started, job.finished (kind, rounds, converged), job.declined / job.expired / job.failed (each region\'s reason), peer.stopped; with --exit-after-job (or a job to propose or wait for) one summary of that job', false)
    .option('--log-format <format>', 'the log on stderr: pretty (a readable line per record: time, level, message, fields) or json (pino\'s JSON lines); default pretty when stderr is a terminal, json otherwise')
    .option('--http <[host:]port>', 'serve the operator\'s web view at http://HOST:PORT/ (HOST 127.0.0.1 unless given), behind a token printed at start and written to DIR/http.token')
    .option('--warning-levels <yellow,orange,red>', 'the h thresholds of the web view\'s warning levels (default: the federation file\'s warningLevels, else 0.25,0.5,0.75)')
    .option('--refit-at <schedule>', 're-fit the federation\'s regression on a schedule, warm-started from the latest model: daily@HH:MM (local time) or every@N[s|m|h]; give it to one member only')
    .action(async (options: StartOptions) => {
      process.exitCode = await runStart(options)
    })
}
