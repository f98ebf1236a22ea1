import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createRng } from '../../src/consensus/rng.ts'
import { importCases } from '../../src/store/import.ts'
import { layoutOf } from '../../src/store/layout.ts'
import { Store } from '../../src/store/store.ts'

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
let dir = ''
afterAll(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

async function writeCases (path: string, from: number, count: number): Promise<void> {
  const out = createWriteStream(path)
  out.write('case_id,age,sex,severe\n')
  for (let row = from; row < from + count; row++) out.write(`R${row},${row % 90},${row % 2 === 0 ? 'F' : 'M'},${row % 7 === 0 ? 1 : 0}\n`)
  await new Promise<void>((resolve) => { out.end(() => { resolve() }) })
}

describe('an import killed with SIGKILL at random moments', () => {
  it('leaves a store that opens cleanly and holds none or all of that import, every time', async () => {
    dir = await mkdtemp(join(tmpdir(), 'epimesh-crash-'))
    const peer = join(dir, 'peer')
    const base = join(dir, 'base.csv')
    await writeCases(base, 0, 1000)
    const store = await Store.open(peer)
    await store.configure({ region: 'crash-test' })
    await importCases(store, { file: base })
    await store.close()
    const big = join(dir, 'big.csv')
    const size = 100_000
    await writeCases(big, 1_000_000, size)
    const takeOut = async (store: Store): Promise<void> => {
      const layout = layoutOf(store)
      for (const record of await store.imports()) if (record.file === big) await layout.meta.del(layout.importKey(record.id))
    }
    // one import run to its end measures how long an import takes on this machine, now
    const timedStart = Date.now()
    const whole = spawn(process.execPath, [BIN, 'import', '--dir', peer, '--cases', big], { stdio: 'ignore' })
    expect(await new Promise<number | null>((resolve) => { whole.on('exit', (code) => { resolve(code) }) })).toBe(0)
    const duration = Date.now() - timedStart
    console.log(`one whole import of ${size} rows: ${duration} ms`)
    const measured = await Store.open(peer)
    expect(await measured.count()).toBe(1000 + size)
    await takeOut(measured)
    await measured.close()
    const rng = createRng(20261123)
    const outcomes: number[] = []
    for (let attempt = 0; attempt < 20; attempt++) {
      const child = spawn(process.execPath, [BIN, 'import', '--dir', peer, '--cases', big], { stdio: 'ignore' })
      // kill somewhere between start-up and the end of the import: from 25% to 95% of its measured time (the first tenths of a second are start-up)
      const delay = Math.floor(duration * (0.25 + 0.7 * rng()))
      const exited = new Promise<number | null>((resolve) => { child.on('exit', (code) => { resolve(code) }) })
      const timer = setTimeout(() => { child.kill('SIGKILL') }, delay)
      const code = await exited
      clearTimeout(timer)
      const reopened = await Store.open(peer)
      const count = await reopened.count()
      expect([1000, 1000 + size]).toContain(count)
      outcomes.push(count)
      if (count === 1000 + size) {
        // it committed before the kill (the kill may still land while the process shuts down, code
        // null): take the import out again for the next attempt
        expect(code === 0 || code === null).toBe(true)
        await takeOut(reopened)
      }
      await reopened.close()
    }
    const final = await Store.open(peer)
    expect(await final.count()).toBe(1000)
    await final.close()
    console.log(`kills mid-import: ${outcomes.filter((count) => count === 1000).length} of ${outcomes.length}`)
    // most kills must have landed mid-import for the test to mean anything
    expect(outcomes.filter((count) => count === 1000).length).toBeGreaterThanOrEqual(10)
  }, 180_000)
})
