import type { LogRecord, MachineInput, Protocol } from '../../consensus/machine.ts'
import type { ConsensusMessage, Transport } from '../../consensus/types.ts'
import { EpimeshError } from '../../errors.ts'

/**
 * Runs a pure consensus machine over a real transport: feeds it the neighbours' messages and, when a
 * round's deadline passes, a `deadline` input; writes every input ahead of the step it causes (so a
 * restarted peer can replay them), then sends the outbox. This is the only place where network time
 * meets the machines.
 */
export interface RoundDriverOptions<S, R> {
  protocol: Protocol<S, R>
  state: S
  transport: Transport
  /** how long a round waits for its neighbours before it goes on without the missing ones */
  roundDeadlineMs: number
  signal?: AbortSignal
  /** write-ahead: called with every input before the machine steps on it */
  persist?: (input: MachineInput) => Promise<void>
  /**
   * called after each step with the machine's state, the messages it sends, its log records and the
   * input it stepped on (null for the start); `replaying` while a restart rebuilds the state from the
   * journal (those messages were sent before the stop)
   */
  onStep?: (state: S, outbox: readonly ConsensusMessage[], log: readonly LogRecord[], input: MachineInput | null, replaying: boolean) => void | Promise<void>
  /** messages replayed into the machine before live traffic (a restart) */
  replay?: readonly MachineInput[]
  /**
   * give up when this many deadlines in a row pass without the machine's round moving (a neighbour
   * gone for good in the middle of an exact sum, which cannot skip it); default: never
   */
  maxStalledDeadlines?: number
  /**
   * told the machine's round and outbox after every step (replayed ones included), and the end of the
   * run: the transport's round window for the job (see RoundWindows)
   */
  rounds?: RoundTracker
}

/** Where a driver reports how far its machine has got, so that messages far outside it are refused. */
export interface RoundTracker {
  update(round: number, outbox: readonly ConsensusMessage[]): void
  /** `finished`: the machine is done (its neighbours may still be finishing); otherwise it failed or stopped */
  end(finished: boolean): void
}

export interface RoundDriverResult<S, R> {
  state: S
  result: R
  inputs: number
  deadlines: number
  sendFailures: number
}

export class RoundDriverAbortedError extends Error {
  static override readonly name = 'RoundDriverAbortedError'
  readonly code = 'ROUND_DRIVER_ABORTED'
}

/** The job made no progress for too long: it fails, with where it stood, instead of waiting forever. */
export class JobStalledError extends EpimeshError {
  static override readonly name = 'JobStalledError'
  readonly round: number
  constructor (round: number, deadlines: number, deadlineMs: number) {
    super('JOB_STALLED', `the job made no progress in round ${round} for ${deadlines} round deadlines (${Math.round(deadlines * deadlineMs / 1000)} s): a neighbour it waits for is gone`)
    this.round = round
  }
}

export async function driveRounds<S, R> (options: RoundDriverOptions<S, R>): Promise<RoundDriverResult<S, R>> {
  const { protocol, transport, roundDeadlineMs } = options
  let state = options.state
  const queue: MachineInput[] = []
  let wake: (() => void) | null = null
  let inputs = 0
  let deadlines = 0
  let sendFailures = 0
  const notify = (): void => {
    const resume = wake
    wake = null
    resume?.()
  }
  const unsubscribe = transport.onMessage((message) => {
    queue.push({ type: 'message', message })
    notify()
  })
  const onAbort = (): void => { notify() }
  options.signal?.addEventListener('abort', onAbort)

  const send = async (outbox: readonly ConsensusMessage[]): Promise<void> => {
    await Promise.all(outbox.map(async (message) => {
      try {
        if (message.to === undefined) await transport.broadcast(message)
        else await transport.send(message.to, message)
      } catch {
        // A neighbour that cannot be reached misses this round; the machine's deadline handles it.
        sendFailures++
      }
    }))
  }

  // (waits only for what returns a promise: most steps have no journal to write or nothing to send)
  const apply = async (input: MachineInput | null): Promise<void> => {
    if (input !== null && options.persist !== undefined) await options.persist(input)
    const stepped = input === null ? protocol.start(state) : protocol.step(state, input)
    state = stepped.state
    options.rounds?.update(protocol.round(state), stepped.outbox)
    const stepping = options.onStep?.(state, stepped.outbox, stepped.log, input, false)
    if (stepping !== undefined) await stepping
    if (stepped.outbox.length > 0) await send(stepped.outbox)
  }

  let timer: NodeJS.Timeout | null = null
  let finished = false
  try {
    if (options.replay !== undefined && options.replay.length > 0) {
      // Rebuild the state from the logged inputs; resend only what the last input produced.
      const started = protocol.start(state)
      options.rounds?.update(protocol.round(state), started.outbox)
      await options.onStep?.(state, started.outbox, started.log, null, true)
      let last: readonly ConsensusMessage[] = started.outbox
      for (const input of options.replay) {
        const stepped = protocol.step(state, input)
        state = stepped.state
        options.rounds?.update(protocol.round(state), stepped.outbox)
        await options.onStep?.(state, stepped.outbox, stepped.log, input, true)
        if (stepped.outbox.length > 0) last = stepped.outbox
      }
      await send(last)
    } else {
      await apply(null)
    }
    let watchedRound = protocol.round(state)
    let stalled = 0
    const armDeadline = (): void => {
      if (timer !== null) clearTimeout(timer)
      const round = protocol.round(state)
      timer = setTimeout(() => {
        queue.push({ type: 'deadline', round })
        notify()
      }, roundDeadlineMs)
    }
    armDeadline()
    while (!protocol.done(state)) {
      if (options.signal?.aborted === true) throw new RoundDriverAbortedError('the run was stopped')
      const input = queue.shift()
      if (input === undefined) {
        await new Promise<void>((resolve) => { wake = resolve })
        continue
      }
      if (input.type === 'deadline') deadlines++
      else inputs++
      await apply(input)
      const round = protocol.round(state)
      if (round !== watchedRound) {
        watchedRound = round
        stalled = 0
        armDeadline()
      } else if (input.type === 'deadline' && input.round === round) {
        stalled++
        if (options.maxStalledDeadlines !== undefined && stalled >= options.maxStalledDeadlines) throw new JobStalledError(round, stalled, roundDeadlineMs)
        armDeadline()
      }
    }
    const result = protocol.result(state)
    finished = true
    return { state, result, inputs, deadlines, sendFailures }
  } finally {
    options.rounds?.end(finished)
    if (timer !== null) clearTimeout(timer)
    unsubscribe()
    options.signal?.removeEventListener('abort', onAbort)
  }
}
