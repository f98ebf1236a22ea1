import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { isJobId } from '../../consensus/ids.ts'
import { Store } from '../../store/store.ts'
import { dataPath } from '../paths.ts'
import { peerRunning } from '../lock.ts'
import { ENDED_KEPT, type EndedJob } from './coordinator.ts'
import type { JobKindName } from './job-kinds.ts'
import { jobAnnouncementSchema, type JobProposal } from './proposal.ts'

/**
 * Every job a data folder's peer knows, from what the peer records and nothing else:
 *
 * - the store: the result of every job that finished here (a model, a forecast, statistics);
 * - DIR/status.json: the job running now (its phase and round), and the last ENDED_KEPT jobs that
 *   ended without a result (declined with each region's reason, expired, failed);
 * - DIR/jobs/<id>/job.json (the journal): every job that began here, and whether it finished;
 * - DIR/proposals/<id>.json: jobs proposed with `epimesh propose` and not yet answered.
 *
 * All of it is read as untrusted: bounded in size, checked by schema, a part that does not parse is
 * left out (a job then shows with less detail, never with a wrong state).
 */

export const JOB_STATES = ['finished', 'running', 'failed', 'declined', 'expired', 'interrupted', 'proposed'] as const
export type JobRecordState = typeof JOB_STATES[number]

export interface JobRecord {
  job: string
  /** glm, gbdt, forecast or stats; null when this peer never saw the proposal */
  kind: JobKindName | null
  state: JobRecordState
  /** rounds the job took (finished) or has taken so far (running); null when it never ran here */
  rounds: number | null
  /** when it finished, ended or began here, ISO 8601; null when unknown */
  at: string | null
  /** per region, why it did not run (declined, expired, failed); empty otherwise */
  reasons: Array<{ region: string, reason: string }>
  /** a finished regression: whether it converged */
  converged?: boolean
}

const MAX_FILE_BYTES = 4 * 1024 * 1024
const MAX_JOURNAL_ENTRIES = 1000

export const endedJobSchema = z.strictObject({
  job: z.string().refine(isJobId),
  kind: z.enum(['glm', 'gbdt', 'forecast', 'stats']).nullable(),
  state: z.enum(['declined', 'expired', 'failed']),
  at: z.string().max(40),
  reasons: z.array(z.strictObject({ region: z.string().max(200), reason: z.string().max(ENDED_KEPT.reasonChars + 10) })).max(ENDED_KEPT.regions)
})

const statusSchema = z.object({
  pid: z.number().int().optional(),
  job: z.object({ job: z.string(), kind: z.enum(['glm', 'gbdt', 'forecast', 'stats']), state: z.enum(['running', 'finished', 'failed']), jobRound: z.number().int().nonnegative() }).nullable().optional(),
  ended: z.array(z.unknown()).max(ENDED_KEPT.jobs * 4).optional()
})

async function readSmall (path: string): Promise<string | null> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch {
    return null
  }
  try {
    if ((await handle.stat()).size > MAX_FILE_BYTES) return null
    return await handle.readFile('utf8')
  } catch {
    return null
  } finally {
    await handle.close()
  }
}

async function readJsonFile (path: string): Promise<unknown> {
  const text = await readSmall(path)
  if (text === null) return null
  try {
    return JSON.parse(text) as unknown
  } catch {
    return null
  }
}

/** The peer's status.json: its current job and the jobs that ended without a result (each entry checked; bad ones left out). */
export async function readPeerStatus (dir: string): Promise<{ job: { job: string, kind: JobKindName, state: 'running' | 'finished' | 'failed', jobRound: number } | null, ended: EndedJob[] }> {
  const parsed = statusSchema.safeParse(await readJsonFile(join(dir, 'status.json')))
  if (!parsed.success) return { job: null, ended: [] }
  const ended: EndedJob[] = []
  for (const entry of parsed.data.ended ?? []) {
    const checked = endedJobSchema.safeParse(entry)
    if (checked.success) ended.push(checked.data)
  }
  return { job: parsed.data.job ?? null, ended: ended.slice(-ENDED_KEPT.jobs) }
}

function kindOfProposal (proposal: JobProposal): JobKindName {
  if (proposal.forecast !== undefined) return 'forecast'
  if (proposal.stats !== undefined) return 'stats'
  return proposal.model.kind === 'gbdt' ? 'gbdt' : 'glm'
}

/** A proposal as `epimesh propose` wrote it, or as the journal keeps it, when it is a valid one. */
function proposalKind (value: unknown, id: string): JobKindName | null {
  if (typeof value !== 'object' || value === null) return null
  const parsed = jobAnnouncementSchema.safeParse({ ...value, type: 'job.propose', id, proposer: 'x' })
  return parsed.success && parsed.data.type === 'job.propose' ? kindOfProposal(parsed.data as JobProposal) : null
}

async function jsonIds (folder: string, suffix: string, directories: boolean): Promise<string[]> {
  const entries = await readdir(folder, { withFileTypes: true }).catch(() => [])
  return entries
    .filter((entry) => directories ? entry.isDirectory() : entry.isFile() && entry.name.endsWith(suffix))
    .map((entry) => directories ? entry.name : entry.name.slice(0, -suffix.length))
    .filter(isJobId)
    .slice(0, MAX_JOURNAL_ENTRIES)
}

/**
 * Every job the peer of `dir` knows, oldest first. A job is finished when its result is in the store,
 * whatever else says; else declined, expired or failed as the peer recorded it; else running when the
 * peer runs it now; else interrupted when it began here and the peer stopped before its end; else
 * proposed when its proposal waits in DIR/proposals.
 */
export async function listJobs (dir: string): Promise<JobRecord[]> {
  const records = new Map<string, JobRecord>()
  const { models, forecasts, stats } = await Store.use(dir, async (store) => ({ models: await store.listModels(), forecasts: await store.listForecasts(), stats: await store.listStats() }))
  for (const model of models) {
    const kind = model.specification?.kind === 'forecast' ? 'forecast' : model.kind ?? 'glm'
    records.set(model.job, { job: model.job, kind, state: 'finished', rounds: model.rounds, at: model.createdAt, reasons: [], converged: model.converged })
  }
  for (const forecast of forecasts) {
    const known = records.get(forecast.job)
    records.set(forecast.job, { job: forecast.job, kind: 'forecast', state: 'finished', rounds: known?.rounds ?? forecast.model.rounds, at: known?.at ?? forecast.createdAt, reasons: [], ...(known?.converged === undefined ? {} : { converged: known.converged }) })
  }
  for (const result of stats) records.set(result.job, { job: result.job, kind: 'stats', state: 'finished', rounds: result.rounds, at: result.createdAt, reasons: [] })

  const status = await readPeerStatus(dir)
  for (const ended of status.ended) {
    if (records.has(ended.job)) continue
    records.set(ended.job, { job: ended.job, kind: ended.kind, state: ended.state, rounds: null, at: ended.at, reasons: ended.reasons })
  }
  const running = (await peerRunning(dir)).running

  for (const id of await jsonIds(dataPath(dir, 'jobs'), '', true)) {
    if (records.has(id)) continue
    const header = await readJsonFile(join(dataPath(dir, 'jobs', id), 'job.json')) as { proposal?: unknown, begunAt?: unknown, finishedAt?: unknown } | null
    const kind = proposalKind(header?.proposal, id)
    const at = typeof header?.begunAt === 'string' ? header.begunAt.slice(0, 40) : null
    const current = status.job?.job === id ? status.job : null
    if (running && current !== null && current.state === 'running') {
      records.set(id, { job: id, kind: current.kind, state: 'running', rounds: current.jobRound, at, reasons: [] })
    } else if (running && current === null && typeof header?.finishedAt !== 'string') {
      // begun here, the peer running, and not yet the job it reports: it has only just started
      records.set(id, { job: id, kind, state: 'running', rounds: 0, at, reasons: [] })
    } else if (typeof header?.finishedAt === 'string') {
      // it ended here with a result the store no longer holds (purged)
      records.set(id, { job: id, kind, state: 'finished', rounds: null, at: header.finishedAt.slice(0, 40), reasons: [] })
    } else {
      records.set(id, { job: id, kind, state: 'interrupted', rounds: current?.jobRound ?? null, at, reasons: [{ region: 'here', reason: `the peer stopped while the job ran (epimesh start --dir DIR --federation FILE --job-id ${id} resumes it)` }] })
    }
  }
  for (const id of await jsonIds(dataPath(dir, 'proposals'), '.json', false)) {
    if (records.has(id)) continue
    const kind = proposalKind(await readJsonFile(dataPath(dir, 'proposals', id, '.json')), id)
    records.set(id, { job: id, kind, state: 'proposed', rounds: null, at: null, reasons: [] })
  }
  return [...records.values()].sort((a, b) => (a.at ?? '\uffff').localeCompare(b.at ?? '\uffff'))
}
