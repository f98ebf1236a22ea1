import { readFileSync } from 'node:fs'
import { fixture } from './data.ts'

/** One reference fit of R's surveillance::hhh4 (test/fixtures/hhh4-reference.json, scripts/reference/hhh4-reference.R). */
export interface Hhh4Fit {
  coefficients: Record<string, number>
  standardErrors: Record<string, number>
  logLikelihood: number
  convergence: boolean
  rows: number
}

export interface Hhh4Reference {
  data: 'fluBYBW' | 'measlesDE'
  design: 'shared' | 'unitSpecific'
  periods: number
  regions: string[]
  offsets: Record<string, number>
  zeroRegions: { full: string[], training: string[] }
  full: Hhh4Fit
  training: Hhh4Fit
  heldOut: { from: number, to: number, forecasts: number, logScore: number, rps: number, dss: number, mae: number, coverage: number }
}

const parsed = JSON.parse(readFileSync(fixture('hhh4-reference.json'), 'utf8')) as { source: string, fits: Hhh4Reference[] }

export function hhh4Reference (data: Hhh4Reference['data'], design: Hhh4Reference['design']): Hhh4Reference {
  const found = parsed.fits.find((fit) => fit.data === data && fit.design === design)
  if (found === undefined) throw new Error(`no hhh4 reference for ${data} ${design}`)
  return found
}
