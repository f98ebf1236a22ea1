import { isMainThread } from 'node:worker_threads'
import { chmod, link, lstat, mkdir, open, readdir, rename, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { storageFailure } from './errors.ts'

/**
 * What the project writes on disk is for the user running it alone: data folders 0700, files 0600.
 * The umask does it for every file and folder the process creates, LevelDB's own files included
 * (LevelDB creates them with 0644 minus the umask and offers no option).
 */
export const PRIVATE_UMASK = 0o077

/** Takes group and others' bits out of the process's umask (a no-op in a worker thread, which cannot set it). */
export function restrictUmask (): void {
  if (!isMainThread || process.platform === 'win32') return
  const current = process.umask()
  if ((current & PRIVATE_UMASK) !== PRIVATE_UMASK) process.umask(current | PRIVATE_UMASK)
}

/** Why a private key file may not be used, as ssh says it, or null. */
export function exposedKeyProblem (path: string, mode: number): string | null {
  if (process.platform === 'win32' || (mode & 0o077) === 0) return null
  const octal = (mode & 0o777).toString(8).padStart(4, '0')
  return `permissions ${octal} for ${path} are too open: a private key must not be accessible to group or others; run: chmod 600 ${path}`
}

/** Creates `dir` (0700) if asked, and takes group and others' access away from an existing one. */
export async function secureFolder (dir: string, create: boolean): Promise<boolean> {
  try {
    if (create) await mkdir(dir, { recursive: true, mode: 0o700 })
    const info = await stat(dir)
    if (process.platform !== 'win32' && (info.mode & 0o077) !== 0) {
      // a folder someone else owns (a shared mount set up by an administrator) keeps its owner's modes
      await chmod(dir, info.mode & 0o700).catch((error: NodeJS.ErrnoException) => { if (error.code !== 'EPERM') throw error })
    }
    return true
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !create) return false
    throw storageFailure(error) ?? error
  }
}

/** Writes a small file (mode 0600) whole or not at all: a temporary file, synced, renamed over. */
export async function writePrivateFileAtomically (path: string, data: string | Uint8Array, exclusive = false): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`
  try {
    const handle = await open(temporary, 'w', 0o600)
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    if (exclusive) {
      // refuse to replace an existing file: link fails with EEXIST where rename would overwrite
      try {
        await link(temporary, path)
      } finally {
        await unlink(temporary).catch(() => {})
      }
    } else {
      await rename(temporary, path)
    }
  } catch (error) {
    await unlink(temporary).catch(() => {})
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw error
    throw storageFailure(error) ?? error
  }
}

/** Takes group and others' access away from `dir` and everything in it (folders 0700, files 0600); links are left alone. */
export async function restrictTree (dir: string): Promise<void> {
  if (process.platform === 'win32') return
  try {
    const info = await lstat(dir)
    if (info.isSymbolicLink()) return
    if ((info.mode & 0o077) !== 0) await chmod(dir, info.mode & 0o700)
    if (info.isDirectory()) for (const name of await readdir(dir)) await restrictTree(join(dir, name))
  } catch (error) {
    throw storageFailure(error) ?? error
  }
}
