import { readFile, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Level } from 'level'
import { EpimeshError } from '../errors.ts'
import { StoreNotInitializedError, storageFailure } from '../store/errors.ts'

/**
 * One peer process per data folder. `start` holds DIR/peer.lock for its whole life: a tiny LevelDB
 * kept open, whose LOCK file LevelDB holds with an fcntl lock. The kernel releases that lock when the
 * process ends, however it ends (SIGKILL, a crash, a power cut), so a dead holder never leaves a stale
 * lock behind; a pid file with a liveness check would (the pid of a dead peer can be reused by another
 * process). The holder's pid is written beside it, in DIR/peer.pid, for the message a second `start`
 * gets; that file is only informative, and a stale one is simply overwritten.
 *
 * The lock is separate from the store's: the peer opens its store only for moments, so that `import`
 * and the operator's other commands can use the store while the peer runs.
 */
export const LOCK_FOLDER = 'peer.lock'
export const PID_FILE = 'peer.pid'

/** Another process runs a peer on this data folder. */
export class PeerRunningError extends EpimeshError {
  static override readonly name = 'PeerRunningError'
  readonly exitCode = 2
  /** the holder's pid, when it wrote one */
  readonly pid: number | null
  constructor (message: string, pid: number | null, options?: { cause?: unknown }) {
    super('PEER_ALREADY_RUNNING', message, options)
    this.pid = pid
  }
}

export interface FolderLock {
  readonly dir: string
  release: () => Promise<void>
}

async function holderPid (dir: string): Promise<number | null> {
  const text = await readFile(join(dir, PID_FILE), 'utf8').catch(() => '')
  const pid = Number.parseInt(text.trim(), 10)
  return Number.isSafeInteger(pid) && pid > 0 ? pid : null
}

/** Takes the data folder's lock, or fails at once with PEER_ALREADY_RUNNING naming the holder's pid. */
export async function lockDataFolder (dir: string): Promise<FolderLock> {
  const exists = await stat(dir).then((info) => info.isDirectory(), () => false)
  if (!exists) throw new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
  const db = new Level(join(dir, LOCK_FOLDER))
  try {
    await db.open()
  } catch (error) {
    const locked = (error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
    if (!locked) throw storageFailure(error) ?? error
    const pid = await holderPid(dir)
    throw new PeerRunningError(`a peer already runs on ${dir}${pid === null ? '' : ` (pid ${pid})`}: one process per data folder; stop it first`, pid, { cause: error })
  }
  try {
    await writeFile(join(dir, PID_FILE), `${process.pid}\n`, { mode: 0o600 })
  } catch (error) {
    await db.close().catch(() => {})
    throw storageFailure(error) ?? error
  }
  let released = false
  return {
    dir,
    release: async () => {
      if (released) return
      released = true
      if (await holderPid(dir) === process.pid) await unlink(join(dir, PID_FILE)).catch(() => {})
      await db.close()
    }
  }
}

/** No peer runs on this data folder: what needs one (epimesh propose) would wait for nobody. */
export class NoPeerRunningError extends EpimeshError {
  static override readonly name = 'NoPeerRunningError'
  readonly exitCode = 2
  constructor (message: string) { super('NO_PEER_RUNNING', message) }
}

/**
 * Whether a peer runs on this data folder now, and its pid when it wrote one.
 *
 * The answer comes from the lock itself, not from DIR/peer.pid or status.json: a peer killed with
 * SIGKILL leaves both behind, and its pid may belong to another process by now, while the kernel drops
 * the LevelDB lock on DIR/peer.lock the moment its holder dies. So the probe tries to open that LevelDB:
 * LEVEL_LOCKED means a live peer holds it; if the open succeeds, nobody did, and it is closed again at
 * once (a few milliseconds; a `start` in exactly that moment fails with PEER_ALREADY_RUNNING and can be
 * run again). A folder without DIR/peer.lock has never had a peer; the probe does not create one.
 */
export async function peerRunning (dir: string): Promise<{ running: boolean, pid: number | null }> {
  const exists = await stat(dir).then((info) => info.isDirectory(), () => false)
  if (!exists) throw new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
  const lockExists = await stat(join(dir, LOCK_FOLDER)).then((info) => info.isDirectory(), () => false)
  if (!lockExists) return { running: false, pid: null }
  const db = new Level(join(dir, LOCK_FOLDER), { createIfMissing: false })
  try {
    await db.open()
  } catch (error) {
    const locked = (error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
    if (!locked) throw storageFailure(error) ?? error
    return { running: true, pid: await holderPid(dir) }
  }
  await db.close()
  return { running: false, pid: null }
}

/** Fails with NO_PEER_RUNNING (exit 2) unless a peer runs on this data folder. */
export async function requirePeerRunning (dir: string, what: string): Promise<number | null> {
  const { running, pid } = await peerRunning(dir)
  if (!running) throw new NoPeerRunningError(`no peer runs on ${dir}: ${what} (start it first: epimesh start --dir ${dir} --federation FILE)`)
  return pid
}

/** Runs `task` holding the data folder's lock. */
export async function withDataFolderLock<T> (dir: string, task: () => Promise<T>): Promise<T> {
  const lock = await lockDataFolder(dir)
  try {
    return await task()
  } finally {
    await lock.release()
  }
}
