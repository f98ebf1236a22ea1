import { spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createIdentity, IDENTITY_FILE, loadIdentity } from '../../src/peer/identity.ts'

/**
 * The identity key: created 0600 in a 0700 folder; refused when group or others can read it (as ssh
 * refuses such a key); missing, unreadable, empty or damaged are four different coded errors.
 */
const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const isRoot = process.getuid?.() === 0
let base = ''
beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-identity-'))
  await chmod(base, 0o755)
})
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

describe('the identity key', () => {
  it('is created 0600 in a 0700 folder, and loads back as the same peer', async () => {
    const dir = join(base, 'created')
    const { peerId } = await createIdentity(dir)
    expect((await stat(dir)).mode & 0o777).toBe(0o700)
    expect((await stat(join(dir, IDENTITY_FILE))).mode & 0o777).toBe(0o600)
    expect((await loadIdentity(dir)).peerId).toBe(peerId)
  })

  it('readable by group or others: refused, as ssh refuses it', async () => {
    const dir = join(base, 'exposed')
    await createIdentity(dir)
    for (const mode of [0o644, 0o640, 0o604]) {
      await chmod(join(dir, IDENTITY_FILE), mode)
      await expect(loadIdentity(dir)).rejects.toMatchObject({ code: 'IDENTITY_EXPOSED', exitCode: 2 })
    }
    await chmod(join(dir, IDENTITY_FILE), 0o400)
    await expect(loadIdentity(dir)).resolves.toMatchObject({ peerId: expect.any(String) })
  })

  it('missing, empty, damaged: each its own code', async () => {
    const dir = join(base, 'broken')
    await mkdir(dir, { mode: 0o700 })
    await expect(loadIdentity(dir)).rejects.toMatchObject({ code: 'IDENTITY_MISSING' })
    await writeFile(join(dir, IDENTITY_FILE), '', { mode: 0o600 })
    await expect(loadIdentity(dir)).rejects.toMatchObject({ code: 'IDENTITY_CORRUPT' })
    await writeFile(join(dir, IDENTITY_FILE), Buffer.from('\u0008\u0001\u0012\u0040truncated'), { mode: 0o600 })
    await expect(loadIdentity(dir)).rejects.toMatchObject({ code: 'IDENTITY_CORRUPT' })
  })

  it('a key the user may not read is IDENTITY_UNREADABLE, not "no identity"', async () => {
    const dir = join(base, 'unreadable')
    await createIdentity(dir)
    if (!isRoot) {
      await chmod(join(dir, IDENTITY_FILE), 0o000)
      await expect(loadIdentity(dir)).rejects.toMatchObject({ code: 'IDENTITY_UNREADABLE' })
      return
    }
    // root reads any file: load it as another user, who may enter the folder but not read the key
    await chmod(dir, 0o711)
    const identity = fileURLToPath(new URL('../../src/peer/identity.ts', import.meta.url))
    const script = `const { loadIdentity } = await import(${JSON.stringify(identity)}); try { await loadIdentity(${JSON.stringify(dir)}); console.log('LOADED') } catch (error) { console.log(error.code) }`
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, encoding: 'utf8', uid: 65534, gid: 65534, timeout: 30_000 })
    expect(result.stdout.trim()).toBe('IDENTITY_UNREADABLE')
  })
})
