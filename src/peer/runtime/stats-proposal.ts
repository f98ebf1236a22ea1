import { z } from 'zod'
import { isRegionName, REGION_NAME_RULE } from '../../consensus/ids.ts'
import { STATS_LIMITS, StatsRequestError, validateStatsRequest, type StatsRequest } from '../../learning/statistics.ts'

/**
 * A statistics job as members propose it: the features with their types and factor levels (and a
 * numeric feature's bounds) as the proposer's schema declares them, the binary outcome, the WOE bins,
 * the disclosure minimum, and the region whose schema it was read from. Every member compares its own
 * schema with it before it accepts (runtime/checks.ts: statsCheck).
 */
const name = z.string().min(1).max(200)

export const statsProposalSchema = z.strictObject({
  features: z.array(z.discriminatedUnion('type', [
    z.strictObject({ name, type: z.literal('numeric'), low: z.number().finite().optional(), high: z.number().finite().optional() }),
    z.strictObject({ name, type: z.literal('categorical'), levels: z.array(z.string().min(1).max(200)).min(1).max(STATS_LIMITS.levels) })
  ])).min(1).max(STATS_LIMITS.features),
  outcome: name.nullable().default(null),
  bins: z.number().int().min(STATS_LIMITS.bins.min).max(STATS_LIMITS.bins.max).default(10),
  minimum: z.number().int().min(STATS_LIMITS.minimum.min).max(STATS_LIMITS.minimum.max).default(3),
  /** the region whose schema gave the features' types and levels */
  schemaOf: z.string().refine(isRegionName, REGION_NAME_RULE)
}).superRefine((value, context) => {
  try {
    validateStatsRequest(statsRequestOf(value))
  } catch (error) {
    if (!(error instanceof StatsRequestError)) throw error
    context.addIssue({ code: 'custom', message: error.message })
  }
})

export type StatsProposal = z.infer<typeof statsProposalSchema>

export function statsRequestOf (proposal: Omit<StatsProposal, 'schemaOf'>): StatsRequest {
  return { features: proposal.features, outcome: proposal.outcome, bins: proposal.bins, minimum: proposal.minimum }
}
