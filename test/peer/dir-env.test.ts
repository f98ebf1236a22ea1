import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'

/** The command line's entry point in this process: exit code, stdout and stderr. */
async function run (args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    process.exitCode = undefined
    return { status: await main(args), stdout, stderr }
  } finally {
    process.exitCode = undefined
    out.mockRestore()
    err.mockRestore()
  }
}

let base = ''
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-dir-env-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })
afterEach(() => {
  delete process.env.EPIMESH_DIR
  delete process.env.EPIMESH_FEDERATION
})

describe('EPIMESH_DIR', () => {
  it('names the data folder of every command when --dir is not given; --dir wins over it', async () => {
    const dir = join(base, 'anhui')
    process.env.EPIMESH_DIR = dir
    const init = await run(['init', '--region', 'Anhui'])
    expect(init.status).toBe(0)
    expect(init.stdout).toContain(`initialised ${dir} for Anhui`)
    expect((await stat(join(dir, 'store.json'))).isFile()).toBe(true)

    const summary = await run(['data', 'summary', '--json'])
    expect(summary.status).toBe(0)
    expect(JSON.parse(summary.stdout)).toMatchObject({ records: 0 })
    // a command that reads the folder says which one it read
    const model = await run(['model'])
    expect(model.status).toBe(2)
    expect(model.stderr).toContain(`no model yet in ${dir}`)
    // a sub-command of a command that takes --dir (models diff) reads it too
    const diff = await run(['models', 'diff', 'a-1', 'b-1'])
    expect(diff.stderr).toContain(`no model of job a-1 in ${dir}`)

    // --dir given: the variable is not used
    process.env.EPIMESH_DIR = join(base, 'no-such-folder')
    const explicit = await run(['data', 'summary', '--dir', dir, '--json'])
    expect(explicit.status).toBe(0)
    const viaMissing = await run(['data', 'summary', '--json'])
    expect(viaMissing.status).not.toBe(0)
    expect(viaMissing.stderr).toContain('no-such-folder')
  })

  it('without --dir and without EPIMESH_DIR (or with it empty), a command says to give one, exit 2', async () => {
    delete process.env.EPIMESH_DIR
    for (const args of [['status'], ['data', 'summary'], ['models', 'diff', 'a-1', 'b-1'], ['init', '--region', 'Anhui']]) {
      const result = await run(args)
      expect(result.status).toBe(2)
      const name = args[0] === 'data' ? 'data summary' : args[0] as string
      expect(result.stderr).toBe(`epimesh: no data folder for epimesh ${name}: give --dir DIR, or set EPIMESH_DIR=DIR [OPTION_INVALID]\n`)
    }
    process.env.EPIMESH_DIR = ''
    expect((await run(['status'])).stderr).toContain('give --dir DIR, or set EPIMESH_DIR=DIR')
    // the help names the variable
    expect((await run(['status', '--help'])).stdout).toContain('env: EPIMESH_DIR')
  })
})

describe('EPIMESH_FEDERATION', () => {
  it('names the federation file of start, propose and dashboard when --federation is not given; --federation wins', async () => {
    const dir = join(base, 'jiangsu')
    expect((await run(['init', '--dir', dir, '--region', 'Jiangsu'])).status).toBe(0)
    delete process.env.EPIMESH_FEDERATION
    for (const command of ['start', 'propose']) {
      const missing = await run([command, '--dir', dir])
      expect(missing.status).toBe(2)
      expect(missing.stderr).toBe(`epimesh: no federation file for epimesh ${command}: give --federation FILE, or set EPIMESH_FEDERATION=FILE [OPTION_INVALID]\n`)
      expect((await run([command, '--help'])).stdout).toContain('env: EPIMESH_FEDERATION')
    }
    // the variable is read: the command goes on to the file it names, and says which one it could not read
    const named = join(base, 'no-such-federation.json')
    process.env.EPIMESH_FEDERATION = named
    const viaVariable = await run(['start', '--dir', dir])
    expect(viaVariable.status).not.toBe(0)
    expect(viaVariable.stderr).toContain(named)
    // --federation given: the variable is not used
    const other = join(base, 'other-federation.json')
    const explicit = await run(['start', '--dir', dir, '--federation', other])
    expect(explicit.stderr).toContain(other)
    expect(explicit.stderr).not.toContain(named)
  })
})
