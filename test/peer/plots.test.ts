import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { forecastChart } from '../../src/peer/cli/forecast-plot.ts'
import { periodDate } from '../../src/peer/cli/simulate-forecast.ts'
import { compareOption } from '../../src/peer/cli/simulate.ts'
import type { StoredForecast } from '../../src/store/store.ts'
import { cli } from '../helpers/cli.ts'

let folder = ''
beforeAll(async () => { folder = await mkdtemp(join(tmpdir(), 'epimesh-plots-')) })
afterAll(async () => { await rm(folder, { recursive: true, force: true }) })

/** The text of an SVG's <text> elements: axis labels, titles, legend entries. */
const texts = (svg: string): string[] => [...svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((match) => match[1] as string)

describe('forecast --plot', () => {
  const stored = (lineage: boolean): StoredForecast => ({
    job: 'risk-1',
    region: 'alpha',
    forecast: [1, 2, 3, 4].map((step) => ({ step, mean: 10 + step, lower: 5 + step, upper: 16 + step })),
    model: { job: 'risk-1', ...(lineage ? { lineage: { parameters: { from: '2024-01-01', periods: 12, period: 'week' } } } : {}) }
  }) as unknown as StoredForecast
  // twelve weeks of counts from Monday 2024-01-01, with the population
  const points = Array.from({ length: 12 }, (_, week) => ({ date: new Date(Date.UTC(2024, 0, 1 + 7 * week)).toISOString().slice(0, 10), count: 3 + week, population: 100_000 }))

  it('draws the series, the forecast mean and its interval on a time axis of dates', async () => {
    const { svg, observed, note } = await forecastChart(stored(true), points)
    expect(observed).toBe(12)
    expect(note).toBeNull()
    const shown = texts(svg)
    // the forecast's first week follows the twelve: 2024-03-25
    expect(shown.some((text) => text.includes('the forecast from 2024-03-25'))).toBe(true)
    expect(shown).toEqual(expect.arrayContaining(['observed (the series in the store)', 'forecast mean', 'forecast: 90% interval', 'first day of the week', 'cases']))
    // dates on the x-axis, not period numbers
    expect(shown.filter((text) => /^2024-\d{2}-\d{2}$/.test(text)).length).toBeGreaterThan(2)
    // the interval is a shaded area fanning out from the last observed week (2024-03-18, 14 cases) through
    // the forecast's weeks (the first 2024-03-25, from 6 to 17), and the mean's line starts there too
    expect(svg).toMatch(/aria-label="first day of the week: 2024-03-18; cases: 14; hi: 14; series: forecast: 90% interval" role="graphics-symbol" aria-roledescription="area mark"/)
    const area = /aria-roledescription="area mark" d="([^"]+)"/.exec(svg)?.[1] ?? ''
    expect(area.split('L').length).toBe(10) // 5 upper and 5 lower vertices: the anchor and 4 forecast weeks
    expect(svg).toMatch(/aria-label="first day of the week: 2024-03-18; cases: 14; series: forecast mean; line: forecast mean"/)
  })

  it('without the series it draws the forecast and says why; without the job\'s dates it refuses', async () => {
    const alone = await forecastChart(stored(true), [])
    expect(alone.observed).toBe(0)
    expect(alone.note).toMatch(/no case-count series/)
    await expect(forecastChart(stored(false), points)).rejects.toMatchObject({ code: 'FORECAST_NOT_DRAWN' })
  })
})

describe('simulate-forecast periods as dates', () => {
  it('reads ISO weeks (their Monday) and dates; anything else is no date', () => {
    expect(new Date(periodDate('2001-W01') as number).toISOString().slice(0, 10)).toBe('2001-01-01')
    expect(new Date(periodDate('2005-W01') as number).toISOString().slice(0, 10)).toBe('2005-01-03')
    expect(new Date(periodDate('2009-W53') as number).toISOString().slice(0, 10)).toBe('2009-12-28')
    expect(new Date(periodDate('2024-02-29') as number).toISOString().slice(0, 10)).toBe('2024-02-29')
    for (const label of ['2023-02-29', '2001-W00', '2001-W54', 'week 3', '12']) expect(periodDate(label)).toBeNull()
  })
})

describe('simulate --compare', () => {
  it('checks its topologies', () => {
    expect(compareOption('ring,star,complete')).toEqual(['ring', 'star', 'complete'])
    expect(compareOption('ring; smallworld:2,0.1')).toEqual(['ring', 'smallworld:2,0.1'])
    expect(() => compareOption('ring')).toThrow(/at least two/)
    expect(() => compareOption('ring,ring')).toThrow(/repeated/)
    expect(() => compareOption('ring,moebius')).toThrow(/--compare/)
  })

  it('runs each topology, prints them side by side and overlays one curve each', async () => {
    const plot = join(folder, 'compare.svg')
    const run = await cli(['simulate', '--data', 'test/fixtures/infert.csv', '--outcome', 'case', '--features', 'age,parity,induced,spontaneous', '--peers', '4', '--max-rounds', '400', '--compare', 'ring,star,complete', '--plot', plot, '--json'])
    expect(run.status, run.stderr).toBe(0)
    const { topologies } = JSON.parse(run.stdout) as { topologies: Array<{ topology: string, rounds: number, converged: boolean, relativeError: number, diameter: number }> }
    expect(topologies.map((entry) => entry.topology)).toEqual(['ring', 'star', 'complete'])
    for (const entry of topologies) {
      expect(entry.converged).toBe(true)
      expect(entry.relativeError).toBeLessThan(1e-6)
    }
    // the complete graph has diameter 1, the star 2
    expect(topologies.map((entry) => entry.diameter)).toEqual([2, 2, 1])
    const shown = texts(await readFile(plot, 'utf8'))
    expect(shown).toEqual(expect.arrayContaining(['ring', 'star', 'complete', 'relative error 1e-8']))
    expect((await cli(['simulate', '--data', 'test/fixtures/infert.csv', '--outcome', 'case', '--compare', 'ring,star', '--topology', 'line'])).status).toBe(2)
  }, 60_000)
})
