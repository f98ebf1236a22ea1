import { StoreCorruptError, StoreValueInvalidError } from './errors.ts'
import { StoreLayout } from './layout.ts'
import { auditCheckpointSchema, auditEntryHeadSchema, checkedValue, storedJobId, storedValue, type AuditCheckpoint } from './records.ts'

/**
 * A peer's signed round logs in its store. An entry is kept as the exact line that was signed (its
 * canonical JSON), under its job and sequence number, which the store reads from the line itself; a
 * checkpoint stored again (with more countersignatures) keeps every countersignature gathered.
 */
export interface AuditWrite {
  /** entry lines, each the canonical JSON of a sealed entry (which names its `job` and `seq`) */
  entries?: readonly string[]
  /** checkpoints of this peer's logs or of its neighbours' */
  checkpoints?: readonly AuditCheckpoint[]
}

type Countersignature = AuditCheckpoint['countersignatures'][number]

function mergeCountersignatures (a: readonly Countersignature[], b: readonly Countersignature[]): Countersignature[] {
  const byPeer = new Map<string, Countersignature>()
  for (const signature of [...a, ...b]) if (!byPeer.has(signature.by)) byPeer.set(signature.by, signature)
  return [...byPeer.values()].sort((x, y) => x.by < y.by ? -1 : x.by > y.by ? 1 : 0)
}

function entryHead (line: string): { job: string, seq: number } {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch (error) {
    throw new StoreValueInvalidError('an audit entry the store cannot keep: its line is not JSON', { cause: error })
  }
  return checkedValue(auditEntryHeadSchema, value, 'audit entry')
}

/** Entries and checkpoints, all checked first, then written in one atomic batch. */
export async function appendAudit (layout: StoreLayout, write: AuditWrite): Promise<void> {
  const entries = (write.entries ?? []).map((line) => ({ line, ...entryHead(line) }))
  const checkpoints = (write.checkpoints ?? []).map((checkpoint) => checkedValue(auditCheckpointSchema, checkpoint, 'checkpoint'))
  if (entries.length === 0 && checkpoints.length === 0) return
  const batch = layout.db.batch()
  const jobs = new Set<string>()
  for (const entry of entries) {
    batch.put(layout.entryKey(entry.job, entry.seq), entry.line, { sublevel: layout.rounds })
    jobs.add(entry.job)
  }
  for (const job of jobs) batch.put(layout.auditJobKey(job), job, { sublevel: layout.rounds })
  for (const checkpoint of checkpoints) {
    const key = layout.checkpointKey(checkpoint.job, checkpoint.peer, checkpoint.length)
    const stored = await layout.rounds.get(key)
    const existing = stored === undefined ? undefined : storedValue(auditCheckpointSchema, stored, 'checkpoint')
    const merged = existing !== undefined && existing.hash === checkpoint.hash && existing.sig === checkpoint.sig
      ? { ...existing, countersignatures: mergeCountersignatures(existing.countersignatures, checkpoint.countersignatures) }
      : checkpoint
    batch.put(key, merged, { sublevel: layout.rounds })
  }
  await batch.write()
}

/** A job's entry lines, in order, exactly as they were signed. */
export async function readAuditEntries (layout: StoreLayout, job: string): Promise<string[]> {
  const lines: string[] = []
  for await (const value of layout.rounds.values(layout.entries(checkedValue(storedJobId, job, 'job id')))) {
    if (typeof value !== 'string') throw new StoreCorruptError('a stored audit entry is not a line of text')
    lines.push(value)
  }
  return lines
}

/** The checkpoints held for a job, by peer, then length. */
export async function readCheckpoints (layout: StoreLayout, job: string): Promise<AuditCheckpoint[]> {
  const checkpoints: AuditCheckpoint[] = []
  for await (const value of layout.rounds.values(layout.checkpoints(checkedValue(storedJobId, job, 'job id')))) {
    checkpoints.push(storedValue(auditCheckpointSchema, value, 'checkpoint'))
  }
  // the keys order them by the peer's tag
  return checkpoints.sort((a, b) => a.peer < b.peer ? -1 : a.peer > b.peer ? 1 : a.length - b.length)
}

/** The jobs with a round log in this store, by id. */
export async function listAuditJobs (layout: StoreLayout): Promise<string[]> {
  const jobs: string[] = []
  for await (const value of layout.rounds.values(StoreLayout.auditJobs)) jobs.push(storedValue(storedJobId, value, 'audit job id'))
  return jobs.sort()
}
