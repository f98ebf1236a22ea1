import { DatasetError } from '../data/dataset.ts'

/**
 * When a peer re-fits the federation's model on its own (`start --refit-at`): `daily@HH:MM` (this
 * machine's local time, as cron reads it) or `every@N[s|m|h]` (at least a minute apart, from the start;
 * seconds are for trying it out). The peer proposes the re-fit; the other members accept it as any
 * proposal. One member of a federation should hold the schedule: two would propose the same re-fit twice.
 */
export type RefitSchedule = { kind: 'daily', hour: number, minute: number } | { kind: 'every', ms: number }

const DAILY = /^daily@([01]\d|2[0-3]):([0-5]\d)$/
const EVERY = /^every@(\d{1,6})(s|m|h)$/

export function parseRefitSchedule (text: string, flag = '--refit-at'): RefitSchedule {
  const daily = DAILY.exec(text)
  if (daily !== null) return { kind: 'daily', hour: Number(daily[1]), minute: Number(daily[2]) }
  const every = EVERY.exec(text)
  if (every !== null) {
    const ms = Number(every[1]) * (every[2] === 's' ? 1000 : every[2] === 'm' ? 60_000 : 3_600_000)
    if (ms < 10_000 || ms > 31 * 24 * 3_600_000) throw new DatasetError(`${flag} ${text}: from every@10s to every@744h`)
    return { kind: 'every', ms }
  }
  throw new DatasetError(`${flag} must be daily@HH:MM (local time) or every@N with s, m or h (e.g. every@6h), got ${JSON.stringify(text.slice(0, 40))}`)
}

/** The next time after `now` the schedule fires. */
export function nextRefitAt (schedule: RefitSchedule, now: Date): Date {
  if (schedule.kind === 'every') return new Date(now.getTime() + schedule.ms)
  const next = new Date(now.getFullYear(), now.getMonth(), now.getDate(), schedule.hour, schedule.minute, 0, 0)
  if (next.getTime() <= now.getTime()) next.setDate(next.getDate() + 1)
  return next
}

/** A re-fit's job id from its time: refit-YYYYMMDD-HHMMSS (local time), a valid and sortable job id. */
export function refitJobId (at: Date): string {
  const pad = (value: number, width = 2): string => String(value).padStart(width, '0')
  return `refit-${pad(at.getFullYear(), 4)}${pad(at.getMonth() + 1)}${pad(at.getDate())}-${pad(at.getHours())}${pad(at.getMinutes())}${pad(at.getSeconds())}`
}
