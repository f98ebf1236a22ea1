import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it, vi } from 'vitest'
import { COMMAND_MODULES, commandOf, createProgram, main, registerCommands } from '../../src/peer/cli/main.ts'

/**
 * The command line loads only the module of the command it runs: every module loaded is recorded
 * here (each passes through to the real one), and so are libp2p and vega, which only `start`, `demo`
 * and the plots need.
 */
const loaded = vi.hoisted(() => new Set<string>())
vi.mock('../../src/peer/cli/simulate.ts', async (original) => { loaded.add('simulate'); return await original() })
vi.mock('../../src/peer/cli/simulate-forecast.ts', async (original) => { loaded.add('simulate-forecast'); return await original() })
vi.mock('../../src/peer/cli/start.ts', async (original) => { loaded.add('start'); return await original() })
vi.mock('../../src/peer/cli/demo.ts', async (original) => { loaded.add('demo'); return await original() })
vi.mock('../../src/peer/cli/inspect.ts', async (original) => { loaded.add('inspect'); return await original() })
vi.mock('../../src/peer/cli/propose.ts', async (original) => { loaded.add('propose'); return await original() })
vi.mock('../../src/peer/cli/store-commands.ts', async (original) => { loaded.add('store-commands'); return await original() })
vi.mock('../../src/peer/cli/federation-setup.ts', async (original) => { loaded.add('federation-setup'); return await original() })
vi.mock('../../src/peer/cli/migrate.ts', async (original) => { loaded.add('migrate'); return await original() })
vi.mock('../../src/peer/cli/audit.ts', async (original) => { loaded.add('audit'); return await original() })
vi.mock('libp2p', async (original) => { loaded.add('libp2p'); return await original() })
vi.mock('vega', async (original) => { loaded.add('vega'); return await original() })

let base = ''
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

async function quietly (args: string[]): Promise<{ status: number, stdout: string }> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    return { status: await main(args), stdout }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

describe('the command line', () => {
  it('finds the command among the global options', () => {
    const program = createProgram()
    expect(commandOf(program, ['init', '--dir', 'd'])).toBe('init')
    expect(commandOf(program, ['--store-key', 'init', 'status', '--dir', 'd'])).toBe('status')
    expect(commandOf(program, ['--help'])).toBeUndefined()
    expect(commandOf(program, [])).toBeUndefined()
    expect(commandOf(program, ['help', 'audit'])).toBe('audit')
    expect(commandOf(program, ['help'])).toBeUndefined()
    expect(commandOf(program, ['--', 'demo'])).toBe('demo')
  })

  it('loads only the module of the command it runs, and none for the help', async () => {
    const help = await quietly(['--help'])
    expect(help.status).toBe(0)
    expect([...loaded]).toEqual([])
    for (const { commands } of COMMAND_MODULES) for (const command of commands) expect(help.stdout).toContain(command.name)

    base = await mkdtemp(join(tmpdir(), 'epimesh-cli-main-'))
    const init = await quietly(['init', '--dir', join(base, 'peer'), '--region', 'Jiangsu'])
    expect(init.status).toBe(0)
    expect([...loaded]).toEqual(['store-commands'])

    expect((await quietly(['help', 'audit'])).stdout).toContain('verify')
    expect([...loaded].sort()).toEqual(['audit', 'store-commands'])
    expect((await quietly(['simulat'])).status).toBe(2)
    expect([...loaded].sort()).toEqual(['audit', 'store-commands'])
  })

  it('lists every command as its module defines it', async () => {
    // every module registered, as before the command line loaded them one at a time
    const full = createProgram()
    await registerCommands(full, [], { all: true })
    const listed = full.commands.map((command) => ({ name: command.name(), description: command.description(), options: command.options.length > 0 }))
    expect(listed).toEqual(COMMAND_MODULES.flatMap((entry) => entry.commands))
    // and the top-level help the same, whichever module a run loads
    for (const argv of [[], ['init'], ['start'], ['audit', 'verify']]) {
      const lazy = createProgram()
      await registerCommands(lazy, argv)
      expect(lazy.helpInformation()).toBe(full.helpInformation())
    }
  })
})
