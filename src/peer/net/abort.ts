import { AbortedError } from '../errors.ts'

/**
 * Small helpers for the `{ signal }` convention: every wait in the network layer is bounded by a
 * caller's signal, a service's own stop signal and, where it makes sense, a time-out.
 */

const SOURCES = Symbol('sources')

/**
 * The given signals combined. Node 20's `AbortSignal.any` holds its sources only weakly, and an
 * `AbortSignal.timeout` signal is held only weakly by its own timer: combined, nothing keeps the timeout
 * alive, and after a garbage collection it never fires (a wait meant to last ten seconds then lasts
 * until something else aborts it, if ever). So the combined signal keeps strong references to its
 * sources, and time-outs come from `timeoutSignal`, whose timer holds its controller.
 */
export function combineSignals (...signals: Array<AbortSignal | undefined>): AbortSignal {
  const present = signals.filter((signal): signal is AbortSignal => signal !== undefined)
  if (present.length === 1) return present[0] as AbortSignal
  const combined = AbortSignal.any(present)
  Object.defineProperty(combined, SOURCES, { value: present })
  return combined
}

/** Aborts with a TimeoutError after `ms`; unlike AbortSignal.timeout it survives garbage collection. */
export function timeoutSignal (ms: number): AbortSignal {
  const controller = new AbortController()
  const timer = setTimeout(() => { controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError')) }, ms)
  // The timer must not keep a stopping process alive; the timer list still holds it strongly.
  timer.unref()
  return controller.signal
}

export function withTimeout (signal: AbortSignal | undefined, timeoutMs: number): AbortSignal {
  return combineSignals(signal, timeoutSignal(timeoutMs))
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
