/**
 * Import benchmark: writes a synthetic case file of N rows (default 1,000,000) and imports it into a
 * fresh store with `epimesh import` in a child process; prints rows per second and the child's peak
 * resident memory.
 *
 *   npx tsx scripts/bench-import.ts [--rows 1000000]
 */
import { spawnSync } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createRng } from '../src/consensus/rng.ts'

const index = process.argv.indexOf('--rows')
const rows = index > 0 ? Number(process.argv[index + 1]) : 1_000_000
const bin = fileURLToPath(new URL('../bin/epimesh.js', import.meta.url))
const dir = await mkdtemp(join(tmpdir(), 'epimesh-bench-import-'))

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

try {
  const file = join(dir, 'cases.csv')
  await writeCaseFile(file, rows)
  const store = join(dir, 'peer')
  // the store's key beside its folder, removed with it (not in the user's key folder)
  const env = { ...process.env, EPIMESH_KEYS_DIR: join(dir, 'keys') }
  spawnSync(process.execPath, [bin, 'init', '--dir', store, '--region', 'bench'], { stdio: 'ignore', env })
  const result = spawnSync(process.execPath, [bin, 'import', '--dir', store, '--cases', file, '--json'], { encoding: 'utf8', maxBuffer: 1 << 24, env })
  if (result.status !== 0) throw new Error(result.stderr)
  const report = JSON.parse(result.stdout.trim().split('\n').pop() as string) as { rows: number, seconds: number, rowsPerSecond: number, peakMemoryMb: number }
  console.log(JSON.stringify({ rows: report.rows, seconds: Number(report.seconds.toFixed(1)), rowsPerSecond: Math.round(report.rowsPerSecond), peakMemoryMb: Math.round(report.peakMemoryMb) }))
} finally {
  await rm(dir, { recursive: true, force: true })
}
