import { join } from 'node:path'
import type { Command } from 'commander'
import { EpimeshError } from '../../errors.ts'
import { loadFederation } from '../federation.ts'
import { peerRunning } from '../lock.ts'
import { parseWarningLevels, readStatusFile } from '../web/dashboard-data.ts'
import { parseHttpAddress, startDashboard, TOKEN_FILE, type Dashboard } from '../web/dashboard.ts'
import { dirOption, federationOption } from './dir-option.ts'
import { requireDataFolder } from './store-commands.ts'

/**
 * `epimesh dashboard`: the operator's web view of a data folder whose peer is not running, from what
 * the folder saved (its store and its last status), read-only. A running peer serves the live view
 * itself (`epimesh start --http`), so with a peer on the folder this command says so and stops.
 */

export class PeerServesViewError extends EpimeshError {
  static override readonly name = 'PeerServesViewError'
  readonly exitCode = 2
  constructor (message: string) { super('PEER_ALREADY_RUNNING', message) }
}

export interface DashboardOptions {
  dir: string
  port: string
  federation?: string
  warningLevels?: string
}

function alive (pid: number | undefined): boolean {
  if (pid === undefined) return false
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Starts the saved-state view of a data folder (the caller closes it). */
export async function serveDashboard (options: DashboardOptions): Promise<Dashboard> {
  const address = parseHttpAddress(options.port, '--port')
  const levels = options.warningLevels === undefined ? undefined : parseWarningLevels(options.warningLevels)
  await requireDataFolder(options.dir)
  const running = await peerRunning(options.dir)
  if (running.running) {
    throw new PeerServesViewError(`a peer runs on ${options.dir}${running.pid === null ? '' : ` (pid ${running.pid})`}: its live view is served by the peer itself; start it with --http [HOST:]PORT (epimesh start --dir ${options.dir} --federation FILE --http 8080), or see epimesh status`)
  }
  const federation = options.federation === undefined ? null : await loadFederation(options.federation)
  const startedPid = (await readStatusFile(options.dir))?.pid
  return await startDashboard({
    dir: options.dir,
    federation,
    live: null,
    address,
    ...(levels === undefined ? {} : { levels }),
    // a peer started on the folder since: said on the page (from its status file, without touching its lock)
    peerRunning: async () => {
      const pid = (await readStatusFile(options.dir))?.pid
      return pid !== undefined && pid !== startedPid && alive(pid)
    }
  })
}

export function registerDashboard (program: Command): void {
  program.command('dashboard')
    .description('the operator\'s web view of a data folder whose peer is not running: its saved state, read-only (a running peer serves the live view: start --http)')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--port <[host:]port>', 'serve at http://HOST:PORT/ (HOST 127.0.0.1 unless given)', '8080')
    .addOption(federationOption('the federation file: every member, the graph, the regions\' outlines and warning levels (without it, the members this peer\'s status names)', { required: false }))
    .option('--warning-levels <yellow,orange,red>', 'the h thresholds of the warning levels (default: the federation file\'s warningLevels, else 0.25,0.5,0.75)')
    .action(async (options: DashboardOptions) => {
      const view = await serveDashboard(options)
      process.stdout.write(`operator's view (saved state of ${options.dir}, read-only): ${view.loginUrl} (open it once; the token is also in ${join(options.dir, TOKEN_FILE)}); stop with Ctrl-C\n`)
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve)
        process.once('SIGTERM', resolve)
      })
      await view.close()
    })
}
