import { checkJobId } from '../paths.ts'
import { mkdir, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import type { RoundBody } from '../../consensus/audit/recorder.ts'
import { EpimeshError } from '../../errors.ts'
import { Store } from '../../store/store.ts'
import { auditFileText } from '../audit/log.ts'
import { alignedAt, AuditPlotError, residualPlotSvg, roundsOfText, startInfo, targetRound, type FileRounds } from '../audit/rounds.ts'
import { AuditInputError, formatReport, readAuditFile, verifyAuditFiles } from '../audit/verify.ts'
import { loadIdentity } from '../identity.ts'
import { plain } from '../audit/summary.ts'
import { dirOption } from './dir-option.ts'

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
    if (chosen === undefined) throw new AuditJobError(jobs.length === 0 ? `${dir} holds no round log yet` : `${dir} holds the logs of ${jobs.length} jobs (${jobs.join(', ')}): choose one with --job, or export them all with --all`)
    const entries = await store.readAuditEntries(chosen)
    if (entries.length === 0) throw new AuditJobError(`${dir} holds no round log for job ${chosen}${jobs.length === 0 ? '' : ` (it has: ${jobs.join(', ')})`}`)
    const checkpoints = await store.readCheckpoints(chosen)
    return { job: chosen, text: auditFileText(chosen, peerId, entries, checkpoints), entries: entries.length, checkpoints: checkpoints.length }
  } finally {
    await store.close()
  }
}

export interface ExportedLog { dir: string, region: string, peer: string, job: string, file: string, entries: number, checkpoints: number }

/**
 * `audit export --all`: every job's log from every data folder given, into one folder, named
 * JOB.REGION.jsonl so that `audit verify FOLDER/JOB.*.jsonl` checks one job across its regions. A
 * data folder with no log at all is an error (a wrong --dir), one without some job is not.
 */
export async function exportAll (dirs: readonly string[], out: string): Promise<ExportedLog[]> {
  await mkdir(out, { recursive: true })
  const exported: ExportedLog[] = []
  const taken = new Set<string>()
  for (const dir of dirs) {
    const { peerId } = await loadIdentity(dir)
    const store = await Store.openWhenFree(dir)
    const logs: Array<{ job: string, text: string, entries: number, checkpoints: number }> = []
    let region: string
    try {
      region = (await store.region()) ?? peerId
      const jobs = await store.listAuditJobs()
      if (jobs.length === 0) throw new AuditJobError(`${dir} holds no round log yet`)
      for (const job of jobs) {
        // a job id names a file here: it is checked as a proposal's is (letters, digits, ".", "_", "-")
        checkJobId(job, `the job id in ${dir}`)
        const entries = await store.readAuditEntries(job)
        if (entries.length === 0) continue
        const checkpoints = await store.readCheckpoints(job)
        logs.push({ job, text: auditFileText(job, peerId, entries, checkpoints), entries: entries.length, checkpoints: checkpoints.length })
      }
    } finally {
      await store.close()
    }
    const safeRegion = region.replace(/[^A-Za-z0-9_-]+/g, '_').slice(0, 60) || 'region'
    for (const log of logs) {
      let name = `${log.job}.${safeRegion}.jsonl`
      if (taken.has(name)) name = `${log.job}.${safeRegion}-${peerId.slice(-8)}.jsonl`
      taken.add(name)
      const file = join(out, name)
      await writeFile(`${file}.tmp`, log.text)
      await rename(`${file}.tmp`, file)
      exported.push({ dir, region, peer: peerId, job: log.job, file, entries: log.entries, checkpoints: log.checkpoints })
    }
  }
  return exported
}

async function readRounds (paths: readonly string[]): Promise<{ regions: Map<string, string>, byFile: FileRounds[] }> {
  const regions = new Map<string, string>()
  const byFile: FileRounds[] = []
  for (const path of paths) byFile.push(roundsOfText(path, await readAuditFile(path), regions))
  return { regions, byFile }
}

export { AuditPlotError, residualPlotSvg, targetRound }

function vector (values: readonly number[] | undefined, limit = 8): string {
  if (values === undefined) return '-'
  const shown = values.slice(0, limit).map((value) => value.toPrecision(6))
  return `[${shown.join(', ')}${values.length > limit ? `, … (${values.length})` : ''}]`
}


function showRound (byFile: ReadonlyArray<{ peer: string, rounds: ReadonlyArray<RoundBody & { seq: number }> }>, regions: Map<string, string>, target: { phase: string, round: number }, asked: string): string {
  const lines: string[] = []
  const name = (peer: string): string => plain(regions.get(peer) ?? peer, 40)
  const shown = alignedAt(byFile, regions, target.phase, target.round)
  const phase = plain(target.phase, 30)
  lines.push(`phase ${phase}, round ${target.round} of the phase (${asked}); every peer below is shown at this phase round`)
  // the neighbourhood of the round, aligned by phase round: each peer's own job round, the asked one marked
  const width = Math.max(12, ...shown.map(({ region }) => Math.min(20, plain(region, 20).length)))
  lines.push(`  ${''.padEnd(4)}${`${phase} round`.padEnd(18)}${shown.map(({ region }) => plain(region, 20).padStart(width + 2)).join('')}   (each peer's job round)`)
  for (let round = Math.max(0, target.round - 2); round <= target.round + 2; round++) {
    const row = alignedAt(byFile, regions, target.phase, round)
    if (row.every(({ entry }) => entry === undefined)) continue
    lines.push(`  ${round === target.round ? '==> ' : '    '}${String(round).padEnd(18)}${row.map(({ entry }) => (entry === undefined ? '-' : String(entry.jobRound)).padStart(width + 2)).join('')}`)
  }
  for (const { region, entry } of shown) {
    lines.push('')
    if (entry === undefined) {
      lines.push(`${plain(region, 40)}: no entry for ${phase} round ${target.round} in its log`)
      continue
    }
    lines.push(`${plain(region, 40)}: ${phase} round ${entry.round} (its job round ${entry.jobRound}, entry ${entry.seq})${entry.deadline ? ' — the deadline passed before every neighbour was heard' : ''}`)
    for (const sent of entry.sent) {
      lines.push(`  sent ${plain(sent.kind, 30)}${sent.to === undefined ? ' to every neighbour' : ` to ${name(sent.to)} (private: digest only)`}: ${plain(String(sent.digest).slice(0, 16))}…${sent.values === undefined ? '' : ` ${vector(sent.values)}`}`)
    }
    for (const received of entry.received) lines.push(`  received ${plain(received.kind, 30)} from ${name(received.from)}: ${plain(String(received.digest).slice(0, 16))}…`)
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

/** Every phase in order, and per peer the rounds it logged in it and the job round where it began. */
function phaseTable (byFile: ReadonlyArray<{ peer: string, rounds: ReadonlyArray<RoundBody & { seq: number }> }>, regions: ReadonlyMap<string, string>): string {
  const phases: string[] = []
  for (const { rounds } of byFile) for (const entry of rounds) if (!phases.includes(entry.phase)) phases.push(entry.phase)
  const width = Math.max(14, ...byFile.map(({ peer }) => Math.min(20, plain(regions.get(peer) ?? peer, 20).length)))
  const lines = [`${'phase'.padEnd(16)}${byFile.map(({ peer }) => plain(regions.get(peer) ?? peer, 20).padStart(width + 2)).join('')}   (rounds logged, from job round)`]
  for (const phase of phases.slice(0, 500)) {
    const cells = byFile.map(({ rounds }) => {
      const own = rounds.filter((entry) => entry.phase === phase)
      return own.length === 0 ? '-' : `${own.length} from ${(own[0] as RoundBody).jobRound}`
    })
    lines.push(`${plain(phase, 16).padEnd(16)}${cells.map((cell) => cell.padStart(width + 2)).join('')}`)
  }
  lines.push(`${'in all'.padEnd(16)}${byFile.map(({ rounds }) => `${rounds.length}, last ${rounds.at(-1)?.jobRound ?? '-'}`.padStart(width + 2)).join('')}`)
  return `${lines.join('\n')}\n`
}

export function registerAudit (program: Command): void {
  const audit = program.command('audit').description('the signed round logs: export one peer\'s log, verify logs offline, show a round, serve the auditor\'s web page')

  audit.command('export')
    .description('write a peer\'s log of a job, with its public key and the checkpoints it holds, as a self-contained file (JSON lines); --all: every job of every --dir into a folder')
    .addOption(dirOption('the peer\'s data folder (with --all, repeat it for several peers)', (value: string, previous: string[] | undefined) => [...(previous ?? []), value]))
    .option('--job <id>', 'the job (default: the only one)')
    .option('--all', 'every job the peer(s) hold a log of; --out is then a folder', false)
    .requiredOption('--out <file>', 'the file to write (with --all: the folder)')
    .option('--json', 'what was written, as JSON', false)
    .action(async (options: { dir: string[], job?: string, all: boolean, out: string, json: boolean }) => {
      if (options.all) {
        if (options.job !== undefined) throw new AuditInputError('--all exports every job: leave out --job')
        const exported = await exportAll(options.dir, options.out)
        if (options.json) {
          process.stdout.write(`${JSON.stringify({ out: options.out, files: exported })}\n`)
          return
        }
        const jobs = [...new Set(exported.map((log) => log.job))]
        for (const job of jobs) {
          const logs = exported.filter((log) => log.job === job)
          process.stdout.write(`job ${job}: ${logs.length} log(s) (${logs.map((log) => log.region).join(', ')}), ${logs.reduce((sum, log) => sum + log.entries, 0)} entries\n`)
        }
        process.stdout.write(`${exported.length} file(s) written to ${options.out}; check one job with: npx epimesh audit verify ${join(options.out, `${jobs[0] ?? 'JOB'}.*.jsonl`)}\n`)
        return
      }
      if (options.dir.length !== 1) throw new AuditInputError('one --dir exports one peer\'s log; several need --all')
      const dir = options.dir[0] as string
      const exported = await exportAudit(dir, options.job === undefined ? undefined : checkJobId(options.job, '--job'))
      await writeFile(`${options.out}.tmp`, exported.text)
      await rename(`${options.out}.tmp`, options.out)
      process.stdout.write(options.json
        ? `${JSON.stringify({ job: exported.job, file: options.out, entries: exported.entries, checkpoints: exported.checkpoints })}\n`
        : `job ${exported.job}: ${exported.entries} entries and ${exported.checkpoints} checkpoints written to ${options.out}\n`)
    })

  audit.command('verify')
    .description('check exported logs offline: chains, signatures, checkpoints, sent = received, dual updates, final models; opens with what was run and what was checked; exit 0 when all holds, 1 when something fails, 2 on unusable input')
    .argument('<files...>', 'one or more peers\' exports of the same job')
    .option('--json', 'one JSON object on stdout', false)
    .option('--all', 'list every failure, also those that follow from a root cause', false)
    .option('--html <file>', 'also write the report as one self-contained HTML page (with the residual plot when the job has ADMM rounds)')
    .action(async (files: string[], options: { json: boolean, all: boolean, html?: string }) => {
      const report = await verifyAuditFiles(files)
      process.stdout.write(options.json ? `${JSON.stringify(report)}\n` : formatReport(report, { all: options.all }))
      if (options.html !== undefined) {
        let svg: string | undefined
        let plotNote: string | undefined
        const intact = report.files.filter((file) => file.intact).map((file) => file.file)
        if (intact.length === 0) plotNote = 'no log holds, so nothing from the logs is drawn'
        else {
          try {
            const { regions, byFile } = await readRounds(intact)
            const { tolerance, algorithm } = startInfo(byFile)
            svg = await residualPlotSvg(byFile, regions, tolerance, algorithm)
          } catch (error) {
            if (!(error instanceof AuditPlotError || error instanceof AuditInputError)) throw error
            plotNote = error.message
          }
        }
        const { auditHtml } = await import('../audit/html.ts')
        const html = auditHtml(report, { ...(svg === undefined ? {} : { svg }), ...(plotNote === undefined ? {} : { plotNote }), generated: new Date().toISOString() })
        await writeFile(`${options.html}.tmp`, html)
        await rename(`${options.html}.tmp`, options.html)
        if (!options.json) process.stdout.write(`report written to ${options.html}\n`)
      }
      process.exitCode = report.ok ? 0 : 1
    })

  audit.command('serve')
    .description('the auditor\'s web page: verify exported logs offline and serve the result check by check, each peer\'s chain and checkpoints, any round across peers (a slider), the residual plot and the failures, behind a token printed at start')
    .argument('<paths...>', 'one job\'s exports, or folders of them (every *.jsonl inside)')
    .option('--job <id>', 'the job to show, when the files hold the logs of several')
    .option('--port <n>', 'the port to listen on (0: any free one)', '8080')
    .option('--host <address>', 'the address to listen on; anything but loopback makes the page reachable from the network', '127.0.0.1')
    .action(async (paths: string[], options: { job?: string, port: string, host: string }) => {
      const port = Number(options.port)
      if (!/^\d{1,5}$/.test(options.port) || port > 65535) throw new AuditInputError(`--port must be a port number from 0 to 65535, got ${plain(options.port, 20)}`)
      if (!/^[A-Za-z0-9.:[\]-]{1,100}$/.test(options.host)) throw new AuditInputError(`--host must be an address such as 127.0.0.1, got ${plain(options.host, 40)}`)
      const { collectAuditFiles } = await import('../web/audit-view.ts')
      const { serveAudit } = await import('../web/audit-server.ts')
      const files = await collectAuditFiles(paths, options.job === undefined ? undefined : checkJobId(options.job, '--job'))
      const served = await serveAudit({ files, host: options.host, port })
      const { report } = served.view
      const cause = report.failures.find((finding) => finding.rootCause === true) ?? report.failures[0]
      process.stdout.write(`job ${plain(report.job)}: ${report.files.length} log(s), ${report.entries} entries: ${report.ok ? 'VERIFIED: every check holds' : `NOT VERIFIED (${report.failures.length} failure(s)${cause?.file === undefined ? '' : `, first at ${plain(cause.file, 200)}${cause.line === undefined ? '' : `:${cause.line}`}`})`}\n`)
      if (!['127.0.0.1', '::1', 'localhost', '[::1]'].includes(options.host)) process.stderr.write(`warning: listening on ${plain(options.host, 100)}, not on loopback only: anyone who can reach it and holds the token sees the page\n`)
      process.stdout.write(`open ${served.web.loginUrl}\n(the token lets a browser in once and is then kept in a cookie; scripts send Authorization: Bearer TOKEN; Ctrl-C stops)\n`)
      await new Promise<void>((resolve) => {
        const stop = (): void => { process.off('SIGINT', stop); process.off('SIGTERM', stop); resolve() }
        process.once('SIGINT', stop)
        process.once('SIGTERM', stop)
      })
      await served.close()
    })

  audit.command('show')
    .description('one round across peers, aligned by phase and phase round (vectors, residuals, skipped edges), and a plot of the residuals per round')
    .argument('<files...>', 'one or more peers\' exports of the same job')
    .option('--round <n>', 'the round to show: a job round of the first file\'s log, or with --phase the phase\'s own round')
    .option('--phase <name>', 'the phase --round counts in (admm, admm2, stats, ...)')
    .option('--plot <file>', 'write an SVG of the consensus-ADMM primal and dual residuals per round (an error for a job without ADMM rounds)')
    .option('--json', 'the round\'s entries as JSON', false)
    .action(async (files: string[], options: { round?: string, phase?: string, plot?: string, json: boolean }) => {
      const { regions, byFile } = await readRounds(files)
      if (options.phase !== undefined && options.round === undefined) throw new AuditInputError('--phase needs --round')
      if (options.round !== undefined) {
        const round = Number(options.round)
        if (!Number.isInteger(round) || round < 0) throw new AuditInputError(`--round must be a non-negative integer, got ${options.round}`)
        if (options.phase !== undefined && !/^[a-z][a-z0-9.]{0,40}$/.test(options.phase)) throw new AuditInputError(`--phase must be a phase name such as admm or stats, got ${plain(options.phase, 40)}`)
        const target = targetRound(byFile, round, options.phase)
        if (target === undefined) {
          process.stdout.write(`no entry for job round ${round} in these files\n`)
        } else if (options.json) {
          const shown = alignedAt(byFile, regions, target.phase, target.round).map(({ region, entry }, index) => ({ file: byFile[index]?.file, region, entry: entry ?? null }))
          process.stdout.write(`${JSON.stringify({ phase: target.phase, round: target.round, peers: shown })}\n`)
        } else {
          const first = byFile[0] as FileRounds
          const asked = options.phase !== undefined ? `asked as ${plain(options.phase, 30)} round ${round}` : `job round ${round} in ${plain(regions.get(first.peer) ?? first.peer, 40)}'s log`
          process.stdout.write(showRound(byFile, regions, target, asked))
          const named = options.phase !== undefined ? [] : first.rounds.filter((entry) => entry.jobRound === round)
          if (named.length > 1) process.stdout.write(`\nnote: job round ${round} names ${named.map((entry) => `${plain(entry.phase, 30)} round ${entry.round}`).join(' and ')} in that log (a phase's first round shares its number with the last of the phase before); shown: the first; --phase chooses\n`)
        }
      } else if (options.plot === undefined) {
        process.stdout.write(phaseTable(byFile, regions))
      }
      if (options.plot !== undefined) {
        const { tolerance, algorithm } = startInfo(byFile)
        const svg = await residualPlotSvg(byFile, regions, tolerance, algorithm)
        await writeFile(options.plot, svg)
        process.stdout.write(`plot written to ${options.plot}\n`)
      }
    })
}
