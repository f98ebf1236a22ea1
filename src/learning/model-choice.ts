import { createEndemicEpidemicSpec, fitEndemicEpidemic, type EndemicEpidemicRegion, type EndemicEpidemicSpec } from './endemic-epidemic.ts'
import { oneStepDistributions, type EndemicEpidemicParameters } from './endemic-epidemic-forecast.ts'
import { ForecastInputError } from './forecast.ts'
import { logCountProbability } from './negbin.ts'

/**
 * Choosing among candidate designs of the endemic-epidemic model (harmonics, family, region effects) by
 * their one-step-ahead log score on a validation window [from, to): each candidate is fitted on the
 * periods before `from`, and scored with those parameters on every period of the window, one step ahead
 * (the counts of the period before are known). The score of a candidate is the sum over regions and
 * periods of log P(Y = y_observed), a sum over regions: a federation adds its regions' sums by one
 * masked sum, and every member picks the same candidate, the one with the highest total (ties: the
 * first listed).
 */
export const MAX_CANDIDATES = 8

/** A candidate's validation score over one region (or, summed, over all): sum of log P(y) and the periods scored. */
export interface ValidationScore {
  logScore: number
  count: number
}

/** The window's checks: at least 3 periods to fit on before it, and at least one period in it. */
export function checkValidationWindow (window: { from: number, to: number }): void {
  if (!(Number.isInteger(window.from) && window.from >= 3)) throw new ForecastInputError('validation', `the validation window must start after at least 3 periods to fit on, got ${window.from}`)
  if (!(Number.isInteger(window.to) && window.to > window.from)) throw new ForecastInputError('validation', `the validation window [${window.from}, ${window.to}) has no period`)
}

/** One region's validation score of a fitted candidate: its one-step log scores over [from, to), summed. */
export function regionValidationScore (parameters: EndemicEpidemicParameters, region: EndemicEpidemicRegion, window: { from: number, to: number }): ValidationScore {
  let logScore = 0
  let count = 0
  for (const { observed, distribution } of oneStepDistributions(parameters, region, window)) {
    logScore += logCountProbability(observed, distribution)
    count++
  }
  return { logScore, count }
}

/** The index of the highest score (ties: the first); a score that is not finite never wins over one that is. */
export function chooseCandidate (scores: readonly number[]): number {
  if (scores.length === 0) throw new ForecastInputError('candidates', 'no candidate to choose from')
  let best = 0
  for (let index = 1; index < scores.length; index++) {
    const score = scores[index] as number
    const bestScore = scores[best] as number
    if (Number.isFinite(score) && (!Number.isFinite(bestScore) || score > bestScore)) best = index
  }
  return best
}

/** A candidate's name: its design as `--candidates` writes it, every field spelt out. */
export function candidateLabel (spec: EndemicEpidemicSpec): string {
  return `harmonics=${spec.harmonics},family=${spec.family}${spec.unitIntercepts ? ',unit-intercepts' : ''}`
}

/**
 * Candidates from text: designs separated by ';', each a ','-separated list of `harmonics=N`,
 * `family=negbin1|poisson`, `unit-intercepts` (or `unit-intercepts=true|false`) over `base` (what
 * a design leaves out). At most MAX_CANDIDATES designs, no design twice.
 */
export type CandidateSettings = Partial<Pick<EndemicEpidemicSpec, 'harmonics' | 'family' | 'unitIntercepts'>>

/** The settings each design of `--candidates` text states (see parseCandidates), unchecked against a base. */
export function parseCandidateSettings (text: string): CandidateSettings[] {
  if (text.length > 2000) throw new ForecastInputError('candidates', `${text.length} characters, at most 2000`)
  const designs = text.split(';').map((part) => part.trim())
  if (designs.length > MAX_CANDIDATES) throw new ForecastInputError('candidates', `${designs.length} designs, at most ${MAX_CANDIDATES}`)
  return designs.map((design, position) => {
    const where = `design ${position + 1} ("${design}")`
    if (design === '') throw new ForecastInputError('candidates', `${where} is empty`)
    const partial: CandidateSettings = {}
    for (const item of design.split(',').map((part) => part.trim())) {
      const [key, value, ...rest] = item.split('=').map((part) => part.trim())
      if (rest.length > 0) throw new ForecastInputError('candidates', `${where}: "${item}" has more than one '='`)
      if (key === 'harmonics') {
        if (value === undefined || !/^[0-9]+$/.test(value)) throw new ForecastInputError('candidates', `${where}: harmonics must be a non-negative integer, got "${value ?? ''}"`)
        partial.harmonics = Number(value)
      } else if (key === 'family') {
        if (value !== 'negbin1' && value !== 'poisson') throw new ForecastInputError('candidates', `${where}: family must be negbin1 or poisson, got "${value ?? ''}"`)
        partial.family = value
      } else if (key === 'unit-intercepts') {
        if (value !== undefined && value !== 'true' && value !== 'false') throw new ForecastInputError('candidates', `${where}: unit-intercepts is true or false, got "${value}"`)
        partial.unitIntercepts = value !== 'false'
      } else {
        throw new ForecastInputError('candidates', `${where}: unknown setting "${key ?? ''}" (harmonics=N, family=negbin1|poisson, unit-intercepts)`)
      }
    }
    return partial
  })
}

/**
 * Candidates from text: designs separated by ';', each a ','-separated list of `harmonics=N`,
 * `family=negbin1|poisson`, `unit-intercepts` (or `unit-intercepts=true|false`) over `base` (what
 * a design leaves out). At most MAX_CANDIDATES designs, no design twice.
 */
export function parseCandidates (text: string, base: EndemicEpidemicSpec): EndemicEpidemicSpec[] {
  const specs = parseCandidateSettings(text).map((partial, position) => {
    try {
      return createEndemicEpidemicSpec({ ...base, ...partial })
    } catch (error) {
      throw new ForecastInputError('candidates', `design ${position + 1}: ${(error as Error).message}`, { cause: error })
    }
  })
  const labels = specs.map(candidateLabel)
  labels.forEach((label, index) => { if (labels.indexOf(label) !== index) throw new ForecastInputError('candidates', `design ${index + 1} repeats design ${labels.indexOf(label) + 1} (${label})`) })
  return specs
}

export interface PooledModelChoice {
  scores: ValidationScore[]
  chosen: number
}

/**
 * What one analyst holding every region's series would choose: every candidate fitted on all regions'
 * periods before the window, and its log scores over the window summed over regions. The regions'
 * series must cover the window (they may run longer; the periods after it are not used).
 */
export function pooledModelChoice (candidates: readonly EndemicEpidemicSpec[], regions: readonly EndemicEpidemicRegion[], window: { from: number, to: number }): PooledModelChoice {
  checkValidationWindow(window)
  if (candidates.length === 0) throw new ForecastInputError('candidates', 'no candidate to choose from')
  const scores = candidates.map((spec) => {
    const fit = fitEndemicEpidemic(spec, regions, { range: { to: window.from } })
    let logScore = 0
    let count = 0
    let localIndex = 0
    for (const region of regions) {
      // a region's own intercept (unit intercepts): fit.local lists them in the regions' order
      const local = spec.unitIntercepts ? (fit.local[localIndex++]?.estimate ?? null) : null
      const score = regionValidationScore({ spec, shared: fit.shared, local }, region, window)
      logScore += score.logScore
      count += score.count
    }
    return { logScore, count }
  })
  return { scores, chosen: chooseCandidate(scores.map((score) => score.logScore)) }
}
