/**
 * The base of every typed error of the project, in one place that depends on nothing: each folder's
 * errors.ts extends it. Every run-time failure has a stable `code` that tests and callers check;
 * messages are for people and may change. Programmer mistakes throw TypeError/RangeError instead. An
 * error that stands for unusable input also carries `exitCode = 2` (the command line's convention).
 */
export class EpimeshError extends Error {
  static override readonly name: string = 'EpimeshError'
  readonly code: string

  constructor (code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = (this.constructor as { name: string }).name
  }
}
