import { readFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { parseSchema, type CaseSchema } from '../../store/schema.ts'
import { importCases, importSeries } from '../../store/import.ts'
import { Store } from '../../store/store.ts'
import { StoreNotInitializedError, SchemaInvalidError } from '../../store/errors.ts'
import { cutoffDate, purgeBefore, summarize } from '../../store/summary.ts'
import { createIdentity } from '../identity.ts'

/** The stored records' problems under a proposed schema (their values are already typed). */
async function recheck (store: Store, schema: CaseSchema): Promise<string[]> {
  const problems: string[] = []
  let index = 0
  for await (const row of store.rows()) {
    index++
    for (const [column, rule] of Object.entries(schema.columns)) {
      if ('action' in rule) continue
      const value = row[column]
      if (value === null || value === undefined) {
        if (rule.required === true) problems.push(`record ${index}, ${column}: missing`)
        continue
      }
      if (rule.type === 'number' && (typeof value !== 'number' || (rule.min !== undefined && value < rule.min) || (rule.max !== undefined && value > rule.max))) problems.push(`record ${index}, ${column}: ${value}`)
      if (rule.type === 'category' && !rule.levels.includes(String(value))) problems.push(`record ${index}, ${column}: ${value}`)
      if (rule.type === 'date' && typeof value !== 'string') problems.push(`record ${index}, ${column}: ${value}`)
    }
    if (problems.length >= 100) break
  }
  return problems
}

/** The operator's commands on the local store: init, import, schema, data summary, purge. */
async function withStore<T> (dir: string, work: (store: Store) => Promise<T>, requireInit = true): Promise<T> {
  const store = await Store.openWhenFree(dir)
  try {
    if (requireInit && (await store.config.get('region')) === undefined) throw new StoreNotInitializedError(`${dir} is not a peer's data folder: run epimesh init --dir ${dir} --region NAME`)
    return await work(store)
  } finally {
    await store.close()
  }
}

const out = (line: string): void => { process.stdout.write(`${line}\n`) }

export function registerStoreCommands (program: Command): void {
  program.command('init')
    .description('create a peer\'s data folder: its store and its persistent identity')
    .requiredOption('--dir <dir>', 'the data folder to create')
    .requiredOption('--region <name>', 'the region this peer serves')
    .action(async (options: { dir: string, region: string }) => {
      // the store first (folder 0700, its key outside the folder), then the identity: an init whose
      // store could not be made (a problem with its key, say) leaves no identity and can be run again
      const peerId = await Store.use(options.dir, async (store) => {
        const { peerId } = await createIdentity(options.dir)
        await store.config.put('region', options.region)
        await store.config.put('peerId', peerId)
        await store.salt()
        return peerId
      })
      out(`initialised ${options.dir} for ${options.region}: peer id ${peerId}`)
    })

  program.command('import')
    .description('import case records (--cases) or case counts (--series), validated, all or nothing')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--cases <file.csv>', 'case records')
    .option('--schema <schema.json>', 'their schema (first import; later ones must match the stored one)')
    .option('--series <file.csv>', 'case counts: date,count[,population]')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, cases?: string, schema?: string, series?: string, json: boolean }) => {
      if (options.cases === undefined && options.series === undefined) throw new SchemaInvalidError('give --cases or --series')
      let schema: CaseSchema | undefined
      if (options.schema !== undefined) {
        let text: string
        try {
          text = await readFile(options.schema, 'utf8')
        } catch (error) {
          throw new SchemaInvalidError(`cannot read ${options.schema}: ${(error as Error).message}`, { cause: error })
        }
        let json: unknown
        try {
          json = JSON.parse(text)
        } catch (error) {
          throw new SchemaInvalidError(`${options.schema}: not JSON: ${(error as Error).message}`, { cause: error })
        }
        schema = parseSchema(json, options.schema)
      }
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
            if (report.inferred) out(`no schema given; the one inferred and kept for later imports:\n${JSON.stringify(report.schema, null, 2)}`)
          }
        }
        if (options.series !== undefined) {
          const report = await importSeries(store, options.series)
          out(options.json ? JSON.stringify(report) : `imported ${report.points} dates of case counts from ${options.series}`)
        }
      })
    })

  const data = program.command('data').description('aggregates of the local store')
  data.command('summary')
    .description('counts, missingness, ranges, outcome balance, series coverage; small cells suppressed')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--threshold <n>', 'smallest count shown', (value) => Number(value), 3)
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, threshold: number, json: boolean }) => {
      const summary = await withStore(options.dir, async (store) => await summarize(store, options.threshold))
      if (options.json) {
        out(JSON.stringify(summary))
        return
      }
      out(`${summary.records} records from ${summary.imports} imports (counts below ${summary.threshold} shown as <${summary.threshold})`)
      if (summary.outcome !== null) out(`outcome ${summary.outcome.column}: ${Object.entries(summary.outcome.counts).map(([level, count]) => `${level} ${count}`).join(', ')}`)
      for (const [column, entry] of Object.entries(summary.columns)) {
        const range = entry.min === undefined ? '' : `, range ${entry.min} to ${entry.max}`
        const levels = entry.levels === undefined ? '' : `, ${Object.entries(entry.levels).map(([level, count]) => `${level} ${count}`).join(', ')}`
        out(`  ${column.padEnd(20)} ${entry.type.padEnd(9)} missing ${entry.missing}${range}${levels}`)
      }
      out(`series: ${summary.series.points} dates${summary.series.first === null ? '' : ` from ${summary.series.first} to ${summary.series.last}`}, ${summary.series.total} cases`)
    })

  program.command('schema')
    .description('show the store\'s schema, or replace it deliberately (every stored record must pass the new one)')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--set <schema.json>', 'the new schema')
    .action(async (options: { dir: string, set?: string }) => {
      await withStore(options.dir, async (store) => {
        if (options.set === undefined) {
          const schema = await store.schema()
          out(schema === null ? 'no schema yet: the first import sets it' : JSON.stringify(schema, null, 2))
          return
        }
        const schema = parseSchema(JSON.parse(await readFile(options.set, 'utf8')), options.set)
        const problems = await recheck(store, schema)
        if (problems.length > 0) throw new SchemaInvalidError(`${options.set}: ${problems.length} stored record(s) do not pass the new schema, for example: ${problems.slice(0, 5).join('; ')}`)
        await store.meta.put('schema', schema)
        out(`schema replaced; all ${await store.count()} stored records pass it`)
      })
    })

  program.command('purge')
    .description('remove personal records older than the retention period; reports what it removed')
    .requiredOption('--dir <dir>', 'the peer\'s data folder')
    .option('--older-than <period>', 'retention period: 12m, 90d, 1y', '12m')
    .option('--now <date>', 'today, YYYY-MM-DD (default: the clock)')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, olderThan: string, now?: string, json: boolean }) => {
      const now = options.now === undefined ? new Date() : new Date(`${options.now}T00:00:00Z`)
      if (Number.isNaN(now.getTime())) throw new SchemaInvalidError(`--now must be a date, got ${options.now}`)
      const cutoff = cutoffDate(options.olderThan, now)
      const report = await withStore(options.dir, async (store) => await purgeBefore(store, cutoff))
      out(options.json ? JSON.stringify({ cutoff, ...report }) : `removed ${report.removed} records dated before ${cutoff}; kept ${report.kept}${report.undated > 0 ? ` and ${report.undated} without a date` : ''}`)
    })
}
