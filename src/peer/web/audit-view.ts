import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { ReceivedRecord, RoundBody, SentRecord } from '../../consensus/audit/recorder.ts'
import { alignedAt, AuditPlotError, residualPlotSvg, roundsOfText, startInfo, type FileRounds } from '../audit/rounds.ts'
import { plain } from '../audit/summary.ts'
import { AuditInputError, verifyAuditTexts, type AuditFileText, type AuditReport } from '../audit/verify.ts'

/**
 * What the auditor's web page shows (`epimesh audit serve`), computed once at start from the exported
 * logs alone: the verification report, each peer's chain and checkpoints, the rounds in the order a
 * slider walks them (by phase, then phase round, as `audit show` aligns them), and the residual plot.
 * Everything read from a log is untrusted: strings are stripped of control characters and cut here,
 * lists are bounded, and the page escapes what it prints.
 */

/** Bounds on what `audit serve` reads, and on what one round's answer lists. */
export const AUDIT_VIEW_LIMITS = {
  files: 1000,
  fileBytes: 256 * 1024 * 1024,
  totalBytes: 1024 * 1024 * 1024,
  checkpointsPerPeer: 200,
  recordsPerList: 200,
  valuesPerVector: 12
} as const

const short = (value: unknown, max = 80): string => plain(value, max)
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const finite = (value: unknown): number | null => typeof value === 'number' && Number.isFinite(value) ? value : null
const HEX64 = /^[0-9a-f]{64}$/

/** The first line of an export, read only for its job: the verification reads it properly. */
function jobOfHeader (name: string, text: string): string {
  const end = text.indexOf('\n')
  try {
    const header: unknown = JSON.parse(end < 0 ? text : text.slice(0, end))
    if (isRecord(header) && typeof header.job === 'string') return header.job
  } catch {}
  throw new AuditInputError(`${name}, line 1: not an epimesh audit export (field job)`)
}

/**
 * The exports named on the command line: files as they are, and in each folder every `*.jsonl` file
 * (sorted), one job's. With logs of several jobs, `job` chooses one; without it that is an error that
 * lists them. Counts and sizes are bounded before anything is read.
 */
export async function collectAuditFiles (paths: readonly string[], job?: string): Promise<AuditFileText[]> {
  if (paths.length === 0) throw new AuditInputError('no audit files or folders given')
  const names: string[] = []
  for (const path of paths) {
    let info
    try {
      info = await stat(path)
    } catch (error) {
      throw new AuditInputError(`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
    if (info.isDirectory()) {
      const inside = (await readdir(path)).filter((name) => name.endsWith('.jsonl')).sort()
      if (inside.length === 0) throw new AuditInputError(`${path}: a folder without any .jsonl export in it`)
      names.push(...inside.map((name) => join(path, name)))
    } else names.push(path)
    if (names.length > AUDIT_VIEW_LIMITS.files) throw new AuditInputError(`more than ${AUDIT_VIEW_LIMITS.files} files given: serve one job's logs at a time`)
  }
  let total = 0
  const files: AuditFileText[] = []
  for (const name of [...new Set(names)]) {
    let size: number
    try {
      size = (await stat(name)).size
    } catch (error) {
      throw new AuditInputError(`${name}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
    }
    if (size > AUDIT_VIEW_LIMITS.fileBytes) throw new AuditInputError(`${name}: ${size} bytes, more than the ${AUDIT_VIEW_LIMITS.fileBytes} an export may have here`)
    total += size
    if (total > AUDIT_VIEW_LIMITS.totalBytes) throw new AuditInputError(`the files given hold more than ${AUDIT_VIEW_LIMITS.totalBytes} bytes in all: serve one job's logs at a time`)
    const text = await readFile(name, 'utf8')
    if (text.length === 0) throw new AuditInputError(`${name}: the file is empty`)
    files.push({ name, text })
  }
  const byJob = new Map<string, AuditFileText[]>()
  for (const file of files) {
    const own = jobOfHeader(file.name, file.text)
    byJob.set(own, [...(byJob.get(own) ?? []), file])
  }
  if (job !== undefined) {
    const chosen = byJob.get(job)
    if (chosen === undefined) throw new AuditInputError(`no log of job ${short(job, 80)} among the files given (they hold: ${[...byJob.keys()].slice(0, 20).map((item) => short(item, 80)).join(', ')})`)
    return chosen
  }
  if (byJob.size > 1) throw new AuditInputError(`the files given hold the logs of ${byJob.size} jobs (${[...byJob.keys()].slice(0, 20).map((item) => short(item, 80)).join(', ')}): choose one with --job`)
  return files
}

export interface CheckpointView {
  line: number
  /** the region whose log head it states */
  author: string
  length: number | null
  hash: string
  countersignedBy: string[]
  /** verify reported a failure on its line */
  failed: boolean
}

export interface PeerChainView {
  file: string
  region: string
  peer: string
  entries: number
  /** the hash of the log's last entry, as the file states it */
  headHash: string | null
  /** its chain, signatures and structure hold */
  intact: boolean
  /** the heads this peer published, as this file holds them, with their countersignatures */
  own: CheckpointView[]
  /** the heads of neighbours this peer countersigned and kept */
  witnessed: number
  /** checkpoints not listed (beyond the bound) */
  leftOut: number
}

export interface RoundPosition { phase: string, round: number }

export interface AuditView {
  report: AuditReport
  peers: PeerChainView[]
  /** every (phase, phase round) any log holds: by phase in order of appearance, then round */
  positions: RoundPosition[]
  phases: Array<{ phase: string, first: number, count: number }>
  plot: { svg: string } | { note: string }
  byFile: FileRounds[]
  regions: Map<string, string>
  /** the digests of the messages each log that holds shows as sent, by sender, kind and round */
  sent: Map<string, Set<string>>
}

/** One peer's chain and checkpoints, from its file's lines (what failed is taken from the report). */
function chainOf (file: AuditFileText, report: AuditReport, region: (peer: string) => string): PeerChainView {
  const summary = report.files.find((item) => item.file === file.name)
  const failedLines = new Set(report.failures.filter((finding) => finding.file === file.name && finding.line !== undefined).map((finding) => finding.line as number))
  const own: CheckpointView[] = []
  let witnessed = 0
  let leftOut = 0
  let headHash: string | null = null
  const peer = summary?.peer ?? ''
  for (const [index, line] of file.text.split('\n').entries()) {
    if (index === 0 || line === '') continue
    let value: unknown
    try { value = JSON.parse(line) } catch { continue }
    if (!isRecord(value)) continue
    if (value.type === 'checkpoint') {
      if (value.peer !== peer) { witnessed++; continue }
      if (own.length >= AUDIT_VIEW_LIMITS.checkpointsPerPeer) { leftOut++; continue }
      const countersignatures = Array.isArray(value.countersignatures) ? value.countersignatures : []
      own.push({
        line: index + 1,
        author: short(region(String(value.peer)), 60),
        length: finite(value.length),
        hash: typeof value.hash === 'string' && HEX64.test(value.hash) ? value.hash : short(value.hash, 70),
        countersignedBy: countersignatures.slice(0, 64).map((signature) => short(region(String(isRecord(signature) ? signature.by : signature)), 60)),
        failed: failedLines.has(index + 1)
      })
    } else if (value.type === 'start' || value.type === 'round' || value.type === 'final') {
      headHash = typeof value.hash === 'string' && HEX64.test(value.hash) ? value.hash : short(value.hash, 70)
    }
  }
  return { file: short(file.name, 300), region: short(summary?.region ?? peer, 60), peer: short(peer, 80), entries: summary?.entries ?? 0, headHash, intact: summary?.intact ?? false, own, witnessed, leftOut }
}

const sentKey = (peer: unknown, kind: unknown, round: unknown): string => `${String(peer)}\n${String(kind)}\n${String(round)}`

/** Verifies the logs (offline, from the files alone) and prepares everything the page shows. */
export async function buildAuditView (files: readonly AuditFileText[]): Promise<AuditView> {
  const report = await verifyAuditTexts(files)
  const regions = new Map<string, string>()
  // every file's rounds are shown, a broken log's too (it is marked so); a damaged line is left out
  const byFile = files.map((file) => roundsOfText(file.name, file.text, regions, { skipDamaged: true }))
  const region = (peer: string): string => regions.get(peer) ?? peer
  const peers = files.map((file) => chainOf(file, report, region))
  const phases: AuditView['phases'] = []
  const roundsOf = new Map<string, Set<number>>()
  for (const { rounds } of byFile) {
    for (const entry of rounds) {
      let set = roundsOf.get(entry.phase)
      if (set === undefined) {
        set = new Set()
        roundsOf.set(entry.phase, set)
        phases.push({ phase: entry.phase, first: 0, count: 0 })
      }
      set.add(entry.round)
    }
  }
  const positions: RoundPosition[] = []
  for (const phase of phases) {
    phase.first = positions.length
    const rounds = [...(roundsOf.get(phase.phase) ?? [])].sort((a, b) => a - b)
    phase.count = rounds.length
    for (const round of rounds) positions.push({ phase: phase.phase, round })
  }
  // the plot is drawn from the logs that hold only, as verify --html draws it
  let plot: AuditView['plot']
  const intact = new Set(report.files.filter((file) => file.intact).map((file) => file.file))
  const drawable = byFile.filter((file) => intact.has(file.file))
  if (drawable.length === 0) plot = { note: 'no log holds, so nothing from the logs is drawn' }
  else {
    try {
      const { tolerance, algorithm } = startInfo(drawable)
      plot = { svg: await residualPlotSvg(drawable, regions, tolerance, algorithm) }
    } catch (error) {
      if (!(error instanceof AuditPlotError)) throw error
      plot = { note: error.message }
    }
  }
  // what each log that holds shows as sent, to mark every receipt the sender's own log confirms
  const sent = new Map<string, Set<string>>()
  for (const file of drawable) {
    for (const entry of file.rounds) {
      for (const record of [...entry.sent, ...(isRecord(entry.late) && Array.isArray(entry.late.sent) ? entry.late.sent : [])] as unknown[]) {
        if (!isRecord(record) || typeof record.digest !== 'string') continue
        const key = sentKey(file.peer, record.kind, record.round)
        sent.set(key, (sent.get(key) ?? new Set()).add(record.digest))
      }
    }
  }
  return { report, peers, positions, phases: phases.map((phase) => ({ ...phase, phase: short(phase.phase, 30) })), plot, byFile, regions, sent }
}

export interface SentView { kind: string, round: number | null, to: string | null, digest: string, values: number[] | null, length: number }
export interface ReceivedView {
  kind: string
  round: number | null
  from: string
  digest: string
  /** the sender's log shows this message as sent (null: the sender's log is not given, or does not hold) */
  confirmed: boolean | null
}

export interface PeerRoundView {
  region: string
  file: string
  /** the file's chain holds: what its entry says is vouched for by verify */
  intact: boolean
  entry: null | {
    jobRound: number
    seq: number | null
    deadline: boolean
    sent: SentView[]
    received: ReceivedView[]
    /** records beyond the bound, not listed */
    leftOut: number
    admm: null | {
      heard: string[]
      skipped: string[]
      finished: string[]
      inactive: string[]
      primalResidual: number | null
      dualResidual: number | null
      stopCounter: number | null
      penalty: number | null
      x: number[]
      next: number[]
      length: number
    }
    late: null | { sent: number, received: number }
  }
}

export interface RoundView {
  index: number
  total: number
  phase: string
  round: number
  /** each peer's own job round at the phase rounds around this one (null: none logged) */
  around: Array<{ round: number, jobRounds: Array<number | null> }>
  regions: string[]
  peers: PeerRoundView[]
}

function numbers (values: unknown): { values: number[], length: number } {
  if (!Array.isArray(values)) return { values: [], length: 0 }
  return { values: values.slice(0, AUDIT_VIEW_LIMITS.valuesPerVector).map((value) => finite(value) ?? Number.NaN), length: values.length }
}

const names = (list: unknown, region: (peer: string) => string): string[] => Array.isArray(list) ? list.slice(0, AUDIT_VIEW_LIMITS.recordsPerList).map((peer) => short(region(String(peer)), 60)) : []

/** `senders`: the peers whose logs hold, whose sent messages a receipt is looked up in */
function entryView (view: AuditView, entry: RoundBody & { seq: number }, region: (peer: string) => string, senders: ReadonlySet<string>): NonNullable<PeerRoundView['entry']> {
  const limit = AUDIT_VIEW_LIMITS.recordsPerList
  const sent = (entry.sent as unknown[]).filter(isRecord) as unknown as SentRecord[]
  const received = (entry.received as unknown[]).filter(isRecord) as unknown as ReceivedRecord[]
  const admm = isRecord(entry.admm) ? entry.admm : undefined
  const x = numbers(admm?.x)
  return {
    jobRound: entry.jobRound,
    seq: finite(entry.seq),
    deadline: entry.deadline === true,
    sent: sent.slice(0, limit).map((record) => {
      const vector = record.values === undefined ? null : numbers(record.values)
      return { kind: short(record.kind, 30), round: finite(record.round), to: record.to === undefined ? null : short(region(String(record.to)), 60), digest: short(record.digest, 64), values: vector?.values ?? null, length: vector?.length ?? 0 }
    }),
    received: received.slice(0, limit).map((record) => ({
      kind: short(record.kind, 30),
      round: finite(record.round),
      from: short(region(String(record.from)), 60),
      digest: short(record.digest, 64),
      confirmed: senders.has(String(record.from)) ? view.sent.get(sentKey(record.from, record.kind, record.round))?.has(String(record.digest)) === true : null
    })),
    leftOut: Math.max(0, sent.length - limit) + Math.max(0, received.length - limit),
    admm: admm === undefined
      ? null
      : {
          heard: names(admm.heard, region),
          skipped: names(admm.skipped, region),
          finished: names(admm.finished, region),
          inactive: names(admm.inactive, region),
          primalResidual: finite(admm.primalResidual),
          dualResidual: finite(admm.dualResidual),
          stopCounter: finite(admm.stopCounter),
          penalty: finite(admm.penalty),
          x: x.values,
          next: numbers(admm.next).values,
          length: x.length
        },
    late: isRecord(entry.late) ? { sent: Array.isArray(entry.late.sent) ? entry.late.sent.length : 0, received: Array.isArray(entry.late.received) ? entry.late.received.length : 0 } : null
  }
}

/** The round at slider position `index`: every peer at the same phase and phase round. */
export function roundAt (view: AuditView, index: number): RoundView | undefined {
  const position = view.positions[index]
  if (position === undefined) return undefined
  const region = (peer: string): string => view.regions.get(peer) ?? peer
  const intact = new Set(view.report.files.filter((file) => file.intact).map((file) => file.file))
  const shown = alignedAt(view.byFile, view.regions, position.phase, position.round)
  const senders = new Set(view.byFile.filter((file) => intact.has(file.file)).map((file) => file.peer))
  const around: RoundView['around'] = []
  for (let round = Math.max(0, position.round - 2); round <= position.round + 2; round++) {
    const row = alignedAt(view.byFile, view.regions, position.phase, round)
    if (row.every(({ entry }) => entry === undefined)) continue
    around.push({ round, jobRounds: row.map(({ entry }) => entry?.jobRound ?? null) })
  }
  return {
    index,
    total: view.positions.length,
    phase: short(position.phase, 30),
    round: position.round,
    around,
    regions: shown.map(({ region: name }) => short(name, 60)),
    peers: shown.map(({ region: name, entry }, file) => ({
      region: short(name, 60),
      file: short(view.byFile[file]?.file ?? '', 300),
      intact: intact.has(view.byFile[file]?.file ?? ''),
      entry: entry === undefined ? null : entryView(view, entry, region, senders)
    }))
  }
}

