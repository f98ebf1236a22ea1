import { mkdir, rename, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import type { Command } from 'commander'
import { loadFederation, type ModelSpec } from '../federation.ts'
import { DatasetError } from '../dataset.ts'

/**
 * `epimesh propose`: asks the running peer of DIR to propose a job to the federation: the federation's
 * model, with the options given here in its place. The peer picks the proposal up from DIR/proposals/
 * (the store belongs to the running process), announces it, and runs it once every member accepts.
 */
export function registerPropose (program: Command): void {
  program.command('propose')
    .description('propose a training job to the federation through this region\'s running peer')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .requiredOption('--federation <file>', 'the federation file')
    .option('--job-id <id>', 'job id (default: a random one)')
    .option('--algorithm <name>', 'admm or newton')
    .option('--lambda <l>', 'L2 penalty', Number)
    .option('--tolerance <t>', 'stopping tolerance', Number)
    .option('--max-rounds <r>', 'round limit', Number)
    .action(async (options: { dir: string, federation: string, jobId?: string, algorithm?: string, lambda?: number, tolerance?: number, maxRounds?: number }) => {
      const federation = await loadFederation(options.federation)
      if (options.algorithm !== undefined && options.algorithm !== 'admm' && options.algorithm !== 'newton') throw new DatasetError(`--algorithm must be admm or newton, got ${options.algorithm}`)
      for (const field of ['lambda', 'tolerance', 'maxRounds'] as const) {
        const value = options[field]
        if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new DatasetError(`--${field} must be a non-negative number`)
      }
      const model: ModelSpec = {
        ...federation.model,
        ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm as 'admm' | 'newton' }),
        ...(options.lambda === undefined ? {} : { lambda: options.lambda }),
        ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
        ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds })
      }
      const id = options.jobId ?? `job-${randomBytes(6).toString('hex')}`
      const dir = join(options.dir, 'proposals')
      await mkdir(dir, { recursive: true })
      const path = join(dir, `${id}.json`)
      await writeFile(`${path}.tmp`, JSON.stringify({ type: 'job.propose', id, proposer: '', model }, null, 2))
      await rename(`${path}.tmp`, path)
      process.stdout.write(`proposed job ${id}; the running peer announces it within a second (epimesh status --dir ${options.dir})\n`)
    })
}
