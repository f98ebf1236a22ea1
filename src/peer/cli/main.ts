import { Command, CommanderError, Help } from 'commander'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { EpimeshError } from '../../errors.ts'
import { cut, storageFailure } from '../../store/errors.ts'
import { restrictUmask } from '../../store/files.ts'
import { requireDirs } from './dir-option.ts'

type Register = (program: Command) => void

/** A top-level command as `epimesh --help` lists it. */
export interface CommandSummary {
  name: string
  description: string
  /** whether it takes options (listed as `name [options]`) */
  options: boolean
}

/**
 * Every sub-command, in the order `epimesh --help` lists them, by the module in src/peer/cli/ that
 * defines it. Only the module of the command being run (or whose help is asked for) is loaded: between
 * them the modules load libp2p, vega, LevelDB and zod, most of a second that `--help`, `init` or
 * `status` should not wait for. The top-level help lists the other commands from the summaries here;
 * test/peer/cli-main.test.ts checks them against the modules' own definitions.
 */
export const COMMAND_MODULES: ReadonlyArray<{ load: () => Promise<Register>, commands: readonly CommandSummary[] }> = [
  {
    load: async () => (await import('./simulate.ts')).registerSimulate,
    commands: [{ name: 'simulate', options: true, description: 'fit a model over a simulated federation: any topology, the same consensus code as a real peer' }]
  },
  {
    load: async () => (await import('./simulate-forecast.ts')).registerSimulateForecast,
    commands: [{ name: 'simulate-forecast', options: true, description: 'fit the shared case-count forecasting model over a simulated federation of regions; skill, risk scores and the joint risk' }]
  },
  {
    load: async () => (await import('./start.ts')).registerStart,
    commands: [{ name: 'start', options: true, description: 'run this region\'s peer: join the federation, answer job proposals, run the jobs it accepts' }]
  },
  {
    load: async () => (await import('./demo.ts')).registerDemo,
    commands: [{ name: 'demo', options: true, description: 'run a local federation of four provincial peers on synthetic data: the shared severity model, then the regional risk (the main job)' }]
  },
  {
    load: async () => (await import('./inspect.ts')).registerInspect,
    commands: [
      { name: 'status', options: true, description: 'the peer\'s neighbours and links, its current job, phase, round and residuals, the messages and connections it refused, and its neighbours\' scores' },
      { name: 'model', options: true, description: 'the latest shared model this peer holds (or one job\'s, or the list of them): coefficients, standard errors, z, p' },
      { name: 'stats', options: true, description: 'the latest descriptive statistics of the federation this peer holds (or one job\'s, or the list of them): counts, means, SDs, quantiles, correlations, WOE, IV, cross-tables' },
      { name: 'forecast', options: true, description: 'this region\'s latest forecast (mean and 90% interval per period), its risk score h, the federation\'s joint risk and total forecast' }
    ]
  },
  {
    load: async () => (await import('./dashboard.ts')).registerDashboard,
    commands: [{ name: 'dashboard', options: true, description: 'the operator\'s web view of a data folder whose peer is not running: its saved state, read-only (a running peer serves the live view: start --http)' }]
  },
  {
    load: async () => (await import('./models.ts')).registerModels,
    commands: [
      { name: 'predict', options: true, description: 'score new case records with a shared model: linear predictor, probability (or rate), standard errors and 95% intervals' },
      { name: 'models', options: true, description: 'the model registry: every shared model this peer holds, versioned, with its lineage; `models diff A B` compares two' }
    ]
  },
  {
    load: async () => (await import('./jobs.ts')).registerJobs,
    commands: [{ name: 'jobs', options: true, description: 'every job this region\'s peer knows: kind, state (finished, running, declined, expired, failed, interrupted, proposed), rounds, and each region\'s reason for a job that did not run' }]
  },
  {
    load: async () => (await import('./propose.ts')).registerPropose,
    commands: [{ name: 'propose', options: true, description: 'propose a job to the federation through this region\'s running peer: the federation\'s classifier, with --forecast a regional forecasting job, or with --stats descriptive statistics' }]
  },
  {
    load: async () => (await import('./store-commands.ts')).registerStoreCommands,
    commands: [
      { name: 'init', options: true, description: 'create a peer\'s data folder: its store and its persistent identity' },
      { name: 'import', options: true, description: 'import case records (--cases) or case counts (--series), validated, all or nothing' },
      { name: 'data', options: false, description: 'aggregates of the local store' },
      { name: 'schema', options: true, description: 'show the store\'s schema, or replace it deliberately (every stored record must pass the new one)' },
      { name: 'purge', options: true, description: 'remove personal records older than the retention period; reports what it removed' }
    ]
  },
  {
    load: async () => (await import('./federation-setup.ts')).registerFederationSetup,
    commands: [
      { name: 'id', options: true, description: 'a data folder\'s peer id, region and last known listen addresses: what its entry in the federation file needs' },
      { name: 'federation', options: false, description: 'write a federation file from the members\' data folders, or check one' }
    ]
  },
  {
    load: async () => (await import('./migrate.ts')).registerMigrate,
    commands: [{ name: 'store', options: false, description: 'the local store\'s maintenance' }]
  },
  {
    load: async () => (await import('./audit.ts')).registerAudit,
    commands: [{ name: 'audit', options: false, description: 'the signed round logs: export one peer\'s log, verify logs offline, show a round, serve the auditor\'s web page' }]
  }
]

/** The first word of `argv` that is neither an option nor the value of one of `program`'s options. */
function firstWord (program: Command, argv: readonly string[]): number {
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index] as string
    if (arg === '--') return index + 1 < argv.length ? index + 1 : -1
    if (!arg.startsWith('-')) return index
    const option = program.options.find((candidate) => candidate.long === arg || candidate.short === arg)
    if (option?.required === true) index++
  }
  return -1
}

/** The command `argv` runs, or whose help it asks for (`help NAME`); undefined for the top-level help. */
export function commandOf (program: Command, argv: readonly string[]): string | undefined {
  const first = firstWord(program, argv)
  if (first < 0) return undefined
  if (argv[first] !== 'help') return argv[first]
  const rest = argv.slice(first + 1)
  const target = firstWord(program, rest)
  return target < 0 ? undefined : rest[target]
}

/**
 * Registers the command `argv` runs with its module, and every other command as a summary for the
 * top-level help (and for the suggestions after a mistyped command).
 */
export async function registerCommands (program: Command, argv: readonly string[], options: { all?: boolean } = {}): Promise<void> {
  const wanted = commandOf(program, argv)
  const summaries = new Map<Command, string>()
  for (const entry of COMMAND_MODULES) {
    if (options.all === true || entry.commands.some((command) => command.name === wanted)) {
      (await entry.load())(program)
      continue
    }
    for (const command of entry.commands) {
      summaries.set(program.command(command.name).description(command.description), `${command.name}${command.options ? ' [options]' : ''}`)
    }
  }
  if (summaries.size > 0) {
    program.configureHelp({
      subcommandTerm (command: Command): string { return summaries.get(command) ?? Help.prototype.subcommandTerm.call(this, command) }
    })
  }
}

/** The package's version, from its package.json (beside src/ in a clone, beside dist/ in the package). */
export function packageVersion (): string {
  try {
    const parsed = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { name?: unknown, version?: unknown }
    return parsed.name === 'epimesh' && typeof parsed.version === 'string' ? parsed.version : 'unknown'
  } catch {
    return 'unknown'
  }
}

/** The `epimesh` program before any command is registered: its description and global options. */
export function createProgram (): Command {
  const program = new Command('epimesh')
    .description('privacy-preserving, serverless model fitting for a federation of disease-control centres')
    .version(`epimesh ${packageVersion()} (Node ${process.versions.node})`, '-V, --version', 'print the version of epimesh and of Node')
    .option('--store-key <file>', 'the data folder\'s store key (outside the folder; default: EPIMESH_STORE_KEY_FILE, else the key init made)')
    .exitOverride()
    .showHelpAfterError()
  program.hook('preAction', (_program, command) => {
    // a data folder from --dir or EPIMESH_DIR, for every command that takes one
    requireDirs(command)
    const keyFile = program.opts<{ storeKey?: string }>().storeKey
    if (keyFile !== undefined) process.env.EPIMESH_STORE_KEY_FILE = resolve(keyFile)
  })
  return program
}

/**
 * The `epimesh` command. Each sub-command lives in src/peer/cli/ and registers itself (see
 * COMMAND_MODULES). Returns the process exit code: 0 success, 1 a failed check or run, 2 unusable input.
 */
export async function main (argv: string[]): Promise<number> {
  // every file and folder this process creates is its user's alone (0600, 0700), LevelDB's included
  restrictUmask()
  const program = createProgram()
  try {
    await registerCommands(program, argv)
    await program.parseAsync(argv, { from: 'user' })
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2
    }
    // a full disk, a denied permission, a locked or damaged store: coded, without a stack trace
    const coded = error instanceof EpimeshError ? error : storageFailure(error)
    if (coded !== null) {
      process.stderr.write(`epimesh: ${coded.message} [${coded.code}]\n`)
      return 'exitCode' in coded && typeof coded.exitCode === 'number' ? coded.exitCode : 1
    }
    // Anything else is a fault of this program, not of the input: said in one line, with its stack
    // only when asked for (EPIMESH_DEBUG=1).
    const message = error instanceof Error ? error.message : String(error)
    process.stderr.write(`epimesh: internal error: ${cut(message, 300)} [INTERNAL_ERROR]${process.env.EPIMESH_DEBUG === '1' && error instanceof Error ? `\n${error.stack ?? ''}` : ' (EPIMESH_DEBUG=1 shows where)'}\n`)
    return 1
  }
}
