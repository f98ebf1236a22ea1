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
