import { checkJobId } from '../paths.ts'
import { rename, writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import type { RoundBody } from '../../consensus/audit/recorder.ts'
import { EpimeshError } from '../../errors.ts'
import { Store } from '../../store/store.ts'
import { AUDIT_FILE_FORMAT, auditFileText } from '../audit/log.ts'
import { AuditInputError, formatReport, readAuditFile, verifyAuditFiles } from '../audit/verify.ts'
import { loadIdentity } from '../identity.ts'

/**
 * `epimesh audit export | verify | show`: the auditor's commands. Export writes one peer's log of one
 * job as a self-contained file; verify checks one or more such files offline; show prints one round
 * across peers and plots the residuals.
 */
class AuditJobError extends EpimeshError {
  static override readonly name = 'AuditJobError'
  readonly exitCode = 2
  constructor (message: string) { super('AUDIT_JOB_UNKNOWN', message) }
}

/** The export of one job's log: a header line, the entries as they were signed, the checkpoints this peer holds. */
export async function exportAudit (dir: string, job: string | undefined): Promise<{ job: string, text: string, entries: number, checkpoints: number }> {
  const { peerId } = await loadIdentity(dir)
  const store = await Store.openWhenFree(dir)
  try {
    const jobs = await store.listAuditJobs()
    const chosen = job ?? (jobs.length === 1 ? jobs[0] : undefined)
    if (chosen === undefined) throw new AuditJobError(jobs.length === 0 ? `${dir} holds no round log yet` : `${dir} holds the logs of ${jobs.length} jobs (${jobs.join(', ')}): choose one with --job`)
    const entries = await store.readAuditEntries(chosen)
    if (entries.length === 0) throw new AuditJobError(`${dir} holds no round log for job ${chosen}${jobs.length === 0 ? '' : ` (it has: ${jobs.join(', ')})`}`)
    const checkpoints = await store.readCheckpoints(chosen)
    return { job: chosen, text: auditFileText(chosen, peerId, entries, checkpoints), entries: entries.length, checkpoints: checkpoints.length }
  } finally {
    await store.close()
  }
}

interface ShownEntry { file: string, region: string, entry: RoundBody & { seq: number } }

async function readRounds (paths: readonly string[]): Promise<{ regions: Map<string, string>, byFile: Array<{ file: string, peer: string, rounds: Array<RoundBody & { seq: number }> }> }> {
  const regions = new Map<string, string>()
  const byFile: Array<{ file: string, peer: string, rounds: Array<RoundBody & { seq: number }> }> = []
  for (const path of paths) {
    const text = await readAuditFile(path)
    const rounds: Array<RoundBody & { seq: number }> = []
    let peer = ''
    for (const [index, line] of text.split('\n').entries()) {
      if (line === '') continue
      let value: any
      try {
        value = JSON.parse(line)
      } catch {
        throw new AuditInputError(`${path}, line ${index + 1}: not JSON (run epimesh audit verify to see what is wrong)`)
      }
      if (index === 0) {
        if (value?.format !== AUDIT_FILE_FORMAT) throw new AuditInputError(`${path}, line 1: not an epimesh audit export (field format)`)
        peer = String(value.peer)
      } else if (value?.type === 'start') {
        const graph = value.graph as { names: string[], regions?: string[] }
        graph.names.forEach((name, node) => { regions.set(name, graph.regions?.[node] ?? name) })
      } else if (value?.type === 'round') rounds.push(value as RoundBody & { seq: number })
    }
    byFile.push({ file: path, peer, rounds })
  }
  return { regions, byFile }
}

function vector (values: readonly number[] | undefined, limit = 8): string {
  if (values === undefined) return '-'
  const shown = values.slice(0, limit).map((value) => value.toPrecision(6))
  return `[${shown.join(', ')}${values.length > limit ? `, … (${values.length})` : ''}]`
}

function showRound (shown: readonly ShownEntry[], regions: Map<string, string>, round: number): string {
  const lines: string[] = []
  const name = (peer: string): string => regions.get(peer) ?? peer
  if (shown.length === 0) return `no entry for job round ${round} in these files\n`
  const first = shown[0] as ShownEntry
  lines.push(`job round ${round}: phase ${first.entry.phase}, round ${first.entry.round} of the phase`)
  for (const { region, entry } of shown) {
    lines.push('')
    lines.push(`${region} (entry ${entry.seq})${entry.deadline ? ' — the deadline passed before every neighbour was heard' : ''}`)
    for (const sent of entry.sent) {
      lines.push(`  sent ${sent.kind}${sent.to === undefined ? ' to every neighbour' : ` to ${name(sent.to)} (private: digest only)`}: ${sent.digest.slice(0, 16)}…${sent.values === undefined ? '' : ` ${vector(sent.values)}`}`)
    }
    for (const received of entry.received) lines.push(`  received ${received.kind} from ${name(received.from)}: ${received.digest.slice(0, 16)}…`)
    const admm = entry.admm
    if (admm !== undefined) {
      lines.push(`  heard ${admm.heard.map(name).join(', ') || 'nobody'}; skipped ${admm.skipped.map(name).join(', ') || 'none'}${admm.finished.length > 0 ? `; finished ${admm.finished.map(name).join(', ')}` : ''}${admm.inactive.length > 0 ? `; dropped ${admm.inactive.map(name).join(', ')}` : ''}`)
      lines.push(`  primal residual ${admm.primalResidual?.toExponential(3) ?? 'not defined yet'}, dual residual ${admm.dualResidual?.toExponential(3) ?? 'not defined yet'}, stop counter ${admm.stopCounter}, penalty ${admm.penalty.toPrecision(6)}`)
      lines.push(`  x sent ${vector(admm.x)}`)
      lines.push(`  x next ${vector(admm.next)}`)
      for (const [neighbour, dual] of Object.entries(admm.duals)) lines.push(`  dual of the edge to ${name(neighbour)} ${vector(dual)}`)
    }
    if (entry.late !== undefined) lines.push(`  late: ${entry.late.sent.length} sent and ${entry.late.received.length} received for earlier rounds`)
  }
  return `${lines.join('\n')}\n`
}

export function registerAudit (program: Command): void {
  const audit = program.command('audit').description('the signed round logs: export one peer\'s log, verify logs offline, show a round')

  audit.command('export')
    .description('write this peer\'s log of a job, with its public key and the checkpoints it holds, as a self-contained file (JSON lines)')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--job <id>', 'the job (default: the only one)')
    .requiredOption('--out <file>', 'the file to write')
    .action(async (options: { dir: string, job?: string, out: string }) => {
      const exported = await exportAudit(options.dir, options.job === undefined ? undefined : checkJobId(options.job, '--job'))
      await writeFile(`${options.out}.tmp`, exported.text)
      await rename(`${options.out}.tmp`, options.out)
      process.stdout.write(`job ${exported.job}: ${exported.entries} entries and ${exported.checkpoints} checkpoints written to ${options.out}\n`)
    })

  audit.command('verify')
    .description('check exported logs offline: chains, signatures, checkpoints, sent = received, dual updates, final models; exit 0 when all holds, 1 when something fails, 2 on unusable input')
    .argument('<files...>', 'one or more peers\' exports of the same job')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (files: string[], options: { json: boolean }) => {
      const report = await verifyAuditFiles(files)
      process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report))
      process.exitCode = report.ok ? 0 : 1
    })

  audit.command('show')
    .description('one round across peers (vectors, residuals, skipped edges), and a plot of the residuals per round')
    .argument('<files...>', 'one or more peers\' exports of the same job')
    .option('--round <n>', 'the job round to show')
    .option('--plot <file>', 'write an SVG of the primal and dual residuals per round')
    .option('--json', 'the round\'s entries as JSON', false)
    .action(async (files: string[], options: { round?: string, plot?: string, json: boolean }) => {
      const { regions, byFile } = await readRounds(files)
      if (options.round !== undefined) {
        const round = Number(options.round)
        if (!Number.isInteger(round) || round < 0) throw new AuditInputError(`--round must be a non-negative integer, got ${options.round}`)
        const shown: ShownEntry[] = byFile.flatMap(({ file, peer, rounds }) => rounds.filter((entry) => entry.jobRound === round).map((entry) => ({ file, region: regions.get(peer) ?? peer, entry })))
        process.stdout.write(options.json ? `${JSON.stringify(shown)}\n` : showRound(shown, regions, round))
      } else if (options.plot === undefined) {
        for (const { peer, rounds } of byFile) {
          const phases = new Map<string, number>()
          for (const entry of rounds) phases.set(entry.phase, (phases.get(entry.phase) ?? 0) + 1)
          process.stdout.write(`${regions.get(peer) ?? peer}: ${rounds.length} rounds (${[...phases].map(([phase, count]) => `${phase} ${count}`).join(', ')}); last job round ${rounds.at(-1)?.jobRound ?? '-'}\n`)
        }
      }
      if (options.plot !== undefined) {
        const series = byFile.flatMap(({ peer, rounds }) => {
          const admm = rounds.filter((entry) => entry.admm !== undefined)
          const region = regions.get(peer) ?? peer
          return [
            { name: `${region} primal`, points: admm.map((entry) => [entry.jobRound, entry.admm?.primalResidual ?? Number.NaN] as const) },
            { name: `${region} dual`, points: admm.map((entry) => [entry.jobRound, entry.admm?.dualResidual ?? Number.NaN] as const) }
          ]
        })
        // vega loads only for a plot
        const { lineChartSvg } = await import('./plot.ts')
        const svg = await lineChartSvg(series, { title: 'Consensus ADMM residuals per round, from the signed logs', xTitle: 'job round', yTitle: 'relative residual', logY: true })
        await writeFile(options.plot, svg)
        process.stdout.write(`plot written to ${options.plot}\n`)
      }
    })
}
