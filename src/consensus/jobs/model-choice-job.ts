import type { EndemicEpidemicSpec } from '../../learning/endemic-epidemic.ts'
import { candidateLabel, checkValidationWindow, chooseCandidate, MAX_CANDIDATES, regionValidationScore } from '../../learning/model-choice.ts'
import { ForecastInputError } from '../../learning/forecast.ts'
import { ByteWriter } from '../audit/evidence.ts'
import type { Protocol } from '../machine.ts'
import { sha256 } from '../sha256.ts'
import { endemicEpidemicDigest, endemicEpidemicScript, type EndemicEpidemicJobPeer, type EndemicEpidemicJobResult, type EndemicEpidemicProgress } from './endemic-epidemic-job.ts'
import { createJob, jobProtocol, run, type JobContext, type JobScript, type JobState } from './job.ts'
import { maskedSum, sumTotal, withMaskSeeds } from './phases.ts'

/**
 * Model choice by the federation (learning/model-choice.ts): for each candidate design in turn, the
 * exact federated fit (endemic-epidemic-job.ts) on the periods before the validation window, its phases
 * named `c<k>-ee-...`; then each region scores the fitted candidate on its own counts over the window,
 * one step ahead, and one masked sum (`mc-scores`) adds every region's log-score sums and counts of
 * scored periods, all candidates at once. Every member picks the same candidate from the same totals:
 * the highest total log score, ties to the first listed. A region's own score is in no message, and
 * neither is its own intercept (the fits keep it local as the fitting job does).
 */
export const SCORES_KIND = 'mc-scores'

export interface ModelChoiceJobPeer extends Omit<EndemicEpidemicJobPeer, 'spec' | 'to' | 'phasePrefix'> {
  candidates: readonly EndemicEpidemicSpec[]
  /** the validation window [from, to) in federation period indices, at least 3 periods after `start`; `counts` must cover it */
  validation: { from: number, to: number }
}

export interface ModelChoiceJobResult {
  /** the candidates' labels, in the order listed */
  candidates: string[]
  /** each candidate's total validation log score: sum over regions and window periods of log P(y) */
  scores: number[]
  /** periods scored per candidate, over all regions */
  counts: number[]
  chosen: number
  /** each candidate's federated fit on the periods before the window (this region's view) */
  fits: EndemicEpidemicJobResult[]
  /** this region's own validation log-score sum per candidate (held by this region only) */
  own: number[]
}

export type ModelChoiceJobState = JobState<ModelChoiceJobResult> & { readonly modelChoice: { progress: EndemicEpidemicProgress, candidate: number } }

export function checkModelChoicePeer (peer: ModelChoiceJobPeer): void {
  if (peer.candidates.length === 0 || peer.candidates.length > MAX_CANDIDATES) throw new ForecastInputError('candidates', `${peer.candidates.length} candidates, from 1 to ${MAX_CANDIDATES}`)
  checkValidationWindow({ from: peer.validation.from - peer.start, to: peer.validation.to - peer.start })
  if (peer.start + peer.counts.length < peer.validation.to) throw new ForecastInputError('validation', `the counts end at period ${peer.start + peer.counts.length}, before the window's end ${peer.validation.to}`)
}

export function * modelChoiceScript (peer: ModelChoiceJobPeer, state: { progress: EndemicEpidemicProgress, candidate: number }, ctx: JobContext): JobScript<ModelChoiceJobResult> {
  checkModelChoicePeer(peer)
  const { candidates, validation } = peer
  const fits: EndemicEpidemicJobResult[] = []
  const own: number[] = []
  const counts: number[] = []
  for (let index = 0; index < candidates.length; index++) {
    const spec = candidates[index] as EndemicEpidemicSpec
    state.candidate = index
    const fit = yield * endemicEpidemicScript({ ...peer, spec, to: validation.from, phasePrefix: `c${index}-` }, state.progress, ctx)
    const score = regionValidationScore({ spec, shared: fit.shared, local: fit.local?.estimate ?? null }, fit.region, validation)
    fits.push(fit)
    own.push(score.logScore)
    counts.push(score.count)
  }
  const total = sumTotal(yield * run(maskedSum(peer, SCORES_KIND, Float64Array.from([...own, ...counts]))), peer.graph, SCORES_KIND)
  const scores = Array.from(total.subarray(0, candidates.length))
  const chosen = chooseCandidate(scores)
  ctx.log('info', 'mc.choice', { candidates: candidates.map(candidateLabel), scores, chosen })
  return { candidates: candidates.map(candidateLabel), scores, counts: Array.from(total.subarray(candidates.length), Math.round), chosen, fits, own }
}

/** What every region must agree on: the candidates, their total scores, the choice and every shared fit. */
export function modelChoiceDigest (result: ModelChoiceJobResult): Uint8Array {
  const writer = new ByteWriter()
  for (const label of result.candidates) writer.string(label)
  writer.floats([...result.scores, ...result.counts, result.chosen])
  for (const fit of result.fits) writer.blob(endemicEpidemicDigest(fit))
  return sha256(writer.bytes())
}

export function createModelChoiceJobState (peer: ModelChoiceJobPeer): ModelChoiceJobState {
  const progress = { progress: { iteration: null }, candidate: 0 }
  const state = createJob<ModelChoiceJobResult>({
    job: peer.job,
    graph: peer.graph,
    self: peer.self,
    diameter: peer.diameter,
    script: (ctx) => modelChoiceScript(withMaskSeeds(peer), progress, ctx),
    verifier: peer.verifier ?? null,
    judge: () => 'this job has no round-message rules',
    closing: { digest: modelChoiceDigest, exact: true }
  })
  return Object.assign(state, { modelChoice: progress })
}

export const modelChoiceJobProtocol = jobProtocol as unknown as Protocol<ModelChoiceJobState, ModelChoiceJobResult>
