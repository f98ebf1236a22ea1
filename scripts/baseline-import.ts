/**
 * The baseline an import is measured against: the same CSV file parsed with csv-parse and written to
 * a fresh LevelDB, each row under its salted SHA-256 record-id hash with its fields as a JSON value,
 * in batches of 1,000, and nothing else (no screening, validation, duplicate check or encryption).
 * Prints one JSON object: rows, seconds, rows per second and peak resident memory (MB).
 *
 *   npx tsx scripts/baseline-import.ts FILE.csv DB-FOLDER
 */
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { parse } from 'csv-parse'
import { Level } from 'level'

const [file, folder] = process.argv.slice(2)
if (file === undefined || folder === undefined) throw new Error('usage: baseline-import.ts FILE.csv DB-FOLDER')

const BATCH_ROWS = 1000
const db = new Level<string, string>(folder)
await db.open()
const salt = randomBytes(32).toString('hex')
const started = process.hrtime.bigint()
let header: string[] | null = null
let rows = 0
let batch = db.batch()
let pending = 0
for await (const record of createReadStream(file).pipe(parse({ bom: true, skip_empty_lines: true })) as AsyncIterable<string[]>) {
  if (header === null) {
    header = record
    continue
  }
  const value: Record<string, string> = {}
  for (let index = 1; index < header.length; index++) value[header[index] as string] = record[index] as string
  const id = createHash('sha256').update(salt).update('\u0000').update(record[0] as string).digest('base64url')
  batch.put(id, JSON.stringify(value))
  rows++
  if (++pending >= BATCH_ROWS) {
    await batch.write()
    batch = db.batch()
    pending = 0
  }
}
if (pending > 0) await batch.write()
else await batch.close()
await db.close()
const seconds = Number(process.hrtime.bigint() - started) / 1e9
console.log(JSON.stringify({ rows, seconds, rowsPerSecond: rows / seconds, peakMemoryMb: process.resourceUsage().maxRSS / 1024 }))
