import type { RoundBody, StartBody } from '../../consensus/audit/recorder.ts'
import { EpimeshError } from '../../errors.ts'
import { AUDIT_FILE_FORMAT } from './log.ts'
import { plain } from './summary.ts'
import { AuditInputError } from './verify.ts'

/**
 * The rounds of exported logs as `audit show` and the auditor's web page read them: each file's round
 * entries, the regions' names from the start entry, one round aligned across peers by phase and phase
 * round, and the plot of the consensus-ADMM residuals. This reads, it does not verify (verify.ts does):
 * an entry that is not shaped like a round is left out.
 */
export interface FileRounds { file: string, peer: string, start: StartBody | undefined, rounds: Array<RoundBody & { seq: number }> }

/**
 * One export's rounds; the regions named by its start entry are added to `regions`. A line that is not
 * JSON is an AuditInputError, unless `skipDamaged` (the web page, which shows verify's finding for it).
 */
export function roundsOfText (name: string, text: string, regions: Map<string, string>, options: { skipDamaged?: boolean } = {}): FileRounds {
  const rounds: Array<RoundBody & { seq: number }> = []
  let peer = ''
  let start: StartBody | undefined
  for (const [index, line] of text.split('\n').entries()) {
    if (line === '') continue
    let value: any
    try {
      value = JSON.parse(line)
    } catch {
      if (options.skipDamaged === true && index > 0) continue
      throw new AuditInputError(`${name}, line ${index + 1}: not JSON (run epimesh audit verify to see what is wrong)`)
    }
    if (index === 0) {
      if (value?.format !== AUDIT_FILE_FORMAT) throw new AuditInputError(`${name}, line 1: not an epimesh audit export (field format)`)
      peer = typeof value.peer === 'string' ? value.peer : plain(value.peer)
    } else if (value?.type === 'start') {
      start = value as StartBody
      const graph = value.graph as { names?: unknown, regions?: unknown }
      if (Array.isArray(graph?.names)) {
        graph.names.forEach((member, node) => {
          const region = Array.isArray(graph.regions) ? graph.regions[node] : undefined
          if (typeof member === 'string') regions.set(member, typeof region === 'string' ? region : member)
        })
      }
    } else if (value?.type === 'round') {
      const entry = value as RoundBody & { seq: number }
      if (typeof entry.phase === 'string' && Number.isInteger(entry.round) && Number.isInteger(entry.jobRound) && Array.isArray(entry.sent) && Array.isArray(entry.received)) rounds.push(entry)
    }
  }
  return { file: name, peer, start, rounds }
}

/** Where one peer's log stands at a round: its job round and entry. */
export interface Aligned { region: string, entry: (RoundBody & { seq: number }) | undefined }

/**
 * The round asked for, as a phase and the phase's own round: peers number their job rounds alike only
 * while no round was cut short by a deadline, but a phase's round is the same round on every peer (it
 * is what their messages carry). `--round N` alone is job round N of the first file's log.
 */
export function targetRound (byFile: ReadonlyArray<{ rounds: ReadonlyArray<RoundBody & { seq: number }> }>, round: number, phase: string | undefined): { phase: string, round: number } | undefined {
  if (phase !== undefined) return { phase, round }
  for (const { rounds } of byFile) {
    const entry = rounds.find((candidate) => candidate.jobRound === round)
    if (entry !== undefined) return { phase: entry.phase, round: entry.round }
  }
  return undefined
}

export function alignedAt (byFile: ReadonlyArray<{ peer: string, rounds: ReadonlyArray<RoundBody & { seq: number }> }>, regions: ReadonlyMap<string, string>, phase: string, round: number): Aligned[] {
  return byFile.map(({ peer, rounds }) => ({ region: regions.get(peer) ?? peer, entry: rounds.find((entry) => entry.phase === phase && entry.round === round) }))
}

/** Thrown when a plot is asked of logs that hold nothing it can draw (an exact-Newton job has no ADMM residuals). */
export class AuditPlotError extends EpimeshError {
  static override readonly name = 'AuditPlotError'
  readonly exitCode = 2
  constructor (message: string) { super('AUDIT_NOTHING_TO_PLOT', message) }
}

/**
 * The consensus-ADMM residuals of every peer, aligned by phase round: an ADMM phase's round r is drawn
 * at x = (the rounds of the ADMM phases before it, the longest peer's) + r, so that every peer's round r
 * is at the same x; each later ADMM phase is marked, and the job's tolerance drawn as a line.
 */
export async function residualPlotSvg (byFile: ReadonlyArray<{ peer: string, rounds: ReadonlyArray<RoundBody & { seq: number }> }>, regions: ReadonlyMap<string, string>, tolerance: number | null, algorithm: string | null): Promise<string> {
  const phases: string[] = []
  for (const { rounds } of byFile) for (const entry of rounds) if (entry.admm !== undefined && !phases.includes(entry.phase)) phases.push(entry.phase)
  if (phases.length === 0) {
    throw new AuditPlotError(`these logs hold no consensus-ADMM rounds${algorithm === null ? '' : ` (the job ran ${algorithm === 'newton' ? 'exact decentralised Newton' : plain(algorithm, 20)})`}, so there are no residuals to plot; no plot was written`)
  }
  const offsets = new Map<string, number>()
  let offset = 0
  for (const phase of phases) {
    offsets.set(phase, offset)
    offset += 1 + Math.max(0, ...byFile.flatMap(({ rounds }) => rounds.filter((entry) => entry.phase === phase && entry.admm !== undefined).map((entry) => entry.round)))
  }
  const series = byFile.flatMap(({ peer, rounds }) => {
    const admm = rounds.filter((entry) => entry.admm !== undefined)
    const region = plain(regions.get(peer) ?? peer, 24)
    const at = (entry: RoundBody): number => (offsets.get(entry.phase) ?? 0) + entry.round
    return [
      { name: `${region} primal`, points: admm.map((entry) => [at(entry), entry.admm?.primalResidual ?? Number.NaN] as const) },
      { name: `${region} dual`, points: admm.map((entry) => [at(entry), entry.admm?.dualResidual ?? Number.NaN] as const) }
    ]
  })
  const rules = [
    ...phases.slice(1).map((phase) => ({ axis: 'x' as const, value: offsets.get(phase) ?? 0, label: `${plain(phase, 20)} starts` })),
    ...(tolerance === null ? [] : [{ axis: 'y' as const, value: tolerance, label: `tolerance ${tolerance}` }])
  ]
  // vega loads only for a plot
  const { lineChartSvg } = await import('../cli/plot.ts')
  return await lineChartSvg(series, { title: 'Consensus ADMM residuals per round, from the signed logs', xTitle: `ADMM round (${phases.map((phase) => plain(phase, 20)).join(', then ')}), aligned by phase round`, yTitle: 'relative residual', logY: true, rules })
}

export function startInfo (byFile: ReadonlyArray<{ start: StartBody | undefined }>): { tolerance: number | null, algorithm: string | null } {
  const start = byFile.find((file) => file.start !== undefined)?.start
  const tolerance = start?.params?.tolerance
  return { tolerance: typeof tolerance === 'number' && Number.isFinite(tolerance) && tolerance > 0 ? tolerance : null, algorithm: typeof start?.algorithm === 'string' ? start.algorithm : null }
}

