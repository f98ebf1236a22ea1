import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { cli } from '../helpers/cli.ts'
import { fixture, relativeError, R_INFERT } from '../helpers/data.ts'
import { loadFluBYBW } from '../helpers/forecast-data.ts'
import { freePort } from '../helpers/process.ts'

/**
 * The README's operator walkthrough, run as it stands: its lines are read from the README (the `sh`
 * block after the operator-walkthrough marker), `/data` becomes a temporary folder, the ports 4001 to
 * 4003 free ones, and the files it names are written beside it (infert's records dealt to three regions,
 * three districts' weekly influenza counts of fluBYBW). Every line must exit 0; the peers (the lines
 * ending in `&`) run as their own processes over 127.0.0.1, the other lines in this process. If the
 * README changes so that a line no longer runs, this test fails.
 */
const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const README = fileURLToPath(new URL('../../README.md', import.meta.url))
const DISTRICTS = ['9162', '8111', '9184']

/** The walkthrough's command lines, continuations joined, comments dropped. */
function walkthroughLines (readme: string): string[] {
  const marker = readme.indexOf('<!-- operator-walkthrough')
  if (marker < 0) throw new Error('the README has no operator-walkthrough marker')
  const open = readme.indexOf('```sh\n', marker)
  const close = readme.indexOf('\n```', open + 6)
  const body = readme.slice(open + 6, close).replace(/\\\n\s*/g, '')
  return body.split('\n').map((line) => line.replace(/\s+#.*$/, '').trim()).filter((line) => line !== '')
}

const children: ChildProcess[] = []
let base = ''

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
  await Promise.all(children.map(async (child) => await new Promise<void>((resolve) => {
    if (child.exitCode !== null) { resolve(); return }
    const timer = setTimeout(() => { child.kill('SIGKILL'); resolve() }, 10_000)
    child.on('exit', () => { clearTimeout(timer); resolve() })
  })))
  if (base !== '') await rm(base, { recursive: true, force: true })
})

describe('the README\'s operator walkthrough', () => {
  it('runs line by line: init, import, federation init and check, start, propose --wait, status, jobs, model, predict, a forecast; a misspelt outcome is declined naming the column', async () => {
    const lines = walkthroughLines(await readFile(README, 'utf8'))
    const commands = lines.map((line) => line.split(/\s+/)[2])
    for (const needed of ['init', 'import', 'federation', 'start', 'propose', 'status', 'jobs', 'model', 'predict', 'forecast']) expect(commands).toContain(needed)

    base = await mkdtemp(join(tmpdir(), 'epimesh-readme-'))
    await mkdir(join(base, 'data'))
    // the files the walkthrough names: each region's records and weekly counts
    const records = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
    const { panel } = await loadFluBYBW()
    for (const [index, region] of ['jiangsu', 'zhejiang', 'anhui'].entries()) {
      await writeFile(join(base, `${region}.csv`), `id,${records[0]}\n${records.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
      const district = panel.regions.indexOf(DISTRICTS[index] as string)
      const counts = Array.from(panel.counts[district] as Float64Array).slice(0, 110)
      await writeFile(join(base, `${region}-weekly.csv`), `date,count,population\n${counts.map((count, week) => `${new Date(Date.UTC(2021, 0, 4) + week * 7 * 86_400_000).toISOString().slice(0, 10)},${count},${panel.populations[district]}`).join('\n')}\n`)
    }
    // status --wait before any peer runs: not ready within its timeout (exit 1), saying why
    const early = await cli(['status', '--dir', join(base, 'data', 'jiangsu'), '--wait', '--timeout', '0.3'])
    expect(early.status).toBe(1)
    expect(early.stderr).toMatch(/the peer of .* is not ready after 0.3 s: its status file is not written yet.*\[PEER_NOT_READY\]/)
    const ports = new Map<string, number>()
    for (const port of ['4001', '4002', '4003']) ports.set(port, await freePort())

    const outputs: Array<{ line: string, stdout: string }> = []
    for (const line of lines) {
      // the README's places and ports, here: /data in the temporary folder, free ports, its files beside it
      const here = line
        .replace(/\/data\//g, `${join(base, 'data')}/`)
        .replace(/\/tcp\/(400[1-3])/g, (_, port: string) => `/tcp/${ports.get(port) as number}`)
      const background = here.endsWith('&')
      const [npx, epimesh, ...args] = here.replace(/&$/, '').trim().split(/\s+/)
      expect(`${npx} ${epimesh}`, line).toBe('npx epimesh')
      const argv = args.map((arg) => /^[\w.-]+\.(csv|json)$/.test(arg) ? join(base, arg) : arg)
      if (background) {
        const child = spawn(process.execPath, [BIN, ...argv], { stdio: ['ignore', 'ignore', 'pipe'] })
        child.stderr?.resume()
        children.push(child)
        continue
      }
      const result = await cli(argv)
      expect(result.status, `${line}\n${result.stderr}`).toBe(0)
      outputs.push({ line, stdout: result.stdout })
    }

    const shown = (command: string): string => outputs.find((output) => output.line.startsWith(`npx epimesh ${command}`))?.stdout ?? ''
    expect(shown('init --dir /data/jiangsu')).toMatch(/peer id 12D3Koo/)
    expect(shown('federation check')).toMatch(/valid; federation "federation": 3 members \(Jiangsu, Zhejiang, Anhui\)/)
    expect(shown('propose --dir /data/jiangsu --federation federation.json --algorithm newton')).toMatch(/job \S+ finished in \d+ rounds/)
    expect(shown('status --dir /data/jiangsu --wait')).toMatch(/^Jiangsu \(12D3Koo\w+\) running.*\nneighbours: 2 connected, 0 missing/)
    expect(shown('status --dir /data/zhejiang')).toMatch(/^Zhejiang \(12D3Koo\w+\) running/)
    expect(shown('jobs')).toMatch(/glm\s+finished/)
    // the shared model is R's glm on all of infert, in every region
    const model = shown('model')
    expect(model).toMatch(/^job \S+: converged in \d+ rounds; 248 records in 3 regions/)
    // after the forecasting job too, model shows the classifier by default, not the forecasting model
    const json = await cli(['model', '--dir', join(base, 'data', 'anhui'), '--json'])
    const coefficients = (JSON.parse(json.stdout) as { coefficients: Array<{ estimate: number }> }).coefficients.map((row) => row.estimate)
    expect(relativeError(coefficients, R_INFERT.estimate)).toBeLessThan(1e-6)
    // every one of Jiangsu's records scored, below the header
    expect((await readFile(join(base, 'scored.csv'), 'utf8')).trim().split('\n')).toHaveLength(1 + records.slice(1).filter((_, row) => row % 3 === 0).length)
    // a federation file with a misspelt outcome: every region declines, propose --wait exits 1 naming the column
    const document = JSON.parse(await readFile(join(base, 'federation.json'), 'utf8')) as { model: Record<string, unknown> }
    await writeFile(join(base, 'misspelt.json'), JSON.stringify({ ...document, model: { ...document.model, outcome: 'Case' } }))
    const declined = await cli(['propose', '--dir', join(base, 'data', 'jiangsu'), '--federation', join(base, 'misspelt.json'), '--wait', '--timeout', '30'])
    expect(declined.status).toBe(1)
    expect(declined.stderr).toMatch(/was declined: .*Jiangsu: no column "Case" in this region's records \(columns: .*\[JOB_REFUSED\]/)
    // the forecast by its weeks: 104 weeks from Monday 2021-01-04, so the first forecast week begins 2023-01-02
    expect(shown('forecast')).toMatch(/^ {2}week of 2023-01-02: +\d/m)
  }, 120_000)
})
