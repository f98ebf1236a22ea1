import { z } from 'zod'
import { cut, StoreCorruptError, StoreValueInvalidError } from './errors.ts'
import { MAX_SEQUENCE } from './layout.ts'

/**
 * The shapes of what the store keeps besides case records and counts, as zod schemas: every value is
 * checked against its schema on the way in (a value that does not pass is STORE_VALUE_INVALID, naming
 * the field, and nothing is written) and again on the way out (a value of another shape is
 * STORE_CORRUPT), so that a caller receives exactly the type it is given here.
 */

const CONTROL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u

/** An id or a name the store keeps (a job, a peer, a region): 1 to 256 characters, none of them control or invisible. */
export const storedName = z.string().min(1).max(256).refine((value) => !CONTROL.test(value), 'a control or invisible character')

/** A job id as the store keeps it: a name without "!" (which the layout's keys use as a separator). */
export const storedJobId = storedName.refine((value) => !value.includes('!'), 'a "!"')

/**
 * A statistic that may not be defined, such as the standard error of a term whose variance the
 * Hessian cannot give: a finite number, or null (a NaN or an infinity is kept as null, as JSON would).
 */
const statistic = z.preprocess((value) => typeof value === 'number' && !Number.isFinite(value) ? null : value, z.number().nullable())

const treeNodeSchema = z.strictObject({
  depth: z.number().int().nonnegative().max(64),
  gradient: z.number(),
  hessian: z.number(),
  rows: z.number().nonnegative(),
  split: z.strictObject({ feature: z.number().int().nonnegative(), bin: z.number().int().nonnegative(), threshold: z.number().nullable(), missingLeft: z.boolean(), gain: z.number() }).nullable(),
  left: z.number().int(),
  right: z.number().int(),
  value: z.number()
})

/** A forest as a region keeps it: everything needed to apply it to new records (learning/gbdt.ts, GbdtModelJson). */
export const storedForestSchema = z.strictObject({
  params: z.strictObject({
    family: z.enum(['binomial', 'poisson']),
    trees: z.number().int().positive(),
    depth: z.number().int().positive(),
    learningRate: z.number().positive(),
    lambda: z.number().nonnegative(),
    gamma: z.number().nonnegative(),
    minChildWeight: z.number().nonnegative(),
    bins: z.number().int().positive(),
    minNodeRows: z.number().nonnegative()
  }),
  features: z.array(z.union([
    z.strictObject({ name: storedName, type: z.literal('numeric') }),
    z.strictObject({ name: storedName, type: z.literal('categorical'), levels: z.array(z.string().max(1000)).max(10_000) })
  ])).max(10_000),
  bins: z.array(z.union([
    z.strictObject({ type: z.literal('numeric'), edges: z.array(z.number()).max(65_536) }),
    z.strictObject({ type: z.literal('categorical'), levels: z.number().int().nonnegative() })
  ])).max(10_000),
  baseMargin: z.number(),
  trees: z.array(z.strictObject({ nodes: z.array(treeNodeSchema).max(4096) })).max(10_000)
})

export const storedModelSchema = z.strictObject({
  job: storedJobId,
  /** a regression (the default when absent) or boosted trees, whose forest is in `forest` and which has no coefficients */
  kind: z.enum(['glm', 'gbdt']).optional(),
  forest: storedForestSchema.optional(),
  createdAt: z.iso.datetime(),
  rounds: z.number().int().nonnegative(),
  converged: z.boolean(),
  /** regions that took part */
  peers: z.number().int().positive(),
  /** records pooled over the regions */
  rows: z.number().int().nonnegative(),
  logLikelihood: statistic,
  penalty: statistic,
  coefficients: z.array(z.strictObject({ term: z.string().min(1).max(1000), estimate: z.number(), standardError: statistic, z: statistic, pValue: statistic })).max(100_000),
  /** computed by the federation from pooled risk histograms (binomial models) */
  metrics: z.strictObject({ auc: statistic, brier: statistic, hosmerLemeshow: z.strictObject({ statistic, df: z.number(), pValue: statistic }) }).nullable(),
  /** peers dropped during the job */
  dropped: z.array(storedName).max(10_000),
  /** how to build a record's design row as the job did (models stored by earlier versions have none) */
  specification: z.lazy(() => modelSpecificationSchema).optional(),
  /** the covariance of the estimates, p x p on the original scale (earlier versions kept only the standard errors) */
  covariance: z.array(z.array(statistic).max(100_000)).max(100_000).optional(),
  /** where the model comes from (earlier versions kept none) */
  lineage: z.lazy(() => modelLineageSchema).optional(),
  /**
   * this region's own per-edge ADMM duals at the end of the fit, by neighbour (peer id), in the units of
   * a gradient on the original scale: what a re-fit starts from (each is known to both ends of its edge)
   */
  duals: z.array(z.strictObject({ neighbour: storedName, values: z.array(statistic).max(100_000) })).max(10_000).optional()
}).superRefine((model, ctx) => {
  const p = model.coefficients.length
  if (model.covariance !== undefined && (model.covariance.length !== p || model.covariance.some((row) => row.length !== p))) {
    ctx.addIssue({ code: 'custom', path: ['covariance'], message: `must be ${p} x ${p}, as many as the coefficients` })
  }
  const scaling = model.specification?.kind === 'glm' ? model.specification.scaling : null
  if (scaling !== null && (scaling.mean.length !== p || scaling.scale.length !== p)) ctx.addIssue({ code: 'custom', path: ['specification', 'scaling'], message: `must have ${p} means and ${p} scales` })
})

/** A job's shared model as a region keeps it: its terms with estimate, standard error, z and p. */
export type StoredModel = z.infer<typeof storedModelSchema>

const columnName = z.string().min(1).max(256)

/**
 * A regression's full specification, as the job built its design: the family (and so the link), the
 * outcome, the features in order (a categorical one with its levels, the first the reference of its
 * treatment contrasts), the intercept, the offset column, and the standardisation (the pooled means and
 * population SDs of the design columns; the stored coefficients and covariance are on the original
 * scale), with the penalty and the algorithm's settings. A forecasting job's model is a panel model of
 * the regions' series: it is kept with its kind only.
 */
export const modelSpecificationSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('glm'),
    family: z.enum(['binomial', 'poisson']),
    outcome: columnName,
    features: z.array(z.strictObject({
      name: columnName,
      type: z.enum(['numeric', 'binary', 'categorical']),
      levels: z.array(columnName).min(2).max(10_000).optional()
    })).min(1).max(10_000),
    intercept: z.boolean(),
    offset: columnName.nullable(),
    standardize: z.boolean(),
    scaling: z.strictObject({ mean: z.array(z.number()).max(100_000), scale: z.array(z.number().positive()).max(100_000) }).nullable(),
    lambda: z.number().nonnegative()
  }),
  z.strictObject({ kind: z.literal('forecast'), family: z.literal('poisson') })
])

export type ModelSpecification = z.infer<typeof modelSpecificationSchema>

/**
 * A model's lineage: the job, who proposed it, how it was fitted, when, over which regions (this
 * region's own row count and a digest of its own data; the others' counts are not disclosed, only the
 * pooled total), the head of this region's signed round log of the job (once the log is closed), and
 * the model it was warm-started from.
 */
export const modelLineageSchema = z.strictObject({
  proposer: storedName,
  /** the proposer's region, when it is a member */
  proposerRegion: storedName.nullable(),
  algorithm: z.string().min(1).max(64),
  /** the job's parameters as proposed (lambda, tolerance, round limit, ...) */
  parameters: z.record(z.string().max(64), z.union([z.number(), z.string().max(256), z.boolean(), z.null()])).refine((value) => Object.keys(value).length <= 64, 'at most 64 parameters'),
  regions: z.array(storedName).max(10_000),
  /** this region's own records in the fit */
  ownRows: z.number().int().nonnegative(),
  /** this region's records the job left out, incomplete: a missing value in the outcome or a feature (earlier versions kept no count) */
  ownDropped: z.number().int().nonnegative().optional(),
  /** SHA-256 of this region's design (terms, rows and outcomes) as the job read it */
  dataDigest: z.string().regex(/^[0-9a-f]{64}$/),
  /** the last entry of this region's round log of the job: its count and hash (null until the log closes) */
  auditHead: z.strictObject({ length: z.number().int().nonnegative(), hash: z.string().regex(/^[0-9a-f]{64}$/) }).nullable(),
  /** the job whose model this one was warm-started from */
  parent: storedJobId.nullable()
})

export type ModelLineage = z.infer<typeof modelLineageSchema>

export const storedForecastSchema = z.strictObject({
  job: storedJobId,
  /** the region that holds it: its own forecast and h stay in its store */
  region: storedName,
  createdAt: z.iso.datetime(),
  /** forecast periods after the job's last one: mean and 90% Poisson interval */
  forecast: z.array(z.strictObject({ step: z.number().int().nonnegative(), mean: z.number(), lower: z.number(), upper: z.number() })).min(1).max(10_000),
  /** forecast cases per 100,000 residents per 7 days, and the risk score from it */
  rate: z.number(),
  h: z.number(),
  joint: z.strictObject({ sum: z.number(), mean: z.number(), regions: z.number().int().positive(), open: z.array(z.strictObject({ region: storedName, h: z.number() })).max(10_000), total: z.array(z.strictObject({ step: z.number().int().nonnegative(), mean: z.number() })).max(10_000).optional() }),
  model: storedModelSchema,
  /**
   * the forecasting job's settings as proposed (periods, model, horizon, risk mapping, open regions),
   * from which a re-fit proposes it again on the new series; checked by the proposal's schema when read
   * (earlier versions kept none)
   */
  settings: z.record(z.string().max(64), z.unknown()).refine((value) => Object.keys(value).length <= 64 && JSON.stringify(value).length <= 1_000_000, 'at most 64 settings and 1 MB').optional()
}).refine((forecast) => forecast.model.job === forecast.job, { message: 'the model is of another job', path: ['model', 'job'] })

/** A forecasting job's outcome as a region keeps it: its forecast, its h, the joint risk and the shared model. */
export type StoredForecast = z.infer<typeof storedForecastSchema>

const count = z.number().int().nonnegative().nullable()
const label = z.string().min(1).max(200)
const bounded = <T extends z.ZodType>(value: T) => z.record(label, value).refine((record) => Object.keys(record).length <= 1000, 'too many entries')

/** A statistics job's published result (learning/statistics.ts StatsResult), as a region keeps it. */
export const storedStatsSchema = z.strictObject({
  job: storedJobId,
  createdAt: z.iso.datetime(),
  rounds: z.number().int().nonnegative(),
  stats: z.strictObject({
    rows: z.number().int().nonnegative(),
    peers: z.number().int().positive(),
    minimum: z.number().int().positive(),
    features: bounded(z.strictObject({
      type: z.enum(['numeric', 'categorical']),
      count,
      missing: count,
      mean: z.number().nullable(),
      sd: z.number().nullable(),
      quantiles: bounded(z.number().nullable()).nullable(),
      histogram: z.strictObject({ low: z.number(), width: z.number(), fine: z.number().int().positive() }).optional(),
      levels: bounded(count).optional()
    })),
    correlation: z.strictObject({ names: z.array(label).max(1000), matrix: z.array(z.array(z.number().nullable()).max(1000)).max(1000) }),
    pointBiserial: bounded(z.number().nullable()).nullable(),
    outcome: z.strictObject({ name: label, count, missing: count, positives: count, negatives: count }).nullable(),
    iv: bounded(z.number().nullable()).nullable(),
    woe: bounded(z.array(z.strictObject({ lower: z.number().nullable(), upper: z.number().nullable(), levels: z.array(label).max(1000).nullable(), missing: z.boolean(), events: z.number().int().nonnegative(), nonEvents: z.number().int().nonnegative(), woe: z.number() })).max(1000).nullable()).nullable(),
    crossTables: bounded(z.strictObject({ levels: z.array(label).max(1000), negatives: z.array(count).max(1000), positives: z.array(count).max(1000), chiSquare: z.number().nullable(), df: z.number().int().nonnegative(), pValue: z.number().nullable() })).nullable()
  }),
  /** this region's own counts and means beside the federation's: kept in its own store only */
  own: z.strictObject({
    rows: z.number().int().nonnegative(),
    features: bounded(z.strictObject({ count: z.number().int().nonnegative(), missing: z.number().int().nonnegative(), mean: z.number().nullable() }))
  }).optional()
})

/** A statistics job's result as a region keeps it. */
export type StoredStats = z.infer<typeof storedStatsSchema>

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const signature = z.string().min(1).max(200)

export const auditCheckpointSchema = z.strictObject({
  type: z.literal('checkpoint'),
  job: storedJobId,
  peer: storedName,
  length: z.number().int().nonnegative().max(MAX_SEQUENCE),
  hash: hex64,
  sig: signature,
  countersignatures: z.array(z.strictObject({ by: storedName, sig: signature })).max(10_000)
})

/** A signed statement of the head of a peer's round log, with the countersignatures gathered on it. */
export type AuditCheckpoint = z.infer<typeof auditCheckpointSchema>

/** What the store reads of an audit entry's line: the job and the place in its log (the rest is kept as signed). */
export const auditEntryHeadSchema = z.looseObject({ job: storedJobId, seq: z.number().int().nonnegative().max(MAX_SEQUENCE) })

export const storedSettingsSchema = z.strictObject({ region: storedName.optional(), peerId: storedName.optional() })

/** A region's settings: the region it serves and its peer id (written by init). */
export type StoreSettings = z.infer<typeof storedSettingsSchema>

function firstIssue (error: z.ZodError): string {
  const issue = error.issues[0]
  return issue === undefined ? 'not valid' : `${cut(issue.path.join('.')) || '(the value)'}: ${cut(issue.message)}`
}

/** `value` as the store keeps it, or STORE_VALUE_INVALID naming the field that does not pass. */
export function checkedValue<S extends z.ZodType> (schema: S, value: unknown, kind: string): z.infer<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new StoreValueInvalidError(`a ${kind} the store cannot keep: ${firstIssue(parsed.error)}`)
  return parsed.data
}

/** A stored value as its type, or STORE_CORRUPT when it is not of the shape this version keeps. */
export function storedValue<S extends z.ZodType> (schema: S, value: unknown, kind: string): z.infer<S> {
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw new StoreCorruptError(`a stored ${kind} is not of the shape this version keeps (${firstIssue(parsed.error)})`)
  return parsed.data
}
