import { z } from 'zod'
import { createEndemicEpidemicSpec, type EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { createForecastModelSpec, type ForecastModelSpec } from '../../learning/forecast.ts'
import { createRiskParams, riskHorizon, type RiskParams } from '../../learning/risk.ts'
import { EpimeshError } from '../../errors.ts'
import { excerpt, isRegionName, REGION_NAME_RULE } from '../../consensus/ids.ts'
import { JOB_BOUNDS } from '../job-bounds.ts'
import { candidateLabel, MAX_CANDIDATES } from '../../learning/model-choice.ts'

/** Periods of the model choice's validation window when a proposal with candidates gives none. */
export const DEFAULT_VALIDATION = 26

/**
 * A regional forecasting job as members propose it: which periods of the regions' case-count series
 * (from a first day, so many days or weeks), the shared model, the forecast horizon, the risk mapping,
 * and which regions publish their risk score openly. Every member checks it against its own series.
 */
export class ForecastProposalError extends EpimeshError {
  static override readonly name = 'ForecastProposalError'
  readonly exitCode = 2
  constructor (message: string) { super('FORECAST_PROPOSAL_INVALID', message) }
}

const isoDay = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD')

export const forecastProposalSchema = z.object({
  from: isoDay,
  periods: z.number().int().min(8).max(20_000),
  period: z.enum(['day', 'week']),
  /** the model: hhh4's endemic-epidemic model (negative binomial), or the log-linear Poisson GLM */
  kind: z.enum(['endemic-epidemic', 'loglinear']).default('endemic-epidemic'),
  /** endemic-epidemic: each region its own endemic intercept, which only that region learns */
  unitIntercepts: z.boolean().default(false),
  /** loglinear: lags, their scale; both: the season (harmonics, and its period for loglinear) */
  model: z.object({
    ownLags: z.number().int().min(0).max(52).optional(),
    neighbourLags: z.number().int().min(0).max(52).optional(),
    ownScale: z.enum(['count', 'incidence']).optional(),
    seasonPeriod: z.number().min(2).max(1000).nullable().optional(),
    harmonics: z.number().int().min(0).max(6).optional()
  }).strict().default({}),
  /**
   * endemic-epidemic: designs for the federation to choose from by their one-step log score on the last
   * `validation` periods (each setting left out is the proposal's own)
   */
  candidates: z.array(z.object({
    harmonics: z.number().int().min(0).max(6).optional(),
    family: z.enum(['negbin1', 'poisson']).optional(),
    unitIntercepts: z.boolean().optional()
  }).strict()).min(1).max(MAX_CANDIDATES).optional(),
  validation: z.number().int().min(1).max(20_000).optional(),
  horizon: z.number().int().min(1).max(365).optional(),
  halfRisk: z.number().positive().max(1e6).optional(),
  openRegions: z.array(z.string().refine(isRegionName, REGION_NAME_RULE)).max(10_000).default([]),
  algorithm: z.enum(['newton', 'admm']).default('newton'),
  tolerance: z.number().min(JOB_BOUNDS.tolerance.min).max(JOB_BOUNDS.tolerance.max).default(1e-10),
  maxRounds: z.number().int().min(JOB_BOUNDS.maxRounds.min).max(JOB_BOUNDS.maxRounds.max).default(5000)
}).strict()

export type ForecastProposal = z.infer<typeof forecastProposalSchema>

export interface ForecastPlan {
  proposal: ForecastProposal
  spec: ForecastModelSpec
  /** the endemic-epidemic model when the proposal's kind is endemic-epidemic, else null */
  endemicEpidemic: EndemicEpidemicSpec | null
  /** the endemic-epidemic designs to choose from (then `endemicEpidemic` is only their base), or null */
  candidates: EndemicEpidemicSpec[] | null
  /** periods of the validation window at the end of the series */
  validation: number
  risk: RiskParams
  horizon: number
  /** the federation's period index of the first period: periods since Monday 1970-01-05 */
  start: number
  /** the first day of each period, and the day after the last */
  days: { first: number, end: number }
}

const DAY_MS = 86_400_000
const EPOCH = Date.UTC(1970, 0, 5)

function dayNumber (date: string): number {
  const ms = Date.parse(`${date}T00:00:00Z`)
  if (!Number.isFinite(ms) || new Date(ms).toISOString().slice(0, 10) !== date) throw new ForecastProposalError(`${excerpt(date)} is not a calendar date (field from)`)
  return Math.round(ms / DAY_MS)
}

export function parseForecastProposal (value: unknown): ForecastPlan {
  const parsed = forecastProposalSchema.safeParse(value)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    throw new ForecastProposalError(`forecast job: ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}`)
  }
  const proposal = parsed.data
  const periodDays = proposal.period === 'week' ? 7 : 1
  let spec: ForecastModelSpec
  let endemicEpidemic: EndemicEpidemicSpec | null = null
  let risk: RiskParams
  try {
    spec = createForecastModelSpec({ seasonPeriod: proposal.period === 'week' ? 52 : 365.25, ...proposal.model })
    if (proposal.kind === 'endemic-epidemic') {
      if (spec.seasonPeriod === null) throw new ForecastProposalError('forecast job: the endemic-epidemic model needs a season period (field model.seasonPeriod)')
      endemicEpidemic = createEndemicEpidemicSpec({ harmonics: spec.harmonics, period: spec.seasonPeriod, unitIntercepts: proposal.unitIntercepts })
    }
    risk = createRiskParams({ periodDays, ...(proposal.halfRisk === undefined ? {} : { mapping: { kind: 'exponential', halfRisk: proposal.halfRisk } }) })
  } catch (error) {
    throw new ForecastProposalError(`forecast job: ${(error as Error).message}`)
  }
  let candidates: EndemicEpidemicSpec[] | null = null
  const validation = proposal.validation ?? DEFAULT_VALIDATION
  if (proposal.candidates !== undefined) {
    if (endemicEpidemic === null) throw new ForecastProposalError('forecast job: candidates are endemic-epidemic designs: they need kind endemic-epidemic (field candidates)')
    const base = endemicEpidemic
    candidates = proposal.candidates.map((candidate, index) => {
      try {
        return createEndemicEpidemicSpec({ ...base, ...candidate })
      } catch (error) {
        throw new ForecastProposalError(`forecast job: candidates.${index}: ${(error as Error).message}`)
      }
    })
    const labels = candidates.map(candidateLabel)
    labels.forEach((label, index) => { if (labels.indexOf(label) !== index) throw new ForecastProposalError(`forecast job: candidates.${index} repeats candidates.${labels.indexOf(label)} (${label})`) })
    if (proposal.periods - validation < 8) throw new ForecastProposalError(`forecast job: a validation window of ${validation} periods leaves ${proposal.periods - validation} of ${proposal.periods} to fit the candidates on, at least 8 are needed (field validation)`)
  } else if (proposal.validation !== undefined) {
    throw new ForecastProposalError('forecast job: validation is the window of the candidates: give candidates too (field validation)')
  }
  const first = dayNumber(proposal.from)
  if (proposal.period === 'week' && ((first - EPOCH / DAY_MS) % 7 + 7) % 7 !== 0) throw new ForecastProposalError(`forecast job: weekly periods start on a Monday, ${proposal.from} is not one (field from)`)
  const horizon = proposal.horizon ?? riskHorizon(risk)
  if (horizon < riskHorizon(risk)) throw new ForecastProposalError(`forecast job: the horizon ${horizon} is shorter than the ${riskHorizon(risk)} periods the risk score averages (field horizon)`)
  return {
    proposal,
    spec,
    endemicEpidemic,
    candidates,
    validation,
    risk,
    horizon,
    start: Math.floor((first - EPOCH / DAY_MS) / periodDays),
    days: { first, end: first + proposal.periods * periodDays }
  }
}

export interface RegionSeries {
  counts: Float64Array
  population: number
}

/**
 * A region's counts per period of the job from its stored series (one point per date; dates without a
 * point had no cases), and its population (the latest given in the series). A reason to decline when
 * the series cannot serve the job.
 */
export function regionSeries (plan: ForecastPlan, points: ReadonlyArray<{ date: string, count: number, population?: number }>): RegionSeries | string {
  const periodDays = plan.proposal.period === 'week' ? 7 : 1
  const counts = new Float64Array(plan.proposal.periods)
  let population: number | null = null
  let populationDay = Number.NEGATIVE_INFINITY
  let firstDay = Number.POSITIVE_INFINITY
  let lastDay = Number.NEGATIVE_INFINITY
  for (const point of points) {
    const day = Math.round(Date.parse(`${point.date}T00:00:00Z`) / DAY_MS)
    if (!Number.isFinite(day)) continue
    if (point.population !== undefined && point.population !== null && day >= populationDay && day < plan.days.end) {
      population = point.population
      populationDay = day
    }
    firstDay = Math.min(firstDay, day)
    lastDay = Math.max(lastDay, day)
    if (day < plan.days.first || day >= plan.days.end) continue
    const index = Math.floor((day - plan.days.first) / periodDays)
    counts[index] = (counts[index] as number) + point.count
  }
  if (points.length === 0) return 'no case-count series in this region\'s store (epimesh import --series)'
  if (population === null || !(population > 0)) return 'the series gives no population for this region (a population column in the series file)'
  if (firstDay > plan.days.first) return `this region's series begins after the job's first period (${plan.proposal.from})`
  return { counts, population }
}
