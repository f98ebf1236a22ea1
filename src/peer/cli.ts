import { Command, CommanderError } from 'commander'
import { EpimeshError } from '../learning/errors.ts'
import { registerAudit } from './commands/audit.ts'
import { registerDemo } from './commands/demo.ts'
import { registerInspect } from './commands/inspect.ts'
import { registerPropose } from './commands/propose.ts'
import { registerStoreCommands } from './commands/store-commands.ts'
import { registerSimulate } from './commands/simulate.ts'
import { registerSimulateForecast } from './commands/simulate-forecast.ts'
import { registerStart } from './commands/start.ts'

/**
 * The `epimesh` command. Each sub-command lives in src/peer/commands/ and registers itself here.
 * Returns the process exit code: 0 success, 1 a failed check or run, 2 unusable input.
 */
export async function main (argv: string[]): Promise<number> {
  const program = new Command('epimesh')
    .description('privacy-preserving, serverless model fitting for a federation of disease-control centres')
    .exitOverride()
    .showHelpAfterError()

  const registrations: Array<(program: Command) => void> = [
    registerSimulate,
    registerSimulateForecast,
    registerStart,
    registerDemo,
    registerInspect,
    registerPropose,
    registerStoreCommands,
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
    if (error instanceof EpimeshError) {
      process.stderr.write(`epimesh: ${error.message} [${error.code}]\n`)
      return 'exitCode' in error && typeof error.exitCode === 'number' ? error.exitCode : 1
    }
    throw error
  }
}
