import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'
import { seedsOption, spread } from '../../src/peer/cli/simulate.ts'

/**
 * The researcher's output of `epimesh simulate`: a trace per round and peer (--trace), several seeds
 * with their median and range (--seeds), and a plot of every run with the median, the range and the
 * thresholds.
 */
let dir = ''
beforeAll(async () => { dir = await mkdtemp(join(tmpdir(), 'epimesh-research-')) })
afterAll(async () => { if (dir !== '') await rm(dir, { recursive: true, force: true }) })

const BASE = ['simulate', '--data', 'test/fixtures/infert.csv', '--outcome', 'case', '--features', 'age,parity,induced,spontaneous', '--peers', '4', '--max-rounds', '400']

async function simulate (extra: string[]): Promise<{ status: number, stdout: string }> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    process.exitCode = undefined
    const status = await main([...BASE, ...extra])
    return { status, stdout }
  } finally {
    out.mockRestore()
    err.mockRestore()
    process.exitCode = undefined
  }
}

interface TraceRow { seed: number, round: number, peer: number, phase: string, phaseRound: number, primal: number | null, dual: number | null, distance: number | null, messages: number, bytes: number }

function readTrace (text: string): TraceRow[] {
  const [header, ...lines] = text.trimEnd().split('\n')
  expect(header).toBe('seed,round,peer,phase,phase_round,primal_residual,dual_residual,distance_to_pooled,messages,bytes')
  const value = (cell: string | undefined): number | null => cell === undefined || cell === '' ? null : Number(cell)
  return lines.map((line) => {
    const cells = line.split(',')
    return { seed: Number(cells[0]), round: Number(cells[1]), peer: Number(cells[2]), phase: cells[3] as string, phaseRound: Number(cells[4]), primal: value(cells[5]), dual: value(cells[6]), distance: value(cells[7]), messages: Number(cells[8]), bytes: Number(cells[9]) }
  })
}

describe('simulate --trace', () => {
  it('writes a row per round and peer whose messages and bytes add up to the run\'s, whose distances give its rounds to each threshold, with residuals in the ADMM phases', async () => {
    const path = join(dir, 'trace.csv')
    const { status, stdout } = await simulate(['--seed', '5', '--trace', path, '--json'])
    expect(status).toBe(0)
    const summary = JSON.parse(stdout) as { rounds: number, messages: number, bytes: number, roundsToRelativeError: Record<string, number | null>, seed: number }
    const rows = readTrace(await readFile(path, 'utf8'))
    expect(rows).toHaveLength(summary.rounds * 4)
    expect(new Set(rows.map((row) => row.seed))).toEqual(new Set([5]))
    for (let round = 1; round <= summary.rounds; round++) expect(rows.filter((row) => row.round === round).map((row) => row.peer)).toEqual([0, 1, 2, 3])
    expect(rows.reduce((sum, row) => sum + row.messages, 0)).toBe(summary.messages)
    expect(rows.reduce((sum, row) => sum + row.bytes, 0)).toBe(summary.bytes)
    // the first round at which every peer is within a threshold of the pooled fit is the run's own count
    for (const [threshold, expected] of Object.entries(summary.roundsToRelativeError)) {
      let reached: number | null = null
      for (let round = 1; round <= summary.rounds && reached === null; round++) {
        const distances = rows.filter((row) => row.round === round).map((row) => row.distance)
        if (distances.every((distance) => distance !== null) && Math.max(...(distances as number[])) < Number(threshold)) reached = round
      }
      expect(reached, threshold).toBe(expected)
    }
    const admm = rows.filter((row) => row.phase === 'admm' || row.phase === 'admm2')
    expect(admm.length).toBeGreaterThan(40)
    expect(admm.filter((row) => row.primal !== null && row.dual !== null).length).toBeGreaterThan(admm.length * 0.9)
    expect(rows.filter((row) => !(row.phase === 'admm' || row.phase === 'admm2')).every((row) => row.primal === null)).toBe(true)
    // the residuals fall: the last ADMM round's primal residual is far below the largest
    const peer0 = admm.filter((row) => row.peer === 0 && row.primal !== null)
    expect((peer0.at(-1) as TraceRow).primal as number).toBeLessThan(Math.max(...peer0.map((row) => row.primal as number)) * 1e-3)
  })
})

describe('simulate --seeds', () => {
  it('runs each seed as --seed would, and gives the median and range over them', async () => {
    const { status, stdout } = await simulate(['--seeds', '1..3', '--json'])
    expect(status).toBe(0)
    const result = JSON.parse(stdout) as { seeds: Array<{ seed: number, rounds: number, messages: number, converged: boolean, roundsToRelativeError: Record<string, number | null> }>, overSeeds: { seeds: number, converged: number, rounds: { median: number, min: number, max: number }, messages: { median: number }, roundsToRelativeError: Record<string, { median: number | null, min: number | null, max: number | null, missing: number }> } }
    expect(result.seeds.map((run) => run.seed)).toEqual([1, 2, 3])
    // each seed's run is the run --seed gives
    const single = JSON.parse((await simulate(['--seed', '2', '--json'])).stdout) as { rounds: number, messages: number }
    expect(result.seeds[1]).toMatchObject({ rounds: single.rounds, messages: single.messages })
    const rounds = result.seeds.map((run) => run.rounds).sort((a, b) => a - b)
    expect(result.overSeeds).toMatchObject({ seeds: 3, converged: result.seeds.filter((run) => run.converged).length, rounds: { median: rounds[1], min: rounds[0], max: rounds[2] } })
    const to8 = result.seeds.map((run) => run.roundsToRelativeError['1e-8'] ?? null)
    expect(result.overSeeds.roundsToRelativeError['1e-8']).toEqual(spread(to8))

    const text = (await simulate(['--seeds', '1,2,3'])).stdout
    expect(text).toContain(`over 3 seeds: converged in ${result.overSeeds.converged} of 3`)
    expect(text).toContain(`rounds median ${rounds[1] as number} (range ${rounds[0] as number} to ${rounds[2] as number})`)
  })

  it('plots every run with their median and range, the thresholds and the phases, the legend inside the frame', async () => {
    const path = join(dir, 'seeds.svg')
    expect((await simulate(['--seeds', '1..3', '--plot', path])).status).toBe(0)
    const svg = await readFile(path, 'utf8')
    for (const label of ['each of 3 seeds', 'median over 3 seeds', 'range over the seeds', 'relative error 1e-4', 'relative error 1e-8', 'admm']) expect(svg, label).toContain(label)
    // the legend's group sits inside the 640-wide plotting frame
    const legend = /aria-roledescription="legend"[^>]*><g transform="translate\((\d+(?:\.\d+)?),(\d+(?:\.\d+)?)\)"/.exec(svg)
    expect(legend).not.toBeNull()
    expect(Number(legend?.[1])).toBeLessThan(640)
    expect(Number(legend?.[1])).toBeGreaterThan(0)
  })

  it('reads ranges and lists, and refuses anything else', () => {
    expect(seedsOption('1..4')).toEqual([1, 2, 3, 4])
    expect(seedsOption('7,3,9')).toEqual([7, 3, 9])
    for (const bad of ['4..1', '1..1000', '1,1', 'a', '1-3', '', '-1']) expect(() => seedsOption(bad), bad).toThrow()
    expect(spread([3, null, 1, 2])).toEqual({ median: 2, min: 1, max: 3, missing: 1 })
    expect(spread([4, 1])).toEqual({ median: 2.5, min: 1, max: 4, missing: 0 })
  })
})
