import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { MemoryLevel } from 'memory-level'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { storageFailure } from '../../src/store/errors.ts'
import { importCases } from '../../src/store/import.ts'
import { Store } from '../../src/store/store.ts'

/**
 * A full disk, a store held by another process beyond the wait, a permission the system denies:
 * coded errors, exit 2, no stack trace.
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const isRoot = process.getuid?.() === 0
let base = ''
const children: ChildProcess[] = []
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-failures-'))
  // other users may pass through (the permission test runs a command as another user); each data folder stays 0700
  await chmod(base, 0o755)
})
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '') await rm(base, { recursive: true, force: true })
})

const cli = (args: string[], options: { uid?: number, gid?: number } = {}): { status: number | null, stderr: string } => {
  const result = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, ...options })
  return { status: result.status, stderr: result.stderr }
}

async function casesFile (path: string, rows: number): Promise<void> {
  await writeFile(path, `case_id,age,sex,severe\n${Array.from({ length: rows }, (_, row) => `R${row},${row % 90},${row % 2 === 0 ? 'F' : 'M'},${row % 7 === 0 ? 1 : 0}`).join('\n')}\n`)
}

/** memory-level with its private write methods, which abstract-level calls and its types leave out */
interface WritableMemoryLevel extends MemoryLevel<string, any> {
  _put (key: any, value: any, options: any): Promise<void>
  _batch (operations: any, options: any): Promise<void>
}

/** A database whose writes fail, once `full`, as LevelDB's do on a full disk. */
class FullDisk extends (MemoryLevel as unknown as new () => WritableMemoryLevel) {
  full = false
  private failure (): Error {
    return Object.assign(new Error('IO error: /data/jiangsu/store/000003.log: No space left on device'), { code: 'LEVEL_IO_ERROR' })
  }

  override async _put (key: any, value: any, options: any): Promise<void> {
    if (this.full) throw this.failure()
    await super._put(key, value, options)
  }

  override async _batch (operations: any, options: any): Promise<void> {
    if (this.full) throw this.failure()
    await super._batch(operations, options)
  }
}

describe('failures of the disk and the store', () => {
  it('a full disk under an import is DISK_FULL (an injected database that fails as LevelDB does)', async () => {
    const db = new FullDisk()
    const store = await Store.open(db as never)
    db.full = true
    const file = join(base, 'cases.csv')
    await casesFile(file, 100)
    const error = await importCases(store, { file }).catch((caught: unknown) => caught)
    expect(storageFailure(error)).toMatchObject({ code: 'DISK_FULL', exitCode: 2 })
    await store.close()
  })

  it.skipIf(!isRoot)('a full disk (a 512 kB tmpfs) under a real import: DISK_FULL, exit 2, no stack trace', async () => {
    const mount = join(base, 'tiny')
    await mkdir(mount)
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=512k,mode=0700', 'tmpfs', mount])
    if (mounted.status !== 0) return // no tmpfs here (a container without the capability): the injected test above stands
    try {
      const dir = join(mount, 'peer')
      const store = await Store.open(dir)
      await store.configure({ region: 'tiny' })
      await store.close()
      const file = join(base, 'big.csv')
      await casesFile(file, 10_000)
      const imported = cli(['import', '--dir', dir, '--cases', file])
      expect(imported.status).toBe(2)
      expect(imported.stderr).toContain('[DISK_FULL]')
      expect(imported.stderr).not.toMatch(/\n\s+at /)
    } finally {
      spawnSync('umount', [mount])
    }
  })

  it('a store that another process holds beyond the wait is STORE_LOCKED', async () => {
    const dir = join(base, 'held')
    await (await Store.open(dir)).close()
    const holder = spawn(process.execPath, ['-e', `const { Level } = require('level'); const db = new Level(${JSON.stringify(join(dir, 'store'))}); db.open().then(() => { console.log('held'); setInterval(() => {}, 1000) })`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    children.push(holder)
    await new Promise<void>((resolve) => { holder.stdout?.once('data', () => { resolve() }) })
    const started = Date.now()
    await expect(Store.openWhenFree(dir, 300)).rejects.toMatchObject({ code: 'STORE_LOCKED', exitCode: 2 })
    expect(Date.now() - started).toBeLessThan(5000)
    holder.kill('SIGKILL')
    await new Promise((resolve) => { holder.once('exit', resolve) })
    // the kernel released the holder's lock with its process
    await (await Store.openWhenFree(dir, 5000)).close()
  })

  it('a data folder the user may not read is PERMISSION_DENIED, exit 2, no stack trace', async () => {
    const dir = join(base, 'private')
    const store = await Store.open(dir)
    await store.configure({ region: 'private' })
    await store.close()
    // root reads everything: run the command as another user; anyone else is denied once the folder is 0000
    const result = isRoot
      ? cli(['data', 'summary', '--dir', dir], { uid: 65534, gid: 65534 })
      : await (async () => { await chmod(dir, 0o000); try { return cli(['data', 'summary', '--dir', dir]) } finally { await chmod(dir, 0o700) } })()
    expect(result.status).toBe(2)
    expect(result.stderr).toContain('[PERMISSION_DENIED]')
    expect(result.stderr).not.toMatch(/\n\s+at /)
  })
})
