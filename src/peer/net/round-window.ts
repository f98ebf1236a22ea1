import { ROUND_WINDOW } from '../constants.ts'
import type { RoundWindow } from './codec.ts'
import type { RoundTracker } from '../runtime/round-driver.ts'
import type { ConsensusMessage } from '../../consensus/types.ts'

/**
 * The rounds a peer accepts, per job and message kind, learnt from the round driver: after every step
 * the driver reports the machine's round and the messages it sends, so this peer's own position in each
 * kind is the highest round it has sent in it. A neighbour's message in that kind is accepted from
 * `behind` rounds before that to `ahead` rounds after it; in a kind this peer has not sent yet (a phase
 * that neighbour reached first) from round 0 to `ahead` rounds past the machine's round, since a
 * phase's rounds never exceed its sender's round in the whole job.
 *
 * A job no driver here runs, or ran among the last `keepFinished`, is unknown (`null`): its messages
 * cannot be used (a machine only hears messages once its driver runs; a member that started the job a
 * moment earlier sends its first round again at its deadline) and are counted and dropped.
 *
 * What `behind` costs: ADMM drops every message of an earlier round anyway, and a flood sum gives up on
 * a lagging neighbour after 3 x diameter + 12 rounds, so neither loses anything. A spanning-tree sum
 * (federations over 64 members) counts rounds by deadlines while it waits: a member that comes back
 * more than `behind` deadlines after it left, in the middle of one, is refused as stale, and that sum
 * waits for it as it would for a member gone for good.
 */
export interface RoundWindowsInit {
  ahead: number
  behind: number
  keepFinished: number
}

/** The window for a federation whose graph has this diameter (see ROUND_WINDOW). */
export function roundWindowsInit (graphDiameter: number): RoundWindowsInit {
  return {
    ahead: ROUND_WINDOW.ahead,
    behind: Math.max(ROUND_WINDOW.minBehind, ROUND_WINDOW.behindPerDiameter * graphDiameter + ROUND_WINDOW.behindSlack),
    keepFinished: ROUND_WINDOW.keepFinished
  }
}

class JobRounds implements RoundTracker {
  /** the machine's round in the whole job */
  round = 0
  /** highest round this peer sent, per message kind */
  readonly sent = new Map<string, number>()

  constructor (readonly job: string, private readonly owner: RoundWindows) {}

  update (round: number, outbox: readonly ConsensusMessage[]): void {
    if (round > this.round) this.round = round
    for (const message of outbox) {
      if (message.job !== this.job) continue
      const before = this.sent.get(message.kind)
      if (before === undefined || message.round > before) this.sent.set(message.kind, message.round)
    }
  }

  end (finished: boolean): void {
    this.owner.ended(this, finished)
  }
}

export class RoundWindows {
  readonly config: RoundWindowsInit
  private readonly running = new Map<string, JobRounds>()
  /** finished jobs, oldest first */
  private readonly finished = new Map<string, JobRounds>()

  constructor (config: RoundWindowsInit) {
    if (!(config.ahead >= 0) || !(config.behind >= 0) || !Number.isInteger(config.keepFinished) || config.keepFinished < 0) {
      throw new RangeError('round windows need non-negative ahead, behind and keepFinished')
    }
    this.config = config
  }

  /** Starts tracking a job (again, when a restart resumes it): pass the result to the round driver. */
  track (job: string): RoundTracker {
    const known = this.running.get(job) ?? this.finished.get(job) ?? new JobRounds(job, this)
    this.finished.delete(job)
    this.running.set(job, known)
    return known
  }

  /** The rounds accepted for `job` in `kind`, or null when no driver here runs or recently ran the job. */
  window (job: string, kind: string): RoundWindow | null {
    const rounds = this.running.get(job) ?? this.finished.get(job)
    if (rounds === undefined) return null
    const own = rounds.sent.get(kind)
    if (own === undefined) return { min: 0, max: rounds.round + this.config.ahead }
    return { min: Math.max(0, own - this.config.behind), max: own + this.config.ahead }
  }

  /** Jobs running here, and finished ones whose windows are kept. */
  jobs (): { running: string[], finished: string[] } {
    return { running: [...this.running.keys()], finished: [...this.finished.keys()] }
  }

  /** @internal a tracker's end: a finished job keeps its last windows, a failed one is forgotten */
  ended (rounds: JobRounds, finished: boolean): void {
    if (this.running.get(rounds.job) !== rounds) return
    this.running.delete(rounds.job)
    if (!finished) return
    this.finished.set(rounds.job, rounds)
    for (const job of this.finished.keys()) {
      if (this.finished.size <= this.config.keepFinished) break
      this.finished.delete(job)
    }
  }
}
