import type { MaskSeeds } from '../protocols/mask-seeds.ts'
import { localFirst, localSecond, readFirst, statsFromTotals, type StatsData, type StatsRequest, type StatsResult } from '../../learning/statistics.ts'
import { ByteWriter, type MessageVerifier } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { createJob, jobProtocol, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { chunkedSum, maskedSum, sumTotal, withMaskSeeds, type MaskedSumOptions } from './phases.ts'

/**
 * Know the data before the model: the federation's descriptive statistics by masked sums only
 * (learning/statistics.ts reads them from the totals).
 *
 *   stats-first    members, rows, the outcome's count and positives, per numeric feature its count, sum
 *                  and sum of squares, per factor its table of counts by level and outcome: the level
 *                  counts, cross-tables and means, and the edges of each numeric feature's fine
 *                  histogram (the schema's bounds, or the pooled mean +- 5 SD on a rounded step)
 *   stats-second   per numeric feature the sum of squares about the pooled mean and its fine histograms
 *                  (all values, positives, negatives) on those edges, per pair of numeric columns (the
 *                  outcome among them) the sums of deviations, squares and products over the rows where
 *                  both are present: SDs, quantiles, weights of evidence, correlations; in chunks, up a
 *                  spanning tree beyond 8 peers
 *
 * Every member reads the same statistics from the same totals; what is published keeps every cell
 * below the disclosure minimum hidden, also from its complements. No member sees another's sums.
 */
export interface StatsJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  request: StatsRequest
  data: StatsData
  rng: Rng
  /** the job's per-edge mask seeds, shared by its masked sums (see mask-seeds.ts); created at the job's start */
  maskSeeds?: MaskSeeds
  verifier?: MessageVerifier | null
  sumMethod?: 'flood' | 'tree' | 'auto'
}

export interface StatsJobResult {
  stats: StatsResult
  rounds: number
  phaseRounds: Record<string, number>
}

function * statsScript (peer: StatsJobPeer, ctx: JobContext): JobScript<StatsJobResult> {
  const { request } = peer
  const sums: MaskedSumOptions = { method: peer.sumMethod ?? 'auto' }
  const own = localFirst(request, peer.data)
  const first = new Float64Array(own.length + 1)
  first.set(own)
  first[own.length] = 1
  const firstTotals = sumTotal(yield * run(maskedSum(peer, 'stats-first', first, sums)), peer.graph, 'stats-first')
  const members = Math.round(firstTotals[own.length] as number)
  const pooledFirst = firstTotals.subarray(0, own.length)
  const read = readFirst(request, pooledFirst)
  ctx.log('info', 'job.statistics', { peers: members, rows: read.rows })
  const second = yield * chunkedSum(peer, 'stats-second', 0, localSecond(request, peer.data, read), { method: peer.graph.names.length > 8 ? 'tree' : sums.method })
  return { stats: statsFromTotals(request, pooledFirst, second, members), rounds: ctx.round(), phaseRounds: ctx.phaseRounds() }
}

/** What the members agree on: the published statistics, as canonical JSON (the same totals give the same text). */
export function statsDigest (result: StatsJobResult): Uint8Array {
  const writer = new ByteWriter()
  writer.string(JSON.stringify(result.stats))
  return sha256(writer.bytes())
}

export type StatsJobState = JobState<StatsJobResult>

export function createStatsJobState (peer: StatsJobPeer): StatsJobState {
  return createJob<StatsJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => statsScript(withMaskSeeds(peer), ctx),
    verifier: peer.verifier ?? null,
    // only masked sums: there are no round-message rules to break
    judge: () => 'this job has no round-message rules',
    closing: { digest: statsDigest, exact: true }
  })
}

export const statsJobProtocol = jobProtocol as unknown as Protocol<StatsJobState, StatsJobResult>
