/**
 * The measurements behind docs/forecast.md: for fluBYBW (140 districts, their real adjacency) and
 * measlesDE (16 states, their land borders), the federated fit of the forecasting model against the
 * pooled fit (exact Newton and ADMM), one-step-ahead skill on the last 52 weeks for several designs
 * against the last-value and seasonal-naive baselines, and the joint risk. Prints Markdown.
 *
 *   npx tsx scripts/forecast-experiment.ts [--seed S] [--no-admm]
 */
import { fileURLToPath } from 'node:url'
import { federatedForecastFit, heldOutSkill, simulateForecast } from '../src/consensus/sim/forecast-simulation.ts'
import { fitModel } from '../src/learning/fit.ts'
import { buildForecastDesign, createForecastModelSpec, forecastMeans, type ForecastModelSpec } from '../src/learning/forecast.ts'
import { panelHistories, pooledDesign } from '../src/learning/forecast-panel.ts'
import { createRiskParams, riskScore } from '../src/learning/risk.ts'
import { readForecastInputs } from '../src/peer/data/forecast-files.ts'

const fixture = (name: string): string => fileURLToPath(new URL(`../test/fixtures/${name}`, import.meta.url))
const seedIndex = process.argv.indexOf('--seed')
const seed = seedIndex > 0 ? Number(process.argv[seedIndex + 1]) : 1
const withAdmm = !process.argv.includes('--no-admm')
const clock = { now: () => performance.now() }
const HOLDOUT = 52

const datasets = [
  { name: 'fluBYBW', inputs: await readForecastInputs({ counts: fixture('fluBYBW_counts.csv'), population: fixture('fluBYBW_population.csv'), adjacency: fixture('fluBYBW_adjacency.csv') }) },
  { name: 'measlesDE', inputs: await readForecastInputs({ counts: fixture('measlesDE_counts.csv'), population: fixture('measlesDE_population.csv'), adjacency: fixture('measlesDE_adjacency.csv') }, { totalPopulation: 82_300_000 }) }
]

const variants: Array<{ label: string, spec: ForecastModelSpec }> = [
  { label: 'default: 2 own lags (counts), 1 neighbour lag, 1 harmonic', spec: createForecastModelSpec() },
  { label: 'own lags as incidence per 100,000', spec: createForecastModelSpec({ ownScale: 'incidence' }) },
  { label: '1 own lag', spec: createForecastModelSpec({ ownLags: 1 }) },
  { label: '3 own lags', spec: createForecastModelSpec({ ownLags: 3 }) },
  { label: 'no neighbour lag', spec: createForecastModelSpec({ neighbourLags: 0 }) },
  { label: '2 neighbour lags', spec: createForecastModelSpec({ neighbourLags: 2 }) },
  { label: '2 harmonics', spec: createForecastModelSpec({ harmonics: 2 }) }
]

const out: string[] = [`Seed ${seed}. Skill: one step ahead on the last ${HOLDOUT} weeks, every region, fitted on the weeks before; higher log score and lower MAE are better.`, '']
const spec = createForecastModelSpec()

for (const { name, inputs } of datasets) {
  const { panel, graph } = inputs
  const periods = panel.counts[0]?.length ?? 0
  const histories = panelHistories(panel, graph.neighbours)
  out.push(`## ${name}: ${panel.regions.length} regions, ${periods} weeks, ${graph.neighbours.reduce((sum, list) => sum + list.length, 0) / 2} edges`, '')
  out.push('| fit (default design) | periods | rows | rounds | seconds | converged | max relative error vs pooled |', '|---|---|---|---|---|---|---|')
  for (const algorithm of withAdmm ? ['newton', 'admm'] as const : ['newton'] as const) {
    for (const to of [periods, periods - HOLDOUT]) {
      const fit = federatedForecastFit({ spec, histories, graph, to, algorithm, tolerance: 1e-10, maxRounds: 5000, seed, clock })
      out.push(`| ${algorithm} | 0-${to - 1} | ${fit.rows} | ${fit.rounds} | ${((fit.milliseconds ?? 0) / 1000).toFixed(2)} | ${fit.converged} | ${fit.relativeError.toExponential(2)} |`)
    }
  }
  out.push('')
  out.push('| design (pooled fit) | model log score | model MAE | federated (exact Newton) |', '|---|---|---|---|')
  let baselines = ''
  for (const { label, spec: variant } of variants) {
    const { block, terms } = pooledDesign(variant, histories, { to: periods - HOLDOUT })
    const pooled = fitModel(block, terms, { family: 'poisson', standardize: true, tolerance: 1e-12, maxIterations: 100 })
    const skill = heldOutSkill(variant, pooled.coefficients.estimate, histories, periods - HOLDOUT, periods)
    let federated: string
    try {
      const fit = federatedForecastFit({ spec: variant, histories, graph, to: periods - HOLDOUT, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed })
      federated = `relative error ${fit.relativeError.toExponential(1)}`
    } catch (error) {
      federated = `fails: ${(error as { code?: string }).code ?? (error as Error).name}`
    }
    out.push(`| ${label} | ${skill.model.logScore.toFixed(4)} | ${skill.model.mae.toFixed(4)} | ${federated} |`)
    baselines = `| last value | ${skill.lastValue.logScore.toFixed(4)} | ${skill.lastValue.mae.toFixed(4)} | |\n| seasonal naive | ${skill.seasonalNaive?.logScore.toFixed(4) ?? '-'} | ${skill.seasonalNaive?.mae.toFixed(4) ?? '-'} | |`
  }
  out.push(baselines, '')

  const started = performance.now()
  const output = simulateForecast({ panel, graph, spec, holdout: 0, risk: createRiskParams(), algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed })
  const sorted = [...output.regions].sort((a, b) => b.h - a.h)
  out.push(`Risk after the last week (default mapping h = 1 - 2^(-rate / 10)): h from ${sorted[sorted.length - 1]?.h.toFixed(5)} to ${sorted[0]?.h.toFixed(5)} (${sorted[0]?.region}); joint risk sum ${output.jointRisk.sum.toFixed(6)}, mean ${output.jointRisk.mean.toFixed(6)}, plain sum ${output.jointRisk.plainSum.toFixed(6)}, difference ${Math.abs(output.jointRisk.sum - output.jointRisk.plainSum).toExponential(1)}; joint-risk sum ${output.jointRisk.ticks} rounds, ${output.jointRisk.messages} messages. Whole run (fit, forecasts, h, joint risk) ${((performance.now() - started) / 1000).toFixed(2)} s.`, '')
  // h through the held-out year: each week's one-step forecast from the model fitted before it
  const training = federatedForecastFit({ spec, histories, graph, to: periods - HOLDOUT, algorithm: 'newton', tolerance: 1e-10, maxRounds: 5000, seed })
  const weeklyMean = new Float64Array(HOLDOUT)
  let highest = { h: 0, region: '', week: '' }
  histories.forEach((history, region) => {
    const design = buildForecastDesign(spec, history, { from: periods - HOLDOUT })
    const means = forecastMeans(design.block, training.coefficients)
    design.times.forEach((time, row) => {
      const { h } = riskScore([means[row] as number], history.population)
      weeklyMean[time - (periods - HOLDOUT)] = (weeklyMean[time - (periods - HOLDOUT)] as number) + h / histories.length
      if (h > highest.h) highest = { h, region: panel.regions[region] as string, week: inputs.periods[time] as string }
    })
  })
  const peak = weeklyMean.reduce((best, value, index) => value > (weeklyMean[best] as number) ? index : best, 0)
  out.push(`Through the held-out weeks (one-step forecasts): highest h ${highest.h.toFixed(4)} (${highest.region}, ${highest.week}); highest mean h over regions ${(weeklyMean[peak] as number).toFixed(4)} (${inputs.periods[periods - HOLDOUT + peak]}).`, '')
}

process.stdout.write(`${out.join('\n')}\n`)
