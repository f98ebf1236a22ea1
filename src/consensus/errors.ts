import { EpimeshError } from '../learning/errors.ts'

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
