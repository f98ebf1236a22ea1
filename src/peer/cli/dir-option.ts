import { Option, type Command } from 'commander'
import { OptionInvalidError } from '../../store/errors.ts'

/** The environment variable that names the data folder when `--dir` is not given. */
export const DIR_VARIABLE = 'EPIMESH_DIR'

/**
 * The `--dir` option of a command that needs a data folder: from `--dir`, or else from EPIMESH_DIR (so
 * the operator of one region sets it once). `parse` collects repeated values (audit export --all).
 * With neither, requireDirs (a hook of the program, see main.ts) stops the command before it runs.
 */
export function dirOption (description: string, parse?: (value: string, previous: string[] | undefined) => string[]): Option {
  const option = new Option('--dir <dir>', description).env(DIR_VARIABLE)
  return parse === undefined ? option : option.argParser(parse)
}

/** The environment variable that names the federation file when `--federation` is not given. */
export const FEDERATION_VARIABLE = 'EPIMESH_FEDERATION'

const requiredFederation = new WeakSet<Option>()

/**
 * The `--federation` option: from `--federation`, or else from EPIMESH_FEDERATION (with EPIMESH_DIR, an
 * operator sets both once). A required one is checked by requireDirs, which names both ways to give it.
 */
export function federationOption (description: string, { required }: { required: boolean }): Option {
  const option = new Option('--federation <file>', description).env(FEDERATION_VARIABLE)
  if (required) requiredFederation.add(option)
  return option
}

/** Throws when the command to run, or a command above it, has a `--dir` of dirOption that has no value. */
export function requireDirs (command: Command): void {
  for (let current: Command | null = command; current !== null; current = current.parent) {
    const declared = current.options.some((option) => option.long === '--dir' && option.envVar === DIR_VARIABLE)
    if (!declared) continue
    const value = current.opts<{ dir?: string | string[] }>().dir
    if (value === undefined || value === '' || (Array.isArray(value) && value.length === 0)) {
      const name = current.parent?.parent === null || current.parent === null ? current.name() : `${current.parent.name()} ${current.name()}`
      throw new OptionInvalidError(`no data folder for epimesh ${name}: give --dir DIR, or set ${DIR_VARIABLE}=DIR`)
    }
  }
  const federation = command.options.find((option) => requiredFederation.has(option))
  if (federation !== undefined) {
    const value = command.opts<{ federation?: string }>().federation
    if (value === undefined || value === '') throw new OptionInvalidError(`no federation file for epimesh ${command.name()}: give --federation FILE, or set ${FEDERATION_VARIABLE}=FILE`)
  }
}
