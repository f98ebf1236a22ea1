import { randomBytes, createHash } from 'node:crypto'
import { join } from 'node:path'
import { Level } from 'level'
import type { AbstractLevel } from 'abstract-level'
import { StoreNotInitializedError } from './errors.ts'
import type { CaseSchema } from './schema.ts'

/**
 * A region's local store, on LevelDB (`level`) in the peer's data folder, or any abstract-level
 * database (memory-level in tests). One sublevel per kind of data, keys versioned by the layout:
 *
 *   meta     layout version, the schema, the import history and which imports are committed
 *   config   region, peer id, the salt of the record-id hashes
 *   cases    case records, keyed <import id>!<sequence>; readers see only committed imports
 *   ids      salted hash of each record id -> import id (duplicates are found here)
 *   series   case counts by date
 *   models   every shared model by job id
 *   rounds   the audit log: signed, chained round entries by job and sequence, and checkpoints
 *
 * An import writes its rows under its own id and becomes visible with one small atomic write that
 * marks it committed; rows of an import that never committed (a failure, a kill -9) are invisible and
 * are removed the next time the store opens.
 */
export const LAYOUT_VERSION = 1

export type CaseRow = Record<string, number | string | null>

export interface ImportRecord {
  id: string
  kind: 'cases' | 'series'
  file: string
  rows: number
  duplicates: number
  committedAt: string
}

type Database = AbstractLevel<string | Buffer | Uint8Array, string, any>

export class Store {
  readonly db: Database
  readonly meta
  readonly config
  readonly cases
  readonly ids
  readonly series
  readonly models
  readonly rounds

  private constructor (db: Database) {
    this.db = db
    const json = { valueEncoding: 'json' as const }
    this.meta = db.sublevel<string, any>(`v${LAYOUT_VERSION}-meta`, json)
    this.config = db.sublevel<string, any>(`v${LAYOUT_VERSION}-config`, json)
    this.cases = db.sublevel<string, any>(`v${LAYOUT_VERSION}-cases`, json)
    this.ids = db.sublevel<string, any>(`v${LAYOUT_VERSION}-ids`, json)
    this.series = db.sublevel<string, any>(`v${LAYOUT_VERSION}-series`, json)
    this.models = db.sublevel<string, any>(`v${LAYOUT_VERSION}-models`, json)
    this.rounds = db.sublevel<string, any>(`v${LAYOUT_VERSION}-rounds`, json)
  }

  /** Opens (creating if needed) the store; removes what an interrupted import left behind. */
  static async open (location: string | Database): Promise<Store> {
    const db = typeof location === 'string' ? new Level<string, any>(join(location, 'store')) as unknown as Database : location
    await db.open()
    const store = new Store(db)
    const layout = await store.meta.get('layout')
    if (layout === undefined) await store.meta.put('layout', LAYOUT_VERSION)
    await store.removeUncommitted()
    return store
  }

  /**
   * Opens the store in a data folder whose LevelDB another process (the running peer, an operator's
   * command) may hold for a moment: retries while it is locked, up to `waitMs`.
   */
  static async openWhenFree (dir: string, waitMs = 10_000): Promise<Store> {
    const deadline = Date.now() + waitMs
    for (let attempt = 0; ; attempt++) {
      try {
        return await Store.open(dir)
      } catch (error) {
        const locked = (error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED'
        if (!locked || Date.now() >= deadline) throw error
        await new Promise((resolve) => setTimeout(resolve, Math.min(200, 10 * 2 ** attempt)))
      }
    }
  }

  /**
   * Runs `task` with the store of a data folder open, then closes it. Calls from one process are
   * serialised (LevelDB holds one lock per folder, even within a process); another process holding
   * the store is waited for.
   */
  static async use<T> (dir: string, task: (store: Store) => Promise<T>, waitMs = 10_000): Promise<T> {
    const previous = Store.users.get(dir) ?? Promise.resolve()
    const run = previous.then(async () => {
      const store = await Store.openWhenFree(dir, waitMs)
      try {
        return await task(store)
      } finally {
        await store.close()
      }
    })
    const settled = run.then(() => {}, () => {})
    Store.users.set(dir, settled)
    void settled.then(() => { if (Store.users.get(dir) === settled) Store.users.delete(dir) })
    return await run
  }

  private static readonly users = new Map<string, Promise<void>>()

  async close (): Promise<void> {
    await this.db.close()
  }

  async salt (): Promise<string> {
    let salt = await this.config.get('salt') as string | undefined
    if (salt === undefined) {
      salt = randomBytes(32).toString('hex')
      await this.config.put('salt', salt)
    }
    return salt
  }

  static hashId (salt: string, id: string): string {
    return createHash('sha256').update(salt).update('\u0000').update(id).digest('base64url')
  }

  async schema (): Promise<CaseSchema | null> {
    return (await this.meta.get('schema')) ?? null
  }

  async committedImports (): Promise<Map<string, ImportRecord>> {
    const imports = new Map<string, ImportRecord>()
    for await (const [key, value] of this.meta.iterator({ gte: 'import!', lt: 'import!\uffff' })) imports.set(key.slice('import!'.length), value as ImportRecord)
    return imports
  }

  /** Every committed case record, in import order. */
  async * rows (): AsyncGenerator<CaseRow> {
    const committed = await this.committedImports()
    for await (const [key, value] of this.cases.iterator()) {
      if (committed.has(key.slice(0, key.indexOf('!')))) yield value as CaseRow
    }
  }

  async count (): Promise<number> {
    let count = 0
    for await (const _ of this.rows()) count++
    return count
  }

  async allRows (): Promise<CaseRow[]> {
    const rows: CaseRow[] = []
    for await (const row of this.rows()) rows.push(row)
    return rows
  }

  async * seriesPoints (): AsyncGenerator<{ date: string, count: number, population?: number }> {
    for await (const [, value] of this.series.iterator()) yield value as { date: string, count: number, population?: number }
  }

  private async removeUncommitted (): Promise<void> {
    const committed = await this.committedImports()
    let batch = this.db.batch()
    let size = 0
    const flush = async (): Promise<void> => {
      if (size === 0) return
      await batch.write()
      batch = this.db.batch()
      size = 0
    }
    for await (const key of this.cases.keys()) {
      if (!committed.has(key.slice(0, key.indexOf('!')))) {
        batch.del(key, { sublevel: this.cases })
        if (++size >= 10_000) await flush()
      }
    }
    for await (const [key, value] of this.ids.iterator()) {
      if (!committed.has(value as string)) {
        batch.del(key, { sublevel: this.ids })
        if (++size >= 10_000) await flush()
      }
    }
    await flush()
  }
}

export function ensureInitialized (config: { region?: string }, dir: string): void {
  if (config.region === undefined) throw new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
}
