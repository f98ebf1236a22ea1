import type { Command } from 'commander'
import { listJobs, type JobRecord } from '../runtime/job-records.ts'
import { requireDataFolder } from './store-commands.ts'
import { dirOption } from './dir-option.ts'

/** One job as a line, and its regions' reasons on the lines below it. */
export function jobLines (record: JobRecord): string[] {
  const rounds = record.rounds === null ? '-' : String(record.rounds)
  const converged = record.converged === false ? ' (not converged)' : ''
  const lines = [`${record.job.padEnd(24)} ${(record.kind ?? '?').padEnd(8)} ${record.state.padEnd(11)} ${rounds.padStart(6)}  ${record.at ?? ''}${converged}`]
  for (const { region, reason } of record.reasons) lines.push(`    ${region}: ${reason}`)
  return lines
}

/**
 * `epimesh jobs`: every job this region's peer knows (src/peer/runtime/job-records.ts): its kind, its
 * state (finished, running, declined, expired, failed, interrupted, proposed), its rounds, and for a
 * job that did not run each region's reason as the peer heard it.
 */
export function registerJobs (program: Command): void {
  program.command('jobs')
    .description('every job this region\'s peer knows: kind, state (finished, running, declined, expired, failed, interrupted, proposed), rounds, and each region\'s reason for a job that did not run')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--json', 'one JSON object on stdout: { jobs: [...] }', false)
    .action(async (options: { dir: string, json: boolean }) => {
      await requireDataFolder(options.dir)
      const jobs = await listJobs(options.dir)
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ jobs })}\n`)
        return
      }
      if (jobs.length === 0) {
        process.stdout.write(`no jobs yet in ${options.dir} (epimesh propose proposes one)\n`)
        return
      }
      process.stdout.write(`${'job'.padEnd(24)} ${'kind'.padEnd(8)} ${'state'.padEnd(11)} ${'rounds'.padStart(6)}  when\n`)
      for (const record of jobs) for (const line of jobLines(record)) process.stdout.write(`${line}\n`)
    })
}
