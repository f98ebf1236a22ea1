import { z } from 'zod'
import { isJobId, JOB_ID_RULE } from '../../consensus/ids.ts'
import { modelSchema, type ModelSpec as FederationModel } from '../federation.ts'
import { forecastProposalSchema, type ForecastProposal } from './forecast-proposal.ts'
import { statsProposalSchema, type StatsProposal } from './stats-proposal.ts'

/**
 * A job as members propose it, and the announcements of the agreement about it, in one place: the
 * coordinator, the journal and the command line all read proposals through this schema.
 */
export interface JobProposal {
  type: 'job.propose'
  id: string
  proposer: string
  /** the federation's model, with the proposer's options: the regression a classifier job fits */
  model: FederationModel
  /** present for a regional forecasting job: the periods, model and risk mapping (model gives the round deadline) */
  forecast?: ForecastProposal
  /** present for a statistics job: the features, outcome, bins and disclosure minimum (model gives the round deadline) */
  stats?: StatsProposal
  /** a re-fit: the job whose shared model (and each member's own ADMM duals) the fit starts from */
  refit?: string
}

export type JobAnnouncement =
  | JobProposal
  | { type: 'job.accept', id: string }
  | { type: 'job.decline', id: string, reason: string }

const jobId = z.string().refine(isJobId, JOB_ID_RULE)

/**
 * Every job announcement off the network is checked against this before anything reads it: ids that
 * can name a file, every parameter within JOB_BOUNDS, reasons of bounded length. The proposer named in
 * a proposal must be its authenticated author (checked on receipt).
 */
export const jobAnnouncementSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('job.propose'), id: jobId, proposer: z.string().min(1).max(128), model: modelSchema, forecast: forecastProposalSchema.optional(), stats: statsProposalSchema.optional(), refit: jobId.optional() }).refine((value) => value.forecast === undefined || value.stats === undefined, 'a job is a forecast or statistics, not both'),
  z.strictObject({ type: z.literal('job.accept'), id: jobId }),
  z.strictObject({ type: z.literal('job.decline'), id: jobId, reason: z.string().max(1000) })
])
