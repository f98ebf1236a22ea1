import { open } from 'node:fs/promises'
import { join } from 'node:path'
import { z } from 'zod'
import { EpimeshError } from '../../errors.ts'
import { Store, type SeriesPoint, type StoredForecast, type StoredModel } from '../../store/store.ts'
import type { Federation, RegionGeometry } from '../federation.ts'
import type { PeerStatus } from '../runtime/peer.ts'
import { intervalTable, versioned } from '../cli/models.ts'

/**
 * What the operator's view shows, gathered from what this region holds and nothing else: its peer's
 * status (live from the running peer, or the folder's last status.json), its store (the shared
 * models, its own series and forecast, its own round logs) and the federation file. The privacy rules
 * are those of the CLI: this region's h and series are its own; another region's h appears only when
 * that region published it in the job (the forecast's `joint.open`); the joint risk is the masked sum
 * every member holds; no other region's data is read, because no other region's data is here.
 */

export class WarningLevelsError extends EpimeshError {
  static override readonly name = 'WarningLevelsError'
  readonly exitCode = 2
  constructor (value: string, reason: string) {
    super('WARNING_LEVELS_INVALID', `--warning-levels ${JSON.stringify(value.slice(0, 80))}: ${reason} (give three increasing numbers between 0 and 1, e.g. 0.25,0.5,0.75)`)
  }
}

/** The h thresholds of yellow, orange and red. */
export type WarningLevels = readonly [number, number, number]

export const DEFAULT_WARNING_LEVELS: WarningLevels = Object.freeze([0.25, 0.5, 0.75]) as unknown as WarningLevels

export type WarningLevel = 'green' | 'yellow' | 'orange' | 'red'

/** `0.25,0.5,0.75`: three increasing numbers in (0, 1). */
export function parseWarningLevels (value: string): WarningLevels {
  if (value.length > 100) throw new WarningLevelsError(value, 'too long')
  const parts = value.split(',').map((part) => part.trim())
  if (parts.length !== 3) throw new WarningLevelsError(value, `${parts.length} numbers`)
  const levels = parts.map((part) => /^(0|[1-9]\d*)?(\.\d+)?$/.test(part) && part !== '' ? Number(part) : Number.NaN)
  if (levels.some((level) => !Number.isFinite(level) || level <= 0 || level >= 1)) throw new WarningLevelsError(value, 'each must be a number between 0 and 1')
  const [a, b, c] = levels as [number, number, number]
  if (!(a < b && b < c)) throw new WarningLevelsError(value, 'they must increase')
  return [a, b, c]
}

/** The warning level of a risk score h: green below the first threshold, red from the third. */
export function warningLevel (h: number, levels: WarningLevels): WarningLevel {
  if (!(h >= levels[0])) return 'green'
  if (h < levels[1]) return 'yellow'
  if (h < levels[2]) return 'orange'
  return 'red'
}

const SUM_PHASES: Record<string, string> = {
  stats: 'pooled standardisation (masked sum)',
  'stats-first': 'pooled counts and means (masked sum)',
  curvature: 'curvature for the ADMM penalty (masked sum)',
  recurvature: 'curvature again, after the first pass (masked sum)',
  consensus: 'agreeing on the consensus model (masked sum)',
  metrics: 'fit metrics: AUC, Brier, Hosmer-Lemeshow (masked sum)',
  refit: 'warm start from the parent model (masked sum)',
  'refit-newton': 'warm start: a Newton step (masked sum)',
  'tree-stats': 'pooled gradient statistics (masked sum)',
  'ee-counts': 'exchanging neighbours\' case counts',
  'ee-stats': 'pooled series statistics (masked sum)',
  incidence: 'exchanging neighbours\' incidence',
  'joint-risk': 'joint risk of the regions (masked sum)',
  'mc-scores': 'pooled scores (masked sum)',
  close: 'closing: countersigning the round logs',
  admm: 'consensus ADMM fit',
  admm2: 'consensus ADMM fit, second pass',
  pending: 'waiting for the members to accept',
  done: 'finished'
}

/** A phase's name as an operator reads it ("consensus ADMM fit", "Newton step 3 (masked sum)"). */
export function phaseName (phase: string): string {
  const known = SUM_PHASES[phase]
  if (known !== undefined) return known
  const newton = /^(?:.*[.-])?newton\.(\d+)$/.exec(phase)
  if (newton !== null) return `Newton step ${Number(newton[1]) + 1} (masked sum)`
  const prefixed = /^[a-z0-9]+[.:](.+)$/.exec(phase)
  if (prefixed !== null && SUM_PHASES[prefixed[1] as string] !== undefined) return SUM_PHASES[prefixed[1] as string] as string
  return phase
}

/** One point of a job's residuals: the job's round, and the primal and dual residual there. */
export interface ResidualPoint { round: number, primal: number, dual: number }

/** At most this many points per job are kept (older ones are thinned, every other one dropped). */
const MAX_POINTS = 4000

/** A job's residuals over time, bounded: when full, every other point is dropped. */
export class ResidualHistory {
  private readonly jobs = new Map<string, ResidualPoint[]>()

  add (job: string, point: ResidualPoint): void {
    let points = this.jobs.get(job)
    if (points === undefined) {
      if (this.jobs.size >= 4) this.jobs.delete(this.jobs.keys().next().value as string)
      points = []
      this.jobs.set(job, points)
    }
    const last = points.at(-1)
    if (last !== undefined && last.round >= point.round) return
    points.push(point)
    if (points.length > MAX_POINTS) this.jobs.set(job, points.filter((_, index) => index % 2 === 0 || index === points.length - 1))
  }

  of (job: string): ResidualPoint[] { return [...(this.jobs.get(job) ?? [])] }
}

/** The residuals a job's round log (this region's own, in its store) holds: its ADMM rounds. */
export function residualsFromLog (lines: readonly string[]): ResidualPoint[] {
  const points: ResidualPoint[] = []
  for (const line of lines) {
    if (!line.includes('"admm"')) continue
    let entry: { type?: unknown, jobRound?: unknown, admm?: { primalResidual?: unknown, dualResidual?: unknown } }
    try {
      entry = JSON.parse(line) as typeof entry
    } catch {
      continue
    }
    const primal = entry.admm?.primalResidual
    const dual = entry.admm?.dualResidual
    if (entry.type !== 'round' || typeof entry.jobRound !== 'number' || typeof primal !== 'number' || typeof dual !== 'number') continue
    points.push({ round: entry.jobRound, primal, dual })
  }
  return points.length > MAX_POINTS ? points.filter((_, index) => index % Math.ceil(points.length / MAX_POINTS) === 0) : points
}

/** A residual is not defined before a neighbour has been heard (NaN or an infinity live, null in status.json): absent then. */
const finiteOrAbsent = z.unknown().transform((value) => typeof value === 'number' && Number.isFinite(value) ? value : undefined).optional()

/** The part of a peer's status the view shows, as the running peer gives it or status.json holds it. */
const statusFileSchema = z.object({
  peerId: z.string().max(200),
  region: z.string().max(200).optional(),
  pid: z.number().int().optional(),
  updatedAt: z.string().max(64),
  neighbours: z.object({ connected: z.array(z.string().max(200)).max(10_000), missing: z.array(z.string().max(200)).max(10_000) }),
  job: z.object({
    job: z.string().max(200),
    kind: z.string().max(32),
    state: z.enum(['running', 'finished', 'failed']),
    phase: z.string().max(200),
    round: z.number(),
    jobRound: z.number(),
    primalResidual: finiteOrAbsent,
    dualResidual: finiteOrAbsent,
    trees: finiteOrAbsent
  }).nullable(),
  transport: z.object({
    received: z.number(), accepted: z.number(), sent: z.number(), sendFailures: z.number(), bytesSent: z.number(), bytesReceived: z.number(),
    rejected: z.record(z.string().max(64), z.number()).refine((value) => Object.keys(value).length <= 64, 'too many codes')
  }),
  agreement: z.object({ started: z.number().optional(), refused: z.number().optional(), expired: z.number().optional() }).nullable().optional(),
  lastModel: z.string().max(200).optional()
})

export type ViewStatus = z.infer<typeof statusFileSchema>

/** A status as the view reads it, or null when it is not one. */
export function parseViewStatus (value: unknown): ViewStatus | null {
  const parsed = statusFileSchema.safeParse(value)
  return parsed.success ? parsed.data : null
}

/** status.json of a data folder, or null when there is none or it is not a status (at most 4 MB read). */
export async function readStatusFile (dir: string): Promise<ViewStatus | null> {
  const handle = await open(join(dir, 'status.json'), 'r').catch(() => null)
  if (handle === null) return null
  try {
    const buffer = Buffer.alloc(4 * 1024 * 1024)
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0)
    return parseViewStatus(JSON.parse(buffer.subarray(0, bytesRead).toString('utf8')))
  } catch {
    return null
  } finally {
    await handle.close()
  }
}

/** What the store holds that the view shows. */
export interface StoredView {
  models: StoredModel[]
  forecast: StoredForecast | null
  series: SeriesPoint[]
  /** the residuals of a job from this region's round log, by job */
  logResiduals: Map<string, ResidualPoint[]>
}

export interface Member {
  region: string
  peerId: string
  /** the last 8 characters of the peer id */
  short: string
  self: boolean
  /** this peer's link to it, when it is a graph neighbour */
  link: 'connected' | 'missing' | null
  /** its h, when it is known here: this region's own, or one another region published */
  h: number | null
  hSource: 'own' | 'published' | null
  level: WarningLevel | null
  geometry: RegionGeometry | null
}

export interface Link {
  a: string
  b: string
  /** this peer's own links are connected or missing; the others' are not seen from here */
  state: 'connected' | 'missing' | 'not seen from here'
}

export interface ModelRow {
  job: string
  version: number
  series: string
  createdAt: string
  converged: boolean
  rounds: number
  peers: number
  rows: number
  kind: 'glm' | 'gbdt' | 'forecast'
  terms: Array<{ term: string, estimate: number, lower: number | null, upper: number | null, pValue: number | null }>
  lineage: NonNullable<StoredModel['lineage']> | null
}

export interface ForecastView {
  job: string
  region: string
  createdAt: string
  /** the period of the series (from the job's parameters), or null when unknown */
  period: 'week' | 'day' | null
  /** this region's observed counts before the forecast (the last 52 periods of the job's window) */
  observed: Array<{ date: string | null, index: number, count: number }>
  /** mean and 90% interval per forecast period */
  forecast: Array<{ step: number, date: string | null, index: number, mean: number, lower: number, upper: number }>
  rate: number
  h: number
  level: WarningLevel
  joint: { sum: number, mean: number, regions: number, level: WarningLevel }
  /** the h other regions published in the job */
  published: Array<{ region: string, h: number, level: WarningLevel }>
}

export interface DashboardSnapshot {
  generatedAt: string
  /** served by the running peer (live), or from the folder's saved state */
  live: boolean
  /** whether a peer process runs on the folder (for a saved-state view: one started since) */
  peerRunning: boolean
  region: string | null
  peerId: string | null
  statusUpdatedAt: string | null
  federationId: string | null
  members: Member[]
  links: Link[]
  counters: {
    sent: number
    received: number
    accepted: number
    rejected: Record<string, number>
    sendFailures: number
    bytesSent: number
    bytesReceived: number
    jobsStarted: number | null
    rounds: number | null
  } | null
  job: (NonNullable<ViewStatus['job']> & { phaseName: string }) | null
  /** the current job's residuals; when it has none (no consensus-ADMM phase), the last job's that had some */
  residuals: { job: string, source: 'live' | 'round log', points: ResidualPoint[], current: boolean } | null
  models: ModelRow[]
  forecast: ForecastView | null
  levels: WarningLevels
}

const DAY = 86_400_000

function addDays (date: string, days: number): string | null {
  const at = Date.parse(`${date}T00:00:00Z`)
  return Number.isFinite(at) ? new Date(at + days * DAY).toISOString().slice(0, 10) : null
}

/** This region's forecast as the view shows it: its observed counts of the job's window (the last 52), the forecast, h and its level. */
export function forecastView (stored: StoredForecast, series: readonly SeriesPoint[], levels: WarningLevels): ForecastView {
  const parameters = stored.model.lineage?.parameters ?? {}
  const from = typeof parameters.from === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(parameters.from) ? parameters.from : null
  const periods = typeof parameters.periods === 'number' && Number.isInteger(parameters.periods) && parameters.periods > 0 ? parameters.periods : null
  const period = parameters.period === 'day' ? 'day' : parameters.period === 'week' || (from !== null && parameters.period === undefined) ? 'week' : null
  const step = period === 'day' ? 1 : 7
  const last = from !== null && periods !== null ? addDays(from, (periods - 1) * step) : null
  const window = last === null || from === null ? [...series] : series.filter((point) => point.date >= from && point.date <= last)
  const shown = window.slice(-52)
  const observed = shown.map((point, index) => ({ date: point.date, index: index - shown.length + 1, count: point.count }))
  const forecast = stored.forecast.map((entry) => ({ step: entry.step, date: last === null ? null : addDays(last, entry.step * step), index: entry.step, mean: entry.mean, lower: entry.lower, upper: entry.upper }))
  return {
    job: stored.job,
    region: stored.region,
    createdAt: stored.createdAt,
    period,
    observed,
    forecast,
    rate: stored.rate,
    h: stored.h,
    level: warningLevel(stored.h, levels),
    joint: { sum: stored.joint.sum, mean: stored.joint.mean, regions: stored.joint.regions, level: warningLevel(stored.joint.mean, levels) },
    published: stored.joint.open.map((entry) => ({ region: entry.region, h: entry.h, level: warningLevel(entry.h, levels) }))
  }
}

export function modelRows (models: readonly StoredModel[]): ModelRow[] {
  return versioned(models).map((model): ModelRow => ({
    job: model.job,
    version: model.version,
    series: model.series,
    createdAt: model.createdAt,
    converged: model.converged,
    rounds: model.rounds,
    peers: model.peers,
    rows: model.rows,
    kind: model.forest !== undefined ? 'gbdt' : model.specification?.kind === 'forecast' ? 'forecast' : 'glm',
    terms: model.forest !== undefined ? [] : intervalTable(model).map((row, index) => ({ term: row.term, estimate: row.estimate, lower: row.lower, upper: row.upper, pValue: model.coefficients[index]?.pValue ?? null })),
    lineage: model.lineage ?? null
  })).reverse()
}

/** The members and links as this peer sees them, each member's h where it is known here. */
export function federationView (federation: Federation | null, status: ViewStatus | null, forecast: ForecastView | null, levels: WarningLevels): { members: Member[], links: Link[] } {
  const selfId = status?.peerId ?? null
  const connected = new Set(status?.neighbours.connected ?? [])
  const missing = new Set(status?.neighbours.missing ?? [])
  const published = new Map((forecast?.published ?? []).map((entry) => [entry.region, entry.h]))
  const hOf = (region: string, self: boolean): { h: number | null, hSource: Member['hSource'] } => {
    if (self && forecast !== null) return { h: forecast.h, hSource: 'own' }
    const open = published.get(region)
    return open === undefined ? { h: null, hSource: null } : { h: open, hSource: 'published' }
  }
  const member = (region: string, peerId: string, geometry: RegionGeometry | null): Member => {
    const self = peerId === selfId
    const { h, hSource } = hOf(region, self)
    return { region, peerId, short: peerId.slice(-8), self, link: connected.has(peerId) ? 'connected' : missing.has(peerId) ? 'missing' : null, h, hSource, level: h === null ? null : warningLevel(h, levels), geometry }
  }
  if (federation === null) {
    // without the federation file: this peer and its neighbours, as its status names them
    if (status === null) return { members: [], links: [] }
    const self = member(status.region ?? 'this region', status.peerId, null)
    const others = [...connected, ...missing].map((peerId) => member(peerId.slice(-8), peerId, null))
    return { members: [self, ...others], links: others.map((other) => ({ a: self.region, b: other.region, state: other.link ?? 'missing' })) }
  }
  const members = federation.members.map((entry) => member(entry.region, entry.peerId, entry.geometry ?? null))
  const byRegion = new Map(members.map((entry) => [entry.region, entry]))
  const links: Link[] = federation.edges.map(([a, b]) => {
    const ends = [byRegion.get(a), byRegion.get(b)]
    const self = ends.find((end) => end?.self === true)
    const other = ends.find((end) => end !== self)
    const state: Link['state'] = self === undefined ? 'not seen from here' : other?.link === 'connected' ? 'connected' : 'missing'
    return { a, b, state }
  })
  return { members, links }
}

export interface DashboardDataInit {
  dir: string
  federation: Federation | null
  /** the running peer of this process; null serves the folder's saved state */
  live: { status: () => PeerStatus, metricsText?: () => Promise<string> } | null
  levels: WarningLevels
  /** whether a peer process runs on the folder (for the saved-state view) */
  peerRunning?: () => Promise<boolean>
  /** how often a live job's residuals are sampled (default 200 ms) */
  sampleMs?: number
  /** how long the store's content is reused before it is read again (default 3 s live, 10 s saved) */
  storeMaxAgeMs?: number
}

/**
 * The view's data source: samples a live job's residuals, reads the store now and then (the peer
 * opens it only for moments, and so does this), and puts a snapshot together on request.
 */
export class DashboardData {
  private readonly history = new ResidualHistory()
  private timer: NodeJS.Timeout | undefined
  private stored: { at: number, key: string, view: StoredView } | null = null
  private reading: Promise<StoredView> | null = null
  private lastResiduals: NonNullable<DashboardSnapshot['residuals']> | null = null

  constructor (private readonly init: DashboardDataInit) {}

  start (): void {
    const live = this.init.live
    if (live === null || this.timer !== undefined) return
    this.timer = setInterval(() => {
      const job = live.status().job
      if (job?.state === 'running' && job.primalResidual !== undefined && job.dualResidual !== undefined) this.history.add(job.job, { round: job.jobRound, primal: job.primalResidual, dual: job.dualResidual })
    }, this.init.sampleMs ?? 200)
    this.timer.unref()
  }

  stop (): void {
    clearInterval(this.timer)
    this.timer = undefined
  }

  private async status (): Promise<ViewStatus | null> {
    if (this.init.live !== null) return parseViewStatus(this.init.live.status())
    return await readStatusFile(this.init.dir)
  }

  /** The store's content, read again when it is older than its time, or when the job or the last model changed. */
  private async storedView (status: ViewStatus | null): Promise<StoredView> {
    const key = JSON.stringify([status?.lastModel ?? null, status?.job?.job ?? null, status?.job?.state ?? null])
    const maxAge = this.init.storeMaxAgeMs ?? (this.init.live === null ? 10_000 : 3000)
    const cached = this.stored
    if (cached !== null && cached.key === key && Date.now() - cached.at < maxAge) return cached.view
    this.reading ??= this.readStore(status?.job ?? null, cached?.view ?? null).then((view) => {
      this.stored = { at: Date.now(), key, view }
      return view
    }).finally(() => { this.reading = null })
    return await this.reading
  }

  private async readStore (job: ViewStatus['job'], previous: StoredView | null): Promise<StoredView> {
    return await Store.use(this.init.dir, async (store) => {
      const logResiduals = new Map(previous?.logResiduals ?? [])
      // an ended job's residuals from this region's round log, once (it does not change after)
      if (job !== null && job.state !== 'running' && !logResiduals.has(job.job)) {
        const points = residualsFromLog(await store.readAuditEntries(job.job))
        if (points.length > 0 || (await store.hasResult(job.job))) logResiduals.set(job.job, points)
      }
      return { models: await store.listModels(), forecast: await store.latestForecast(), series: await store.readSeries(), logResiduals }
    }, 10_000, { create: false })
  }

  async snapshot (): Promise<DashboardSnapshot> {
    const { levels, federation } = this.init
    const status = await this.status()
    const stored = await this.storedView(status)
    const forecast = stored.forecast === null ? null : forecastView(stored.forecast, stored.series, levels)
    const { members, links } = federationView(federation, status, forecast, levels)
    const job = status?.job ?? null
    let residuals: DashboardSnapshot['residuals'] = null
    if (job !== null) {
      const fromLog = job.state === 'running' ? undefined : stored.logResiduals.get(job.job)
      residuals = fromLog !== undefined && fromLog.length > 0 ? { job: job.job, source: 'round log', points: fromLog, current: true } : { job: job.job, source: 'live', points: this.history.of(job.job), current: true }
      if (residuals.points.length >= 2) this.lastResiduals = residuals
      else if (this.lastResiduals !== null && this.lastResiduals.job !== job.job) residuals = { ...this.lastResiduals, current: false }
    }
    const transport = status?.transport
    // the rounds this peer drove since it started, as its metrics count them (a live peer only)
    const metrics = await this.init.live?.metricsText?.().catch(() => '')
    const roundsMatch = metrics === undefined ? null : /^epimesh_rounds_total (\d+)$/m.exec(metrics)
    return {
      generatedAt: new Date().toISOString(),
      live: this.init.live !== null,
      peerRunning: this.init.live !== null || (await this.init.peerRunning?.() ?? false),
      region: status?.region ?? members.find((member) => member.self)?.region ?? null,
      peerId: status?.peerId ?? null,
      statusUpdatedAt: status?.updatedAt ?? null,
      federationId: federation?.federationId ?? null,
      members,
      links,
      counters: transport === undefined
        ? null
        : { sent: transport.sent, received: transport.received, accepted: transport.accepted, rejected: transport.rejected, sendFailures: transport.sendFailures, bytesSent: transport.bytesSent, bytesReceived: transport.bytesReceived, jobsStarted: status?.agreement?.started ?? null, rounds: roundsMatch === null ? null : Number(roundsMatch[1]) },
      job: job === null ? null : { ...job, phaseName: phaseName(job.phase) },
      residuals,
      models: modelRows(stored.models),
      forecast,
      levels
    }
  }
}
