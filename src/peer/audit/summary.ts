import type { FinalBody, StartBody } from '../../consensus/audit/recorder.ts'

/**
 * What an audited job was, in the words of its signed start and final entries, for the opening of
 * `epimesh audit verify`: the model, its features, λ, the algorithm, the rounds and the regions, and
 * what the checks establish, written for an epidemiologist rather than a cryptographer. Everything here
 * comes from the files, so every string is cut and stripped of control characters before it is shown.
 */
export interface AuditJobSummary {
  /** glm (a regression), forecast (a regional forecast of case counts), or the kind the log states */
  kind: string
  family: string | null
  outcome: string | null
  /** the model's terms (the final entry's), else the features the job names */
  terms: string[]
  lambda: number | null
  algorithm: string | null
  tolerance: number | null
  maxRounds: number | null
  standardize: boolean | null
  regions: string[]
  links: number
  /** from the final entries: the rounds the job took, whether it met its tolerance, the records used */
  rounds: number | null
  converged: boolean | null
  rows: number | null
  dropped: string[]
  /** no log holds, so this was read from a broken one: what it says is not vouched for */
  fromBrokenLog?: boolean
  /** a forecast's series: the period (week or day), the first period and how many */
  period?: string | null
  from?: string | null
  periods?: number | null
}

/** Strips control characters and cuts: a log's strings are shown to a person, never trusted. */
export function plain (value: unknown, max = 80): string {
  // JSON from a file: an object is shown as JSON (String() throws on one with a "toString" member)
  const raw = typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)
  const text = raw.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, '?')
  return text.length > max ? `${text.slice(0, max - 1)}…` : text
}

const numberOrNull = (value: unknown): number | null => typeof value === 'number' && Number.isFinite(value) ? value : null
const stringOrNull = (value: unknown, max = 80): string | null => typeof value === 'string' ? plain(value, max) : null
const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)

export function summarizeJob (start: StartBody | undefined, final: FinalBody | undefined): AuditJobSummary {
  const model = isRecord(start?.model) ? start.model : {}
  const params = isRecord(start?.params) ? start.params : {}
  const graph = isRecord(start?.graph) ? start.graph : undefined
  const names = Array.isArray(graph?.names) ? graph.names : []
  const regions = names.slice(0, 1000).map((name, index) => plain(Array.isArray(graph?.regions) && typeof graph.regions[index] === 'string' ? graph.regions[index] : name, 40))
  const links = Array.isArray(graph?.neighbours) ? graph.neighbours.reduce((sum, list) => sum + (Array.isArray(list) ? list.length : 0), 0) / 2 : 0
  const features = Array.isArray(model.features) ? model.features.map((feature) => isRecord(feature) ? feature.name : feature) : Array.isArray(model.terms) ? model.terms : []
  const terms = (Array.isArray(final?.terms) && final.terms.length > 0 ? final.terms : features).slice(0, 200).map((term) => plain(term, 40))
  const kind = typeof model.kind === 'string' ? plain(model.kind, 20) : 'glm'
  return {
    kind,
    family: stringOrNull(model.family, 20) ?? (kind === 'forecast' ? 'poisson' : null),
    outcome: stringOrNull(model.outcome),
    terms,
    lambda: numberOrNull(model.lambda ?? params.lambda),
    algorithm: stringOrNull(start?.algorithm ?? model.algorithm, 20),
    tolerance: numberOrNull(params.tolerance ?? model.tolerance),
    maxRounds: numberOrNull(params.maxRounds ?? model.maxRounds),
    standardize: typeof params.standardize === 'boolean' ? params.standardize : null,
    regions,
    links,
    rounds: numberOrNull(final?.rounds),
    converged: typeof final?.converged === 'boolean' ? final.converged : null,
    rows: numberOrNull(final?.rows),
    dropped: Array.isArray(final?.dropped) ? final.dropped.slice(0, 50).map((term) => plain(term, 40)) : [],
    ...(kind === 'forecast' ? { period: stringOrNull(model.period, 10), from: stringOrNull(model.from, 12), periods: numberOrNull(model.periods) } : {})
  }
}

function listed (items: readonly string[], max = 12): string {
  if (items.length === 0) return 'none'
  const shown = items.slice(0, max).join(', ')
  return items.length > max ? `${shown} and ${items.length - max} more` : shown
}

const ALGORITHMS: Record<string, string> = {
  admm: 'consensus ADMM: each region exchanged its current estimate with its neighbours only, round after round, until all agreed',
  newton: 'exact decentralised Newton: at each step the regions added up their gradients and curvatures by masked sums (no region saw another\'s) and all took the same Newton step',
  gossip: 'gossip averaging of the regions\' sums, then the same Newton step everywhere'
}

const FAMILIES: Record<string, string> = {
  binomial: 'a logistic regression (binomial GLM)',
  poisson: 'a Poisson regression (log link)'
}

/** The "what was run" paragraph: one sentence per line. */
export function describeJob (summary: AuditJobSummary, job: string): string[] {
  const lines: string[] = []
  const model = summary.family === null ? 'a model' : (FAMILIES[summary.family] ?? `a ${summary.family} model`)
  const terms = summary.terms.filter((term) => term !== '(Intercept)')
  const intercept = summary.terms.includes('(Intercept)') ? ', with an intercept' : ''
  if (summary.kind === 'forecast') {
    const unit = summary.period === 'week' ? 'weekly' : summary.period === 'day' ? 'daily' : 'periodic'
    const span = summary.periods === null || summary.periods === undefined ? '' : ` over ${summary.periods} ${summary.period ?? 'period'}s${summary.from === null || summary.from === undefined ? '' : ` from ${summary.from}`}`
    lines.push(`Job ${plain(job)}: a regional forecast of ${unit} case counts${span}, ${model} of each region's counts on its own and its neighbours' recent counts${terms.length > 0 ? ` (terms: ${listed(terms)})` : ''}.`)
  } else {
    lines.push(`Job ${plain(job)}: ${model}${summary.outcome === null ? '' : ` of "${summary.outcome}"`} on ${terms.length === 0 ? 'no feature' : `${terms.length} term${terms.length === 1 ? '' : 's'}: ${listed(terms)}`}${intercept}.`)
  }
  if (summary.dropped.length > 0) lines.push(`Terms dropped because the pooled data could not estimate them: ${listed(summary.dropped)}.`)
  const lambda = summary.lambda === null ? null : summary.lambda === 0 ? 'no penalty (λ = 0), as glm fits it' : `an L2 (ridge) penalty λ = ${summary.lambda} on the coefficients, the intercept excluded`
  if (lambda !== null) lines.push(`Penalty: ${lambda}${summary.standardize === true ? '; features standardised on the pooled data first' : ''}.`)
  if (summary.algorithm !== null) {
    const stop = summary.tolerance === null ? '' : ` The stop rule: tolerance ${summary.tolerance}${summary.maxRounds === null ? '' : `, at most ${summary.maxRounds} rounds`}.`
    lines.push(`Algorithm: ${ALGORITHMS[summary.algorithm] ?? summary.algorithm}.${stop}`)
  }
  lines.push(`Regions: ${summary.regions.length} (${listed(summary.regions)}), joined by ${summary.links} link${summary.links === 1 ? '' : 's'}; each talked only to its neighbours.`)
  if (summary.rounds !== null) {
    lines.push(`Outcome: ${summary.rounds} rounds, ${summary.converged === true ? 'converged (the stop rule was met)' : summary.converged === false ? 'NOT converged (the round limit came first)' : 'convergence not stated'}${summary.rows === null ? '' : `, ${summary.rows} ${summary.kind === 'forecast' ? `region-${summary.period ?? 'period'}s` : 'records'} used in all`}; no record is in the logs, only what the regions exchanged.`)
  } else {
    lines.push('Outcome: no final entry among the logs that hold, so the job\'s end is not shown.')
  }
  if (summary.fromBrokenLog === true) lines.push('CAUTION: no log given holds, so this is what a broken log says; it is not vouched for.')
  return lines
}

/** What each check establishes, in plain words (the check names are those of verify.ts). */
export const CHECK_MEANINGS: Record<string, string> = {
  'canonical encoding': 'every line is exactly the bytes that were signed',
  'file structure': 'each file is one whole log of this job and this region, from its start to its final model',
  'public key': 'each log comes with the key of the region that wrote it',
  'hash chain': 'no entry was removed, inserted or reordered since it was written',
  'entry hashes': 'no entry was changed since it was written',
  signatures: 'every entry is signed by the region that wrote it',
  'one history per peer': 'no region showed two different versions of its log',
  'same job everywhere': 'every region ran the same model, settings and graph',
  'checkpoint signatures': 'the log heads the regions published during the job are genuine',
  countersignatures: 'their neighbours confirmed those heads as they were published',
  'logs match checkpoints': 'the logs pass through those heads, so nothing was cut off or rewritten afterwards',
  'end of log checkpointed': 'the end of each log was published and confirmed, so nothing was removed from its end',
  'sent vectors match their digests': 'each estimate a region logged as sent is the message it really sent',
  'received = sent': 'every message a region logged as received is one its neighbour logged as sent',
  'skipped edges': 'a region used a neighbour\'s estimate only when it had received it',
  'dual updates recomputed': 'every consensus-ADMM update was recomputed from the logged numbers and matches',
  'penalty equal at both ends': 'both ends of every link used the same ADMM penalty',
  'final models agree': 'every region ended with the same model, within the job\'s tolerance'
}
