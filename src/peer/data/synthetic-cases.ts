import type { Rng } from '../../consensus/types.ts'
import type { CaseSchema } from '../../store/schema.ts'

/**
 * Synthetic case records for the demonstration federation, modelled on the seed platform's case
 * features. Nothing here is real data. Each province draws its own population (sizes, age structure,
 * share of health-care workers differ), and the outcome, a severe case, follows a known logistic model,
 * so that the federation's fit can be compared with the truth as well as with the pooled fit.
 *
 * Columns:
 *   case_id          record id (stored only as a salted hash)
 *   onset_date       symptom onset, YYYY-MM-DD
 *   case_status      confirmed | suspected
 *   healthcare_worker 0/1
 *   sex              F | M
 *   age              years
 *   max_temperature  degrees Celsius
 *   white_cells      white-cell count, 10^9/L
 *   lymphocytes      lymphocyte count, 10^9/L
 *   lung_imaging     0/1: abnormal chest imaging
 *   prior_illness    0/1: a chronic condition
 *   samples_taken    number of samples taken
 *   contact          0/1: contact with a confirmed or suspected case
 *   severe           0/1: the outcome
 */
export const SYNTHETIC_COLUMNS = [
  'case_id', 'onset_date', 'case_status', 'healthcare_worker', 'sex', 'age', 'max_temperature', 'white_cells',
  'lymphocytes', 'lung_imaging', 'prior_illness', 'samples_taken', 'contact', 'severe'
] as const

/** The true model behind `severe` (log-odds), for comparison with what the federation recovers. */
export const SYNTHETIC_TRUTH = Object.freeze({
  '(Intercept)': -19,
  age: 0.045,
  max_temperature: 0.42,
  lymphocytes: -0.9,
  lung_imaging: 1.1,
  prior_illness: 0.7,
  contact: 0.35,
  healthcare_worker: -0.3
})

/** The schema the demonstration imports its records with. */
export const SYNTHETIC_SCHEMA: CaseSchema = {
  version: 1,
  id: 'case_id',
  outcome: 'severe',
  date: 'onset_date',
  columns: {
    onset_date: { type: 'date', required: true },
    case_status: { type: 'category', levels: ['confirmed', 'suspected'] },
    healthcare_worker: { type: 'number', min: 0, max: 1 },
    sex: { type: 'category', levels: ['F', 'M'] },
    age: { type: 'number', min: 0, max: 120 },
    max_temperature: { type: 'number', min: 34, max: 43 },
    white_cells: { type: 'number', min: 0, max: 100 },
    lymphocytes: { type: 'number', min: 0, max: 50 },
    lung_imaging: { type: 'number', min: 0, max: 1 },
    prior_illness: { type: 'number', min: 0, max: 1 },
    samples_taken: { type: 'number', min: 0, max: 50 },
    contact: { type: 'number', min: 0, max: 1 },
    severe: { type: 'number', min: 0, max: 1, required: true }
  }
}

export interface ProvinceProfile {
  region: string
  cases: number
  /** mean age of cases */
  meanAge: number
  /** share of health-care workers among cases */
  healthcareShare: number
  /** share of cases with a known contact */
  contactShare: number
}

/** The demonstration federation: four neighbouring provinces of very different size. */
export const DEMO_PROVINCES: readonly ProvinceProfile[] = Object.freeze([
  { region: 'Shanghai', cases: 420, meanAge: 47, healthcareShare: 0.08, contactShare: 0.55 },
  { region: 'Jiangsu', cases: 760, meanAge: 44, healthcareShare: 0.05, contactShare: 0.45 },
  { region: 'Zhejiang', cases: 640, meanAge: 42, healthcareShare: 0.06, contactShare: 0.5 },
  { region: 'Anhui', cases: 380, meanAge: 39, healthcareShare: 0.04, contactShare: 0.35 }
])

function normal (rng: Rng): number {
  // Box–Muller; 1 - u keeps the logarithm finite
  return Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng())
}

function bernoulli (rng: Rng, probability: number): number {
  return rng() < probability ? 1 : 0
}

function poisson (rng: Rng, mean: number): number {
  let count = 0
  let product = rng()
  const limit = Math.exp(-mean)
  while (product > limit) {
    count++
    product *= rng()
  }
  return count
}

function clamp (value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value))
}

function isoDate (day: number): string {
  return new Date(Date.UTC(2026, 0, 1) + day * 86_400_000).toISOString().slice(0, 10)
}

export type SyntheticRow = Record<(typeof SYNTHETIC_COLUMNS)[number], string | number>

export function generateCases (profile: ProvinceProfile, rng: Rng, firstDay = 0, days = 300): SyntheticRow[] {
  const rows: SyntheticRow[] = []
  for (let index = 0; index < profile.cases; index++) {
    const age = Math.round(clamp(profile.meanAge + 17 * normal(rng), 1, 95))
    const healthcareWorker = bernoulli(rng, profile.healthcareShare)
    const priorIllness = bernoulli(rng, clamp(0.05 + 0.006 * (age - 30), 0.02, 0.6))
    const contact = bernoulli(rng, profile.contactShare)
    const temperature = Math.round(clamp(38.2 + 0.6 * normal(rng), 36, 41.5) * 10) / 10
    const lymphocytes = Math.round(clamp(1.5 - 0.006 * (age - 40) + 0.45 * normal(rng), 0.2, 4) * 100) / 100
    const whiteCells = Math.round(clamp(6.5 + 2 * normal(rng), 1.5, 20) * 10) / 10
    const lungImaging = bernoulli(rng, clamp(0.25 + 0.004 * (age - 40) + 0.1 * priorIllness, 0.05, 0.9))
    const logOdds = SYNTHETIC_TRUTH['(Intercept)'] + SYNTHETIC_TRUTH.age * age + SYNTHETIC_TRUTH.max_temperature * temperature +
      SYNTHETIC_TRUTH.lymphocytes * lymphocytes + SYNTHETIC_TRUTH.lung_imaging * lungImaging + SYNTHETIC_TRUTH.prior_illness * priorIllness +
      SYNTHETIC_TRUTH.contact * contact + SYNTHETIC_TRUTH.healthcare_worker * healthcareWorker
    const severe = bernoulli(rng, 1 / (1 + Math.exp(-logOdds)))
    rows.push({
      case_id: `${profile.region.slice(0, 2).toUpperCase()}-${String(index + 1).padStart(6, '0')}`,
      onset_date: isoDate(firstDay + Math.floor(rng() * days)),
      case_status: rng() < 0.8 ? 'confirmed' : 'suspected',
      healthcare_worker: healthcareWorker,
      sex: rng() < 0.52 ? 'M' : 'F',
      age,
      max_temperature: temperature,
      white_cells: whiteCells,
      lymphocytes,
      lung_imaging: lungImaging,
      prior_illness: priorIllness,
      samples_taken: 1 + poisson(rng, 1.2),
      contact,
      severe
    })
  }
  return rows
}

export function toCsv (rows: readonly SyntheticRow[]): string {
  const lines = [SYNTHETIC_COLUMNS.join(',')]
  for (const row of rows) lines.push(SYNTHETIC_COLUMNS.map((column) => String(row[column])).join(','))
  return `${lines.join('\n')}\n`
}
