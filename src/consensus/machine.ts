import type { ConsensusMessage } from './types.ts'
import type { Evidence, Receipt } from './audit/evidence.ts'

/**
 * The shape shared by every consensus machine: a step function over inputs that returns the new state,
 * the messages to send and the log records to write. Machines may update their state object in place
 * (the vectors are large and the step runs thousands of times) but must return it; callers treat the
 * input state as consumed. No I/O, no clock, no global randomness: a machine that needs randomness gets
 * an Rng when it is created.
 *
 * Rounds are synchronous from a machine's point of view: in round k it sends its round-k messages and
 * waits for its neighbours' round-k messages. When they have all arrived it advances by itself. When the
 * driver decides the round's deadline has passed it feeds a `deadline` input and the machine proceeds
 * with what it has (skipping the edges whose messages are missing, where the algorithm allows it).
 * Messages for a later round are buffered; messages for an earlier round are stale and dropped (counted).
 */
export type MachineInput =
  | { type: 'message', message: ConsensusMessage }
  | { type: 'deadline', round: number }
  /**
   * a neighbour has moved on to a later phase of the job (its messages for that phase are arriving):
   * it sends no more in this one. Machines that wait for every neighbour (consensus ADMM) stop waiting
   * for it; the others ignore this.
   */
  | { type: 'moved-on', from: string }

export interface LogRecord {
  level: 'debug' | 'info' | 'warn'
  event: string
  fields: Record<string, unknown>
}

export interface StepResult<S> {
  state: S
  outbox: ConsensusMessage[]
  log: LogRecord[]
}

export interface Protocol<S, R> {
  /** the first outbox: round 0 messages */
  start(state: S): StepResult<S>
  step(state: S, input: MachineInput): StepResult<S>
  /** the round the machine is waiting on */
  round(state: S): number
  /** true once the machine has its result and sends nothing more */
  done(state: S): boolean
  result(state: S): R
  /** proof, kept by the machine, that a neighbour broke the protocol (consensus ADMM checks its neighbours) */
  evidence?(state: S): Evidence | null
  /** receipts of the neighbours' last signed messages, for the job's closing statement */
  receipts?(state: S): Receipt[]
}
