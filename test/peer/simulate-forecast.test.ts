import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { fixture } from '../helpers/data.ts'
import { GERMANY_2006 } from '../helpers/forecast-data.ts'
import { hhh4Reference } from '../helpers/hhh4-reference.ts'

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))

interface Run { code: number | null, stdout: string, stderr: string }

function epimesh (args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

const measles = ['--counts', fixture('measlesDE_counts.csv'), '--population', fixture('measlesDE_population.csv'), '--adjacency', fixture('measlesDE_adjacency.csv'), '--total-population', String(GERMANY_2006)]
const flu = ['--counts', fixture('fluBYBW_counts.csv'), '--population', fixture('fluBYBW_population.csv'), '--adjacency', fixture('fluBYBW_adjacency.csv')]

let folder = ''
beforeAll(async () => { folder = await mkdtemp(join(tmpdir(), 'epimesh-forecast-')) })
afterAll(async () => { await rm(folder, { recursive: true, force: true }) })

describe('epimesh simulate-forecast', () => {
  it('fluBYBW --json (the endemic-epidemic model by default): one object with the fit, the skill, every region\'s h and the joint risk; --plot writes an SVG', async () => {
    const plot = join(folder, 'flu.svg')
    const run = await epimesh(['simulate-forecast', ...flu, '--json', '--plot', plot, '--open-regions', '9162'])
    expect(run.code, run.stderr).toBe(0)
    const lines = run.stdout.trim().split('\n')
    expect(lines).toHaveLength(1)
    const summary = JSON.parse(lines[0] as string)
    expect(summary.relativeError).toBeLessThan(1e-6)
    expect(summary.model.name).toBe('endemic-epidemic')
    expect(Object.keys(summary.coefficients)).toEqual(['ar.1', 'ne.1', 'end.1', 'end.sin(2 * pi * t/52)', 'end.cos(2 * pi * t/52)', '-log(overdisp)'])
    expect(Object.keys(summary.pooled)).toEqual(Object.keys(summary.coefficients))
    expect(summary.regions).toHaveLength(140)
    // the population file's names go with the codes
    expect(summary.regions.find((region: { region: string }) => region.region === '8336').name).toBe('LK Loerrach')
    for (const region of summary.regions) {
      expect(region.h).toBeGreaterThanOrEqual(0)
      expect(region.h).toBeLessThanOrEqual(1)
      expect(region.forecast[0].mean).toBeGreaterThan(0)
      expect(region.forecast[0].lower).toBeLessThanOrEqual(region.forecast[0].upper)
    }
    const plain = summary.regions.reduce((sum: number, region: { h: number }) => sum + region.h, 0)
    expect(Math.abs(summary.jointRisk.sum - plain)).toBeLessThan(1e-9)
    expect(summary.jointRisk.mean).toBeCloseTo(plain / 140, 10)
    expect(summary.jointRisk.open).toEqual([{ region: '9162', h: expect.closeTo(summary.regions.find((region: { region: string }) => region.region === '9162').h, 12) }])
    const { model, lastValue, seasonalNaive } = summary.skill
    expect(model.logScore).toBeGreaterThan(Math.max(lastValue.logScore, seasonalNaive.logScore))
    expect(model.mae).toBeLessThan(Math.min(lastValue.mae, seasonalNaive.mae))
    expect(summary.skill.heldOut).toBe(52)
    // hhh4's own held-out scores of the same model, fitted on the same weeks (scripts/reference/hhh4-reference.R)
    const reference = hhh4Reference('fluBYBW', 'shared').heldOut
    expect(Math.abs(model.logScore - reference.logScore)).toBeLessThan(1e-6)
    expect(Math.abs(model.rps - reference.rps)).toBeLessThan(1e-6)
    expect(Math.abs(model.dss - reference.dss)).toBeLessThan(1e-6)
    expect(Math.abs(model.mae - reference.mae)).toBeLessThan(1e-6)
    expect(Math.abs(model.coverage - reference.coverage)).toBeLessThan(1e-6)
    expect(model.coverage).toBeGreaterThan(0.85)
    expect(model.coverage).toBeLessThan(0.95)
    for (const entry of [model, lastValue, seasonalNaive]) expect(Object.keys(entry).sort()).toEqual(['coverage', 'dss', 'logScore', 'mae', 'rps'])
    const svg = await readFile(plot, 'utf8')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg).toContain('seasonal naive')
    // the model's interval band, and the held-out weeks by their dates (fluBYBW's ISO weeks)
    expect(svg).toContain('endemic-epidemic: 95% interval (normal approximation of the sum)')
    expect(svg).toMatch(/>20\d\d-\d\d-\d\d</)
  })

  it('measlesDE: population shares need the total; text output names the terms and the joint risk', async () => {
    const withoutTotal = await epimesh(['simulate-forecast', ...measles.slice(0, 6)])
    expect(withoutTotal.code).toBe(2)
    expect(withoutTotal.stderr).toContain('measlesDE_population.csv')
    expect(withoutTotal.stderr).toContain('--total-population')
    const run = await epimesh(['simulate-forecast', ...measles, '--horizon', '3', '--model', 'loglinear'])
    expect(run.code, run.stderr).toBe(0)
    expect(run.stdout).toContain('model: loglinear')
    expect(run.stdout).toContain('log1p(nbr[t-1])')
    expect(run.stdout).toContain('max relative error against the pooled fit')
    expect(run.stdout).toContain('Saarland')
    expect(run.stdout).toMatch(/joint risk by masked sum over 16 regions: sum \d/)
    const pit = join(folder, 'pit.svg')
    const unit = await epimesh(['simulate-forecast', ...measles, '--unit-intercepts', '--pit', pit])
    expect(unit.code, unit.stderr).toBe(0)
    const histogram = await readFile(pit, 'utf8')
    expect(histogram.startsWith('<svg')).toBe(true)
    expect(histogram).toContain('randomised PIT of 832 one-step forecasts')
    expect(unit.stdout).toContain('model: endemic-epidemic')
    expect(unit.stdout).toContain('ne.1')
    expect(unit.stdout).not.toContain('end.1')
    expect(unit.stdout).toMatch(/endemic-epidemic +-0\.61\d\d/)
  })

  it('measlesDE --candidates: the federation scores each design on the validation window before the held-out tail and keeps the best; bad designs exit with 2', async () => {
    const run = await epimesh(['simulate-forecast', ...measles, '--json', '--candidates', 'harmonics=0;harmonics=1;harmonics=1,unit-intercepts', '--validation', '26'])
    expect(run.code, run.stderr).toBe(0)
    const summary = JSON.parse(run.stdout)
    const { choice } = summary
    expect(choice.candidates).toEqual(['harmonics=0,family=negbin1', 'harmonics=1,family=negbin1', 'harmonics=1,family=negbin1,unit-intercepts'])
    expect(choice.scores).toHaveLength(3)
    expect(choice.forecasts).toBe(16 * 26)
    expect(choice.validation).toEqual({ periods: 26, fromPeriod: '2006-W27', toPeriod: '2006-W52' })
    // the chosen design has the highest summed log score, and is the model then fitted and scored
    const best = Math.max(...choice.scores)
    expect(choice.scores[choice.chosenIndex]).toBe(best)
    expect(choice.chosen).toBe(choice.candidates[choice.chosenIndex])
    expect(choice.meanScores[choice.chosenIndex]).toBeCloseTo(best / (16 * 26), 12)
    expect(summary.model.harmonics).toBe(choice.chosenIndex === 0 ? 0 : 1)
    expect(summary.model.unitIntercepts).toBe(choice.chosenIndex === 2)
    expect(summary.skill.heldOut).toBe(52)
    expect(summary.skill.model.logScore).toBeGreaterThan(summary.skill.lastValue.logScore)

    const text = await epimesh(['simulate-forecast', ...measles, '--candidates', 'harmonics=0;harmonics=1', '--validation', '13'])
    expect(text.code, text.stderr).toBe(0)
    expect(text.stdout).toContain('model choice by the federation: one-step log scores on the 13 periods')
    expect(text.stdout).toMatch(/harmonics=\d,family=negbin1 +-\d+\.\d{4} +-\d\.\d{4} {2}chosen/)

    for (const [args, message] of [
      [['--candidates', 'harmonics=1;lags=2'], 'design 2'],
      [['--candidates', 'harmonics=1', '--validation', '150'], '[FORECAST_INPUT_INVALID]'],
      [['--validation', '10'], '--candidates'],
      [['--candidates', 'harmonics=1', '--model', 'loglinear'], '--model endemic-epidemic']
    ] as const) {
      const bad = await epimesh(['simulate-forecast', ...measles, ...args])
      expect(bad.code, message).toBe(2)
      expect(bad.stderr).toContain(message)
    }
  })

  it('bad input names the file, the line and the field, and exits with 2', async () => {
    const counts = join(folder, 'bad_counts.csv')
    const original = (await readFile(fixture('measlesDE_counts.csv'), 'utf8')).split(/\r?\n/)
    original[3] = (original[3] as string).replace(/,0,/, ',-2,')
    await writeFile(counts, original.join('\n'))
    const run = await epimesh(['simulate-forecast', '--counts', counts, ...measles.slice(2)])
    expect(run.code).toBe(2)
    expect(run.stderr).toContain(`${counts}, line 4, column "`)
    expect(run.stderr).toContain('"-2" is not a non-negative integer count')
    expect(run.stderr).toContain('[DATASET_INVALID]')

    const edges = join(folder, 'bad_edges.csv')
    await writeFile(edges, 'a,b\nBerlin,Brandenburg\nBerlin,Atlantis\n')
    const unknown = await epimesh(['simulate-forecast', ...measles.slice(0, 4), '--adjacency', edges, ...measles.slice(6)])
    expect(unknown.code).toBe(2)
    expect(unknown.stderr).toContain(`${edges}, line 3, column "b": "Atlantis" is not a region of the counts file`)

    const holdout = await epimesh(['simulate-forecast', ...measles, '--holdout', '154'])
    expect(holdout.code).toBe(2)
    expect(holdout.stderr).toContain('[FORECAST_INPUT_INVALID]')
  })
})
