import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { lockDataFolder, PID_FILE } from '../../src/peer/lock.ts'

/** One process per data folder: the lock names its holder, and dies with it. */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const LOCK = fileURLToPath(new URL('../../src/peer/lock.ts', import.meta.url))
let base = ''
const children: ChildProcess[] = []
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-lock-')) })
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the data folder lock', () => {
  it('a second holder in the same process is refused, naming the pid; released, it can be taken again', async () => {
    const dir = join(base, 'same')
    await mkdir(dir, { mode: 0o700 })
    const lock = await lockDataFolder(dir)
    await expect(lockDataFolder(dir)).rejects.toMatchObject({ code: 'PEER_ALREADY_RUNNING', pid: process.pid, exitCode: 2 })
    await lock.release()
    await (await lockDataFolder(dir)).release()
  })

  it('held by another process, refused with that pid; that process killed with SIGKILL leaves no stale lock', async () => {
    const dir = join(base, 'other')
    await mkdir(dir, { mode: 0o700 })
    const script = `const { lockDataFolder } = await import(${JSON.stringify(LOCK)}); await lockDataFolder(${JSON.stringify(dir)}); console.log('locked'); setInterval(() => {}, 1000)`
    const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(holder)
    await new Promise<void>((resolve) => { holder.stdout?.once('data', () => { resolve() }) })
    expect(Number((await readFile(join(dir, PID_FILE), 'utf8')).trim())).toBe(holder.pid)
    await expect(lockDataFolder(dir)).rejects.toMatchObject({ code: 'PEER_ALREADY_RUNNING', pid: holder.pid })
    holder.kill('SIGKILL')
    await new Promise((resolve) => { holder.once('exit', resolve) })
    const lock = await lockDataFolder(dir)
    expect(Number((await readFile(join(dir, PID_FILE), 'utf8')).trim())).toBe(process.pid)
    await lock.release()
  })

  it('a folder that does not exist is not a data folder', async () => {
    await expect(lockDataFolder(join(base, 'absent'))).rejects.toMatchObject({ code: 'STORE_NOT_INITIALIZED' })
  })
})
