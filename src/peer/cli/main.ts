import { Command, CommanderError } from 'commander'
import { resolve } from 'node:path'
import { EpimeshError } from '../../errors.ts'
import { cut, storageFailure } from '../../store/errors.ts'
import { restrictUmask } from '../../store/files.ts'
import { registerAudit } from './audit.ts'
import { registerDemo } from './demo.ts'
import { registerInspect } from './inspect.ts'
import { registerMigrate } from './migrate.ts'
import { registerPropose } from './propose.ts'
import { registerStoreCommands } from './store-commands.ts'
import { registerSimulate } from './simulate.ts'
import { registerSimulateForecast } from './simulate-forecast.ts'
import { registerStart } from './start.ts'

/**
 * The `epimesh` command. Each sub-command lives in src/peer/commands/ and registers itself here.
 * Returns the process exit code: 0 success, 1 a failed check or run, 2 unusable input.
 */
export async function main (argv: string[]): Promise<number> {
  // every file and folder this process creates is its user's alone (0600, 0700), LevelDB's included
  restrictUmask()
  const program = new Command('epimesh')
    .description('privacy-preserving, serverless model fitting for a federation of disease-control centres')
    .option('--store-key <file>', 'the data folder\'s store key (outside the folder; default: EPIMESH_STORE_KEY_FILE, else the key init made)')
    .exitOverride()
    .showHelpAfterError()
  program.hook('preAction', () => {
    const keyFile = program.opts<{ storeKey?: string }>().storeKey
    if (keyFile !== undefined) process.env.EPIMESH_STORE_KEY_FILE = resolve(keyFile)
  })

  const registrations: Array<(program: Command) => void> = [
    registerSimulate,
    registerSimulateForecast,
    registerStart,
    registerDemo,
    registerInspect,
    registerPropose,
    registerStoreCommands,
    registerMigrate,
    registerAudit
  ]
  for (const register of registrations) register(program)

  try {
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
