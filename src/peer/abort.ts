import { AbortedError } from './errors.ts'

/**
 * Small helpers for the `{ signal }` convention: every wait in the network layer is bounded by a
 * caller's signal, a service's own stop signal and, where it makes sense, a time-out.
 */

/** The caller's signal (if any) combined with a time-out and/or other signals. */
export function combineSignals (...signals: Array<AbortSignal | undefined>): AbortSignal {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined)
  if (present.length === 1) return present[0] as AbortSignal
  return AbortSignal.any(present)
}

export function withTimeout (signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  return combineSignals(signal, AbortSignal.timeout(timeoutMs))
}

export function throwIfAborted (signal: AbortSignal | undefined, what = 'the operation was aborted'): void {
  if (signal?.aborted === true) throw new AbortedError(what, { cause: signal.reason })
}

/** Resolves after `ms`, or early (without throwing) when the signal aborts. */
export async function sleep (ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted === true) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal?.addEventListener('abort', done, { once: true })
  })
}

/**
 * Waits until `check()` is true: re-checked whenever one of `events` fires on `target`, and every
 * `pollMs` as a fallback. Returns false when the signal aborts first (a time-out is a signal too).
 */
export async function waitUntil (check: () => boolean, options: {
  signal?: AbortSignal
  target?: EventTarget
  events?: readonly string[]
  pollMs?: number
}): Promise<boolean> {
  if (check()) return true
  const { signal, target, events = [], pollMs = 50 } = options
  if (signal?.aborted === true) return false
  return await new Promise<boolean>((resolve) => {
    const finish = (result: boolean): void => {
      clearInterval(timer)
      for (const event of events) target?.removeEventListener(event, onEvent)
      signal?.removeEventListener('abort', onAbort)
      resolve(result)
    }
    const onEvent = (): void => { if (check()) finish(true) }
    const onAbort = (): void => { finish(check()) }
    const timer = setInterval(onEvent, pollMs)
    for (const event of events) target?.addEventListener(event, onEvent)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
