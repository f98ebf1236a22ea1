import { randomBytes } from 'node:crypto'
import { access } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Level } from 'level'
import { appendAudit, listAuditJobs, readAuditEntries, readCheckpoints, type AuditWrite } from './audit.ts'
import { deriveStoreKeys, type StoreKeys } from './crypto.ts'
import { cut, echo, SchemaInvalidError, StoreCorruptError, StoreLockedError, StoreNotInitializedError, StoreUnencryptedError, storageFailure } from './errors.ts'
import { restrictUmask, secureFolder } from './files.ts'
import { createStoreKey, readStoreFile, storeKeySourceFromEnv, unlockStoreKey, type StoreKeySource } from './keys.ts'
import { attachLayout, LAYOUT_VERSION, StoreLayout, type CaseRow, type Database, type ImportRecord, type SeriesPoint } from './layout.ts'
import { checkedValue, storedName, storedSettingsSchema, type AuditCheckpoint, type StoredForecast, type StoredModel, type StoredStats, type StoreSettings } from './records.ts'
import { getForecast, getModel, getStats, listForecasts, listModels, listStats, putForecast, putModel, putStats } from './results.ts'
import { parseSchema, type CaseSchema } from './schema.ts'

export type { AuditWrite } from './audit.ts'
export type { CaseRow, Database, ImportRecord, SeriesPoint } from './layout.ts'
export type { AuditCheckpoint, ModelLineage, ModelSpecification, StoredForecast, StoredModel, StoredStats, StoreSettings } from './records.ts'
export { LAYOUT_VERSION, UNENCRYPTED_LAYOUT_VERSION } from './layout.ts'

/**
 * A region's local store, on LevelDB (`level`) in the peer's data folder, or any abstract-level
 * database (memory-level in tests), and the one way into it: typed methods that check what they are
 * given (see records.ts) and return typed values. How records are laid out in keys and sublevels is
 * private to src/store (layout.ts).
 *
 * What it keeps: the region's settings (region, peer id, the salt of its record-id hashes), the
 * schema and the history of imports, the case records and the case-count series (imported by
 * import.ts, all or nothing), every job's shared model and this region's forecasts, and the signed
 * round logs with their checkpoints.
 *
 * Encrypted at rest (crypto.ts): every value is sealed with AES-256-GCM (case records a chunk at a
 * time) but the owner of a record-id hash, a keyed tag of its import (layout.ts), and no key holds what
 * was imported or received: a date or a job id is replaced by its keyed tag, record ids by their salted
 * hash, whose salt is itself an encrypted value. The key is kept outside the data folder (keys.ts);
 * DIR/store.json holds the store's id and a key check value.
 *
 * An import writes its rows under its own id and becomes visible with one small atomic write that
 * marks it committed; rows of an import that never committed (a failure, a kill -9) are invisible and
 * are removed the next time the store opens.
 */
export interface StoreOpenOptions {
  /** create the store when the folder has none (default: true for open and use, false for openWhenFree) */
  create?: boolean
  /** where the key comes from (default: the environment, see src/store/keys.ts) */
  key?: StoreKeySource
  /** for a database passed in: its keys (default: random ones, for a database that lives as long as the process) */
  keys?: StoreKeys
  /** open a store of the unencrypted layout to move it over (migrate.ts), creating its key */
  migrating?: boolean
}

const notInitialized = (dir: string): StoreNotInitializedError => new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)

export class Store {
  /** the store's random id (DIR/store.json); null for a database passed in */
  readonly storeId: string | null
  readonly #layout: StoreLayout

  private constructor (layout: StoreLayout, storeId: string | null) {
    this.#layout = layout
    this.storeId = storeId
    attachLayout(this, layout)
  }

  /* ------------------------------------------------------------------------------------------ */
  /* Opening and closing                                                                         */
  /* ------------------------------------------------------------------------------------------ */

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
    const db = new Level<string, unknown>(join(dir, 'store')) as unknown as Database
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
    const layout = new StoreLayout(db, keys)
    // an unencrypted layout left beside the encrypted one: a migration that did not finish
    if (!migrating && await layout.holdsUnencrypted()) {
      throw new StoreUnencryptedError('the store still holds records of the earlier, unencrypted layout (a migration that did not finish): run epimesh store migrate again')
    }
    if (await layout.meta.get(StoreLayout.layoutKey) === undefined) await layout.meta.put(StoreLayout.layoutKey, LAYOUT_VERSION)
    await layout.removeUncommitted()
    return new Store(layout, storeId)
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
   * Runs `task` with the store of a data folder open, then closes it: how a running peer uses its
   * store, so that the operator's commands can read it between whiles. Calls from one process are
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
      await this.#layout.db.close()
    } catch (error) {
      throw storageFailure(error) ?? error
    }
  }

  /* ------------------------------------------------------------------------------------------ */
  /* Settings and schema                                                                         */
  /* ------------------------------------------------------------------------------------------ */

  /** The region this store serves, or null before init. */
  async region (): Promise<string | null> {
    return await this.setting('region')
  }

  /** This region's peer id, or null before init. */
  async peerId (): Promise<string | null> {
    return await this.setting('peerId')
  }

  private async setting (name: 'region' | 'peerId'): Promise<string | null> {
    const value = await this.#layout.config.get(name)
    return value === undefined ? null : checkedValue(storedName, value, name)
  }

  /** Sets the region and the peer id (those given), checked first. */
  async configure (settings: StoreSettings): Promise<void> {
    const checked = checkedValue(storedSettingsSchema, settings, 'setting')
    const batch = this.#layout.config.batch()
    if (checked.region !== undefined) batch.put('region', checked.region)
    if (checked.peerId !== undefined) batch.put('peerId', checked.peerId)
    await batch.write()
  }

  /** The salt of this store's record-id hashes (made on first use). */
  async salt (): Promise<string> {
    return await this.#layout.salt()
  }

  /** The schema of the case records (of the first import, or set with replaceSchema), or null. */
  async schema (): Promise<CaseSchema | null> {
    return await this.#layout.schema()
  }

  /**
   * Replaces the schema, only if every stored record passes the new one (else SCHEMA_INVALID, with
   * examples, naming `source`); returns how many records were checked.
   */
  async replaceSchema (schema: CaseSchema, source = 'the new schema'): Promise<number> {
    const checked = parseSchema(schema, source)
    const problems: string[] = []
    let records = 0
    for await (const row of this.rows()) {
      records++
      if (problems.length < 100) problems.push(...schemaProblems(checked, row, records))
    }
    if (problems.length > 0) throw new SchemaInvalidError(`${source}: ${problems.length >= 100 ? 'at least 100' : problems.length} problem(s) in the stored records under the new schema, for example: ${problems.slice(0, 5).join('; ')}`)
    await this.#layout.meta.put(StoreLayout.schemaKey, checked)
    return records
  }

  /* ------------------------------------------------------------------------------------------ */
  /* Case records and series (written by import.ts)                                              */
  /* ------------------------------------------------------------------------------------------ */

  /** The imports that committed, in the order they ran. */
  async imports (): Promise<ImportRecord[]> {
    return [...(await this.#layout.committedImports()).values()]
  }

  /** Every committed case record, in import order. */
  async * rows (): AsyncGenerator<CaseRow> {
    yield * this.#layout.committedCases()
  }

  async allRows (): Promise<CaseRow[]> {
    const rows: CaseRow[] = []
    for await (const row of this.rows()) rows.push(row)
    return rows
  }

  async count (): Promise<number> {
    let count = 0
    for await (const [, rows] of this.#layout.committedChunks()) count += rows.length
    return count
  }

  /** The case-count series, by date. */
  async readSeries (): Promise<SeriesPoint[]> {
    const points: SeriesPoint[] = []
    for await (const value of this.#layout.series.values()) points.push(value)
    // the keys are tags, in no order
    return points.sort((a, b) => a.date < b.date ? -1 : a.date > b.date ? 1 : 0)
  }

  /* ------------------------------------------------------------------------------------------ */
  /* Results of jobs: models and forecasts                                                       */
  /* ------------------------------------------------------------------------------------------ */

  /** Keeps a job's shared model (a job stored again replaces it). */
  async putModel (model: StoredModel): Promise<void> {
    await putModel(this.#layout, model)
  }

  async getModel (job: string): Promise<StoredModel | null> {
    return await getModel(this.#layout, job)
  }

  /** Every model this region holds, oldest first. */
  async listModels (): Promise<StoredModel[]> {
    return await listModels(this.#layout)
  }

  /** The model made last, or null. */
  async latestModel (): Promise<StoredModel | null> {
    return (await this.listModels()).at(-1) ?? null
  }

  /**
   * The head of this region's round log of a job as the store holds it: how many entries, and the hash
   * of the last (null when it holds none).
   */
  async auditHead (job: string): Promise<{ length: number, hash: string } | null> {
    const lines = await this.readAuditEntries(job)
    const last = lines.at(-1)
    if (last === undefined) return null
    const hash = (JSON.parse(last) as { hash?: unknown }).hash
    if (typeof hash !== 'string') throw new StoreCorruptError(`the last entry of the round log of job ${cut(job)} has no hash`)
    return { length: lines.length, hash }
  }

  /**
   * Writes the head of the job's round log (as the store holds it now) into the lineage of its model;
   * false when there is no such model, no lineage, or no log.
   */
  async sealModelLineage (job: string): Promise<boolean> {
    const model = await this.getModel(job)
    if (model?.lineage === undefined) return false
    const head = await this.auditHead(job)
    if (head === null) return false
    await this.putModel({ ...model, lineage: { ...model.lineage, auditHead: head } })
    return true
  }

  /** Keeps this region's outcome of a forecasting job. */
  async putForecast (forecast: StoredForecast): Promise<void> {
    await putForecast(this.#layout, forecast)
  }

  async getForecast (job: string): Promise<StoredForecast | null> {
    return await getForecast(this.#layout, job)
  }

  /** Every forecast this region holds, oldest first. */
  async listForecasts (): Promise<StoredForecast[]> {
    return await listForecasts(this.#layout)
  }

  /** The forecast made last, or null. */
  async latestForecast (): Promise<StoredForecast | null> {
    return (await this.listForecasts()).at(-1) ?? null
  }

  /** Keeps a statistics job's published result. */
  async putStats (stats: StoredStats): Promise<void> {
    await putStats(this.#layout, stats)
  }

  async getStats (job: string): Promise<StoredStats | null> {
    return await getStats(this.#layout, job)
  }

  /** Every statistics job's result this region holds, oldest first. */
  async listStats (): Promise<StoredStats[]> {
    return await listStats(this.#layout)
  }

  /** Whether a job has finished here: its model, its forecast or its statistics are kept. */
  async hasResult (job: string): Promise<boolean> {
    return (await this.getModel(job)) !== null || (await this.getForecast(job)) !== null || (await this.getStats(job)) !== null
  }

  /* ------------------------------------------------------------------------------------------ */
  /* Signed round logs                                                                           */
  /* ------------------------------------------------------------------------------------------ */

  /** Appends entry lines and stores checkpoints (merging countersignatures), in one atomic write. */
  async appendAudit (write: AuditWrite): Promise<void> {
    await appendAudit(this.#layout, write)
  }

  /** A job's entry lines, in order, exactly as they were signed. */
  async readAuditEntries (job: string): Promise<string[]> {
    return await readAuditEntries(this.#layout, job)
  }

  /** The checkpoints held for a job, by peer, then length. */
  async readCheckpoints (job: string): Promise<AuditCheckpoint[]> {
    return await readCheckpoints(this.#layout, job)
  }

  /** The jobs with a round log in this store, by id. */
  async listAuditJobs (): Promise<string[]> {
    return await listAuditJobs(this.#layout)
  }
}

/** A stored record's problems under a schema (its values are already typed). */
function schemaProblems (schema: CaseSchema, row: CaseRow, index: number): string[] {
  const problems: string[] = []
  for (const [column, rule] of Object.entries(schema.columns)) {
    if ('action' in rule) continue
    const value = row[column]
    if (value === null || value === undefined) {
      if (rule.required === true) problems.push(`record ${index}, ${cut(column)}: missing`)
      continue
    }
    const shown = typeof value === 'string' ? echo(value) : String(value)
    if (rule.type === 'number' && (typeof value !== 'number' || (rule.min !== undefined && value < rule.min) || (rule.max !== undefined && value > rule.max))) problems.push(`record ${index}, ${cut(column)}: ${shown}`)
    if (rule.type === 'category' && !rule.levels.includes(String(value))) problems.push(`record ${index}, ${cut(column)}: ${shown}`)
    if (rule.type === 'date' && typeof value !== 'string') problems.push(`record ${index}, ${cut(column)}: ${shown}`)
  }
  return problems
}
