import { randomBytes, createHash } from 'node:crypto'
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Level } from 'level'
import type { AbstractLevel } from 'abstract-level'
import { deriveStoreKeys, keyTag, sealedJsonEncoding, taggedKeyEncoding, type StoreKeys } from './crypto.ts'
import { StoreLockedError, StoreNotInitializedError, StoreUnencryptedError, storageFailure } from './errors.ts'
import { restrictUmask, secureFolder } from './files.ts'
import { createStoreKey, readStoreFile, storeKeySourceFromEnv, unlockStoreKey, type StoreKeySource } from './keys.ts'
import type { CaseSchema } from './schema.ts'

/**
 * A region's local store, on LevelDB (`level`) in the peer's data folder, or any abstract-level
 * database (memory-level in tests). One sublevel per kind of data, keys versioned by the layout:
 *
 *   meta     layout version, the schema, the import history and which imports are committed
 *   config   region, peer id, the salt of the record-id hashes
 *   cases    case records, keyed <import id>!<sequence>; readers see only committed imports
 *   ids      salted hash of each record id -> import id (duplicates are found here)
 *   series   case counts, keyed by the tag of their date
 *   models   every shared model, keyed by the tag of its job id
 *   rounds   the audit log: signed, chained round entries by job and sequence, and checkpoints
 *
 * Encrypted at rest (src/store/crypto.ts): every value is sealed with AES-256-GCM, and no key holds
 * what was imported or received: a date or a job id is replaced by its keyed tag (`keyTag`), record
 * ids by their salted hash, whose salt is itself an encrypted value. The key is kept outside the
 * data folder (src/store/keys.ts); DIR/store.json holds the store's id and a key check value.
 *
 * An import writes its rows under its own id and becomes visible with one small atomic write that
 * marks it committed; rows of an import that never committed (a failure, a kill -9) are invisible and
 * are removed the next time the store opens.
 */
export const LAYOUT_VERSION = 2
/** the layout before encryption, refused (epimesh store migrate moves it over) */
export const UNENCRYPTED_LAYOUT_VERSION = 1

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

export interface StoreOpenOptions {
  /** create the store when the folder has none (default: true for open and use, false for openWhenFree) */
  create?: boolean
  /** where the key comes from (default: the environment, see src/store/keys.ts) */
  key?: StoreKeySource
  /** for a database passed in: its keys (default: random ones, for a database that lives as long as the process) */
  keys?: StoreKeys
  /** open a store of the unencrypted layout to move it over (epimesh store migrate), creating its key */
  migrating?: boolean
}

const notInitialized = (dir: string): StoreNotInitializedError => new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)

export class Store {
  readonly db: Database
  readonly meta
  readonly config
  readonly cases
  readonly ids
  readonly series
  readonly models
  readonly rounds

  /** the store's random id (DIR/store.json); null for a database passed in */
  readonly storeId: string | null
  private readonly tagging: Buffer

  private constructor (db: Database, keys: StoreKeys, storeId: string | null) {
    this.db = db
    this.storeId = storeId
    this.tagging = keys.tagging
    const sealed = (kind: string): { valueEncoding: ReturnType<typeof sealedJsonEncoding> } => ({ valueEncoding: sealedJsonEncoding(keys.sealing, kind) })
    const level = (kind: string): string => `v${LAYOUT_VERSION}-${kind}`
    this.meta = db.sublevel<string, any>(level('meta'), sealed('meta'))
    this.config = db.sublevel<string, any>(level('config'), sealed('config'))
    this.cases = db.sublevel<string, any>(level('cases'), sealed('cases'))
    this.ids = db.sublevel<string, any>(level('ids'), sealed('ids'))
    this.series = db.sublevel<string, any>(level('series'), { ...sealed('series'), keyEncoding: taggedKeyEncoding(keys.tagging, 'series') })
    this.models = db.sublevel<string, any>(level('models'), { ...sealed('models'), keyEncoding: taggedKeyEncoding(keys.tagging, 'models') })
    this.rounds = db.sublevel<string, any>(level('rounds'), sealed('rounds'))
  }

  /**
   * Opens the store of a data folder (creating it, its key and DIR/store.json unless `create` is
   * false), or wraps an abstract-level database; removes what an interrupted import left behind.
   */
  static async open (location: string | Database, options: StoreOpenOptions = {}): Promise<Store> {
    if (typeof location !== 'string') {
      await location.open()
      return await Store.ready(location, options.keys ?? deriveStoreKeys(randomBytes(32), 'memory'), null)
    }
    const dir = resolve(location)
    const create = options.create ?? true
    const source = options.key ?? storeKeySourceFromEnv()
    if (!await secureFolder(dir, create)) throw notInitialized(dir)
    let description = await readStoreFile(dir)
    let unlocked
    if (description === null) {
      const unencrypted = await access(join(dir, 'store', 'CURRENT')).then(() => true, () => false)
      if (unencrypted && options.migrating !== true) {
        throw new StoreUnencryptedError(`the store in ${dir} was written unencrypted by an earlier version: run epimesh store migrate --dir ${dir} to encrypt it`)
      }
      if (!create && !unencrypted) throw notInitialized(dir)
      try {
        unlocked = await createStoreKey(dir, source)
      } catch (error) {
        // another process created it a moment ago
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
        description = await readStoreFile(dir)
        if (description === null) throw error
        unlocked = await unlockStoreKey(dir, description, source)
      }
    } else {
      unlocked = await unlockStoreKey(dir, description, source)
    }
    restrictUmask()
    const db = new Level<string, any>(join(dir, 'store')) as unknown as Database
    try {
      await db.open()
    } catch (error) {
      throw storageFailure(error) ?? error
    }
    try {
      return await Store.ready(db, unlocked.keys, unlocked.storeId, options.migrating === true)
    } catch (error) {
      await db.close().catch(() => {})
      throw storageFailure(error) ?? error
    }
  }

  private static async ready (db: Database, keys: StoreKeys, storeId: string | null, migrating = false): Promise<Store> {
    // an unencrypted layout left beside the encrypted one: a migration that did not finish
    if (!migrating && await Store.holdsUnencrypted(db)) {
      throw new StoreUnencryptedError('the store still holds records of the earlier, unencrypted layout (a migration that did not finish): run epimesh store migrate again')
    }
    const store = new Store(db, keys, storeId)
    const layout = await store.meta.get('layout')
    if (layout === undefined) await store.meta.put('layout', LAYOUT_VERSION)
    await store.removeUncommitted()
    return store
  }

  private static async holdsUnencrypted (db: Database): Promise<boolean> {
    for await (const _ of db.keys({ gt: `!v${UNENCRYPTED_LAYOUT_VERSION}-`, lt: `!v${UNENCRYPTED_LAYOUT_VERSION}.`, limit: 1 })) return true
    return false
  }

  /**
   * The sublevels of the unencrypted layout, in this store's database, for a migration to read and
   * empty (plain JSON values, natural keys).
   */
  unencryptedSublevel (kind: 'meta' | 'config' | 'cases' | 'ids' | 'series' | 'models' | 'rounds'): Store['meta'] {
    return this.db.sublevel<string, any>(`v${UNENCRYPTED_LAYOUT_VERSION}-${kind}`, { valueEncoding: 'json' })
  }

  /** Rewrites the table files without what was deleted (LevelDB keeps deleted values until it compacts). */
  async compact (): Promise<void> {
    const db = this.db as unknown as { compactRange?: (start: string, end: string) => Promise<void> }
    await db.compactRange?.('\u0000', '\uffff')
  }

  /** The keyed tag that stands for `natural` (a job id, a date) in the keys of `domain`: reveals nothing without the key. */
  keyTag (domain: string, natural: string): string {
    return keyTag(this.tagging, domain, natural)
  }

  /**
   * Opens the store in a data folder whose LevelDB another process (the running peer, an operator's
   * command) may hold for a moment: retries while it is locked, up to `waitMs`, then fails with
   * STORE_LOCKED. Does not create a store unless asked.
   */
  static async openWhenFree (dir: string, waitMs = 10_000, options: StoreOpenOptions = {}): Promise<Store> {
    const started = Date.now()
    for (let attempt = 0; ; attempt++) {
      try {
        return await Store.open(dir, { create: false, ...options })
      } catch (error) {
        if (!(error instanceof StoreLockedError)) throw error
        if (Date.now() - started >= waitMs) {
          throw new StoreLockedError(`the store in ${dir} has been held by another process (an import, a peer writing) for ${Math.round((Date.now() - started) / 1000)} s: try again when it is done`, { cause: error })
        }
        await new Promise((resolve) => setTimeout(resolve, Math.min(200, 10 * 2 ** attempt)))
      }
    }
  }

  /**
   * Runs `task` with the store of a data folder open, then closes it. Calls from one process are
   * serialised (LevelDB holds one lock per folder, even within a process); another process holding
   * the store is waited for, up to `waitMs`. A failure of the store or the disk comes out coded.
   */
  static async use<T> (dir: string, task: (store: Store) => Promise<T>, waitMs = 10_000, options: StoreOpenOptions = {}): Promise<T> {
    const key = resolve(dir)
    const previous = Store.users.get(key) ?? Promise.resolve()
    const run = previous.then(async () => {
      const store = await Store.openWhenFree(dir, waitMs, { create: true, ...options })
      try {
        return await task(store)
      } catch (error) {
        throw storageFailure(error) ?? error
      } finally {
        await store.close()
      }
    })
    const settled = run.then(() => {}, () => {})
    Store.users.set(key, settled)
    void settled.then(() => { if (Store.users.get(key) === settled) Store.users.delete(key) })
    return await run
  }

  private static readonly users = new Map<string, Promise<void>>()

  async close (): Promise<void> {
    try {
      await this.db.close()
    } catch (error) {
      throw storageFailure(error) ?? error
    }
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

  /** The case-count series by date (its keys are tags, in no order: the points are sorted here). */
  async * seriesPoints (): AsyncGenerator<{ date: string, count: number, population?: number }> {
    const points: Array<{ date: string, count: number, population?: number }> = []
    for await (const value of this.series.values()) points.push(value as { date: string, count: number, population?: number })
    points.sort((a, b) => a.date < b.date ? -1 : a.date > b.date ? 1 : 0)
    yield * points
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
    let leftOver = false
    for await (const key of this.cases.keys()) {
      if (!committed.has(key.slice(0, key.indexOf('!')))) {
        leftOver = true
        batch.del(key, { sublevel: this.cases })
        if (++size >= 10_000) await flush()
      }
    }
    // An import writes its record-id hashes in the same batches as its rows: without rows left over,
    // there are none to look for, and the scan of the hashes (every value decrypted, seconds for a
    // million records) is skipped. One left behind anyway would be harmless: an import counts a hash
    // as a duplicate only when the import that wrote it committed.
    if (!leftOver) {
      await flush()
      return
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
