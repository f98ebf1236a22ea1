import { writeFile } from 'node:fs/promises'
import { type Command, Option } from 'commander'
import type { Algorithm } from '../../consensus/jobs/fit-job.ts'
import { simulateEndemicEpidemicForecast } from '../../consensus/sim/endemic-epidemic-simulation.ts'
import { simulateForecast, type FederatedFit, type ForecastSimulationOutput } from '../../consensus/sim/forecast-simulation.ts'
import { createEndemicEpidemicSpec, type CountFamily } from '../../learning/endemic-epidemic.ts'
import { parseCandidates } from '../../learning/model-choice.ts'
import { ForecastInputError } from '../../learning/forecast.ts'
import { createForecastModelSpec, type OwnScale } from '../../learning/forecast.ts'
import { createRiskParams, type RiskMapping } from '../../learning/risk.ts'
import type { Skill } from '../../learning/forecast-skill.ts'
import { DatasetError } from '../data/dataset.ts'
import { readForecastInputs } from '../data/forecast-files.ts'

const DAY_MS = 86_400_000

/** A counts file's period label as its first day (ms since 1970, UTC): a date YYYY-MM-DD, or an ISO week YYYY-Www (its Monday); else null. */
export function periodDate (label: string): number | null {
  if (/^\d{4}-\d{2}-\d{2}$/.test(label)) {
    const day = Date.parse(`${label}T00:00:00Z`)
    return Number.isFinite(day) && new Date(day).toISOString().slice(0, 10) === label ? day : null
  }
  const week = /^(\d{4})-W(\d{2})$/.exec(label)
  if (week === null) return null
  const number = Number(week[2])
  if (number < 1 || number > 53) return null
  // ISO 8601: week 1 holds 4 January; weeks begin on Monday
  const fourth = Date.UTC(Number(week[1]), 0, 4)
  const weekday = (new Date(fourth).getUTCDay() + 6) % 7
  return fourth - weekday * DAY_MS + (number - 1) * 7 * DAY_MS
}

export type ForecastModelName = 'endemic-epidemic' | 'loglinear'

export interface SimulateForecastOptions {
  counts: string
  model: ForecastModelName
  family: CountFamily
  unitIntercepts?: boolean
  population: string
  adjacency: string
  totalPopulation?: number
  horizon?: number
  holdout: number
  periodDays: number
  season: number
  harmonics: number
  candidates?: string
  validation?: number
  ownLags: number
  neighbourLags: number
  ownScale: OwnScale
  algorithm: Algorithm
  tolerance: number
  maxRounds: number
  seed: number
  riskMapping: 'exponential' | 'log-logistic'
  halfRisk: number
  riskThreshold: number
  riskSlope: number
  openRegions?: string
  level: number
  json?: boolean
  plot?: string
  pit?: string
}

function numberOption (name: string, check: (value: number) => boolean, what: string) {
  return (text: string): number => {
    const value = Number(text)
    if (text.trim() === '' || !check(value)) throw new DatasetError(`--${name} must be ${what}, got "${text}"`)
    return value
  }
}

const positiveInteger = (name: string): ((text: string) => number) => numberOption(name, (value) => Number.isInteger(value) && value >= 1, 'a positive integer')
const nonNegativeInteger = (name: string): ((text: string) => number) => numberOption(name, (value) => Number.isInteger(value) && value >= 0, 'a non-negative integer')
const positiveNumber = (name: string): ((text: string) => number) => numberOption(name, (value) => Number.isFinite(value) && value > 0, 'a positive number')

const byTerm = (terms: readonly string[], values: ArrayLike<number>): Record<string, number> =>
  Object.fromEntries(terms.map((term, index) => [term, values[index] as number]))

function fitSummary (fit: FederatedFit): Record<string, unknown> {
  return {
    relativeError: fit.relativeError,
    coefficients: byTerm(fit.terms, fit.coefficients),
    pooled: byTerm(fit.terms, fit.pooled),
    rounds: fit.rounds,
    converged: fit.converged,
    messages: fit.messages,
    rows: fit.rows,
    seconds: fit.milliseconds === null ? null : fit.milliseconds / 1000
  }
}

const skillSummary = (skill: Skill | null): { logScore: number, mae: number, rps: number, dss: number, coverage: number } | null =>
  skill === null ? null : { logScore: skill.logScore, mae: skill.mae, rps: skill.rps, dss: skill.dss, coverage: skill.coverage }

/**
 * Runs the forecasting simulation on the three files and returns the summary printed with --json.
 * The model is fitted twice by the simulated federation: on every period (the coefficients, the
 * forecasts and h) and on the periods before the held-out tail (the skill).
 */
export async function runSimulateForecast (options: SimulateForecastOptions): Promise<{ summary: Record<string, any>, output: ForecastSimulationOutput, periods: string[] }> {
  const { panel, periods, graph, shares, names } = await readForecastInputs(
    { counts: options.counts, population: options.population, adjacency: options.adjacency },
    options.totalPopulation === undefined ? {} : { totalPopulation: options.totalPopulation }
  )
  const mapping: RiskMapping = options.riskMapping === 'exponential'
    ? { kind: 'exponential', halfRisk: options.halfRisk }
    : { kind: 'log-logistic', threshold: options.riskThreshold, slope: options.riskSlope }
  const risk = createRiskParams({ periodDays: options.periodDays, horizon: options.horizon ?? null, mapping })
  const openRegions = options.openRegions === undefined ? [] : options.openRegions.split(',').map((name) => name.trim()).filter((name) => name !== '')
  for (const region of openRegions) if (!panel.regions.includes(region)) throw new DatasetError(`--open-regions: "${region}" is not a region of ${options.counts}`)
  const clock = { now: () => performance.now() }
  const common = { panel, graph, holdout: options.holdout, ...(options.horizon === undefined ? {} : { horizon: options.horizon }), risk, seed: options.seed, openRegions, level: options.level }
  let output: ForecastSimulationOutput
  let model: Record<string, unknown>
  let algorithm: string
  let choice: Record<string, unknown> | null = null
  if (options.model !== 'endemic-epidemic' && (options.candidates !== undefined || options.validation !== undefined)) throw new DatasetError('--candidates and --validation choose among endemic-epidemic designs: they need --model endemic-epidemic')
  if (options.validation !== undefined && options.candidates === undefined) throw new DatasetError('--validation sets the window of --candidates: give --candidates too')
  if (options.model === 'endemic-epidemic') {
    const base = createEndemicEpidemicSpec({ family: options.family, harmonics: options.harmonics, period: options.season, unitIntercepts: options.unitIntercepts === true })
    let candidates
    try {
      candidates = options.candidates === undefined ? undefined : parseCandidates(options.candidates, base)
    } catch (error) {
      if (error instanceof ForecastInputError) throw new DatasetError(`--candidates: ${error.message}`)
      throw error
    }
    const chosen = simulateEndemicEpidemicForecast({ ...common, spec: base, ...(candidates === undefined ? {} : { candidates }), ...(options.validation === undefined ? {} : { validation: options.validation }) }, clock)
    output = chosen
    const spec = chosen.choice === null ? base : chosen.choice.specs[chosen.choice.chosen] ?? base
    model = { name: 'endemic-epidemic', ...spec }
    algorithm = 'newton'
    if (chosen.choice !== null) {
      const outcome = chosen.choice
      choice = {
        candidates: outcome.candidates,
        scores: outcome.scores,
        meanScores: outcome.scores.map((score, index) => score / (outcome.counts[index] as number)),
        forecasts: outcome.counts[0],
        chosen: outcome.candidates[outcome.chosen],
        chosenIndex: outcome.chosen,
        validation: { periods: outcome.validation.to - outcome.validation.from, fromPeriod: periods[outcome.validation.from], toPeriod: periods[outcome.validation.to - 1] },
        rounds: outcome.rounds,
        messages: outcome.messages
      }
    }
  } else {
    const spec = createForecastModelSpec({ ownLags: options.ownLags, neighbourLags: options.neighbourLags, ownScale: options.ownScale, seasonPeriod: options.season, harmonics: options.harmonics })
    output = simulateForecast({ ...common, spec, algorithm: options.algorithm, tolerance: options.tolerance, maxRounds: options.maxRounds }, clock)
    model = { name: 'loglinear', ...spec }
    algorithm = options.algorithm
  }
  const { fit, skill, regions, jointRisk } = output
  const summary: Record<string, any> = {
    regionsCount: regions.length,
    periods: periods.length,
    firstPeriod: periods[0],
    lastPeriod: periods[periods.length - 1],
    populationShares: shares,
    model: { ...model, terms: fit.terms },
    choice,
    algorithm,
    ...fitSummary(fit),
    skill: skill === null
      ? null
      : {
          heldOut: skill.to - skill.from,
          fromPeriod: periods[skill.from],
          model: skillSummary(skill.model),
          lastValue: skillSummary(skill.lastValue),
          seasonalNaive: skillSummary(skill.seasonalNaive),
          forecasts: skill.model.count,
          fit: fitSummary(skill.fit)
        },
    risk: { ...risk, horizon: output.horizon, rate: 'forecast cases per 100,000 residents per 7 days' },
    regions: regions.map((region) => ({
      region: region.region,
      name: names[panel.regions.indexOf(region.region)] ?? null,
      h: region.h,
      rate: region.rate,
      forecast: region.forecast.map((period) => ({ step: period.step, mean: period.mean, lower: period.lower, upper: period.upper }))
    })),
    jointRisk: {
      sum: jointRisk.sum,
      mean: jointRisk.mean,
      regions: jointRisk.regions,
      open: jointRisk.open,
      plainSum: jointRisk.plainSum,
      ticks: jointRisk.ticks,
      messages: jointRisk.messages
    },
    seed: options.seed
  }
  if (options.plot !== undefined && skill !== null) {
    // the held-out periods by their dates when the counts file's period labels are dates or ISO weeks
    const days = periods.slice(skill.from, skill.to).map(periodDate)
    const dated = days.every((day) => day !== null)
    const xOf = (index: number): number => dated ? days[index] as number : index + 1
    const line = (values: readonly number[]): Array<readonly [number, number]> => values.map((value, index) => [xOf(index), value] as const)
    const series = [
      { name: 'observed', points: line(skill.totals.observed) },
      { name: `${String(model.name)} (one step ahead, mean)`, points: line(skill.totals.model) },
      { name: 'last value', points: line(skill.totals.lastValue) },
      ...(skill.totals.seasonalNaive === null ? [] : [{ name: 'seasonal naive', points: line(skill.totals.seasonalNaive) }])
    ]
    // the model's 95% interval of the sum: mean +- 1.96 SD, the regions' variances added (normal approximation), not below 0
    const band = {
      name: `${String(model.name)}: 95% interval (normal approximation of the sum)`,
      points: skill.totals.model.map((mean, index) => {
        const sd = Math.sqrt(skill.totals.modelVariance[index] as number)
        return [xOf(index), Math.max(0, mean - 1.96 * sd), mean + 1.96 * sd] as const
      })
    }
    // vega loads only for a plot
    const { lineChartSvg } = await import('./plot.ts')
    const svg = await lineChartSvg(series, {
      title: `held-out periods from ${periods[skill.from]}: cases summed over ${regions.length} regions`,
      xTitle: dated ? `first day of the period (${periods[skill.from]} to ${periods[skill.to - 1]})` : 'held-out period',
      yTitle: 'cases (observed) or forecast',
      bands: [band],
      timeX: dated,
      legend: 'top-left'
    })
    await writeFile(options.plot, svg)
  }
  if (options.pit !== undefined && skill !== null) {
    const { barChartSvg } = await import('./plot.ts')
    const bins = skill.model.pit
    const svg = await barChartSvg(bins.map((share, bin) => ({ from: bin / bins.length, to: (bin + 1) / bins.length, value: share * bins.length })), {
      title: `${String(model.name)}: randomised PIT of ${skill.model.count} one-step forecasts from ${periods[skill.from]}`,
      xTitle: 'probability integral transform',
      yTitle: 'density (1 when calibrated)',
      reference: 1
    })
    await writeFile(options.pit, svg)
  }
  return { summary, output, periods }
}

/** A region as shown: "LK Loerrach (8336)" when the population file names it, else its code. */
const regionLabel = (region: { region: string, name: string | null }): string => region.name === null || region.name === region.region ? region.region : `${region.name} (${region.region})`

function printText (summary: Record<string, any>): void {
  const out = (line = ''): void => { process.stdout.write(`${line}\n`) }
  out(`${summary.regionsCount} regions, ${summary.periods} periods (${summary.firstPeriod} to ${summary.lastPeriod}), seed ${summary.seed}`)
  out(`model: ${summary.model.name}`)
  const choice = summary.choice
  if (choice !== null) {
    out()
    out(`model choice by the federation: one-step log scores on the ${choice.validation.periods} periods from ${choice.validation.fromPeriod} to ${choice.validation.toPeriod} (${choice.forecasts} forecasts), each design fitted on the periods before, summed by one masked sum (${choice.rounds} rounds):`)
    out(`${'candidate'.padEnd(44)} ${'sum log score'.padStart(14)} ${'mean'.padStart(9)}`)
    ;(choice.candidates as string[]).forEach((label, index) => {
      out(`${label.padEnd(44)} ${Number(choice.scores[index]).toFixed(4).padStart(14)} ${Number(choice.meanScores[index]).toFixed(4).padStart(9)}${index === choice.chosenIndex ? '  chosen' : ''}`)
    })
  }
  out(`federated ${summary.algorithm} fit on all periods: ${summary.rows} rows, ${summary.rounds} rounds, ${summary.converged ? 'converged' : 'NOT converged'}, ${Number(summary.seconds).toFixed(2)} s`)
  out()
  out(`${'term'.padEnd(24)} ${'federated'.padStart(16)} ${'pooled'.padStart(16)}`)
  for (const term of Object.keys(summary.coefficients as Record<string, number>)) {
    out(`${term.padEnd(24)} ${Number(summary.coefficients[term]).toPrecision(10).padStart(16)} ${Number(summary.pooled[term]).toPrecision(10).padStart(16)}`)
  }
  out(`max relative error against the pooled fit: ${Number(summary.relativeError).toExponential(2)}`)
  const skill = summary.skill
  if (skill !== null) {
    out()
    out(`one-step-ahead skill on the last ${skill.heldOut} periods (from ${skill.fromPeriod}, ${skill.forecasts} forecasts; fitted before, relative error ${Number(skill.fit.relativeError).toExponential(2)}):`)
    out(`${'forecast'.padEnd(16)} ${'log score'.padStart(10)} ${'RPS'.padStart(8)} ${'DSS'.padStart(8)} ${'MAE'.padStart(8)} ${'coverage'.padStart(9)}`)
    for (const [name, key] of [[summary.model.name, 'model'], ['last value', 'lastValue'], ['seasonal naive', 'seasonalNaive']] as const) {
      const entry = skill[key]
      const cell = (field: string, width: number): string => entry === null ? 'n/a'.padStart(width) : Number(entry[field]).toFixed(4).padStart(width)
      out(`${String(name).padEnd(16)} ${cell('logScore', 10)} ${cell('rps', 8)} ${cell('dss', 8)} ${cell('mae', 8)} ${cell('coverage', 9)}`)
    }
    out('(log score: mean log P(observed), higher is better; RPS, DSS, MAE: lower is better; coverage: randomised-PIT share in the central 90%, calibrated 0.90)')
  }
  out()
  const mapping = summary.risk.mapping
  out(`risk h (forecast over the next ${summary.risk.horizon} period(s), cases per 100,000 per 7 days, ${mapping.kind === 'exponential' ? `h = 1 - 2^(-rate / ${mapping.halfRisk})` : `h = 1 / (1 + (${mapping.threshold} / rate)^${mapping.slope})`}):`)
  out(`${'region'.padEnd(32)} ${'h'.padStart(8)} ${'rate'.padStart(10)} ${'next mean'.padStart(10)} ${'interval'.padStart(12)}`)
  for (const region of summary.regions as Array<{ region: string, name: string | null, h: number, rate: number, forecast: Array<{ mean: number, lower: number, upper: number }> }>) {
    const next = region.forecast[0] as { mean: number, lower: number, upper: number }
    out(`${regionLabel(region).slice(0, 32).padEnd(32)} ${region.h.toFixed(4).padStart(8)} ${region.rate.toFixed(3).padStart(10)} ${next.mean.toFixed(3).padStart(10)} ${`${next.lower}-${next.upper}`.padStart(12)}`)
  }
  const joint = summary.jointRisk
  out()
  out(`joint risk by masked sum over ${joint.regions} regions: sum ${Number(joint.sum).toFixed(6)}, mean ${Number(joint.mean).toFixed(6)} (${joint.ticks} rounds, ${joint.messages} messages)`)
  const nameOf = new Map((summary.regions as Array<{ region: string, name: string | null }>).map((region) => [region.region, region]))
  for (const open of joint.open as Array<{ region: string, h: number }>) out(`  published openly: ${regionLabel(nameOf.get(open.region) ?? { region: open.region, name: null })} h = ${open.h.toFixed(6)}`)
}

export function registerSimulateForecast (program: Command): void {
  program.command('simulate-forecast')
    .description('fit the shared case-count forecasting model over a simulated federation of regions; skill, risk scores and the joint risk')
    .requiredOption('--counts <file>', 'wide CSV: a period column, then one column of counts per region')
    .requiredOption('--population <file>', 'CSV with columns region,population (residents, or shares with --total-population)')
    .requiredOption('--adjacency <file>', 'edge list a,b between regions: the federation graph and the neighbour term')
    .addOption(new Option('--model <name>', 'endemic-epidemic (hhh4\'s negative binomial model) or loglinear (a Poisson GLM in log(1 + lags))').choices(['endemic-epidemic', 'loglinear']).default('endemic-epidemic'))
    .addOption(new Option('--family <name>', 'endemic-epidemic: the counts\' distribution').choices(['negbin1', 'poisson']).default('negbin1'))
    .option('--unit-intercepts', 'endemic-epidemic: each region its own endemic intercept, which only that region learns', false)
    .option('--total-population <n>', 'residents in all regions together, when the population file holds shares', positiveNumber('total-population'))
    .option('--horizon <n>', 'periods forecast and averaged for h (default: enough periods for 7 days)', positiveInteger('horizon'))
    .option('--holdout <n>', 'periods held out at the end for the one-step-ahead skill (0: none)', nonNegativeInteger('holdout'), 52)
    .option('--period-days <d>', 'days per period of the counts file', positiveNumber('period-days'), 7)
    .option('--season <periods>', 'season length in periods', positiveNumber('season'), 52)
    .option('--harmonics <k>', 'sine-cosine pairs of the season', nonNegativeInteger('harmonics'), 1)
    .option('--candidates <designs>', 'endemic-epidemic: designs for the federation to choose from, \';\'-separated, each \',\'-separated settings over the flags\' design: harmonics=N, family=negbin1|poisson, unit-intercepts (e.g. "harmonics=1;harmonics=2;harmonics=1,unit-intercepts")')
    .option('--validation <n>', 'with --candidates: periods just before the held-out tail on which the designs are scored (default 26)', positiveInteger('validation'))
    .option('--own-lags <k>', 'loglinear: lags of the region\'s own series', nonNegativeInteger('own-lags'), 2)
    .option('--neighbour-lags <k>', 'loglinear: lags of the neighbours\' mean incidence', nonNegativeInteger('neighbour-lags'), 1)
    .addOption(new Option('--own-scale <scale>', 'loglinear: own lags as log(1 + count) or log(1 + incidence per 100,000)').choices(['count', 'incidence']).default('count'))
    .addOption(new Option('--algorithm <name>', 'loglinear: admm or newton (exact, masked sums); endemic-epidemic is always exact Newton').choices(['admm', 'newton']).default('newton'))
    .option('--tolerance <t>', 'stopping tolerance of the federated fit', positiveNumber('tolerance'), 1e-10)
    .option('--max-rounds <r>', 'round limit of the federated fit', positiveInteger('max-rounds'), 5000)
    .option('--seed <n>', 'seed of the simulated masks and network', nonNegativeInteger('seed'), 1)
    .addOption(new Option('--risk-mapping <kind>', 'rate-to-h mapping').choices(['exponential', 'log-logistic']).default('exponential'))
    .option('--half-risk <rate>', 'exponential mapping: the 7-day rate per 100,000 where h = 1/2', positiveNumber('half-risk'), 10)
    .option('--risk-threshold <rate>', 'log-logistic mapping: the 7-day rate per 100,000 where h = 1/2', positiveNumber('risk-threshold'), 10)
    .option('--risk-slope <s>', 'log-logistic mapping: steepness', positiveNumber('risk-slope'), 2)
    .option('--open-regions <list>', 'regions that publish their h openly, comma-separated')
    .option('--level <p>', 'prediction interval probability', numberOption('level', (value) => value > 0 && value < 1, 'in (0, 1)'), 0.9)
    .option('--json', 'one JSON object on stdout', false)
    .option('--plot <file.svg>', 'plot the held-out one-step forecasts, summed over regions')
    .option('--pit <file.svg>', 'the model\'s randomised PIT histogram on the held-out forecasts (flat when calibrated)')
    .action(async (options: SimulateForecastOptions) => {
      const { summary } = await runSimulateForecast(options)
      if (options.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`)
      else printText(summary)
    })
}
