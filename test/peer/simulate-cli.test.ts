import { describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'

/** `epimesh simulate`'s flags, run in process (the command is pure but for reading its data file). */
async function simulateJson (extra: string[]): Promise<{ status: number, result: { rounds: number, coefficients: Record<string, number> } }> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    const status = await main(['simulate', '--data', 'test/fixtures/infert.csv', '--outcome', 'case', '--features', 'age,parity,induced,spontaneous', '--peers', '4', '--max-rounds', '400', '--json', ...extra])
    return { status, result: JSON.parse(stdout) as { rounds: number, coefficients: Record<string, number> } }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

describe('epimesh simulate', () => {
  it('standardises by default, and takes --standardize and --no-standardize', async () => {
    const byDefault = await simulateJson([])
    const standardised = await simulateJson(['--standardize'])
    const raw = await simulateJson(['--no-standardize'])
    expect([byDefault.status, standardised.status, raw.status]).toEqual([0, 0, 0])
    // the default is the standardised fit, round for round
    expect(byDefault.result.rounds).toBe(standardised.result.rounds)
    expect(byDefault.result.coefficients).toEqual(standardised.result.coefficients)
    // on raw scales ADMM is far slower on infert: it does not finish within the same 400 rounds
    expect(raw.result.rounds).toBeGreaterThan(standardised.result.rounds)
  })
})

/** Runs `epimesh ...` in process, capturing stdout and stderr. */
async function run (argv: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    return { status: await main(argv), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

describe('epimesh simulate --stats', () => {
  it('prints one JSON object: features with count, missing, mean, sd and quantiles, the correlations, and for a binary outcome IV and WOE', async () => {
    const { status, stdout } = await run(['simulate', '--stats', '--data', 'test/fixtures/wnv.csv', '--features', 'age,sex,syndrome', '--outcome', 'death', '--peers', '8', '--bins', '10', '--json'])
    expect(status).toBe(0)
    const result = JSON.parse(stdout) as Record<string, any>
    expect(Object.keys(result.features)).toEqual(['age', 'sex', 'syndrome'])
    expect(result.features.age).toMatchObject({ count: 745, missing: 21 })
    expect(Object.keys(result.features.age.quantiles)).toEqual(['p5', 'p10', 'p25', 'p50', 'p75', 'p90', 'p95'])
    expect(result.correlation.names).toEqual(['age', 'death'])
    expect(Object.keys(result.iv)).toEqual(['age', 'sex', 'syndrome'])
    expect(result.woe.syndrome.length).toBeGreaterThanOrEqual(2)
    expect(result.peers).toBe(8)
  })

  it('takes no outcome: no IV or WOE; a fit without --outcome is refused', async () => {
    const stats = await run(['simulate', '--stats', '--data', 'test/fixtures/infert.csv', '--features', 'age,parity,education', '--peers', '4', '--json'])
    expect(stats.status).toBe(0)
    expect(JSON.parse(stats.stdout)).toMatchObject({ iv: null, woe: null, correlation: { names: ['age', 'parity'] } })
    const fit = await run(['simulate', '--data', 'test/fixtures/infert.csv'])
    expect(fit.status).toBe(2)
    expect(fit.stderr).toMatch(/--outcome/)
    const bad = await run(['simulate', '--stats', '--data', 'test/fixtures/infert.csv', '--outcome', 'parity'])
    expect(bad.status).toBe(2)
    expect(bad.stderr).toMatch(/binary outcome/)
  })
})
