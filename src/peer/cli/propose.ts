import { mkdir, rename, writeFile } from 'node:fs/promises'
import { randomBytes } from 'node:crypto'
import { checkJobId, dataPath } from '../paths.ts'
import type { Command } from 'commander'
import { loadFederation, type ModelSpec } from '../federation.ts'
import { DatasetError } from '../data/dataset.ts'
import { parseForecastProposal, type ForecastProposal } from '../runtime/forecast-proposal.ts'

/**
 * `epimesh propose`: asks the running peer of DIR to propose a job to the federation: the federation's
 * model, with the options given here in its place. The peer picks the proposal up from DIR/proposals/
 * (the store belongs to the running process), announces it, and runs it once every member accepts.
 */
export function registerPropose (program: Command): void {
  program.command('propose')
    .description('propose a job to the federation through this region\'s running peer: the federation\'s classifier, or with --forecast a regional forecasting job')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .requiredOption('--federation <file>', 'the federation file')
    .option('--job-id <id>', 'job id (default: a random one)')
    .option('--algorithm <name>', 'admm or newton')
    .option('--lambda <l>', 'L2 penalty', Number)
    .option('--tolerance <t>', 'stopping tolerance', Number)
    .option('--max-rounds <r>', 'round limit', Number)
    .option('--forecast', 'a regional forecasting job on the regions\' case-count series, instead of the federation\'s classifier', false)
    .option('--from <date>', 'forecasting: the first day of the first period (a Monday for weekly periods)')
    .option('--periods <n>', 'forecasting: how many periods of the series to fit on', Number)
    .option('--period <unit>', 'forecasting: week or day', 'week')
    .option('--horizon <n>', 'forecasting: periods to forecast (default: those the risk score averages)', Number)
    .option('--half-risk <rate>', 'forecasting: the 7-day incidence per 100,000 at which h = 1/2 (default 10)', Number)
    .option('--open-regions <list>', 'forecasting: regions that publish their h openly (each must agree: start --publish-risk)')
    .option('--model <name>', 'forecasting: endemic-epidemic (hhh4\'s negative binomial model, the default) or loglinear (a Poisson GLM)')
    .option('--unit-intercepts', 'forecasting, endemic-epidemic: each region its own endemic intercept, which only that region learns', false)
    .action(async (options: { dir: string, federation: string, jobId?: string, algorithm?: string, lambda?: number, tolerance?: number, maxRounds?: number, forecast: boolean, from?: string, periods?: number, period: string, horizon?: number, halfRisk?: number, openRegions?: string, model?: string, unitIntercepts: boolean }) => {
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
      let forecast: ForecastProposal | undefined
      if (options.forecast) {
        if (options.from === undefined || options.periods === undefined) throw new DatasetError('a forecasting job needs --from DATE and --periods N')
        const value = {
          from: options.from,
          periods: options.periods,
          period: options.period,
          ...(options.model === undefined ? {} : { kind: options.model }),
          ...(options.unitIntercepts ? { unitIntercepts: true } : {}),
          ...(options.horizon === undefined ? {} : { horizon: options.horizon }),
          ...(options.halfRisk === undefined ? {} : { halfRisk: options.halfRisk }),
          openRegions: options.openRegions === undefined ? [] : options.openRegions.split(',').map((region) => region.trim()).filter((region) => region !== ''),
          ...(options.algorithm === undefined ? {} : { algorithm: options.algorithm }),
          ...(options.tolerance === undefined ? {} : { tolerance: options.tolerance }),
          ...(options.maxRounds === undefined ? {} : { maxRounds: options.maxRounds })
        }
        forecast = parseForecastProposal(value).proposal
      }
      const id = options.jobId === undefined ? `job-${randomBytes(6).toString('hex')}` : checkJobId(options.jobId, '--job-id')
      await mkdir(dataPath(options.dir, 'proposals'), { recursive: true, mode: 0o700 })
      const path = dataPath(options.dir, 'proposals', id, '.json')
      await writeFile(`${path}.tmp`, JSON.stringify({ type: 'job.propose', id, proposer: '', model, ...(forecast === undefined ? {} : { forecast }) }, null, 2), { mode: 0o600 })
      await rename(`${path}.tmp`, path)
      process.stdout.write(`proposed job ${id}; the running peer announces it within a second (epimesh status --dir ${options.dir})\n`)
    })
}
