import {
  crossTable, equalFrequencyEdges, histogramOf, histogramRange, localMoments, quantilesFromHistogram, readMoments, woeTable,
  type CategoricalSummary, type CrossTable, type Moments, type NumericSummary, type StatsData, type StatsRequest, type WoeBin
} from '../../learning/descriptive.ts'
import { ByteWriter, type MessageVerifier } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { createJob, jobProtocol, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { maskedSum, sumTotal, type MaskedSumOptions } from './phases.ts'

/**
 * Know the data before the model: the federation's descriptive statistics by masked sums only.
 *
 *   stats-moments    rows, per numeric feature its count, sum and sum of squares, per factor its level
 *                    counts (and their positives), per pair of numeric columns (the outcome among them)
 *                    the sums over the rows where both are present: means, SDs, level counts,
 *                    Pearson correlations (point-biserial with the outcome), cross-tables
 *   stats-hist       per numeric feature a fine histogram over its mean +- 4 SD (and one of the
 *                    positives): quantiles, and the weights of evidence of equal-frequency bins
 *
 * Every member reads the same statistics from the same totals, and no cell below the disclosure
 * minimum is published (see learning/descriptive.ts).
 */
export interface StatsJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  request: StatsRequest
  data: StatsData
  rng: Rng
  verifier?: MessageVerifier | null
  sumMethod?: 'flood' | 'tree' | 'auto'
}

export interface StatsResult {
  rows: number
  features: Record<string, NumericSummary | CategoricalSummary>
  correlation: Moments['correlation']
  /** binary outcome only: information value per feature (null where bins could not reach the minimum) */
  iv: Record<string, number | null> | null
  woe: Record<string, WoeBin[] | null> | null
  crossTables: Record<string, CrossTable> | null
  outcome: { count: number, positives: number | null } | null
  peers: number
}

/** Fine bins per WOE bin in the histograms quantiles and bins come from. */
const FINE_PER_BIN = 20

/** Everything one analyst with every row, or a federation from its totals, reads off the two sums. */
export function statsFromTotals (request: StatsRequest, moments: Float64Array, histograms: Float64Array, peers: number): StatsResult {
  const read = readMoments(request, moments)
  const fine = FINE_PER_BIN * request.bins
  const width = (fine + 2) * (request.outcome === null ? 1 : 2)
  const features: StatsResult['features'] = {}
  const iv: Record<string, number | null> = {}
  const woe: Record<string, WoeBin[] | null> = {}
  const crossTables: Record<string, CrossTable> = {}
  let position = 0
  for (const feature of request.features) {
    const summary = read.features[feature.name]
    if (feature.type === 'numeric') {
      const moments = summary as { count: number, missing: number, mean: number | null, sd: number | null }
      const range = histogramRange(moments)
      const counts = histograms.subarray(position * width, position * width + fine + 2)
      features[feature.name] = { ...moments, quantiles: quantilesFromHistogram(counts, range.low, range.high, request.minimum) }
      if (request.outcome !== null) {
        const positives = histograms.subarray(position * width + fine + 2, (position + 1) * width)
        const edges = equalFrequencyEdges(counts, range.low, range.high, request.bins)
        const bins: Array<{ lower: number | null, upper: number | null, level: null, events: number, nonEvents: number }> = []
        const fineWidth = (range.high - range.low) / fine
        let lower: number | null = null
        let events = 0
        let total = 0
        let next = 0
        for (let bin = 0; bin < fine + 2; bin++) {
          events += positives[bin] as number
          total += counts[bin] as number
          const upper = bin === fine + 1 ? null : range.low + bin * fineWidth
          // close a WOE bin at each edge (edges lie on fine-bin boundaries), and at the end
          const boundary = bin === fine + 1 || (next < edges.length && upper !== null && Math.abs(upper - (edges[next] as number)) <= 1e-9 * Math.max(1, Math.abs(upper)))
          if (boundary) {
            bins.push({ lower, upper, level: null, events, nonEvents: total - events })
            lower = upper
            events = 0
            total = 0
            if (bin !== fine + 1) next++
          }
        }
        const table = woeTable(bins, request.minimum)
        iv[feature.name] = table?.iv ?? null
        woe[feature.name] = table?.bins ?? null
      }
      position++
      continue
    }
    features[feature.name] = summary as CategoricalSummary
    const cross = read.crossCounts[feature.name]
    if (cross !== undefined) {
      crossTables[feature.name] = crossTable(feature.levels, cross.negatives, cross.positives, request.minimum)
      const table = woeTable(feature.levels.map((level, index) => ({ lower: null, upper: null, level, events: cross.positives[index] as number, nonEvents: cross.negatives[index] as number })), request.minimum)
      iv[feature.name] = table?.iv ?? null
      woe[feature.name] = table?.bins ?? null
    }
  }
  const outcome = read.outcome === null ? null : { count: read.outcome.count, positives: read.outcome.positives < request.minimum || read.outcome.count - read.outcome.positives < request.minimum ? null : read.outcome.positives }
  const binary = request.outcome !== null
  return { rows: read.rows, features, correlation: read.correlation, iv: binary ? iv : null, woe: binary ? woe : null, crossTables: binary ? crossTables : null, outcome, peers }
}

/** The sums one member contributes: its moments and its fine histograms (after the moments gave the ranges). */
export function localHistograms (request: StatsRequest, data: StatsData, moments: Moments): Float64Array {
  const fine = FINE_PER_BIN * request.bins
  const numeric = request.features.flatMap((feature, index) => feature.type === 'numeric' ? [index] : [])
  const width = (fine + 2) * (request.outcome === null ? 1 : 2)
  const out = new Float64Array(numeric.length * width)
  numeric.forEach((index, position) => {
    const feature = request.features[index] as { name: string }
    const range = histogramRange(moments.features[feature.name] as { count: number, mean: number | null, sd: number | null })
    out.set(histogramOf(data.columns[index] as Float64Array, range.low, range.high, fine, data.outcome), position * width)
  })
  return out
}

function * statsScript (peer: StatsJobPeer, ctx: JobContext): JobScript<StatsResult> {
  const sums: MaskedSumOptions = { method: peer.sumMethod ?? 'auto' }
  const moments = new Float64Array(localMoments(peer.request, peer.data).length + 1)
  moments.set(localMoments(peer.request, peer.data))
  moments[moments.length - 1] = 1
  const momentTotals = sumTotal(yield * run(maskedSum(peer, 'stats-moments', moments, sums)), peer.graph, 'stats-moments')
  const peers = Math.round(momentTotals[momentTotals.length - 1] as number)
  const pooledMoments = momentTotals.subarray(0, momentTotals.length - 1)
  const read = readMoments(peer.request, pooledMoments)
  ctx.log('info', 'job.statistics', { peers, rows: read.rows })
  const histograms = sumTotal(yield * run(maskedSum(peer, 'stats-hist', localHistograms(peer.request, peer.data, read), { method: peer.graph.names.length > 8 ? 'tree' : sums.method })), peer.graph, 'stats-hist')
  return statsFromTotals(peer.request, pooledMoments, histograms, peers)
}

/** What the members agree on: the published statistics, as canonical JSON. */
export function statsDigest (result: StatsResult): Uint8Array {
  const writer = new ByteWriter()
  writer.string(JSON.stringify(result))
  return sha256(writer.bytes())
}

export type StatsJobState = JobState<StatsResult>

export function createStatsJobState (peer: StatsJobPeer): StatsJobState {
  return createJob<StatsResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => statsScript(peer, ctx),
    verifier: peer.verifier ?? null,
    judge: () => 'this job has no round-message rules',
    closing: { digest: statsDigest, exact: true }
  })
}

export const statsJobProtocol = jobProtocol as unknown as Protocol<StatsJobState, StatsResult>
