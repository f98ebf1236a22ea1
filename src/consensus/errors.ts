import { EpimeshError } from '../errors.ts'

/** Typed errors of the consensus core; each has a stable code. */
export class GraphDisconnectedError extends EpimeshError {
  static override readonly name = 'GraphDisconnectedError'
  constructor (message: string, options?: { cause?: unknown }) { super('GRAPH_DISCONNECTED', message, options) }
}

export class TopologySpecError extends EpimeshError {
  static override readonly name = 'TopologySpecError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('TOPOLOGY_INVALID', message, options) }
}

export class RoundStaleError extends EpimeshError {
  static override readonly name = 'RoundStaleError'
  constructor (message: string, options?: { cause?: unknown }) { super('ROUND_STALE', message, options) }
}

export class MessageInvalidError extends EpimeshError {
  static override readonly name = 'MessageInvalidError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_INVALID', message, options) }
}

export class AdmmParamsError extends EpimeshError {
  static override readonly name = 'AdmmParamsError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super('ADMM_PARAMS_INVALID', `ADMM parameter ${field}: ${message}`, options)
    this.field = field
  }
}

export class FitJobParamsError extends EpimeshError {
  static override readonly name = 'FitJobParamsError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super('JOB_PARAMS_INVALID', `job parameter ${field}: ${message}`, options)
    this.field = field
  }
}

export class PartitionError extends EpimeshError {
  static override readonly name = 'PartitionError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('PARTITION_INVALID', message, options) }
}

/** A parameter of an averaging, push-sum or secure-sum run is out of range; `field` names it. */
export class ConsensusParamsError extends EpimeshError {
  static override readonly name = 'ConsensusParamsError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super('CONSENSUS_PARAMS_INVALID', `consensus parameter ${field}: ${message}`, options)
    this.field = field
  }
}

/**
 * A masked sum cannot complete: some members' contributions stopped arriving (a peer gone for good
 * in the middle of the sum, which an exact sum cannot skip). `missing` names them.
 */
export class SumIncompleteError extends EpimeshError {
  static override readonly name = 'SumIncompleteError'
  readonly missing: string[]
  constructor (kind: string, missing: string[], rounds: number) {
    super('SUM_INCOMPLETE', `the masked sum ${kind} got no new contribution for ${rounds} rounds and still lacks ${missing.length === 0 ? 'its neighbours\' complete reports' : `the contributions of ${missing.join(', ')}`}: a peer left in the middle of it`)
    this.missing = missing
  }
}

/** The closing of a job cannot complete: some members' statements never arrived. `missing` names them. */
export class ClosingIncompleteError extends EpimeshError {
  static override readonly name = 'ClosingIncompleteError'
  readonly missing: string[]
  constructor (missing: string[], rounds: number) {
    super('CLOSING_INCOMPLETE', `the job's closing got nothing new for ${rounds} rounds and still lacks the statements of ${missing.length === 0 ? 'no one (its neighbours never reported complete)' : missing.join(', ')}: no agreement on the model could be checked`)
    this.missing = missing
  }
}

/**
 * A member broke the protocol, and signed proof of it reached this peer: the job fails here, naming
 * the member, instead of reporting a model that member may have bent. `offender` is its id (a peer id,
 * or a region name in simulation), `rule` what it broke, `reporter` who caught it.
 */
export class MemberMisbehavedError extends EpimeshError {
  static override readonly name = 'MemberMisbehavedError'
  readonly offender: string
  readonly rule: string
  readonly round: number
  readonly reporter: string
  constructor (offender: string, rule: string, round: number, reporter: string, detail: string) {
    super('MEMBER_MISBEHAVED', `member ${offender} broke the protocol (${rule}) in round ${round}, proven by its own signed messages (caught by ${reporter}): ${detail}; the job stops without a model`)
    this.offender = offender
    this.rule = rule
    this.round = round
    this.reporter = reporter
  }
}

/** At the closing, the members' statements name different models: no agreement, no model. */
export class ModelDisagreementError extends EpimeshError {
  static override readonly name = 'ModelDisagreementError'
  readonly groups: string[][]
  constructor (groups: string[][]) {
    super('MODEL_DISAGREEMENT', `the members end with ${groups.length} different models (${groups.map((group) => group.join(', ')).join(' | ')}): a member sent different values to different neighbours; the job stops without a model`)
    this.groups = groups
  }
}

/** A masked sum's contribution would not fit the fixed-point range: those peers' values diverged. */
export class SumOutOfRangeError extends EpimeshError {
  static override readonly name = 'SumOutOfRangeError'
  readonly peers: string[]
  constructor (kind: string, peers: string[]) {
    super('SUM_OUT_OF_RANGE', `the values of ${peers.join(', ')} for the masked sum ${kind} are beyond its fixed-point range: the iterates diverged (clipping bounds what a neighbour can do to them)`)
    this.peers = peers
  }
}

/** This peer's ADMM iterate or duals left the range the masked sums can hold: neighbours pulled it away. */
export class AdmmDivergedError extends EpimeshError {
  static override readonly name = 'AdmmDivergedError'
  constructor (peer: string, round: number) {
    super('ADMM_DIVERGED', `the consensus-ADMM iterate or duals of ${peer} left the range of the masked sums in round ${round}: its neighbours' values pulled it away (clipping, on by default, bounds what one neighbour can do)`)
  }
}

/** The job failed on another member, which said why: it fails here too, at once. */
export class JobAbortedError extends EpimeshError {
  static override readonly name = 'JobAbortedError'
  readonly origin: string
  readonly originCode: string
  constructor (origin: string, code: string, reason: string) {
    super('JOB_ABORTED', `the job failed on ${origin} (${code}): ${reason}`)
    this.origin = origin
    this.originCode = code
  }
}
