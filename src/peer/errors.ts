import { EpimeshError } from '../errors.ts'

/**
 * Typed errors of the network layer. Callers and tests check `code`; messages are for people.
 *
 * Message codes (`MESSAGE_*`) are also the keys under which a transport counts the inbound messages it
 * rejects, so a rejected message never has to be thrown anywhere to be accounted for.
 */

export type MessageRejectionCode =
  | 'MESSAGE_TOO_LARGE'
  | 'MESSAGE_MALFORMED'
  | 'MESSAGE_NON_FINITE'
  | 'MESSAGE_WRONG_SENDER'
  | 'MESSAGE_WRONG_RECIPIENT'
  | 'MESSAGE_NOT_NEIGHBOUR'
  | 'MESSAGE_STALE_ROUND'
  | 'MESSAGE_FUTURE_ROUND'
  | 'MESSAGE_UNKNOWN_JOB'

export const MESSAGE_REJECTION_CODES: readonly MessageRejectionCode[] = Object.freeze([
  'MESSAGE_TOO_LARGE',
  'MESSAGE_MALFORMED',
  'MESSAGE_NON_FINITE',
  'MESSAGE_WRONG_SENDER',
  'MESSAGE_WRONG_RECIPIENT',
  'MESSAGE_NOT_NEIGHBOUR',
  'MESSAGE_STALE_ROUND',
  'MESSAGE_FUTURE_ROUND',
  'MESSAGE_UNKNOWN_JOB'
])

/** A consensus message that cannot be encoded, or that an inbound check refuses. */
export class MessageRejectedError extends EpimeshError {
  static override readonly name: string = 'MessageRejectedError'
  declare readonly code: MessageRejectionCode

  constructor (code: MessageRejectionCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options)
  }
}

export class MessageTooLargeError extends MessageRejectedError {
  static override readonly name = 'MessageTooLargeError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_TOO_LARGE', message, options) }
}

export class MessageMalformedError extends MessageRejectedError {
  static override readonly name = 'MessageMalformedError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_MALFORMED', message, options) }
}

export class MessageNonFiniteError extends MessageRejectedError {
  static override readonly name = 'MessageNonFiniteError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_NON_FINITE', message, options) }
}

export class MessageWrongSenderError extends MessageRejectedError {
  static override readonly name = 'MessageWrongSenderError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_WRONG_SENDER', message, options) }
}

export class MessageWrongRecipientError extends MessageRejectedError {
  static override readonly name = 'MessageWrongRecipientError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_WRONG_RECIPIENT', message, options) }
}

export class MessageNotNeighbourError extends MessageRejectedError {
  static override readonly name = 'MessageNotNeighbourError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_NOT_NEIGHBOUR', message, options) }
}

export class MessageStaleRoundError extends MessageRejectedError {
  static override readonly name = 'MessageStaleRoundError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_STALE_ROUND', message, options) }
}

export class MessageFutureRoundError extends MessageRejectedError {
  static override readonly name = 'MessageFutureRoundError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_FUTURE_ROUND', message, options) }
}

/** A message for a job that this peer neither runs nor recently finished. */
export class MessageUnknownJobError extends MessageRejectedError {
  static override readonly name = 'MessageUnknownJobError'
  constructor (message: string, options?: { cause?: unknown }) { super('MESSAGE_UNKNOWN_JOB', message, options) }
}

export interface FederationIssue {
  /** the field, as a path such as `members[2].peerId` */
  path: string
  message: string
}

/** The federation file does not parse or violates the schema; `issues` names every offending field. */
export class FederationInvalidError extends EpimeshError {
  static override readonly name = 'FederationInvalidError'
  readonly exitCode = 2
  readonly issues: readonly FederationIssue[]

  constructor (source: string, issues: readonly FederationIssue[], options?: { cause?: unknown }) {
    super('FEDERATION_INVALID', `${source}: ${issues.map((issue) => issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`).join('; ')}`, options)
    this.issues = issues
  }
}

/** The federation file (or its pre-shared key file) cannot be read. */
export class FederationReadError extends EpimeshError {
  static override readonly name = 'FederationReadError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('FEDERATION_READ_FAILED', message, options) }
}

/** This node's own peer id is not a member of the federation it was asked to join. */
export class NotAMemberError extends EpimeshError {
  static override readonly name = 'NotAMemberError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('PEER_NOT_A_MEMBER', message, options) }
}

/** A point-to-point message addressed to a peer that is not a graph neighbour. */
export class NotANeighbourError extends EpimeshError {
  static override readonly name = 'NotANeighbourError'
  constructor (message: string, options?: { cause?: unknown }) { super('PEER_NOT_A_NEIGHBOUR', message, options) }
}

/** A neighbour could not be reached (dial, stream or publish failed). */
export class PeerUnreachableError extends EpimeshError {
  static override readonly name = 'PeerUnreachableError'
  constructor (message: string, options?: { cause?: unknown }) { super('PEER_UNREACHABLE', message, options) }
}

/** A gossipsub publish reached no one (no subscriber yet, or every send failed). */
export class PublishFailedError extends EpimeshError {
  static override readonly name = 'PublishFailedError'
  constructor (message: string, options?: { cause?: unknown }) { super('PUBLISH_FAILED', message, options) }
}

/** An announcement payload that is too large or does not pass the channel's validator. */
export class AnnouncementRejectedError extends EpimeshError {
  static override readonly name = 'AnnouncementRejectedError'
  constructor (message: string, options?: { cause?: unknown }) { super('ANNOUNCEMENT_REJECTED', message, options) }
}

/** A service was used before `start()` or after `stop()`. */
export class NotStartedError extends EpimeshError {
  static override readonly name = 'NotStartedError'
  constructor (message: string, options?: { cause?: unknown }) { super('NOT_STARTED', message, options) }
}

/** An operation was cancelled through its `signal` or by `stop()`. */
export class AbortedError extends EpimeshError {
  static override readonly name = 'AbortedError'
  constructor (message = 'the operation was aborted', options?: { cause?: unknown }) { super('ABORTED', message, options) }
}

/** An init object with a field out of range; names the field. */
export class PeerConfigError extends EpimeshError {
  static override readonly name = 'PeerConfigError'
  readonly exitCode = 2
  readonly field: string
  constructor (field: string, message: string, options?: { cause?: unknown }) {
    super('PEER_CONFIG_INVALID', `${field}: ${message}`, options)
    this.field = field
  }
}
