import { open, readdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import type { Command } from 'commander'
import pino from 'pino'
import type { FitJobResult } from '../../consensus/jobs/fit-job.ts'
import type { ForecastJobResult } from '../../consensus/jobs/forecast-job.ts'
import { coefficientTable } from '../../learning/inference.ts'
import { DatasetError, readDataset, type Cell } from '../data/dataset.ts'
import { Store, type StoredForecast, type StoredModel } from '../../store/store.ts'
import { loadFederation } from '../federation.ts'
import { loadIdentity } from '../identity.ts'
import { AuditService } from '../audit/service.ts'
import { federationGraph, JobCoordinator } from '../runtime/coordinator.ts'
import { jobAnnouncementSchema, type JobProposal } from '../runtime/proposal.ts'
import { checkJobId, dataPath } from '../paths.ts'
import { excerpt } from '../../consensus/ids.ts'
import { fileJournal } from '../runtime/journal.ts'
import { withDataFolderLock } from '../lock.ts'
import { createLibp2pTransport } from '../net/libp2p-transport.ts'
import { createPeerNode } from '../net/node.ts'
import { ed25519Signer, ed25519Verifier, SigningTransport } from '../net/signing.ts'
import { STATUS_REFRESH_MS } from '../constants.ts'

/**
 * `epimesh start`: runs this region's peer until stopped. It joins the federation (one reachable
 * member is enough), keeps the links to its graph neighbours, answers job proposals against its own
 * disclosure policy, runs the jobs it accepted, and keeps each shared model in its store.
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
}

type SeriesPoint = { date: string, count: number, population?: number }

/**
 * The region's records and case-count series: from its store (the normal case), or the records from a
 * CSV file named on the command line.
 */
async function loadData (dir: string, cases: string | undefined): Promise<{ rows: Array<Record<string, Cell>>, series: SeriesPoint[] }> {
  return await Store.use(dir, async (store) => {
    const rows = cases !== undefined ? (await readDataset(cases)).rows : await store.allRows()
    return { rows, series: await store.readSeries() }
  })
}

export function toStoredForecast (job: string, region: string, result: ForecastJobResult, members: ReadonlyArray<{ region: string, peerId: string }>): StoredForecast {
  const regionOf = new Map(members.map((member) => [member.peerId, member.region]))
  return {
    job,
    region,
    createdAt: new Date().toISOString(),
    forecast: result.forecast.map((period) => ({ step: period.step, mean: period.mean, lower: period.lower, upper: period.upper })),
    rate: result.risk.rate,
    h: result.risk.h,
    joint: { sum: result.joint.sum, mean: result.joint.mean, regions: result.joint.regions, open: result.joint.open.map((entry) => ({ region: regionOf.get(entry.region) ?? entry.region, h: entry.h })) },
    model: toStoredModel(job, result.fit)
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
  const parsed = jobAnnouncementSchema.safeParse({ type: 'job.propose', id, proposer, model: { ...model, ...(typeof value.model === 'object' ? value.model : {}) }, ...(value.forecast === undefined ? {} : { forecast: value.forecast }) })
  if (!parsed.success || parsed.data.type !== 'job.propose') {
    const issue = parsed.success ? undefined : parsed.error.issues[0]
    throw new DatasetError(`${path}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'not a proposal'}`)
  }
  return parsed.data as JobProposal
}

export function toStoredModel (job: string, result: FitJobResult): StoredModel {
  const table = coefficientTable(result.terms, result.coefficients, result.covariance)
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
    }))
  }
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

export async function runStart (options: StartOptions): Promise<number> {
  // one peer process per data folder, for the whole of its life (src/peer/lock.ts)
  return await withDataFolderLock(options.dir, async () => await runPeer(options))
}

async function runPeer (options: StartOptions): Promise<number> {
  const logger = pino({ base: null, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2))
  const federation = await loadFederation(options.federation)
  const { privateKey, peerId } = await loadIdentity(options.dir)
  const member = federation.members.find((candidate) => candidate.peerId === peerId)
  const log = logger.child({ region: member?.region ?? 'unknown', peer: peerId.slice(-8) })
  if (options.jobId !== undefined) checkJobId(options.jobId, '--job-id')
  const controller = new AbortController()
  const stop = (): void => { controller.abort() }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)

  const node = await createPeerNode({ federation, privateKey, listen: options.listen }, { logger: log })
  await node.start({ signal: controller.signal })
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
  const statusExtra: Record<string, unknown> = {}
  let statusWriting: Promise<void> = Promise.resolve()
  const writeStatus = async (extra: Record<string, unknown> = {}): Promise<void> => {
    Object.assign(statusExtra, extra)
    // one write at a time: two at once would race on the same temporary file
    statusWriting = statusWriting.catch(() => {}).then(async () => {
      await writeAtomically(join(options.dir, 'status.json'), JSON.stringify({
        peerId, region: member?.region, pid: process.pid, updatedAt: new Date().toISOString(),
        neighbours: node.neighbourStatus(), job: coordinator?.current ?? null, transport: transport.stats(), signatures: signing.stats(),
        network: node.networkStats(), agreement: coordinator?.stats ?? null, checkpoints: audit.checkpointStats, announcements: node.announcements.stats(), ...statusExtra
      }, null, 2))
    })
    await statusWriting
  }
  let statusRefresh: NodeJS.Timeout | undefined
  try {
    await node.waitForNeighbours({ timeoutMs: 30_000, signal: controller.signal })
    const ready = await transport.start({ signal: controller.signal })
    log.info({ ready: ready.ready.length, missing: ready.missing.length }, 'neighbour exchange ready')
    const journal = fileJournal(options.dir)
    const storeModel = async (job: string, result: FitJobResult): Promise<void> => {
      // in the store, with every other model of this region (opened briefly: the operator's commands
      // can read the store while the peer runs)
      await Store.use(options.dir, async (store) => { await store.putModel(toStoredModel(job, result)) })
      log.info({ event: 'model.stored', job, rounds: result.rounds, converged: result.converged }, 'model stored')
      await writeStatus({ lastModel: job })
    }
    const storeForecast = async (job: string, result: ForecastJobResult): Promise<void> => {
      await Store.use(options.dir, async (store) => { await store.putForecast(toStoredForecast(job, member?.region ?? peerId, result, federation.members)) })
      log.info({ event: 'forecast.stored', job, h: result.risk.h, jointRiskMean: result.joint.mean }, 'forecast stored')
    }
    coordinator = new JobCoordinator({
      node, transport: signing, verifier, roundWindows: transport.rounds, federation, loadData: async () => await loadData(options.dir, options.cases), publishRisk: options.publishRisk, onForecast: storeForecast, signal: controller.signal, journal, audit, onResult: storeModel,
      log: (level, event, fields) => { log[level]({ event, ...fields }, event) },
      onProgress: (progress) => {
        const now = Date.now()
        if (now - lastStatus > 500) {
          lastStatus = now
          void writeStatus()
        }
        if (progress.round % 50 === 0) log.debug({ event: 'job.progress', ...progress }, 'progress')
      }
    })
    coordinator.start()
    await writeStatus()
    // refusals and scores change between jobs too
    statusRefresh = setInterval(() => { writeStatus().catch(() => {}) }, STATUS_REFRESH_MS)
    const jobId = options.jobId ?? `job-${randomBytes(6).toString('hex')}`
    // A job begun here before a stop (a crash, a kill) and not finished is resumed from its journal.
    const begun = (await journal.list()).includes(jobId) && !(await Store.use(options.dir, async (store) => await store.hasResult(jobId)))
    const finished = begun
      ? coordinator.resume(jobId).then((result) => { if (result === null) throw new Error(`job ${jobId} has no usable journal`); return result })
      : options.proposal !== undefined
        ? coordinator.propose(await readProposal(options.proposal, federation.model, jobId, peerId))
        : options.propose
          ? coordinator.propose({ type: 'job.propose', id: jobId, proposer: peerId, model: federation.model } satisfies JobProposal)
          : coordinator.waitFor(jobId)
    if (options.exitAfterJob || options.propose || options.proposal !== undefined || options.jobId !== undefined) {
      await finished
      // stay for neighbours still finishing the last sum (the audit log records those answers, then
      // closes), and a moment more for the neighbours' countersignatures of the last checkpoint
      await coordinator.auditClosed(jobId)
      await new Promise((resolve) => setTimeout(resolve, 1000))
      return 0
    }
    // Until stopped: answer proposals from any member, and run proposals that an operator drops into
    // DIR/proposals/ (epimesh propose), once each.
    const seen = new Set<string>()
    const proposalsDir = dataPath(options.dir, 'proposals')
    const poll = setInterval(() => {
      void (async () => {
        const names = await readdir(proposalsDir).catch(() => [] as string[])
        for (const name of names.filter((entry) => entry.endsWith('.json') && !seen.has(entry)).slice(0, 16)) {
          seen.add(name)
          try {
            const proposal = await readProposalFile(options.dir, name, peerId)
            log.info({ event: 'job.propose', job: proposal.id }, 'proposing')
            coordinator?.propose(proposal).catch((error: unknown) => { log.warn({ event: 'job.failed', job: proposal.id, reason: (error as Error).message }, 'job failed') })
          } catch (error) {
            log.warn({ event: 'job.proposal.unreadable', file: excerpt(name), reason: excerpt((error as Error).message, 300) }, 'unreadable proposal')
          }
        }
      })()
    }, 1000)
    await new Promise<void>((resolve) => { controller.signal.addEventListener('abort', () => { resolve() }, { once: true }) })
    clearInterval(poll)
    return 0
  } finally {
    clearInterval(statusRefresh)
    coordinator?.stop()
    await audit.stop()
    await transport.stop().catch(() => {})
    await node.stop().catch(() => {})
    process.off('SIGINT', stop)
    process.off('SIGTERM', stop)
    log.info('peer stopped')
    logger.flush()
  }
}

export function registerStart (program: Command): void {
  program.command('start')
    .description('run this region\'s peer: join the federation, answer job proposals, run the jobs it accepts')
    .requiredOption('--dir <dir>', 'the peer\'s data folder (from epimesh init)')
    .requiredOption('--federation <file>', 'the federation file shared by all members')
    .option('--listen <multiaddr...>', 'listen addresses', ['/ip4/127.0.0.1/tcp/0'])
    .option('--cases <file>', 'read the records from this CSV file instead of the store')
    .option('--propose', 'propose a job with the federation\'s model as soon as the neighbours are up', false)
    .option('--proposal <file>', 'propose the job in this file (as epimesh propose writes it) as soon as the neighbours are up')
    .option('--publish-risk', 'agree to publish this region\'s risk score openly when a forecasting job lists it', false)
    .option('--job-id <id>', 'the job to propose, or to wait for')
    .option('--exit-after-job', 'stop after one job', false)
    .action(async (options: StartOptions) => {
      process.exitCode = await runStart(options)
    })
}
