// libp2p needs Promise.withResolvers, which Node 20 lacks: installed before anything below loads libp2p
import '../polyfill.ts'
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import pino, { type Logger } from 'pino'
import type { PrivateKey } from '@libp2p/interface'
import type { FitJobResult } from '../../consensus/jobs/fit-job.ts'
import type { GbdtJobResult } from '../../consensus/jobs/gbdt-job.ts'
import { gbdtModelToJson } from '../../learning/gbdt.ts'
import type { ForecastJobResult } from '../../consensus/jobs/forecast-job.ts'
import type { StatsJobResult } from '../../consensus/jobs/stats-job.ts'
import type { OwnSummary } from '../../learning/statistics.ts'
import { excerpt } from '../../consensus/ids.ts'
import { coefficientTable } from '../../learning/inference.ts'
import type { CaseSchema } from '../../store/schema.ts'
import { Store, type ModelLineage, type ModelSpecification, type StoredForecast, type StoredModel, type StoredStats } from '../../store/store.ts'
import { INTERCEPT } from '../../learning/design.ts'
import { DatasetError, readDataset } from '../data/dataset.ts'
import { loadIdentity } from '../identity.ts'
import { lockDataFolder } from '../lock.ts'
import { checkJobId, dataPath } from '../paths.ts'
import { AbortedError } from '../errors.ts'
import { throwIfAborted } from '../net/abort.ts'
import { STATUS_REFRESH_MS } from '../constants.ts'
import { AuditService } from '../audit/service.ts'
import { createLibp2pTransport, type TransportStats } from '../net/libp2p-transport.ts'
import { createPeerNode, type NetworkStats } from '../net/node.ts'
import type { NeighbourStatus } from '../net/discovery.ts'
import type { AnnouncementStats } from '../net/announce.ts'
import { ed25519Signer, ed25519Verifier, SigningTransport, type SigningStats } from '../net/signing.ts'
import { folderBytes, MetricsRecorder, parseMetricsAddress, renderMetrics, startMetricsServer, type MetricsServer } from './metrics.ts'
import { JobCoordinator, type AgreementStats, type EndedJob } from './coordinator.ts'
import { readPeerStatus } from './job-records.ts'
import type { JobInput, JobOutput, JobProgress } from './job-kinds.ts'
import type { JobData, PreviousModel } from './checks.ts'
import { federationGraph, loadFederation, parseFederation, readPreSharedKey, type Federation, type ModelSpec } from '../federation.ts'
import type { z } from 'zod'
import type { forecastProposalSchema } from './forecast-proposal.ts'
import type { statsProposalSchema } from './stats-proposal.ts'
import { fileJournal, type JobJournal } from './journal.ts'
import { jobAnnouncementSchema, type JobProposal } from './proposal.ts'

/**
 * A region's running peer, as `epimesh start` runs it and the library's `createPeer` returns it: its
 * libp2p node joined to the federation, the signed round transport, the audit service, the job
 * coordinator answering proposals against this region's disclosure policy, the status file, and each
 * shared model and forecast kept in the data folder.
 */


/**
 * The region's records and case-count series: from its store (the normal case), or the records from a
 * CSV file named on the command line.
 */
async function loadData (dir: string, cases: string | undefined): Promise<JobData> {
  return await Store.use(dir, async (store) => {
    const rows = cases !== undefined ? (await readDataset(cases)).rows : await store.allRows()
    // the regression and forecasting models held, for a re-fit or a refresh: terms, coefficients and this region's duals
    const previous = new Map<string, PreviousModel>()
    for (const model of await store.listModels()) {
      const kind = model.specification?.kind
      if (kind !== 'glm' && kind !== 'forecast') continue
      previous.set(model.job, { kind, terms: model.coefficients.map((row) => row.term), coefficients: model.coefficients.map((row) => row.estimate), duals: (model.duals ?? []).map((entry) => ({ neighbour: entry.neighbour, values: entry.values.map((value) => value ?? 0) })) })
    }
    return { rows, series: await store.readSeries(), previous, schema: cases !== undefined ? null : await store.schema() as CaseSchema | null }
  })
}

export function toStoredForecast (job: string, region: string, result: ForecastJobResult, members: ReadonlyArray<{ region: string, peerId: string }>, origin: ModelOrigin | null = null): StoredForecast {
  const regionOf = new Map(members.map((member) => [member.peerId, member.region]))
  return {
    job,
    region,
    createdAt: new Date().toISOString(),
    forecast: result.forecast.map((period) => ({ step: period.step, mean: period.mean, lower: period.lower, upper: period.upper })),
    rate: result.risk.rate,
    h: result.risk.h,
    joint: { sum: result.joint.sum, mean: result.joint.mean, regions: result.joint.regions, open: result.joint.open.map((entry) => ({ region: regionOf.get(entry.region) ?? entry.region, h: entry.h })), total: result.joint.fused.map((mean, index) => ({ step: result.forecast[index]?.step ?? index + 1, mean })) },
    model: toStoredModel(job, result.fit, origin),
    ...(origin?.proposal.forecast === undefined ? {} : { settings: { ...origin.proposal.forecast } })
  }
}

/** A tree job's forest as the store keeps it: no coefficients, the trees, the training fit and its metrics. */
export function toStoredForest (job: string, result: GbdtJobResult, origin: ModelOrigin | null = null): StoredModel {
  return {
    job,
    ...(origin === null ? {} : { lineage: forestLineage(origin, result) }),
    kind: 'gbdt',
    forest: gbdtModelToJson(result.model),
    createdAt: new Date().toISOString(),
    rounds: result.rounds,
    converged: true,
    peers: result.peers,
    rows: result.rows,
    logLikelihood: result.logLikelihood,
    penalty: result.model.params.lambda,
    metrics: result.metrics === null ? null : { auc: result.metrics.auc, brier: result.metrics.brier, hosmerLemeshow: { statistic: result.metrics.hosmerLemeshow.statistic, df: result.metrics.hosmerLemeshow.df, pValue: result.metrics.hosmerLemeshow.pValue } },
    dropped: [],
    coefficients: []
  }
}

/** A forest's lineage: its proposer, the tree settings, the regions, this region's own rows and their digest. */
function forestLineage (origin: ModelOrigin, result: GbdtJobResult): ModelLineage {
  const regionOf = new Map(origin.members.map((member) => [member.peerId, member.region]))
  const { params } = result.model
  return {
    proposer: origin.proposal.proposer,
    proposerRegion: regionOf.get(origin.proposal.proposer) ?? null,
    algorithm: 'gbdt',
    parameters: { family: params.family, trees: params.trees, depth: params.depth, learningRate: params.learningRate, lambda: params.lambda, gamma: params.gamma, minChildWeight: params.minChildWeight, bins: params.bins, minNodeRows: params.minNodeRows },
    regions: origin.members.map((member) => member.region),
    ownRows: origin.input.rows,
    dataDigest: origin.input.digest,
    auditHead: null,
    parent: null
  }
}

/** Where a model comes from: the proposal it ran, what this region put in, and the federation's members (for region names). */
export interface ModelOrigin {
  proposal: JobProposal
  input: JobInput
  members: ReadonlyArray<{ region: string, peerId: string }>
  /** the model this one was warm-started from */
  parent?: string | null
}

/** A number the store keeps as is, or null (a NaN or an infinity). */
const finiteOrNull = (value: number): number | null => Number.isFinite(value) ? value : null

/** The model's specification: what `predict` needs to build a record's design row as the job did. */
function specificationOf (proposal: JobProposal, fit: FitJobResult): ModelSpecification {
  if (proposal.forecast !== undefined) return { kind: 'forecast', family: 'poisson' }
  const model = proposal.model
  return {
    kind: 'glm',
    family: model.family,
    outcome: model.outcome,
    features: model.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: feature.type, levels: [...(feature.levels ?? [])] } : { name: feature.name, type: feature.type }),
    intercept: fit.terms.includes(INTERCEPT),
    offset: null,
    standardize: fit.scaling !== null,
    scaling: fit.scaling === null ? null : { mean: Array.from(fit.scaling.mean), scale: Array.from(fit.scaling.scale) },
    lambda: model.lambda
  }
}

function lineageOf (origin: ModelOrigin, fit: FitJobResult): ModelLineage {
  const { proposal, members } = origin
  const regionOf = new Map(members.map((member) => [member.peerId, member.region]))
  const model = proposal.model
  const forecast = proposal.forecast as Record<string, unknown> | undefined
  const parameters: Record<string, number | string | boolean | null> = forecast === undefined
    ? { lambda: model.lambda, tolerance: model.tolerance, maxRounds: model.maxRounds, roundDeadlineMs: model.roundDeadlineMs, dropAfterRounds: model.dropAfterRounds, clip: model.clip === undefined ? 1 : model.clip, standardize: fit.scaling !== null }
    : Object.fromEntries(Object.entries(forecast).filter(([, value]) => value === null || ['number', 'string', 'boolean'].includes(typeof value)).slice(0, 64)) as Record<string, number | string | boolean | null>
  const algorithm = forecast !== undefined && typeof forecast.algorithm === 'string' ? forecast.algorithm : model.algorithm
  // the regions that took part: the graph's members, less any dropped during the job
  const dropped = new Set(fit.dropped)
  return {
    proposer: proposal.proposer,
    proposerRegion: regionOf.get(proposal.proposer) ?? null,
    algorithm,
    parameters,
    regions: members.filter((member) => !dropped.has(member.peerId)).map((member) => member.region),
    ownRows: origin.input.rows,
    ...(origin.input.dropped === undefined ? {} : { ownDropped: origin.input.dropped }),
    dataDigest: origin.input.digest,
    auditHead: null,
    parent: origin.parent ?? proposal.refit ?? null
  }
}

/** A job's result as the store keeps it: with its specification, covariance and lineage when its origin is known. */
export function toStoredModel (job: string, result: FitJobResult, origin: ModelOrigin | null = null): StoredModel {
  const table = coefficientTable(result.terms, result.coefficients, result.covariance)
  const p = result.terms.length
  return {
    job,
    createdAt: new Date().toISOString(),
    rounds: result.rounds,
    converged: result.converged,
    peers: result.peers,
    rows: result.rows,
    logLikelihood: result.logLikelihood,
    penalty: result.penalty,
    metrics: result.metrics === null ? null : { auc: result.metrics.auc, brier: result.metrics.brier, hosmerLemeshow: { statistic: result.metrics.hosmerLemeshow.statistic, df: result.metrics.hosmerLemeshow.df, pValue: result.metrics.hosmerLemeshow.pValue } },
    dropped: result.dropped,
    coefficients: table.terms.map((term, index) => ({
      term,
      estimate: table.estimate[index] as number,
      standardError: table.standardError[index] as number,
      z: table.z[index] as number,
      pValue: table.pValue[index] as number
    })),
    covariance: Array.from({ length: p }, (_, row) => Array.from(result.covariance.subarray(row * p, row * p + p), finiteOrNull)),
    ...(result.duals.length === 0 ? {} : { duals: result.duals.map((entry) => ({ neighbour: entry.neighbour, values: entry.values.map(finiteOrNull) })) }),
    ...(origin === null ? {} : { specification: specificationOf(origin.proposal, result), lineage: lineageOf(origin, result) })
  }
}

/** The model and forecast a job's output leaves in this region's store. */
export function storedOutcome (job: string, output: JobOutput, region: string, members: ReadonlyArray<{ region: string, peerId: string }>): JobOutcome {
  if (output.kind === 'stats') return { job, model: null, forecast: null, stats: toStoredStats(job, output.stats, output.own) }
  if (output.kind === 'gbdt') return { job, model: toStoredForest(job, output.trees, { proposal: output.proposal, input: output.input, members }), forecast: null, stats: null }
  const origin: ModelOrigin = { proposal: output.proposal, input: output.input, members }
  return { job, model: toStoredModel(job, output.fit, origin), forecast: output.kind === 'forecast' ? toStoredForecast(job, region, output.forecast, members, origin) : null, stats: null }
}

/**
 * A proposal as an announcement off the network would carry it, checked by the same schema: the
 * federation's model with the given changes. `source` names where it came from in the error.
 */
export function checkProposal (value: { id: string, proposer: string, model?: unknown, forecast?: unknown, stats?: unknown, refit?: unknown }, baseModel: ModelSpec, source: string): JobProposal {
  const parsed = jobAnnouncementSchema.safeParse({ type: 'job.propose', id: value.id, proposer: value.proposer, model: { ...baseModel, ...(typeof value.model === 'object' ? value.model : {}) }, ...(value.forecast === undefined ? {} : { forecast: value.forecast }), ...(value.stats === undefined ? {} : { stats: value.stats }), ...(value.refit === undefined ? {} : { refit: value.refit }) })
  if (!parsed.success || parsed.data.type !== 'job.propose') {
    const issue = parsed.success ? undefined : parsed.error.issues[0]
    throw new DatasetError(`${source}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a proposal'}`)
  }
  return parsed.data as JobProposal
}

/**
 * A proposal an operator dropped into DIR/proposals (epimesh propose): named <job id>.json, small, and
 * a valid job announcement like any that comes off the network.
 */
async function readProposalFile (dataDir: string, name: string, peerId: string): Promise<JobProposal> {
  const id = checkJobId(name.slice(0, -'.json'.length), 'proposal file')
  const handle = await open(dataPath(dataDir, 'proposals', id, '.json'), 'r')
  let text: string
  try {
    if ((await handle.stat()).size > 256 * 1024) throw new DatasetError(`proposal ${id}.json is larger than 256 KiB`)
    text = await handle.readFile('utf8')
  } finally {
    await handle.close()
  }
  const parsed = jobAnnouncementSchema.safeParse({ ...JSON.parse(text) as object, type: 'job.propose', id, proposer: peerId })
  if (!parsed.success || parsed.data.type !== 'job.propose') {
    const issue = parsed.success ? undefined : parsed.error.issues[0]
    throw new DatasetError(`proposal ${id}.json: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a proposal'}`)
  }
  return parsed.data as JobProposal
}

async function writeAtomically (path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text)
  await rename(`${path}.tmp`, path)
}

/** What a running peer is doing, as DIR/status.json holds it and `epimesh status` shows it. */
export interface PeerStatus {
  peerId: string
  region: string | undefined
  pid: number
  updatedAt: string
  /** the multiaddrs it listens on, each ending with its peer id (what `epimesh id` shows) */
  addresses: string[]
  neighbours: NeighbourStatus
  /** the job running, its phase, round and residuals */
  job: JobProgress | null
  transport: TransportStats
  signatures: SigningStats
  network: NetworkStats
  agreement: AgreementStats | null
  checkpoints: { countersigned: number, ignored: number, invalid: number }
  announcements: AnnouncementStats
  /** the last job whose model this peer stored */
  lastModel?: string
  /** the last forecasting job this peer stored: its periods, the forecast it refreshed, this region's h and the joint risk's mean */
  lastForecast?: { job: string, periods: number | null, parent: string | null, h: number, jointRiskMean: number, createdAt: string }
  /** the last jobs that ended without a result (declined with each region's reason, expired, failed), oldest first, kept across restarts */
  ended: EndedJob[]
}

export interface PeerRuntimeInit {
  /** the data folder (its store, identity key, journal, models, forecasts, status) */
  dir: string
  federation: Federation
  identity: { privateKey: PrivateKey, peerId: string }
  listen: readonly string[]
  /** agree to publish this region's risk score when a forecasting job lists it */
  publishRisk: boolean
  /** read the records from this CSV file instead of the store */
  cases?: string
  /** the root logger; the peer logs through a child naming its region and peer id */
  logger: Logger
  /** how long to wait for the graph neighbours at start (default 30 s) */
  neighbourTimeoutMs?: number
  /** called with the outcome of every job this peer ran to the end, whoever proposed it */
  onJob?: (outcome: JobOutcome) => void
  /** serve GET /metrics (Prometheus text) on this address, behind a bearer token written to DIR/metrics.token */
  metrics?: { host: string, port: number }
  /**
   * Called once the node listens, before the wait for the graph neighbours, with the peer's live status:
   * what is served from it (the operator's web view) is up at once and shows the neighbours connecting,
   * instead of appearing only after the wait (up to neighbourTimeoutMs). A rejection stops the peer.
   */
  onListening?: (live: { status: () => PeerStatus, metricsText: () => Promise<string> }) => Promise<void>
}

/** A job's outcome on this peer: the shared model, for a forecasting job this region's forecast, for a statistics job its published result (and no model). */
export interface JobOutcome {
  job: string
  model: StoredModel | null
  forecast: StoredForecast | null
  stats: StoredStats | null
}

export function toStoredStats (job: string, result: StatsJobResult, own: OwnSummary): StoredStats {
  return { job, createdAt: new Date().toISOString(), rounds: result.rounds, stats: result.stats, own }
}

export interface PeerRuntime {
  readonly peerId: string
  /** this peer's region in the federation file */
  readonly region: string | undefined
  readonly federation: Federation
  readonly coordinator: JobCoordinator
  readonly journal: JobJournal
  readonly log: Logger
  addresses (): string[]
  status (): PeerStatus
  /** the metrics endpoint's URL and bearer token, when one was asked for */
  readonly metrics: { url: string, token: string } | null
  /** the Prometheus text of this peer's metrics (what GET /metrics answers) */
  metricsText (): Promise<string>
  /** proposes a job and resolves with this peer's outcome when the federation has run it; aborting `signal` stops the wait (ABORTED) */
  run (proposal: JobProposal, options?: { signal?: AbortSignal }): Promise<JobOutcome>
  /** from now on, propose every job an operator drops into DIR/proposals/ (epimesh propose), once each */
  watchProposals (): void
  /** stops the peer and releases everything it holds; at most once, later calls wait for the first */
  stop (): Promise<void>
}

/**
 * Starts a region's peer: joins the federation, waits for its graph neighbours, and answers proposals
 * until stopped. `signal` ends its work when aborted (a stop signal, say): before it has started, the
 * start fails; after, running jobs stop, and `stop()` still releases what the peer holds.
 */
export async function startPeerRuntime (options: PeerRuntimeInit, { signal = new AbortController().signal }: { signal?: AbortSignal } = {}): Promise<PeerRuntime> {
  const { federation, logger } = options
  const { privateKey, peerId } = options.identity
  const member = federation.members.find((candidate) => candidate.peerId === peerId)
  const log = logger.child({ region: member?.region ?? 'unknown', peer: peerId.slice(-8) })

  const node = await createPeerNode({ federation, privateKey, listen: options.listen }, { logger: log })
  try {
    await node.start({ signal })
  } catch (error) {
    await node.stop().catch(() => {})
    throw error
  }
  log.info({ addresses: node.addresses(), neighbours: node.neighbours.length }, 'peer started')
  const transport = createLibp2pTransport({}, { node })
  // every round message signed with this peer's key, and only messages their authors signed passed on:
  // what a member says in a job can be proven to every other member (see consensus/evidence.ts)
  const verifier = ed25519Verifier()
  const signing = new SigningTransport(transport, ed25519Signer(privateKey), verifier, (message) => { log.debug({ event: 'message.unsigned', from: message.from, kind: message.kind }, 'message without a valid signature dropped') })
  let coordinator: JobCoordinator | null = null
  const audit = new AuditService({
    dir: options.dir, node, federation, graph: federationGraph(federation), privateKey, peerId,
    log: (level, event, fields) => { log[level]({ event, ...fields }, event) }
  })
  audit.start()
  let lastStatus = 0
  // the jobs that ended without a result, as the last run of this peer recorded them
  const endedBefore = (await readPeerStatus(options.dir)).ended
  const statusExtra: Record<string, unknown> = {}
  let statusWriting: Promise<void> = Promise.resolve()
  const status = (): PeerStatus => ({
    peerId, region: member?.region, pid: process.pid, updatedAt: new Date().toISOString(), addresses: node.addresses(),
    neighbours: node.neighbourStatus(), job: coordinator?.current ?? null, transport: transport.stats(), signatures: signing.stats(),
    network: node.networkStats(), agreement: coordinator?.stats ?? null, checkpoints: audit.checkpointStats, announcements: node.announcements.stats(), ended: coordinator?.ended ?? endedBefore, ...statusExtra
  })
  const writeStatus = async (extra: Record<string, unknown> = {}): Promise<void> => {
    Object.assign(statusExtra, extra)
    // one write at a time: two at once would race on the same temporary file
    statusWriting = statusWriting.catch(() => {}).then(async () => {
      await writeAtomically(join(options.dir, 'status.json'), JSON.stringify(status(), null, 2))
    })
    await statusWriting
  }
  let statusRefresh: NodeJS.Timeout | undefined
  let poll: NodeJS.Timeout | undefined
  let proposalWatch: FSWatcher | undefined
  let stopped: Promise<void> | null = null
  const recorder = new MetricsRecorder()
  const metricsText = async (): Promise<string> => renderMetrics(status(), recorder, await folderBytes(join(options.dir, 'store')))
  let metricsServer: MetricsServer | null = null
  const stop = async (): Promise<void> => {
    stopped ??= (async () => {
      await metricsServer?.close()
      clearInterval(poll)
      proposalWatch?.close()
      clearInterval(statusRefresh)
      coordinator?.stop()
      await audit.stop()
      await transport.stop().catch(() => {})
      await node.stop().catch(() => {})
      log.info('peer stopped')
      logger.flush()
    })()
    await stopped
  }
  try {
    if (options.metrics !== undefined) {
      metricsServer = await startMetricsServer(options.metrics, metricsText)
      // the token beside the store, readable by this user only
      const tokenFile = join(options.dir, 'metrics.token')
      await rm(tokenFile, { force: true })
      await writeFile(tokenFile, `${metricsServer.token}\n`, { mode: 0o600 })
      log.info({ event: 'metrics.listening', url: metricsServer.url }, 'metrics endpoint listening')
    }
    await options.onListening?.({ status, metricsText })
    const neighbours = await node.waitForNeighbours({ timeoutMs: options.neighbourTimeoutMs ?? 30_000, signal })
    // graph neighbours that could not be reached are named, with what to check: the peer keeps trying
    if (neighbours.missing.length > 0 && !signal.aborted) {
      const unreachable = neighbours.missing.map((id) => ({ region: federation.members.find((entry) => entry.peerId === id)?.region ?? id, peerId: id }))
      log.warn({ event: 'neighbours.unreachable', unreachable }, `graph neighbours not reachable yet: ${unreachable.map((entry) => `${entry.region} (${entry.peerId})`).join(', ')}; they may not be running, or their peer id or address in the federation file may be wrong (epimesh federation check); this peer keeps trying`)
    }
    const ready = await transport.start({ signal })
    log.info({ ready: ready.ready.length, missing: ready.missing.length }, 'neighbour exchange ready')
    const journal = fileJournal(options.dir)
    const onOutput = async (job: string, output: JobOutput): Promise<void> => {
      const outcome = storedOutcome(job, output, member?.region ?? peerId, federation.members)
      recorder.jobFinished()
      // in the store, with everything else of this region (opened briefly: the operator's commands
      // can read the store while the peer runs)
      if (outcome.stats !== null) {
        const stats = outcome.stats
        await Store.use(options.dir, async (store) => { await store.putStats(stats) })
        log.info({ event: 'stats.stored', job, rows: stats.stats.rows }, 'statistics stored')
      }
      if (outcome.forecast !== null) {
        const forecast = outcome.forecast
        await Store.use(options.dir, async (store) => { await store.putForecast(forecast) })
        log.info({ event: 'forecast.stored', job, h: forecast.h, jointRiskMean: forecast.joint.mean }, 'forecast stored')
      }
      const model = outcome.model
      if (model !== null) {
        await Store.use(options.dir, async (store) => { await store.putModel(model) })
        log.info({ event: 'model.stored', job, kind: model.kind ?? 'glm', rounds: model.rounds, converged: model.converged }, 'model stored')
        await writeStatus({ lastModel: job, ...(outcome.forecast === null ? {} : { lastForecast: { job, periods: outcome.forecast.settings?.periods ?? null, parent: model.lineage?.parent ?? null, h: outcome.forecast.h, jointRiskMean: outcome.forecast.joint.mean, createdAt: outcome.forecast.createdAt } }) })
      }
      // the head of this region's round log goes into the model's lineage once the log is closed
      if (model?.lineage !== undefined) {
        void coordinator?.auditClosed(job)
          .then(async () => await Store.use(options.dir, async (store) => await store.sealModelLineage(job)))
          .then((sealed) => { if (sealed) log.info({ event: 'model.lineage.sealed', job }, 'audit head written into the model\'s lineage') })
          .catch((error: unknown) => { log.warn({ event: 'model.lineage.failed', job, reason: excerpt((error as Error).message, 300) }, 'the audit head could not be written into the model\'s lineage') })
      }
      try {
        options.onJob?.(outcome)
      } catch (error) {
        log.warn({ event: 'job.callback.failed', job, reason: excerpt((error as Error).message, 300) }, 'the onJob callback failed')
      }
    }
    const jobs = new JobCoordinator({
      node, transport: signing, verifier, roundWindows: transport.rounds, federation, loadData: async () => await loadData(options.dir, options.cases), publishRisk: options.publishRisk, onOutput, signal, journal, audit, ended: endedBefore,
      onEnded: () => {
        for (const entry of coordinator?.ended ?? []) if (entry.state === 'failed') recorder.jobFailed(entry.job)
        void writeStatus().catch(() => {})
      },
      log: (level, event, fields) => { log[level]({ event, ...fields }, event) },
      onProgress: (progress) => {
        recorder.progress(progress)
        const now = Date.now()
        if (now - lastStatus > 500) {
          lastStatus = now
          void writeStatus()
        }
        if (progress.round % 50 === 0) log.debug({ event: 'job.progress', ...progress }, 'progress')
      }
    })
    coordinator = jobs
    jobs.start()
    await writeStatus()
    // refusals and scores change between jobs too
    statusRefresh = setInterval(() => { writeStatus().catch(() => {}) }, STATUS_REFRESH_MS)

    const run = async (proposal: JobProposal, runOptions: { signal?: AbortSignal } = {}): Promise<JobOutcome> => {
      const output = await jobs.propose(proposal, runOptions)
      return storedOutcome(proposal.id, output, member?.region ?? peerId, federation.members)
    }
    const watchProposals = (): void => {
      if (poll !== undefined || stopped !== null) return
      const seen = new Set<string>()
      const proposalsDir = dataPath(options.dir, 'proposals')
      const scan = async (): Promise<void> => {
        const names = await readdir(proposalsDir).catch(() => [] as string[])
        for (const name of names.filter((entry) => entry.endsWith('.json') && !seen.has(entry)).slice(0, 16)) {
          seen.add(name)
          try {
            const proposal = await readProposalFile(options.dir, name, peerId)
            // a proposal left from an earlier run of this peer that was declined, expired, failed or
            // began here is not proposed again at every restart: `epimesh jobs` shows how it ended
            if (jobs.ended.some((entry) => entry.job === proposal.id) || (await journal.list()).includes(proposal.id)) {
              log.info({ event: 'job.proposal.done', job: proposal.id }, 'proposal already answered or run: not proposed again')
              continue
            }
            log.info({ event: 'job.propose', job: proposal.id }, 'proposing')
            jobs.propose(proposal).catch((error: unknown) => { log.warn({ event: 'job.failed', job: proposal.id, reason: (error as Error).message }, 'job failed') })
          } catch (error) {
            log.warn({ event: 'job.proposal.unreadable', file: excerpt(name), reason: excerpt((error as Error).message, 300) }, 'unreadable proposal')
          }
        }
      }
      // one scan at a time (a name is proposed once); a change during a scan is looked at after it
      let scanning: Promise<void> | null = null
      let again = false
      const look = (): void => {
        if (stopped !== null) return
        if (scanning !== null) { again = true; return }
        scanning = scan().finally(() => {
          scanning = null
          if (again) { again = false; look() }
        })
      }
      // a proposal dropped in is seen at once (fs.watch), and within a second where watching fails
      poll = setInterval(look, 1000)
      void mkdir(proposalsDir, { recursive: true, mode: 0o700 }).then(() => {
        if (stopped !== null) return
        try {
          proposalWatch = watch(proposalsDir, { persistent: false }, look)
          proposalWatch.on('error', () => { proposalWatch?.close() })
        } catch {
          // the poll alone
        }
        look()
      }, () => {})
    }
    const metrics = metricsServer === null ? null : { url: metricsServer.url, token: metricsServer.token }
    return { peerId, region: member?.region, federation, coordinator: jobs, journal, log, addresses: () => node.addresses(), status, metrics, metricsText, run, watchProposals, stop }
  } catch (error) {
    await stop()
    throw error
  }
}

/** Options of createPeer. */
export interface PeerOptions {
  /** the data folder `epimesh init` made: its encrypted store (whose key comes as for the commands) and identity key */
  dir: string
  /** the federation file's path, or its contents (the parsed JSON) */
  federation: string | object
  /** listen multiaddrs (default `/ip4/127.0.0.1/tcp/0`) */
  listen?: string[]
  /** agree to publish this region's risk score openly when a forecasting job lists it (default false) */
  publishRisk?: boolean
  /** propose the jobs an operator drops into DIR/proposals/ with `epimesh propose` (default true) */
  watchProposals?: boolean
  /** read the records from this CSV file instead of the store */
  cases?: string
  /** a pino logger for the peer's JSON logs (default: none) */
  logger?: Logger
  /** how long to wait for the graph neighbours at start, in ms (default 30,000) */
  neighbourTimeoutMs?: number
  /** called with the outcome of every job this peer ran to the end, whoever proposed it */
  onJob?: (outcome: JobOutcome) => void
  /** serve GET /metrics (Prometheus text) on this address (`PORT` or `HOST:PORT`, 127.0.0.1 when no host is given), behind a bearer token also written to DIR/metrics.token */
  metrics?: string
}

/** A job to propose: the federation file's model with changes, or a regional forecasting job. */
export interface JobRequest {
  /** default: a random `job-` id */
  id?: string
  /** changes to the federation's model for this job, e.g. `{ algorithm: 'newton', lambda: 1 }` */
  model?: Partial<ModelSpec>
  /** a regional forecasting job, as `epimesh propose --forecast` writes one: `{ from, periods, period, ... }` */
  forecast?: z.input<typeof forecastProposalSchema>
  /** a statistics job, as `epimesh propose --stats` writes one: `{ features, outcome, bins, minimum, schemaOf }` */
  stats?: z.input<typeof statsProposalSchema>
  /** a re-fit warm-started from the shared model of this job (every member must hold it) */
  refit?: string
}

/** A running peer. Every member must run one for a job to run. */
export interface Peer {
  readonly peerId: string
  /** its region in the federation file */
  readonly region: string | undefined
  /** the multiaddrs it listens on, each ending with its peer id */
  addresses (): string[]
  /**
   * Proposes a job to the federation; resolves when every member accepted it and it ran, with this
   * peer's outcome. Aborting the signal stops the wait (ABORTED); a job the federation has begun runs on.
   */
  propose (job?: JobRequest, options?: { signal?: AbortSignal }): Promise<JobOutcome>
  /** neighbours, the job running (phase, round, residuals), messages, refusals, scores */
  status (): PeerStatus
  /** the metrics endpoint's URL and bearer token, when `metrics` was given */
  readonly metrics: { url: string, token: string } | null
  /**
   * Leaves the federation and releases the data folder. Aborting the signal stops the wait (ABORTED);
   * the peer still finishes stopping.
   */
  stop (options?: { signal?: AbortSignal }): Promise<void>
}

async function untilAborted<T> (promise: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return await promise
  throwIfAborted(signal, what)
  let onAbort = (): void => {}
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => { reject(new AbortedError(what, { cause: signal.reason })) }
    signal.addEventListener('abort', onAbort, { once: true })
  })
  try {
    return await Promise.race([promise, aborted])
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
}

async function federationOf (value: string | object, signal: AbortSignal | undefined): Promise<Federation> {
  if (typeof value === 'string') return await loadFederation(value, signal === undefined ? {} : { signal })
  const federation = parseFederation(value, 'federation')
  if (federation.preSharedKeyFile !== undefined) {
    federation.preSharedKey = await readPreSharedKey(federation.preSharedKeyFile, signal === undefined ? {} : { signal })
    delete federation.preSharedKeyFile
  }
  return federation
}

/**
 * Starts a region's peer in this process, as `epimesh start` does, and resolves once it has joined its
 * graph neighbours. It holds the data folder (one process per folder) until `stop()`. Aborting
 * `signal` cancels the start (ABORTED or the step's own error); once started, the peer runs until
 * `stop()`.
 */
export async function createPeer (options: PeerOptions, { signal }: { signal?: AbortSignal } = {}): Promise<Peer> {
  throwIfAborted(signal, 'the peer\'s start was aborted')
  const lock = await lockDataFolder(options.dir)
  // the peer's own lifetime: the caller's signal governs only the start
  const lifetime = new AbortController()
  const cancelStart = (): void => { lifetime.abort(signal?.reason) }
  signal?.addEventListener('abort', cancelStart, { once: true })
  let runtime: PeerRuntime
  try {
    const metrics = options.metrics === undefined ? undefined : parseMetricsAddress(options.metrics)
    const federation = await federationOf(options.federation, signal)
    const identity = await loadIdentity(options.dir)
    runtime = await startPeerRuntime({
      dir: options.dir,
      federation,
      identity,
      listen: options.listen ?? ['/ip4/127.0.0.1/tcp/0'],
      publishRisk: options.publishRisk ?? false,
      ...(options.cases === undefined ? {} : { cases: options.cases }),
      logger: options.logger ?? pino({ level: 'silent' }),
      ...(options.neighbourTimeoutMs === undefined ? {} : { neighbourTimeoutMs: options.neighbourTimeoutMs }),
      ...(options.onJob === undefined ? {} : { onJob: options.onJob }),
      ...(metrics === undefined ? {} : { metrics })
    }, { signal: lifetime.signal })
  } catch (error) {
    await lock.release()
    throw lifetime.signal.aborted && !(error instanceof AbortedError) ? new AbortedError('the peer\'s start was aborted', { cause: error }) : error
  } finally {
    signal?.removeEventListener('abort', cancelStart)
  }
  if (options.watchProposals !== false) runtime.watchProposals()
  let stopping: Promise<void> | null = null
  return {
    peerId: runtime.peerId,
    region: runtime.region,
    addresses: () => runtime.addresses(),
    status: () => runtime.status(),
    metrics: runtime.metrics,
    propose: async (job = {}, { signal: jobSignal } = {}) => {
      throwIfAborted(jobSignal, 'the proposal was aborted')
      if (stopping !== null) throw new AbortedError('the peer has stopped')
      const id = job.id === undefined ? `job-${randomBytes(6).toString('hex')}` : checkJobId(job.id, 'job id')
      const proposal = checkProposal({ id, proposer: runtime.peerId, ...(job.model === undefined ? {} : { model: job.model }), ...(job.forecast === undefined ? {} : { forecast: job.forecast }), ...(job.stats === undefined ? {} : { stats: job.stats }), ...(job.refit === undefined ? {} : { refit: job.refit }) }, runtime.federation.model, `job ${id}`)
      return await runtime.run(proposal, jobSignal === undefined ? {} : { signal: jobSignal })
    },
    stop: async ({ signal: stopSignal } = {}) => {
      stopping ??= (async () => {
        lifetime.abort(new AbortedError('the peer was stopped'))
        try {
          await runtime.stop()
        } finally {
          await lock.release()
        }
      })()
      await untilAborted(stopping, stopSignal, 'stopped waiting for the peer to stop')
    }
  }
}
