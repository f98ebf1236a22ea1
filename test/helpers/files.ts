import { readdir, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'

/**
 * Every file and folder under `dir` (itself included) that group or others may use, with its mode:
 * what a data folder must never hold (folders 0700, files 0600).
 */
export async function notPrivate (dir: string): Promise<string[]> {
  const found: string[] = []
  const visit = async (path: string): Promise<void> => {
    const info = await stat(path)
    if ((info.mode & 0o077) !== 0) found.push(`${relative(dir, path) || '.'} ${(info.mode & 0o777).toString(8)}`)
    if (info.isDirectory()) for (const name of await readdir(path)) await visit(join(path, name))
  }
  await visit(dir)
  return found
}

/** Every file under `dir`, relative to it. */
export async function filesUnder (dir: string): Promise<string[]> {
  const files: string[] = []
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) if (entry.isFile()) files.push(relative(dir, join(entry.parentPath, entry.name)))
  return files.sort()
}
