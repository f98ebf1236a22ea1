/**
 * Import benchmark: writes a synthetic case file of N rows (default 1,000,000) in a temporary folder,
 * then imports it twice, each in a child process of its own: with `epimesh import` into a fresh
 * store, and with the plain baseline of scripts/baseline-import.ts (csv-parse, a salted hash id and a
 * JSON value per row, LevelDB batches of 1,000, nothing checked). Prints, for each, rows per second
 * and the child's peak resident memory, and the ratio of the two speeds. With --runs R, each is run R
 * times, alternating, and the median run of each is shown, then every run.
 *
 *   npx tsx scripts/bench-import.ts [--rows 1000000] [--runs 1]
 */
import { spawnSync } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRng } from '../src/consensus/rng.ts'

function option (name: string, fallback: number): number {
  const index = process.argv.indexOf(name)
  if (index < 0) return fallback
  const value = Number(process.argv[index + 1])
  if (!Number.isInteger(value) || value < 1 || value > 100_000_000) throw new RangeError(`${name} takes a whole number from 1 to 100000000`)
  return value
}

const rows = option('--rows', 1_000_000)
const runs = option('--runs', 1)
const bin = fileURLToPath(new URL('../bin/epimesh.js', import.meta.url))
const baseline = fileURLToPath(new URL('./baseline-import.ts', import.meta.url))

export async function writeCaseFile (path: string, count: number, seed = 1): Promise<void> {
  const rng = createRng(seed)
  const out = createWriteStream(path)
  out.write('case_id,onset_date,sex,age,max_temperature,contact,severe\n')
  for (let row = 0; row < count; row++) {
    const day = 1 + Math.floor(rng() * 28)
    const line = `C${row},2025-${String(1 + Math.floor(rng() * 12)).padStart(2, '0')}-${String(day).padStart(2, '0')},${rng() < 0.5 ? 'F' : 'M'},${Math.floor(rng() * 90)},${(36 + rng() * 4).toFixed(1)},${rng() < 0.4 ? 1 : 0},${rng() < 0.15 ? 1 : 0}\n`
    if (!out.write(line)) await new Promise<void>((resolve) => { out.once('drain', () => { resolve() }) })
  }
  await new Promise<void>((resolve) => { out.end(() => { resolve() }) })
}

interface Run { rows: number, seconds: number, rowsPerSecond: number, peakMemoryMb: number }

function lastJson (stdout: string): Run {
  return JSON.parse(stdout.trim().split('\n').pop() as string) as Run
}

function runEpimesh (dir: string, file: string, attempt: number): Run {
  const store = join(dir, `peer-${attempt}`)
  // the store's key beside its folder, removed with it (not in the user's key folder)
  const env = { ...process.env, EPIMESH_KEYS_DIR: join(dir, `keys-${attempt}`) }
  const init = spawnSync(process.execPath, [bin, 'init', '--dir', store, '--region', 'bench'], { encoding: 'utf8', env })
  if (init.status !== 0) throw new Error(init.stderr)
  const result = spawnSync(process.execPath, [bin, 'import', '--dir', store, '--cases', file, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24, env })
  if (result.status !== 0) throw new Error(result.stderr)
  return lastJson(result.stdout)
}

function runBaseline (dir: string, file: string, attempt: number): Run {
  // loaded through tsx as epimesh is, so that both carry the same loader
  const result = spawnSync(process.execPath, ['--import', 'tsx', baseline, file, join(dir, `baseline-${attempt}`)], { encoding: 'utf8', maxBuffer: 1 << 24 })
  if (result.status !== 0) throw new Error(result.stderr)
  return lastJson(result.stdout)
}

const median = (list: Run[]): Run => [...list].sort((a, b) => a.rowsPerSecond - b.rowsPerSecond)[Math.floor((list.length - 1) / 2)] as Run
const shown = (run: Run): object => ({ rows: run.rows, seconds: Number(run.seconds.toFixed(1)), rowsPerSecond: Math.round(run.rowsPerSecond), peakMemoryMb: Math.round(run.peakMemoryMb) })

const dir = await mkdtemp(join(tmpdir(), 'epimesh-bench-import-'))
try {
  const file = join(dir, 'cases.csv')
  await writeCaseFile(file, rows)
  const epimesh: Run[] = []
  const plain: Run[] = []
  for (let attempt = 0; attempt < runs; attempt++) {
    // alternate which goes first, so that neither always meets a warmer page cache
    if (attempt % 2 === 0) {
      plain.push(runBaseline(dir, file, attempt))
      epimesh.push(runEpimesh(dir, file, attempt))
    } else {
      epimesh.push(runEpimesh(dir, file, attempt))
      plain.push(runBaseline(dir, file, attempt))
    }
    await rm(join(dir, `peer-${attempt}`), { recursive: true, force: true })
    await rm(join(dir, `baseline-${attempt}`), { recursive: true, force: true })
  }
  const ours = median(epimesh)
  const theirs = median(plain)
  // every run too, in the order run: the peak memory of one run is not that of the others
  console.log(JSON.stringify({ rows, runs, epimesh: shown(ours), baseline: shown(theirs), speedRatio: Number((ours.rowsPerSecond / theirs.rowsPerSecond).toFixed(3)), ...(runs > 1 ? { every: { epimesh: epimesh.map(shown), baseline: plain.map(shown) } } : {}) }))
} finally {
  await rm(dir, { recursive: true, force: true })
}
