import type { MaskSeeds } from '../protocols/mask-seeds.ts'
import {
  addTree, baseMargin, binCount, FINE_PER_BIN, binRange, binRows, edgesFromFineHistogram, fineHistogram, gradients, histogramLayout,
  routeRows, treeLogLikelihood, TreeGrowth, type FeatureBins, type GbdtModel, type GbdtParams, type TreeData
} from '../../learning/gbdt.ts'
import { metricsFromHistogram, riskHistogram, type HistogramMetrics } from '../../learning/metrics.ts'
import { ByteWriter, type MessageVerifier } from '../audit/evidence.ts'
import type { Graph } from '../graph.ts'
import type { Protocol } from '../machine.ts'
import { sha256 } from '../sha256.ts'
import type { Rng } from '../types.ts'
import { createJob, jobProtocol, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { chunkedSum, maskedSum, sumTotal, withMaskSeeds, type MaskedSumOptions } from './phases.ts'

/**
 * Gradient-boosted trees grown by the federation, with no centre, equal to the pooled fit with the same
 * bin edges (learning/gbdt.ts takes every decision from sums):
 *
 *   tree-stats    masked sum of rows, outcome and exposure, and per numeric feature its count, sum and sum
 *                 of squares: the base margin, and the range of each feature's fine histogram
 *   tree-bins     masked sum of each numeric feature's fine histogram over that range: every member
 *                 computes the same quantile bin edges, and no member's values are revealed
 *   level-c.n     for each level of each tree, masked sums (in chunks of at most CHUNK values) of the
 *                 gradient and Hessian histograms of the open nodes; every member takes the same splits
 *                 from the same totals. A node is split only if both children hold at least the
 *                 disclosure minimum of rows in the federation.
 *   metrics       masked sum of the log-likelihoods and (binomial) of risk histograms: AUC, Brier, Hosmer-Lemeshow
 *
 * Histograms are large (nodes x features x bins x 3), so they go up a spanning tree (one vector per
 * link) wherever the federation is bigger than a handful of peers, whatever the job's sum method.
 */
export interface GbdtJobPeer {
  job: string
  graph: Graph
  self: number
  diameter: number
  data: TreeData
  params: GbdtParams
  rng: Rng
  /** the job's per-edge mask seeds, shared by its masked sums (see mask-seeds.ts); created at the job's start */
  maskSeeds?: MaskSeeds
  verifier?: MessageVerifier | null
  sumMethod?: 'flood' | 'tree' | 'auto'
}

export interface GbdtJobResult {
  model: GbdtModel
  rows: number
  peers: number
  /** the training rows' log-likelihood at the final margins, summed over the federation */
  logLikelihood: number
  rounds: number
  phaseRounds: Record<string, number>
  metrics: HistogramMetrics | null
}

export interface GbdtProgress {
  bins: FeatureBins[] | null
  trees: number
  result: GbdtJobResult | null
}

export type GbdtJobState = JobState<GbdtJobResult> & { readonly gbdt: GbdtProgress }

const METRIC_BINS = 1000

function numericFeatures (data: TreeData): number[] {
  return data.features.flatMap((feature, index) => feature.type === 'numeric' ? [index] : [])
}

export function * gbdtScript (peer: GbdtJobPeer, progress: GbdtProgress, ctx: JobContext): JobScript<GbdtJobResult> {
  const { data, params } = peer
  const numeric = numericFeatures(data)
  const peers = peer.graph.names.length
  const sums: MaskedSumOptions = { method: peer.sumMethod ?? 'auto' }
  const histogramSums: MaskedSumOptions = { method: peers > 8 ? 'tree' : (peer.sumMethod ?? 'auto') }

  // statistics: [members, rows, outcome, exposure, then count, sum, squares per numeric feature]
  const stats = new Float64Array(4 + 3 * numeric.length)
  stats[0] = 1
  stats[1] = data.rows
  for (let row = 0; row < data.rows; row++) {
    stats[2] = (stats[2] as number) + (data.y[row] as number)
    stats[3] = (stats[3] as number) + (data.offset === undefined ? 1 : Math.exp(data.offset[row] as number))
  }
  numeric.forEach((feature, index) => {
    for (const value of data.columns[feature] as Float64Array) {
      if (Number.isNaN(value)) continue
      stats[4 + 3 * index] = (stats[4 + 3 * index] as number) + 1
      stats[5 + 3 * index] = (stats[5 + 3 * index] as number) + value
      stats[6 + 3 * index] = (stats[6 + 3 * index] as number) + value * value
    }
  })
  const pooled = sumTotal(yield * run(maskedSum(peer, 'tree-stats', stats, sums)), peer.graph, 'tree-stats')
  const members = Math.round(pooled[0] as number)
  const rows = Math.round(pooled[1] as number)
  ctx.log('info', 'job.statistics', { peers: members, rows })

  // bin edges from the pooled fine histograms
  const fine = FINE_PER_BIN * params.bins
  const ranges = numeric.map((_, index) => binRange(pooled[4 + 3 * index] as number, pooled[5 + 3 * index] as number, pooled[6 + 3 * index] as number))
  const fineHistograms = new Float64Array(numeric.length * (fine + 2))
  numeric.forEach((feature, index) => { fineHistograms.set(fineHistogram(data.columns[feature] as Float64Array, (ranges[index] as { low: number }).low, (ranges[index] as { high: number }).high, fine), index * (fine + 2)) })
  const fineTotals = yield * chunkedSum(peer, 'tree-bins', 0, fineHistograms, histogramSums)
  const bins: FeatureBins[] = data.features.map((feature, index) => {
    if (feature.type === 'categorical') return { type: 'categorical', levels: feature.levels.length }
    const position = numeric.indexOf(index)
    const range = ranges[position] as { low: number, high: number }
    return { type: 'numeric', edges: edgesFromFineHistogram(fineTotals.subarray(position * (fine + 2), (position + 1) * (fine + 2)), range.low, range.high, params.bins) }
  })
  progress.bins = bins
  ctx.log('info', 'tree.bins', { features: bins.map(binCount) })

  // the trees, level by level
  const binned = binRows(data, bins)
  const layout = histogramLayout(bins)
  const model: GbdtModel = { params, features: [...data.features], bins, baseMargin: baseMargin(params.family, pooled[2] as number, rows, pooled[3] as number), trees: [] }
  const margin = new Float64Array(data.rows).fill(model.baseMargin)
  if (data.offset !== undefined) for (let row = 0; row < data.rows; row++) margin[row] = (margin[row] as number) + (data.offset[row] as number)
  const gradient = new Float64Array(data.rows)
  const hessian = new Float64Array(data.rows)
  let level = 0
  for (let index = 0; index < params.trees; index++) {
    gradients(params.family, data.y, margin, gradient, hessian)
    const growth = new TreeGrowth(params, bins, layout)
    const nodeOfRow = new Int32Array(data.rows)
    while (!growth.done) {
      growth.accept(yield * chunkedSum(peer, 'level', level++, growth.contribution(binned, gradient, hessian, nodeOfRow), histogramSums))
      routeRows(growth.tree, binned, bins, nodeOfRow)
    }
    addTree(growth.tree, binned, bins, margin)
    model.trees.push(growth.tree)
    progress.trees = model.trees.length
  }

  // the training log-likelihood, and for a binary outcome the risk histogram of the metrics, in one sum
  const risks = params.family === 'binomial' ? riskHistogram(margin.map((eta) => 1 / (1 + Math.exp(-eta))), data.y, METRIC_BINS) : new Float64Array(0)
  const fitStats = new Float64Array(1 + risks.length)
  fitStats[0] = treeLogLikelihood(params.family, data.y, margin)
  fitStats.set(risks, 1)
  const fitTotals = sumTotal(yield * run(maskedSum(peer, 'metrics', fitStats, sums)), peer.graph, 'metrics')
  const metrics: HistogramMetrics | null = params.family === 'binomial' ? metricsFromHistogram(fitTotals.subarray(1), METRIC_BINS) : null
  const result: GbdtJobResult = { model, rows, peers: members, logLikelihood: fitTotals[0] as number, rounds: ctx.round(), phaseRounds: ctx.phaseRounds(), metrics }
  progress.result = result
  return result
}

/** The digest the members agree on: every split and leaf, and the metrics. */
export function gbdtDigest (result: GbdtJobResult): Uint8Array {
  const writer = new ByteWriter()
  writer.floats([result.model.baseMargin, result.rows, result.peers, result.logLikelihood])
  for (const spec of result.model.bins) writer.floats(spec.type === 'numeric' ? spec.edges : [spec.levels])
  for (const tree of result.model.trees) {
    for (const node of tree.nodes) writer.floats([node.split?.feature ?? -1, node.split?.bin ?? -1, node.split?.missingLeft === true ? 1 : 0, node.left, node.right, node.value])
  }
  const metrics = result.metrics
  writer.floats(metrics === null ? [] : [metrics.auc, metrics.brier, metrics.hosmerLemeshow.statistic])
  return sha256(writer.bytes())
}

export function createGbdtJobState (peer: GbdtJobPeer): GbdtJobState {
  const progress: GbdtProgress = { bins: null, trees: 0, result: null }
  const state = createJob<GbdtJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => gbdtScript(withMaskSeeds(peer), progress, ctx),
    verifier: peer.verifier ?? null,
    // only masked sums, no consensus ADMM: there are no round-message rules to break
    judge: () => 'this job has no round-message rules',
    closing: { digest: gbdtDigest, exact: true }
  })
  return Object.assign(state, { gbdt: progress })
}

export const gbdtJobProtocol = jobProtocol as unknown as Protocol<GbdtJobState, GbdtJobResult>
