import { EpimeshError } from '../errors.ts'

/**
 * Typed errors of the learning core. Every run-time failure has a stable `code` that tests and callers
 * check; messages are for people and may change. Programmer mistakes throw TypeError/RangeError instead.
 */
export { EpimeshError }

export class SingularHessianError extends EpimeshError {
  static override readonly name = 'SingularHessianError'
  constructor (message = 'the Hessian is singular or not positive definite', options?: { cause?: unknown }) {
    super('SINGULAR_HESSIAN', message, options)
  }
}

export class NonFiniteError extends EpimeshError {
  static override readonly name = 'NonFiniteError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('NON_FINITE', message, options)
  }
}

export class PerfectSeparationError extends EpimeshError {
  static override readonly name = 'PerfectSeparationError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('PERFECT_SEPARATION', message, options)
  }
}

export class EmptyDataError extends EpimeshError {
  static override readonly name = 'EmptyDataError'
  constructor (message = 'no rows', options?: { cause?: unknown }) {
    super('EMPTY_DATA', message, options)
  }
}

export class DimensionMismatchError extends EpimeshError {
  static override readonly name = 'DimensionMismatchError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('DIMENSION_MISMATCH', message, options)
  }
}

export class ConstantColumnError extends EpimeshError {
  static override readonly name = 'ConstantColumnError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('CONSTANT_COLUMN', message, options)
  }
}

export class InvalidOutcomeError extends EpimeshError {
  static override readonly name = 'InvalidOutcomeError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('INVALID_OUTCOME', message, options)
  }
}

export class NotConvergedError extends EpimeshError {
  static override readonly name = 'NotConvergedError'
  constructor (message: string, options?: { cause?: unknown }) {
    super('NOT_CONVERGED', message, options)
  }
}
