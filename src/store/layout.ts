import { hash, randomBytes } from 'node:crypto'
import type { AbstractLevel, AbstractSublevel } from 'abstract-level'
import { keyTag, sealedJsonEncoding, taggedKeyEncoding, type StoreKeys } from './crypto.ts'
import type { CaseSchema } from './schema.ts'

/**
 * The store's layout: one sublevel per kind of record, and every key, spelled here and nowhere else.
 * It is private to src/store (a lint rule keeps every other folder from importing this file): the
 * rest of the program reads and writes through the typed methods of `Store`, and the modules of
 * src/store that work on raw records (import, purge, migration, the audit log) reach the layout of
 * a store with `layoutOf`.
 *
 *   meta     layout                            the layout version
 *            schema                            the case schema (of the first import, or set deliberately)
 *            import!<import id>                an import's record: present once the import committed
 *   config   region, peerId, salt              the salt is that of the record-id hashes
 *   cases    <import id>!<sequence>            a chunk of an import's case records, in file order, by
 *                                              column (CaseChunk; readers see committed imports only);
 *                                              a store written before chunks holds one row a key, and
 *                                              readers take both (isCaseChunk)
 *            <import id>~seen!<record-id hash>  while an import runs: a record already stored that it
 *                                              met (no import is named "<id>~seen", so readers never
 *                                              see one, and one left by a crash goes with the rest)
 *   id-owners <salted hash of a record id>     the tag of the import that wrote it (duplicates are
 *                                              found here), not sealed: see importTag
 *   ids      <salted hash of a record id>      as id-owners, written before it: the import's id, sealed
 *                                              (read and cleaned, never written by an import)
 *   series   tag of the date                   a count, with the date in the value
 *   models   tag of the job id                 a job's shared model
 *            tag of "<job id>!forecast"        a forecasting job's outcome for this region
 *            tag of "<job id>!stats"           a statistics job's published result
 *   rounds   e!<job tag>!<sequence>            an audit entry (its canonical line)
 *            c!<job tag>!<peer tag>!<length>   a checkpoint, with the countersignatures gathered
 *            j!<job tag>                       the job's id, for the list of jobs with a log
 *
 * Sequences and lengths are 10 decimal digits, so that keys sort by them. Encrypted at rest (see
 * crypto.ts): every value is sealed with the name of its kind; keys that would carry what was
 * imported or received (a date, a job or peer id) are keyed tags, and record ids salted hashes.
 */
export const LAYOUT_VERSION = 2
/** the layout before encryption, refused (Store.migrate moves it over) */
export const UNENCRYPTED_LAYOUT_VERSION = 1
/** the largest sequence number or log length a key can hold (10 digits) */
export const MAX_SEQUENCE = 9_999_999_999

export type CaseCell = number | string | null
export type CaseRow = Record<string, CaseCell>
/** a chunk of case records, by column: `rows[i][j]` is the value of `columns[j]` in the chunk's i-th record */
export interface CaseChunk { columns: string[], rows: CaseCell[][] }
/** a value of the cases sublevel: a chunk, one row (written before chunks), or a seen mark ({}) */
export type CaseValue = CaseChunk | CaseRow

/** Whether a value of the cases sublevel is a chunk: a record's values are never arrays. */
export function isCaseChunk (value: CaseValue): value is CaseChunk {
  return Array.isArray(value.columns) && Array.isArray(value.rows)
}

/** The records of a chunk, as rows. */
export function chunkRows (chunk: CaseChunk): CaseRow[] {
  const { columns } = chunk
  return chunk.rows.map((cells) => {
    const row: CaseRow = {}
    for (let index = 0; index < columns.length; index++) row[columns[index] as string] = cells[index] ?? null
    return row
  })
}

/** Rows of one chunk (all with the same columns, in the same order) as a chunk. */
export function toCaseChunk (rows: CaseRow[]): CaseChunk {
  const columns = Object.keys(rows[0] ?? {})
  return { columns, rows: rows.map((row) => columns.map((column) => row[column] ?? null)) }
}

export interface SeriesPoint {
  date: string
  count: number
  population?: number
}

export interface ImportRecord {
  id: string
  kind: 'cases' | 'series'
  file: string
  rows: number
  duplicates: number
  committedAt: string
}

export type Database = AbstractLevel<string | Buffer | Uint8Array, string, unknown>
type Sublevel<V> = AbstractSublevel<Database, string | Buffer | Uint8Array, string, V>

export const RECORD_KINDS = ['meta', 'config', 'cases', 'ids', 'series', 'models', 'rounds'] as const
export type RecordKind = typeof RECORD_KINDS[number]

const sequence = (value: number): string => String(value).padStart(10, '0')

export class StoreLayout {
  readonly db: Database
  /** layout, schema, import records: values of several shapes */
  readonly meta: Sublevel<unknown>
  readonly config: Sublevel<string>
  /** chunks of case records (arrays), or single records of a store written before chunks, and seen marks ({}) */
  readonly cases: Sublevel<CaseValue>
  /** record-id hash -> tag of the import that wrote it */
  readonly idOwners: Sublevel<string>
  /** record-id hash -> id of the import that wrote it, sealed: what imports wrote before idOwners */
  readonly ids: Sublevel<string>
  readonly series: Sublevel<SeriesPoint>
  /** models and forecasts, checked by their schemas when read (results.ts) */
  readonly models: Sublevel<unknown>
  /** entry lines and job ids (strings) and checkpoints, checked when read (audit.ts) */
  readonly rounds: Sublevel<unknown>
  private readonly tagging: Buffer

  constructor (db: Database, keys: StoreKeys) {
    this.db = db
    this.tagging = keys.tagging
    const sealed = <V>(kind: RecordKind): { valueEncoding: ReturnType<typeof sealedJsonEncoding<V>> } => ({ valueEncoding: sealedJsonEncoding<V>(keys.sealing, kind) })
    const name = (kind: RecordKind): string => `v${LAYOUT_VERSION}-${kind}`
    this.meta = db.sublevel<string, unknown>(name('meta'), sealed('meta'))
    this.config = db.sublevel<string, string>(name('config'), sealed('config'))
    // a chunk's JSON is deflated before it is sealed (the files of a store of chunks were 1.6 times the size of
    // plain JSON under LevelDB's own compression, which sealed values defeat); records of a store written
    // before chunks were not, and read either way
    this.cases = db.sublevel<string, CaseValue>(name('cases'), { valueEncoding: sealedJsonEncoding<CaseValue>(keys.sealing, 'cases', { compress: isCaseChunk }) })
    this.ids = db.sublevel<string, string>(name('ids'), sealed('ids'))
    this.idOwners = db.sublevel<string, string>(`v${LAYOUT_VERSION}-id-owners`, { valueEncoding: 'utf8' })
    this.series = db.sublevel<string, SeriesPoint>(name('series'), { ...sealed('series'), keyEncoding: taggedKeyEncoding(keys.tagging, 'series') })
    this.models = db.sublevel<string, unknown>(name('models'), { ...sealed('models'), keyEncoding: taggedKeyEncoding(keys.tagging, 'models') })
    this.rounds = db.sublevel<string, unknown>(name('rounds'), sealed('rounds'))
  }

  /* keys ------------------------------------------------------------------------------------- */

  static readonly layoutKey = 'layout'
  static readonly schemaKey = 'schema'
  static readonly importPrefix = 'import!'
  importKey (importId: string): string { return `${StoreLayout.importPrefix}${importId}` }

  caseKey (importId: string, index: number): string { return `${importId}!${sequence(index)}` }
  /** the range of an import's case keys */
  importCases (importId: string): { gte: string, lt: string } { return { gte: `${importId}!`, lt: `${importId}!\uffff` } }
  /** the mark of a record id already stored that an import has met (its second copy is a duplicate) */
  seenMark (importId: string, idHash: string): string { return `${importId}~seen!${idHash}` }
  seenMarks (importId: string): { gte: string, lt: string } { return { gte: `${importId}~seen!`, lt: `${importId}~seen!\uffff` } }
  /**
   * The tag that stands for an import in the id-owners sublevel: a keyed tag of its id, so that the
   * value needs no sealing (an AES-GCM seal a record cost more than the rest of an import) and still
   * names no import. It is the same for every record of one import: a reader of the files learns which
   * record-id hashes came in together, as the case keys already show how many came in each import.
   */
  importTag (importId: string): string {
    let tag = this.importTags.get(importId)
    if (tag === undefined) {
      tag = keyTag(this.tagging, 'ids.import', importId)
      this.importTags.set(importId, tag)
    }
    return tag
  }

  private readonly importTags = new Map<string, string>()
  /** the import a case key belongs to */
  importOfCase (key: string): string { return key.slice(0, key.indexOf('!')) }

  /** natural keys of the models sublevel (tagged by its key encoding) */
  modelKey (job: string): string { return job }
  forecastKey (job: string): string { return `${job}!forecast` }
  statsKey (job: string): string { return `${job}!stats` }

  private jobTag (job: string): string { return keyTag(this.tagging, 'rounds.job', job) }
  entryKey (job: string, seq: number): string { return `e!${this.jobTag(job)}!${sequence(seq)}` }
  entries (job: string): { gte: string, lt: string } { return { gte: `e!${this.jobTag(job)}!`, lt: `e!${this.jobTag(job)}!\uffff` } }
  checkpointKey (job: string, peer: string, length: number): string { return `c!${this.jobTag(job)}!${keyTag(this.tagging, 'rounds.peer', peer)}!${sequence(length)}` }
  checkpoints (job: string): { gte: string, lt: string } { return { gte: `c!${this.jobTag(job)}!`, lt: `c!${this.jobTag(job)}!\uffff` } }
  auditJobKey (job: string): string { return `j!${this.jobTag(job)}` }
  static readonly auditJobs = { gte: 'j!', lt: 'j!\uffff' }

  /* records that several modules read -------------------------------------------------------- */

  async schema (): Promise<CaseSchema | null> {
    return (await this.meta.get(StoreLayout.schemaKey) as CaseSchema | undefined) ?? null
  }

  async committedImports (): Promise<Map<string, ImportRecord>> {
    const imports = new Map<string, ImportRecord>()
    for await (const [key, value] of this.meta.iterator({ gte: StoreLayout.importPrefix, lt: `${StoreLayout.importPrefix}\uffff` })) {
      imports.set(key.slice(StoreLayout.importPrefix.length), value as ImportRecord)
    }
    return imports
  }

  /** Every committed value of the cases sublevel, as its key and its rows (a chunk, or one row of a store written before chunks), in import order. */
  async * committedChunks (): AsyncGenerator<[string, CaseRow[]]> {
    const committed = await this.committedImports()
    for await (const [key, value] of this.cases.iterator()) {
      if (committed.has(this.importOfCase(key))) yield [key, isCaseChunk(value) ? chunkRows(value) : [value]]
    }
  }

  /** Every committed case record, in import order. */
  async * committedCases (): AsyncGenerator<CaseRow> {
    for await (const [, rows] of this.committedChunks()) yield * rows
  }

  /**
   * The import that wrote each record-id hash, or undefined: looked up in id-owners, then in the ids of
   * a store written before it. `imports` are the ids that may own one (the committed imports and the
   * one running); a tag of none of them (an import that never committed) is given as ''.
   */
  async idOwnersOf (hashes: string[], imports: Iterable<string>): Promise<Array<string | undefined>> {
    const byTag = new Map<string, string>()
    for (const importId of imports) byTag.set(this.importTag(importId), importId)
    const tags = await this.idOwners.getMany(hashes)
    const owners = tags.map((tag) => tag === undefined ? undefined : byTag.get(tag) ?? '')
    const missing: number[] = []
    owners.forEach((owner, index) => { if (owner === undefined) missing.push(index) })
    if (missing.length > 0 && await this.holdsSealedIds()) {
      const earlier = await this.ids.getMany(missing.map((index) => hashes[index] as string))
      missing.forEach((index, at) => { owners[index] = earlier[at] })
    }
    return owners
  }

  private sealedIds: boolean | null = null
  /** Whether the ids of a store written before id-owners hold any entry (checked once a layout: imports no longer add to them). */
  async holdsSealedIds (): Promise<boolean> {
    if (this.sealedIds === null) {
      this.sealedIds = false
      for await (const _ of this.ids.keys({ limit: 1 })) this.sealedIds = true
    }
    return this.sealedIds
  }

  async salt (): Promise<string> {
    let salt = await this.config.get('salt')
    if (salt === undefined) {
      salt = randomBytes(32).toString('hex')
      await this.config.put('salt', salt)
    }
    return salt
  }

  /** Rows of an import that never committed (a failure, a kill -9), and their record-id hashes, removed. */
  async removeUncommitted (): Promise<void> {
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
      if (!committed.has(this.importOfCase(key))) {
        leftOver = true
        batch.del(key, { sublevel: this.cases })
        if (++size >= 10_000) await flush()
      }
    }
    // An import writes its record-id hashes in the same batches as its rows: without rows left over,
    // there are none to look for, and the scan of the hashes (every value decrypted, seconds for a
    // million records) is skipped. One left behind anyway would be harmless: an import counts a hash
    // as a duplicate only when the import that wrote it committed.
    if (leftOver) {
      const tags = new Set([...committed.keys()].map((importId) => this.importTag(importId)))
      for await (const [key, tag] of this.idOwners.iterator()) {
        if (!tags.has(tag)) {
          batch.del(key, { sublevel: this.idOwners })
          if (++size >= 10_000) await flush()
        }
      }
      for await (const [key, value] of this.ids.iterator()) {
        if (!committed.has(value)) {
          batch.del(key, { sublevel: this.ids })
          if (++size >= 10_000) await flush()
        }
      }
    }
    await flush()
    await batch.close()
  }

  /* the unencrypted layout, for the migration ------------------------------------------------ */

  async holdsUnencrypted (): Promise<boolean> {
    for await (const _ of this.db.keys({ gt: `!v${UNENCRYPTED_LAYOUT_VERSION}-`, lt: `!v${UNENCRYPTED_LAYOUT_VERSION}.`, limit: 1 })) return true
    return false
  }

  /** A sublevel of the unencrypted layout in this database: plain JSON values, natural keys. */
  unencrypted (kind: RecordKind): Sublevel<unknown> {
    return this.db.sublevel<string, unknown>(`v${UNENCRYPTED_LAYOUT_VERSION}-${kind}`, { valueEncoding: 'json' })
  }

  /** Rewrites the table files without what was deleted (LevelDB keeps deleted values until it compacts). */
  async compact (): Promise<void> {
    const db = this.db as unknown as { compactRange?: (start: string, end: string) => Promise<void> }
    await db.compactRange?.('\u0000', '\uffff')
  }
}

/** The salted hash that stands for a record id (or a hashed column's value). */
export function hashRecordId (salt: string, id: string): string {
  // one call rather than a Hash object (a million calls in a large import): SHA-256 of salt, NUL, id
  return hash('sha256', `${salt}\u0000${id}`, 'base64url')
}

/*
 * The layout of each open store, for the modules of src/store only. A WeakMap rather than a public
 * field: a Store's layout cannot be reached through the Store itself.
 */
const layouts = new WeakMap<object, StoreLayout>()

export function attachLayout (store: object, layout: StoreLayout): void {
  layouts.set(store, layout)
}

export function layoutOf (store: object): StoreLayout {
  const layout = layouts.get(store)
  if (layout === undefined) throw new TypeError('not an open store')
  return layout
}
