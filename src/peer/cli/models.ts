import { writeFile } from 'node:fs/promises'
import type { Command } from 'commander'
import { EpimeshError } from '../../errors.ts'
import type { FeatureSpec } from '../../learning/design.ts'
import { predictRecords, waldIntervals, type RowPrediction, type ScoredRow } from '../../learning/predict.ts'
import { buildTreeData, gbdtMargins, gbdtModelFromJson } from '../../learning/gbdt.ts'
import { problemText, readCasesToScore } from '../../store/cases-to-score.ts'
import { OptionInvalidError, type RowProblem } from '../../store/errors.ts'
import type { ModelSpecification, StoredModel } from '../../store/store.ts'
import { checkJobId } from '../paths.ts'
import { withStore } from './store-commands.ts'
import { dirOption } from './dir-option.ts'

/**
 * `epimesh predict`: scores new case records with a shared model the region holds, and the model
 * registry: `epimesh models` (every model with its version and lineage) and `epimesh models diff A B`
 * (how the coefficients moved between two).
 */

/** A stored model that cannot score records (none, one of an earlier version, a forecasting model). */
export class ModelUnusableError extends EpimeshError {
  static override readonly name = 'ModelUnusableError'
  readonly exitCode = 2
  constructor (message: string) { super('MODEL_UNUSABLE', message) }
}

/** Records of which not one could be scored. */
export class NothingScoredError extends EpimeshError {
  static override readonly name = 'NothingScoredError'
  readonly exitCode = 2
  constructor (message: string) { super('NOTHING_SCORED', message) }
}

type GlmSpecification = Extract<ModelSpecification, { kind: 'glm' }>

/** The model's specification and covariance, or why it cannot score. */
export function scoringModelOf (model: StoredModel): { specification: GlmSpecification, covariance: Float64Array, features: FeatureSpec[] } {
  const specification = model.specification
  if (specification === undefined || model.covariance === undefined) throw new ModelUnusableError(`the model of job ${model.job} was stored by an earlier version, without its specification and covariance: it cannot score records (fit it again to score with it)`)
  if (specification.kind !== 'glm') throw new ModelUnusableError(`job ${model.job} is a regional forecasting job: its model forecasts the regions' case counts (see epimesh forecast --job ${model.job}), it does not score records`)
  const p = model.coefficients.length
  const covariance = new Float64Array(p * p)
  for (let row = 0; row < p; row++) {
    for (let column = 0; column < p; column++) {
      const value = model.covariance[row]?.[column]
      if (typeof value !== 'number') throw new ModelUnusableError(`the covariance of the model of job ${model.job} is not finite (the Hessian could not give it): its predictions would have no standard error`)
      covariance[row * p + column] = value
    }
  }
  const features: FeatureSpec[] = specification.features.map((feature) => feature.type === 'categorical' ? { name: feature.name, type: 'categorical', levels: feature.levels ?? [] } : { name: feature.name, type: 'numeric' })
  return { specification, covariance, features }
}

/** A record's prediction, or why it was not scored (a kind of the model's, RowRefusal, or of the file's values, as an import's). */
export type ScoredRecord = (RowPrediction | { row: number, column: string, kind: string, error: string }) & { line?: number, id?: string }

/** Scores records (typed values, or their problems) with a stored model; every record gets a prediction or a reason. */
export function scoreRecords (model: StoredModel, records: ReadonlyArray<{ row: number, line?: number, id?: string | null, values: Readonly<Record<string, unknown>>, problems?: readonly RowProblem[] }>): ScoredRecord[] {
  const { specification, covariance, features } = scoringModelOf(model)
  const scoring = { family: specification.family, features, intercept: specification.intercept, offset: specification.offset, coefficients: model.coefficients.map((row) => row.estimate), covariance }
  return records.map((record) => {
    const extra = { ...(record.line === undefined ? {} : { line: record.line }), ...(record.id === undefined || record.id === null ? {} : { id: record.id }) }
    const problems = record.problems ?? []
    const first = problems[0]
    if (first !== undefined) return { row: record.row, ...extra, column: first.column, kind: first.kind, error: problems.map((problem) => problemText(problem)).join('; ') }
    const [scored] = predictRecords(scoring, [record.values], record.row)
    return { ...(scored as ScoredRow), ...extra }
  })
}

/**
 * Scores records with a stored forest: each record's margin (log-odds or log rate) and its probability
 * (or rate). Trees have no covariance, so no standard error or interval; a level the forest never saw
 * or a value of the wrong type is that record's reason.
 */
export function scoreWithForest (model: StoredModel, records: ReadonlyArray<{ row: number, line?: number, id?: string | null, values: Readonly<Record<string, unknown>>, problems?: readonly RowProblem[] }>): Array<{ row: number, line?: number, id?: string, link: number, fit: number } | { row: number, line?: number, id?: string, error: string }> {
  const forest = gbdtModelFromJson(model.forest as NonNullable<StoredModel['forest']>)
  const outcome = '\u0000outcome'
  return records.map((record) => {
    const extra = { ...(record.line === undefined ? {} : { line: record.line }), ...(record.id === undefined || record.id === null ? {} : { id: record.id }) }
    const problems = record.problems ?? []
    if (problems.length > 0) return { row: record.row, ...extra, error: problems.map((problem) => problemText(problem)).join('; ') }
    try {
      const data = buildTreeData([{ ...record.values, [outcome]: 0 }], outcome, forest.features, { family: forest.params.family })
      const link = gbdtMargins(forest, data)[0] as number
      return { row: record.row, ...extra, link, fit: forest.params.family === 'binomial' ? 1 / (1 + Math.exp(-link)) : Math.exp(link) }
    } catch (error) {
      return { row: record.row, ...extra, error: (error as Error).message.replace(/^row 0: /, '') }
    }
  })
}

const out = (line: string): void => { process.stdout.write(`${line}\n`) }

/** A CSV field: quoted when it must be, and a leading formula character defused for spreadsheets. */
function csvField (value: unknown): string {
  if (value === undefined || value === null) return ''
  let text = String(value)
  if (/^[=+\-@\t\r]/.test(text) && typeof value === 'string') text = `'${text}`
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

const PREDICTION_COLUMNS = ['row', 'line', 'id', 'link', 'linkSe', 'fit', 'se', 'lower', 'upper', 'error'] as const

function predictionsCsv (rows: ReadonlyArray<Record<string, unknown>>): string {
  return `${PREDICTION_COLUMNS.join(',')}\n${rows.map((row) => PREDICTION_COLUMNS.map((column) => csvField(row[column])).join(',')).join('\n')}\n`
}

/** The key of a model's series: models of the same kind, family, outcome and features are versions of one model. */
export function seriesKey (model: StoredModel): string {
  const spec = model.specification
  if (spec === undefined) return 'unspecified'
  if (spec.kind === 'forecast') return 'forecast'
  return JSON.stringify([spec.family, spec.outcome, spec.features.map((feature) => [feature.name, feature.type, feature.levels ?? null])])
}

/** A series' name as shown: "binomial severe ~ age + sex". */
function seriesName (model: StoredModel): string {
  const spec = model.specification
  if (spec === undefined) return '(stored by an earlier version)'
  if (spec.kind === 'forecast') {
    // the stored specification predates the endemic-epidemic model; its terms and parameters say which model it is
    const negbin = model.coefficients.some((coefficient) => coefficient.term === '-log(overdisp)')
    const kind = model.lineage?.parameters.kind === 'loglinear' ? 'log-linear' : 'endemic-epidemic'
    return `regional forecast (${kind}, ${negbin ? 'negative binomial' : 'Poisson'})`
  }
  return `${spec.family} ${spec.outcome} ~ ${spec.features.map((feature) => feature.name).join(' + ')}`
}

/** Every model with its version: the n-th model of its series, oldest first. */
export function versioned (models: readonly StoredModel[]): Array<StoredModel & { version: number, series: string }> {
  const counts = new Map<string, number>()
  return models.map((model) => {
    const key = seriesKey(model)
    const version = (counts.get(key) ?? 0) + 1
    counts.set(key, version)
    return { ...model, version, series: seriesName(model) }
  })
}

export interface CoefficientMove {
  term: string
  a: number | null
  b: number | null
  /** b - a */
  difference: number | null
  /** (b - a) / SE(a): how far it moved in A's standard errors */
  inStandardErrors: number | null
}

/** How the coefficients moved from model A to model B, term by term (a term in one only has nulls). */
export function diffModels (a: StoredModel, b: StoredModel): CoefficientMove[] {
  const terms = [...a.coefficients.map((row) => row.term), ...b.coefficients.map((row) => row.term).filter((term) => !a.coefficients.some((row) => row.term === term))]
  return terms.map((term) => {
    const before = a.coefficients.find((row) => row.term === term)
    const after = b.coefficients.find((row) => row.term === term)
    const difference = before === undefined || after === undefined ? null : after.estimate - before.estimate
    const se = before?.standardError ?? null
    return { term, a: before?.estimate ?? null, b: after?.estimate ?? null, difference, inStandardErrors: difference === null || se === null || !(se > 0) ? null : difference / se }
  })
}

/** The rows of `model --job`'s table with Wald intervals, and for a logistic model the odds ratios. */
export function intervalTable (model: StoredModel): Array<{ term: string, estimate: number, lower: number | null, upper: number | null, oddsRatio: number | null, oddsLower: number | null, oddsUpper: number | null }> {
  const intervals = waldIntervals(model.coefficients.map((row) => row.estimate), model.coefficients.map((row) => row.standardError))
  const logistic = model.specification?.family === 'binomial' || (model.specification === undefined && model.metrics !== null)
  return model.coefficients.map((row, index) => {
    const { lower, upper } = intervals[index] as { lower: number | null, upper: number | null }
    return {
      term: row.term,
      estimate: row.estimate,
      lower,
      upper,
      oddsRatio: logistic ? Math.exp(row.estimate) : null,
      oddsLower: logistic && lower !== null ? Math.exp(lower) : null,
      oddsUpper: logistic && upper !== null ? Math.exp(upper) : null
    }
  })
}

const number = (value: number | null, digits = 6): string => value === null ? 'NA' : value.toPrecision(digits)

function lineageLines (model: StoredModel): string[] {
  const lineage = model.lineage
  if (lineage === undefined) return ['lineage: none (stored by an earlier version)']
  const parameters = Object.entries(lineage.parameters).map(([name, value]) => `${name} ${String(value)}`).join(', ')
  return [
    `proposed by ${lineage.proposerRegion ?? 'a non-member'} (${lineage.proposer}); ${lineage.algorithm}; ${parameters}`,
    `regions: ${lineage.regions.join(', ')}; ${model.rows} records pooled, ${lineage.ownRows} of them this region's (data digest ${lineage.dataDigest})`,
    `audit head: ${lineage.auditHead === null ? 'not yet written (the round log closes shortly after the job)' : `${lineage.auditHead.length} entries, ${lineage.auditHead.hash}`}`,
    `warm-started from: ${lineage.parent ?? 'none (a cold start)'}`
  ]
}

/** The exponent of a number after rounding it to `digits` significant digits, and how many of those digits it needs (trailing zeros dropped). */
function significance (value: number, digits: number): { power: number, needed: number } {
  if (value === 0) return { power: 0, needed: 1 }
  const [mantissa, exponent] = Math.abs(value).toExponential(digits - 1).split('e') as [string, string]
  return { power: Number(exponent), needed: mantissa.replace('.', '').replace(/0+$/, '').length || 1 }
}

/**
 * Numbers formatted together as R's format(x, digits) formats a vector: every one with at most `digits`
 * significant digits (as many as the one that needs most), all in fixed notation or all in scientific
 * (R's "1.2e-05"), whichever is narrower (fixed on a tie).
 */
export function formatLikeR (values: readonly number[], digits: number): string[] {
  if (values.length === 0) return []
  const parts = values.map((value) => significance(value, digits))
  const negative = values.some((value) => value < 0) ? 1 : 0
  const decimals = Math.max(0, ...parts.map((part) => part.needed - part.power - 1))
  const left = Math.max(1, ...parts.map((part) => part.power + 1))
  const fixedWidth = negative + left + (decimals > 0 ? decimals + 1 : 0)
  const mantissaDigits = Math.max(...parts.map((part) => part.needed))
  const wideExponent = parts.some((part) => Math.abs(part.power) >= 100)
  const sciWidth = negative + (mantissaDigits > 1 ? mantissaDigits + 1 : 1) + (wideExponent ? 5 : 4)
  if (fixedWidth <= sciWidth) return values.map((value) => value.toFixed(decimals))
  return values.map((value) => {
    const [mantissa, exponent] = value.toExponential(mantissaDigits - 1).split('e') as [string, string]
    const power = exponent.replace(/^[+-]/, '')
    return `${mantissa}e${exponent.startsWith('-') ? '-' : '+'}${power.padStart(2, '0')}`
  })
}

/**
 * A column of p-values as R's summary() prints them: printCoefmat's format.pval with 3 digits and eps
 * .Machine$double.eps. Below eps "<2e-16" (with a space, "< 2e-16", when another p-value of the column
 * is wider than 6 characters); the others at 3 significant digits, those from 1e-4 up formatted
 * together, those below together (fixed or scientific, as format() chooses).
 */
export function formatPValues (values: ReadonlyArray<number | null>): string[] {
  const digits = 3
  const shown: string[] = values.map(() => 'NA')
  const present = values.flatMap((value, index) => value === null || Number.isNaN(value) ? [] : [{ value, index }])
  const tiny = present.filter((entry) => entry.value < Number.EPSILON)
  const rest = present.filter((entry) => entry.value >= Number.EPSILON)
  // R 4's format.pval: exponents down to -4 (with more than one digit) are formatted with the large ones
  const large = rest.filter((entry) => Math.floor(Math.log10(entry.value)) >= -4)
  const small = rest.filter((entry) => !large.includes(entry))
  for (const group of [large, small]) {
    const texts = formatLikeR(group.map((entry) => entry.value), digits)
    group.forEach((entry, index) => { shown[entry.index] = texts[index] as string })
  }
  if (tiny.length > 0) {
    const widest = Math.max(0, ...rest.map((entry) => (shown[entry.index] as string).length))
    const sep = widest > 6 ? ' ' : ''
    for (const entry of tiny) shown[entry.index] = `<${sep}2e-16`
  }
  return shown
}

const DROPPED_REASON = 'incomplete: a missing value in the outcome or a feature'

/**
 * The footer R's summary() ends with, for a regression: the records used (and this region's dropped,
 * with the reason, when the model kept the count), the deviance (binomial) and log-likelihood with the
 * AIC (-2 logLik + 2 p, p the number of coefficients), the penalty, the algorithm and its rounds.
 */
export function modelFooterLines (model: StoredModel): string[] {
  const p = model.coefficients.length
  const lineage = model.lineage
  const spec = model.specification?.kind === 'glm' ? model.specification : undefined
  const lines: string[] = []
  const own = lineage === undefined
    ? ''
    : `; this region's: ${lineage.ownRows} used${lineage.ownDropped === undefined ? '' : `, ${lineage.ownDropped} dropped (${DROPPED_REASON})`}`
  lines.push(`records used: ${model.rows}, pooled over ${model.peers} regions${own}${lineage === undefined ? '' : ' (the other regions\' dropped records are not disclosed)'}`)
  const ll = model.logLikelihood
  if (ll !== null && p > 0) {
    if (spec?.family === 'binomial' || (spec === undefined && model.metrics !== null)) {
      // a 0/1 outcome per record: the saturated model's log-likelihood is 0, so the deviance is -2 logLik
      lines.push(`residual deviance: ${(-2 * ll).toFixed(2)} on ${model.rows - p} degrees of freedom`)
    }
    lines.push(`log-likelihood: ${ll.toFixed(3)} (df = ${p}); AIC: ${(-2 * ll + 2 * p).toFixed(2)}`)
  }
  const lambda = spec?.lambda ?? (typeof lineage?.parameters.lambda === 'number' ? lineage.parameters.lambda : null)
  if (lambda !== null) lines.push(lambda === 0 ? 'lambda: 0 (no penalty, as glm fits it)' : `lambda: ${lambda} (an L2 penalty on the ${spec?.standardize === false ? '' : 'standardised '}coefficients, the intercept excluded; the log-likelihood and AIC are at the penalised estimates)`)
  lines.push(`${lineage === undefined ? 'algorithm not recorded (stored by an earlier version)' : `algorithm: ${lineage.algorithm}`}; ${model.converged ? 'converged' : 'NOT converged'} in ${model.rounds} rounds`)
  return lines
}

/** The text of `model --job J` below its header: coefficients with Wald intervals (and odds ratios), and the lineage. */
export function modelDetailLines (model: StoredModel): string[] {
  const rows = intervalTable(model)
  const logistic = rows.some((row) => row.oddsRatio !== null)
  const lines = [`${'term'.padEnd(22)} ${'estimate'.padStart(12)} ${'95% CI (Wald)'.padStart(27)}${logistic ? ` ${'odds ratio'.padStart(12)} ${'95% CI'.padStart(27)}` : ''}`]
  for (const row of rows) {
    lines.push(`${row.term.padEnd(22)} ${row.estimate.toPrecision(7).padStart(12)} ${`[${number(row.lower)}, ${number(row.upper)}]`.padStart(27)}${logistic ? ` ${number(row.oddsRatio).padStart(12)} ${`[${number(row.oddsLower)}, ${number(row.oddsUpper)}]`.padStart(27)}` : ''}`)
  }
  return [...lines, ...lineageLines(model)]
}

async function modelOf (dir: string, job: string | undefined): Promise<StoredModel> {
  return await withStore(dir, async (store) => {
    if (job !== undefined) {
      const model = await store.getModel(job)
      if (model === null) throw new ModelUnusableError(`no model of job ${job} in ${dir} (epimesh models lists them)`)
      return model
    }
    const models = await store.listModels()
    const scoring = models.filter((model) => model.specification?.kind === 'glm').at(-1)
    if (scoring !== undefined) return scoring
    if (models.length === 0) throw new ModelUnusableError(`no model yet in ${dir}: the federation has not fitted one (epimesh propose)`)
    // only models that cannot score: say why, for the latest
    return models.at(-1) as StoredModel
  })
}

export function registerModels (program: Command): void {
  program.command('predict')
    .description('score new case records with a shared model: linear predictor, probability (or rate), standard errors and 95% intervals')
    .addOption(dirOption('the peer\'s data folder'))
    .requiredOption('--cases <file.csv>', 'the records to score, with the columns of the store\'s schema (the outcome may be absent); nothing is stored')
    .option('--job <id>', 'the model of a given job (default: the latest regression model); boosted trees score by their job')
    .option('--json', 'one JSON object on stdout: {job, family, predictions: [...]} in input order', false)
    .option('--out <scored.csv>', 'write the predictions to a CSV file instead')
    .action(async (options: { dir: string, cases: string, job?: string, json: boolean, out?: string }) => {
      if (options.json && options.out !== undefined) throw new OptionInvalidError('give --json or --out, not both')
      const job = options.job === undefined ? undefined : checkJobId(options.job, '--job')
      const model = await modelOf(options.dir, job)
      const schema = await withStore(options.dir, async (store) => await store.schema())
      if (schema === null) throw new ModelUnusableError(`${options.dir} has no schema of case records yet: the records to score are read with it (import the region's records first)`)
      if (model.forest !== undefined) {
        // boosted trees: margin and probability (or rate) per record; trees have no covariance, so no intervals
        const family = model.forest.params.family
        const { records } = await readCasesToScore(options.cases, schema, { columns: model.forest.features.map((feature) => feature.name), model: model.job })
        const predictions = scoreWithForest(model, records)
        const scored = predictions.filter((prediction) => !('error' in prediction)).length
        if (options.json) out(JSON.stringify({ job: model.job, kind: 'gbdt', family, scored, refused: predictions.length - scored, predictions }))
        else if (options.out !== undefined) {
          await writeFile(options.out, predictionsCsv(predictions as unknown as Array<Record<string, unknown>>))
          out(`scored ${scored} of ${predictions.length} records from ${options.cases} with the boosted trees of job ${model.job}; written to ${options.out}`)
        } else {
          out(`boosted trees of job ${model.job}: ${family === 'binomial' ? 'probability' : 'rate'} (trees give no standard errors)`)
          out(`${'row'.padStart(5)} ${'id'.padEnd(12)} ${'margin'.padStart(10)} ${'fit'.padStart(10)}`)
          for (const prediction of predictions) {
            const id = ('id' in prediction ? prediction.id ?? '' : '').slice(0, 12).padEnd(12)
            if ('error' in prediction) out(`${String(prediction.row).padStart(5)} ${id} not scored: ${prediction.error}`)
            else out(`${String(prediction.row).padStart(5)} ${id} ${prediction.link.toFixed(4).padStart(10)} ${prediction.fit.toPrecision(4).padStart(10)}`)
          }
          out(`${scored} of ${predictions.length} records scored`)
        }
        if (scored === 0) throw new NothingScoredError(`not one of the ${predictions.length} records in ${options.cases} could be scored (each one's reason is above)`)
        return
      }
      const { specification } = scoringModelOf(model)
      const columns = [...specification.features.map((feature) => feature.name), ...(specification.offset === null ? [] : [specification.offset])]
      const { records } = await readCasesToScore(options.cases, schema, { columns, model: model.job })
      const predictions = scoreRecords(model, records)
      const scored = predictions.filter((prediction) => !('error' in prediction)).length
      if (options.json) out(JSON.stringify({ job: model.job, family: specification.family, scored, refused: predictions.length - scored, predictions }))
      else if (options.out !== undefined) {
        await writeFile(options.out, predictionsCsv(predictions as unknown as Array<Record<string, unknown>>))
        out(`scored ${scored} of ${predictions.length} records from ${options.cases} with the model of job ${model.job}; written to ${options.out}`)
      } else {
        out(`model of job ${model.job}: ${specification.family === 'binomial' ? 'probability' : 'rate'} of ${specification.outcome}, 95% intervals`)
        out(`${'row'.padStart(5)} ${'id'.padEnd(12)} ${'link'.padStart(10)} ${'se'.padStart(9)} ${'fit'.padStart(10)} ${'se'.padStart(9)} ${'95% interval'.padStart(24)}`)
        for (const prediction of predictions) {
          const id = ('id' in prediction ? prediction.id ?? '' : '').slice(0, 12).padEnd(12)
          if ('error' in prediction) out(`${String(prediction.row).padStart(5)} ${id} not scored: ${prediction.error}`)
          else out(`${String(prediction.row).padStart(5)} ${id} ${prediction.link.toFixed(4).padStart(10)} ${prediction.linkSe.toFixed(4).padStart(9)} ${prediction.fit.toPrecision(4).padStart(10)} ${prediction.se.toPrecision(3).padStart(9)} ${`[${prediction.lower.toPrecision(4)}, ${prediction.upper.toPrecision(4)}]`.padStart(24)}`)
        }
        out(`${scored} of ${predictions.length} records scored`)
      }
      if (scored === 0) throw new NothingScoredError(`not one of the ${predictions.length} records in ${options.cases} could be scored (each one's reason is above)`)
    })

  const models = program.command('models')
    .description('the model registry: every shared model this peer holds, versioned, with its lineage; `models diff A B` compares two')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--json', 'one JSON array (or, for diff, object) on stdout', false)
    .action(async (options: { dir: string, json: boolean }) => {
      const listed = versioned(await withStore(options.dir, async (store) => await store.listModels()))
      if (options.json) {
        out(JSON.stringify(listed.map((model) => ({ job: model.job, version: model.version, series: model.series, createdAt: model.createdAt, converged: model.converged, rounds: model.rounds, peers: model.peers, rows: model.rows, lineage: model.lineage ?? null }))))
        return
      }
      if (listed.length === 0) {
        out('no model yet')
        return
      }
      for (const model of listed) {
        out(`${model.series} v${model.version}: job ${model.job}, ${model.createdAt}, ${model.converged ? 'converged' : 'NOT converged'} in ${model.rounds} rounds, ${model.rows} records in ${model.peers} regions`)
        for (const line of lineageLines(model)) out(`  ${line}`)
      }
    })

  models.command('diff')
    .description('how the coefficients moved from the model of job A to that of job B')
    .argument('<a>', 'the first job')
    .argument('<b>', 'the second job')
    .action(async (first: string, second: string) => {
      // --dir and --json are the registry's (models --dir D diff A B, or models diff A B --dir D)
      const options = models.opts<{ dir: string, json: boolean }>()
      const [a, b] = [checkJobId(first, 'A'), checkJobId(second, 'B')]
      const [modelA, modelB] = await withStore(options.dir, async (store) => [await store.getModel(a), await store.getModel(b)] as const)
      if (modelA === null || modelB === null) throw new ModelUnusableError(`no model of job ${modelA === null ? a : b} in ${options.dir} (epimesh models lists them)`)
      const moves = diffModels(modelA, modelB)
      if (options.json) {
        out(JSON.stringify({ a, b, sameSeries: seriesKey(modelA) === seriesKey(modelB), coefficients: moves }))
        return
      }
      out(`from job ${a} (${modelA.createdAt}, ${modelA.rows} records) to job ${b} (${modelB.createdAt}, ${modelB.rows} records)${seriesKey(modelA) === seriesKey(modelB) ? '' : '; NOT the same model (other family, outcome or features)'}`)
      out(`${'term'.padEnd(22)} ${'A'.padStart(12)} ${'B'.padStart(12)} ${'B - A'.padStart(12)} ${'in SE(A)'.padStart(9)}`)
      for (const move of moves) out(`${move.term.padEnd(22)} ${number(move.a, 7).padStart(12)} ${number(move.b, 7).padStart(12)} ${number(move.difference, 4).padStart(12)} ${(move.inStandardErrors === null ? 'NA' : move.inStandardErrors.toFixed(2)).padStart(9)}`)
    })
}
