import { readFile, stat } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline/promises'
import type { Command } from 'commander'
import { EpimeshError } from '../../errors.ts'
import { parseSchema, type CaseSchema } from '../../store/schema.ts'
import { importCases, importSeries } from '../../store/import.ts'
import { Store } from '../../store/store.ts'
import { cut, DataFolderUnusableError, echo, OptionInvalidError, PurgeNotConfirmedError, SchemaInvalidError, StoreIoError, StoreLockedError, StoreNotInitializedError, storageFailure } from '../../store/errors.ts'
import { cutoffDate, purgeBefore, summarize, type PurgeReport } from '../../store/summary.ts'
import { isIsoDate } from '../../store/values.ts'
import { dirOption } from './dir-option.ts'

/** Schema files are small; a larger one is not a schema. */
const MAX_SCHEMA_BYTES = 1 << 20

async function readSchemaFile (path: string): Promise<CaseSchema> {
  let text: string
  try {
    if ((await stat(path)).size > MAX_SCHEMA_BYTES) throw new SchemaInvalidError(`${path}: larger than ${MAX_SCHEMA_BYTES} bytes; not a schema`)
    text = new TextDecoder('utf-8', { fatal: true }).decode(await readFile(path))
  } catch (error) {
    if (error instanceof EpimeshError) throw error
    throw new SchemaInvalidError(`cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? 'not UTF-8 text'}`, { cause: error })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new SchemaInvalidError(`${path}: not JSON: ${cut((error as Error).message)}`, { cause: error })
  }
  return parseSchema(json, path)
}

/** What makes a folder unusable, as opposed to a disk that fails (ENOSPC, EIO: STORE_IO_FAILED). */
const UNUSABLE = new Set(['EACCES', 'EPERM', 'ENOTDIR', 'EISDIR', 'EEXIST', 'EROFS', 'ENAMETOOLONG', 'ELOOP'])

const errnoOf = (error: unknown): string | undefined => {
  for (let current = error; current instanceof Error; current = current.cause) {
    const code = (current as NodeJS.ErrnoException).code
    if (code !== undefined && UNUSABLE.has(code)) return code
    if (/permission denied/i.test(current.message)) return 'EACCES'
  }
  return undefined
}

/** A data folder's failure as a coded error: a folder others hold, one that cannot be used, or an I/O error. */
export function storeError (dir: string, error: unknown): Error {
  if (error instanceof EpimeshError) return error
  const system = storageFailure(error)
  if (system !== null) return system
  if ((error as { cause?: { code?: string } }).cause?.code === 'LEVEL_LOCKED') return new StoreLockedError(`the store in ${dir} is held by another process (a running peer, another command); try again when it is free`, { cause: error })
  const errno = errnoOf(error)
  if (errno !== undefined) return new DataFolderUnusableError(`${dir} cannot be used: ${errno}`, { cause: error })
  const code = (error as { code?: unknown }).code
  if (typeof code === 'string' && (code.startsWith('LEVEL_') || /^E[A-Z]+$/.test(code))) return new StoreIoError(`the store in ${dir} failed: ${cut((error as Error).message)}`, { cause: error })
  return error instanceof Error ? error : new Error(String(error))
}

/** A data folder made by init: refused before anything is created in it. */
export async function requireDataFolder (dir: string): Promise<void> {
  const notInitialized = (): StoreNotInitializedError => new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
  try {
    if (!(await stat(dir)).isDirectory()) throw new DataFolderUnusableError(`${dir} is not a folder`)
    if (!(await stat(join(dir, 'store'))).isDirectory()) throw notInitialized()
  } catch (error) {
    if (error instanceof EpimeshError) throw error
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw notInitialized()
    throw storeError(dir, error)
  }
}

/**
 * Runs `work` with the store of a data folder made by init (or, for init itself, a new one), waiting
 * up to 10 s for another process holding it; every failure of the folder or the store comes out
 * coded. The operator's commands (init, import, schema, data summary, purge, model, forecast) use it.
 */
export async function withStore<T> (dir: string, work: (store: Store) => Promise<T>, requireInit = true): Promise<T> {
  if (requireInit) await requireDataFolder(dir)
  let store: Store
  try {
    // init (requireInit false) makes the store, its key and DIR/store.json; every other command needs them
    store = await Store.openWhenFree(dir, 10_000, { create: !requireInit })
  } catch (error) {
    throw storeError(dir, error)
  }
  try {
    if (requireInit && (await store.region()) === null) throw new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
    return await work(store)
  } catch (error) {
    throw storeError(dir, error)
  } finally {
    await store.close()
  }
}

/**
 * Asks a yes-or-no question on the terminal; null when there is none to ask on (input not a TTY).
 * Only "y" or "yes" is a yes.
 */
export async function confirmOnTerminal (question: string, input: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<boolean | null> {
  if (input.isTTY !== true) return null
  const terminal = createInterface({ input, output })
  try {
    const answer = await terminal.question(question)
    return /^\s*(y|yes)\s*$/i.test(answer)
  } finally {
    terminal.close()
  }
}

const out = (line: string): void => { process.stdout.write(`${line}\n`) }

function parseThreshold (value: string): number {
  const threshold = /^\d{1,7}$/.test(value.trim()) ? Number(value) : Number.NaN
  if (!(threshold >= 1)) throw new OptionInvalidError(`--threshold must be a whole number from 1, got ${echo(value)}`)
  return threshold
}

export function registerStoreCommands (program: Command): void {
  program.command('init')
    .description('create a peer\'s data folder: its store and its persistent identity')
    .addOption(dirOption('the data folder to create'))
    .requiredOption('--region <name>', 'the region this peer serves')
    .option('--json', 'one JSON object on stdout: {peerId, region, dir}', false)
    .action(async (options: { dir: string, region: string, json: boolean }) => {
      if (options.region.trim() === '') throw new OptionInvalidError('--region must name the region')
      // the store first (folder 0700, its key outside the folder), then the identity: an init whose
      // store could not be made (a problem with its key, say) leaves no identity and can be run again
      const peerId = await withStore(options.dir, async (store) => {
        // the region is checked by the store before an identity is made
        await store.configure({ region: options.region })
        // loaded here: libp2p's key code (10 MB) is for init alone, not for import and the other commands
        const { createIdentity } = await import('../identity.ts')
        const { peerId } = await createIdentity(options.dir)
        await store.configure({ peerId })
        await store.salt()
        return peerId
      }, false)
      out(options.json ? JSON.stringify({ peerId, region: options.region, dir: resolve(options.dir) }) : `initialised ${options.dir} for ${options.region}: peer id ${peerId}`)
    })

  program.command('import')
    .description('import case records (--cases) or case counts (--series), validated, all or nothing')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--cases <file.csv>', 'case records')
    .option('--schema <schema.json>', 'their schema (first import; later ones must match the stored one)')
    .option('--series <file.csv>', 'case counts: date,count[,population]')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, cases?: string, schema?: string, series?: string, json: boolean }) => {
      if (options.cases === undefined && options.series === undefined) throw new OptionInvalidError('give --cases or --series')
      if (options.schema !== undefined && options.cases === undefined) throw new OptionInvalidError('--schema describes case records: give it with --cases')
      const schema = options.schema === undefined ? undefined : await readSchemaFile(options.schema)
      await withStore(options.dir, async (store) => {
        const started = process.hrtime.bigint()
        if (options.cases !== undefined) {
          const report = await importCases(store, { file: options.cases, ...(schema === undefined ? {} : { schema }) })
          const seconds = Number(process.hrtime.bigint() - started) / 1e9
          if (options.json) out(JSON.stringify({ ...report, seconds, rowsPerSecond: report.rows / seconds, peakMemoryMb: process.resourceUsage().maxRSS / 1024 }))
          else {
            out(`imported ${report.rows} records from ${options.cases} (${report.duplicates} already in the store, not stored again) in ${seconds.toFixed(1)} s`)
            if (report.droppedColumns.length > 0) out(`dropped columns: ${report.droppedColumns.join(', ')}`)
            if (report.hashedColumns.length > 0) out(`hashed columns: ${report.hashedColumns.join(', ')}`)
            for (const entry of report.normalised) {
              out(entry.kind === 'date'
                ? `normalised ${entry.column}: ${entry.count} dates written ${entry.format ?? ''} stored as YYYY-MM-DD`
                : `normalised ${entry.column}: ${entry.count} values stored as their level (${entry.changes.map((change) => `${JSON.stringify(change.from)} -> ${JSON.stringify(change.to)} ${change.count}`).join(', ')})`)
            }
            if (report.inferred) out(`no schema given; the one inferred and kept for later imports:\n${JSON.stringify(report.schema, null, 2)}`)
          }
        }
        if (options.series !== undefined) {
          const report = await importSeries(store, options.series)
          out(options.json ? JSON.stringify(report) : `imported ${report.points} dates of case counts from ${options.series}${report.replaced > 0 ? ` (${report.replaced} of them replace counts already stored)` : ''}`)
        }
      })
    })

  const data = program.command('data').description('aggregates of the local store')
  data.command('summary')
    .description('counts, missingness, ranges, outcome balance, series coverage; small cells suppressed')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--threshold <n>', 'smallest count shown', '3')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, threshold: string, json: boolean }) => {
      const threshold = parseThreshold(options.threshold)
      const summary = await withStore(options.dir, async (store) => await summarize(store, threshold))
      if (options.json) {
        out(JSON.stringify(summary))
        return
      }
      out(`${summary.records} records from ${summary.imports} imports (counts below ${summary.threshold} shown as <${summary.threshold})`)
      if (summary.outcome !== null) out(`outcome ${summary.outcome.column}: ${Object.entries(summary.outcome.counts).map(([level, count]) => `${level} ${count}`).join(', ')}`)
      for (const [column, entry] of Object.entries(summary.columns)) {
        const ranged = entry.type === 'number' || entry.type === 'date'
        const range = `${entry.min === undefined ? (ranged ? `, range suppressed (fewer than ${summary.threshold} values)` : '') : `, observed ${entry.min} to ${entry.max} (the ${summary.threshold}${summary.threshold === 1 ? 'st' : summary.threshold === 2 ? 'nd' : summary.threshold === 3 ? 'rd' : 'th'} lowest to highest value)`}${entry.allowed === undefined ? '' : `, allowed ${entry.allowed.min ?? '-'} to ${entry.allowed.max ?? '-'}`}`
        const levels = entry.levels === undefined ? '' : `, ${Object.entries(entry.levels).map(([level, count]) => `${level} ${count}`).join(', ')}`
        out(`  ${column.padEnd(20)} ${entry.type.padEnd(9)} missing ${entry.missing}${range}${levels}`)
      }
      out(`series: ${summary.series.points} dates${summary.series.first === null ? '' : ` from ${summary.series.first} to ${summary.series.last}`}, ${summary.series.total} cases`)
    })

  program.command('schema')
    .description('show the store\'s schema, or replace it deliberately (every stored record must pass the new one)')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--set <schema.json>', 'the new schema')
    .option('--json', 'one JSON object on stdout: {schema} (null before the first import), or with --set {replaced, records}', false)
    .action(async (options: { dir: string, set?: string, json: boolean }) => {
      const replacement = options.set === undefined ? undefined : await readSchemaFile(options.set)
      await withStore(options.dir, async (store) => {
        if (replacement === undefined) {
          const schema = await store.schema()
          if (options.json) out(JSON.stringify({ schema }))
          else out(schema === null ? 'no schema yet: the first import sets it' : JSON.stringify(schema, null, 2))
          return
        }
        const records = await store.replaceSchema(replacement, options.set as string)
        out(options.json ? JSON.stringify({ replaced: true, records }) : `schema replaced; all ${records} stored records pass it`)
      })
    })

  program.command('purge')
    .description('remove personal records older than the retention period; reports what it removed')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--older-than <period>', 'retention period: a number and its unit, d, m or y (12m, 90d, 1y)', '12m')
    .option('--now <date>', 'today, YYYY-MM-DD (default: the clock)')
    .option('--dry-run', 'only report what would be removed', false)
    .option('--yes', 'remove every record without asking, when the period covers them all', false)
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, olderThan: string, now?: string, dryRun: boolean, yes: boolean, json: boolean }) => {
      if (options.now !== undefined && !isIsoDate(options.now.trim())) throw new OptionInvalidError(`--now must be a date, YYYY-MM-DD; got ${echo(options.now)}`)
      const now = options.now === undefined ? new Date() : new Date(`${options.now.trim()}T00:00:00Z`)
      const cutoff = cutoffDate(options.olderThan, now)
      const planned = await withStore(options.dir, async (store) => await purgeBefore(store, cutoff, { dryRun: true }))
      const report = (done: PurgeReport, dryRun: boolean): void => {
        if (options.json) out(JSON.stringify({ cutoff, dryRun, ...done }))
        else out(`${dryRun ? 'would remove' : 'removed'} ${done.removed} records dated before ${cutoff}; ${dryRun ? 'would keep' : 'kept'} ${done.kept}${done.undated > 0 ? ` and ${done.undated} without a date` : ''}`)
      }
      if (options.dryRun) {
        report(planned, true)
        return
      }
      if (planned.removed > 0 && planned.kept === 0 && planned.undated === 0 && !options.yes) {
        // every record would go: only on an answer at the terminal, or --yes
        const answer = await confirmOnTerminal(`This removes all ${planned.removed} records in ${options.dir} (every one is dated before ${cutoff}). Remove them all? [y/N] `)
        if (answer === null) throw new PurgeNotConfirmedError(`purge would remove all ${planned.removed} records in ${options.dir}; nothing was removed. Confirm with --yes (there is no terminal to ask on), or see what would go with --dry-run`)
        if (!answer) throw new PurgeNotConfirmedError('not confirmed; nothing was removed')
      }
      report(await withStore(options.dir, async (store) => await purgeBefore(store, cutoff)), false)
    })
}
