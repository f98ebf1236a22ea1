/**
 * A job phase's name in words, for `status` and the logs: the phases are named in the protocol by short
 * tags (`admm2`, `newton.3`, `c1-ee-newton.2`, `level-0.4`), which an operator should not have to
 * decode. The tag stays available (status --json, the audit log); this is only how it is shown.
 */
const PHASES: Record<string, string> = {
  admm: 'consensus ADMM',
  admm2: 'consensus ADMM, second pass (penalty re-tuned)',
  stats: 'pooled statistics (masked sum)',
  curvature: 'curvature for the ADMM penalty (masked sum)',
  recurvature: 'curvature re-measured for the second ADMM pass (masked sum)',
  consensus: 'agreement on the consensus model (masked sum)',
  newton: 'exact Newton',
  metrics: 'fit metrics: AUC, Brier, Hosmer-Lemeshow (masked sum)',
  refit: 'warm start from the previous model (masked sum)',
  'refit-newton': 'warm start: Newton step from the previous model (masked sum)',
  incidence: 'neighbours\' incidence exchange',
  'joint-risk': 'joint risk and the federation\'s forecast (masked sum)',
  'ee-counts': 'endemic-epidemic model: neighbours\' counts exchange',
  'ee-stats': 'endemic-epidemic model: starting values (masked sum)',
  'ee-newton': 'endemic-epidemic model: exact Newton',
  'mc-scores': 'model choice: validation scores (masked sum)',
  'tree-stats': 'boosted trees: pooled statistics (masked sum)',
  'tree-bins': 'boosted trees: bin histograms (masked sum)',
  level: 'boosted trees: split histograms',
  'stats-first': 'descriptive statistics: counts and means (masked sum)',
  'stats-second': 'descriptive statistics: spreads, quantiles and tables (masked sum)',
  done: 'finished'
}

/** `admm2` → "consensus ADMM, second pass (penalty re-tuned)"; `newton.3` → "exact Newton, iteration 3"; an unknown tag as it is. */
export function phaseLabel (tag: string): string {
  const match = /^(?:c(\d+)-)?([a-z][a-z0-9-]*?)(?:-(\d+))?(?:\.(\d+))?$/.exec(tag)
  if (match === null) return tag
  const [, candidate, base = '', chunk, counter] = match
  // `level-2.5`: the chunk is part of the name only for the chunked sums
  const known = PHASES[base] ?? (chunk === undefined ? undefined : PHASES[`${base}-${chunk}`])
  if (known === undefined) return tag
  const parts = [known]
  if (counter !== undefined && base === 'level') parts.push(`step ${Number(counter) + 1}`)
  else if (counter !== undefined && base.endsWith('newton')) parts.push(`iteration ${counter}`)
  if (chunk !== undefined && PHASES[base] !== undefined && Number(chunk) > 0) parts.push(`part ${Number(chunk) + 1}`)
  const text = parts.join(', ')
  return candidate === undefined ? text : `candidate design ${Number(candidate) + 1}: ${text}`
}
