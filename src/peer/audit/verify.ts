import { readFile } from 'node:fs/promises'
import { publicKeyToProtobuf } from '@libp2p/crypto/keys'
import type { PublicKey } from '@libp2p/interface'
import { checkDualUpdates, fromHex, type EntryBody, type FinalBody, type ReceivedRecord, type RoundBody, type SentRecord, type StartBody } from '../../consensus/audit/recorder.ts'
import { EpimeshError } from '../../errors.ts'
import {
  AUDIT_FILE_FORMAT, canonicalJson, checkpointStatement, countersignStatement, decodePublicKey, entryHash, GENESIS,
  publicKeyOf, sha256Hex, verifyBytes, type Checkpoint, type SealedEntry
} from './log.ts'
import { encodeConsensusMessage } from '../net/codec.ts'
import { CHECK_MEANINGS, describeJob, plain, summarizeJob, type AuditJobSummary } from './summary.ts'

/**
 * The auditor's check of exported round logs, offline, from the files alone: no store, no network,
 * no record. A file is one peer's log of one job (epimesh audit export); with several peers' files
 * the checks that need both ends of an edge are made too.
 */
export class AuditInputError extends EpimeshError {
  static override readonly name = 'AuditInputError'
  readonly exitCode = 2
  constructor (message: string) { super('AUDIT_INPUT_UNUSABLE', message) }
}

export interface AuditFinding {
  /** the file and line, when the finding is about one */
  file?: string
  line?: number
  /** the peer (region name when known) and where in its log */
  peer?: string
  seq?: number
  phase?: string
  round?: number
  field?: string
  message: string
  /** the check that failed */
  check?: string
  /** the first failure in a log whose chain is broken: what the later failures of that log follow from */
  rootCause?: boolean
  /** for a failure in a broken log after its first: where that first failure is (file:line) */
  followsFrom?: string
}

export interface AuditCheck {
  name: string
  /** how many things were checked */
  checked: number
  failed: number
}

export interface AuditFileSummary {
  file: string
  peer: string
  region: string
  job: string
  entries: number
  checkpoints: number
  /** its chain, signatures and structure hold, so its content entered the checks across logs */
  intact: boolean
}

export interface AuditReport {
  ok: boolean
  job: string
  /** what was run, as the signed start and final entries state it */
  summary: AuditJobSummary
  files: AuditFileSummary[]
  checks: AuditCheck[]
  failures: AuditFinding[]
  notes: string[]
  entries: number
  seconds: number
  entriesPerSecond: number
}

export interface AuditFileText {
  name: string
  text: string
}

interface Header {
  format: string
  version: number
  job: string
  peer: string
  publicKey: string
  entries: number
  checkpoints: number
}

interface ParsedFile {
  name: string
  header: Header
  key: PublicKey
  entries: SealedEntry[]
  /** the line number of each entry */
  entryLines: number[]
  checkpoints: Array<Checkpoint & { line: number }>
  /** the log's chain and signatures hold */
  intact: boolean
}

class Checks {
  readonly list = new Map<string, AuditCheck>()
  readonly failures: AuditFinding[] = []
  pass (name: string, count = 1): void { this.get(name).checked += count }
  fail (name: string, finding: AuditFinding): void {
    const check = this.get(name)
    check.checked++
    check.failed++
    this.failures.push({ ...finding, check: name })
  }

  private get (name: string): AuditCheck {
    let check = this.list.get(name)
    if (check === undefined) {
      check = { name, checked: 0, failed: 0 }
      this.list.set(name, check)
    }
    return check
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value)
const isNumberArray = (value: unknown): value is number[] => Array.isArray(value) && value.every((item) => typeof item === 'number')

function parseHeader (file: AuditFileText, line: string | undefined): Header {
  let header: unknown
  try {
    header = JSON.parse(line ?? '')
  } catch {
    throw new AuditInputError(`${file.name}, line 1: not an epimesh audit export (the first line is not JSON)`)
  }
  if (!isObject(header) || header.format !== AUDIT_FILE_FORMAT) throw new AuditInputError(`${file.name}, line 1: not an epimesh audit export (field format)`)
  if (header.version !== 1) throw new AuditInputError(`${file.name}, line 1: audit format version ${String(header.version)} is not supported (field version)`)
  for (const field of ['job', 'peer', 'publicKey'] as const) {
    if (typeof header[field] !== 'string') throw new AuditInputError(`${file.name}, line 1: field ${field} is missing`)
  }
  return header as unknown as Header
}

async function parseFile (file: AuditFileText, checks: Checks): Promise<ParsedFile> {
  const lines = file.text.split('\n')
  const header = parseHeader(file, lines[0])
  const parsed: ParsedFile = { name: file.name, header, key: null as unknown as PublicKey, entries: [], entryLines: [], checkpoints: [], intact: true }
  const at = (line: number, message: string, field?: string): AuditFinding => ({ file: file.name, line, peer: header.peer, message, ...(field === undefined ? {} : { field }) })
  if (canonicalJson(JSON.parse(lines[0] as string)) !== lines[0]) {
    checks.fail('canonical encoding', at(1, 'the header is not in canonical form'))
    parsed.intact = false
  }
  let key: PublicKey
  try {
    key = decodePublicKey(header.publicKey)
    const expected = publicKeyOf(header.peer)
    if (Buffer.compare(Buffer.from(publicKeyToProtobuf(key)), Buffer.from(publicKeyToProtobuf(expected))) !== 0) {
      checks.fail('public key', at(1, 'the public key is not the one the peer id names', 'publicKey'))
      parsed.intact = false
      key = expected
    } else checks.pass('public key')
  } catch {
    checks.fail('public key', at(1, 'the public key or peer id cannot be read', 'publicKey'))
    parsed.intact = false
    try { key = publicKeyOf(header.peer) } catch { throw new AuditInputError(`${file.name}, line 1: the peer id ${header.peer} is not a usable Ed25519 peer id (field peer)`) }
  }
  parsed.key = key
  if (lines.at(-1) !== '') {
    checks.fail('file structure', at(lines.length, 'the file does not end with a newline: it was cut or appended to'))
    parsed.intact = false
  }
  // A damaged line keeps its place: an entry that cannot be read still counts as an entry, so one
  // changed byte is reported once, where it is, and not again as every later entry out of sequence.
  const damaged = new Set<number>()
  let damagedCheckpoints = 0
  const keepDamaged = (index: number, text: string, value: unknown): void => {
    const kind = isObject(value) && typeof value.type === 'string' ? value.type : /"type":"(start|round|final|checkpoint)"/.exec(text)?.[1]
    const isEntry = kind === 'start' || kind === 'round' || kind === 'final' || (kind !== 'checkpoint' && index <= header.entries)
    if (!isEntry) {
      damagedCheckpoints++
      return
    }
    damaged.add(parsed.entries.length)
    parsed.entries.push((isObject(value) ? value : { type: kind ?? 'round' }) as unknown as SealedEntry)
    parsed.entryLines.push(index + 1)
  }
  for (let index = 1; index < lines.length; index++) {
    const text = lines[index] as string
    if (text === '' && index === lines.length - 1) continue
    const lineNumber = index + 1
    let value: unknown
    try {
      value = JSON.parse(text)
    } catch {
      checks.fail('file structure', at(lineNumber, 'not valid JSON: the line was changed after it was written'))
      parsed.intact = false
      keepDamaged(index, text, undefined)
      continue
    }
    if (canonicalJson(value) !== text) {
      checks.fail('canonical encoding', at(lineNumber, 'not in canonical form: the line is not exactly what it was when it was signed'))
      parsed.intact = false
      keepDamaged(index, text, value)
      continue
    }
    checks.pass('canonical encoding')
    if (!isObject(value)) {
      checks.fail('file structure', at(lineNumber, 'not a JSON object'))
      parsed.intact = false
      keepDamaged(index, text, value)
      continue
    }
    if (value.type === 'checkpoint') {
      parsed.checkpoints.push({ ...(value as unknown as Checkpoint), line: lineNumber })
    } else if (value.type === 'start' || value.type === 'round' || value.type === 'final') {
      parsed.entries.push(value as unknown as SealedEntry)
      parsed.entryLines.push(lineNumber)
    } else {
      checks.fail('file structure', at(lineNumber, `unknown line type ${JSON.stringify(value.type)}`, 'type'))
      parsed.intact = false
      keepDamaged(index, text, value)
    }
  }
  if (header.entries !== parsed.entries.length || header.checkpoints !== parsed.checkpoints.length + damagedCheckpoints) {
    checks.fail('file structure', at(1, `the header announces ${header.entries} entries and ${header.checkpoints} checkpoints, the file holds ${parsed.entries.length} and ${parsed.checkpoints.length + damagedCheckpoints}`, 'entries'))
    parsed.intact = false
  }
  // the chain: sequence, previous hash, own hash, signature, and that every entry is this job's and this peer's
  let previous: string | null = GENESIS
  for (const [index, entry] of parsed.entries.entries()) {
    const where = (message: string, field: string): AuditFinding => ({ file: file.name, line: parsed.entryLines[index] as number, peer: header.peer, seq: index, field, message })
    if (damaged.has(index)) {
      // already reported; the hash it claims links the next entry, if it can still be read
      previous = typeof entry.hash === 'string' && /^[0-9a-f]{64}$/.test(entry.hash) ? entry.hash : null
      continue
    }
    if (entry.seq !== index) {
      checks.fail('hash chain', where(`entry ${index} carries sequence number ${String(entry.seq)}: entries were deleted, inserted or reordered`, 'seq'))
      parsed.intact = false
    }
    if (previous !== null && entry.prev !== previous) {
      checks.fail('hash chain', where('prev is not the hash of the entry before: entries were deleted, inserted or reordered', 'prev'))
      parsed.intact = false
    } else if (previous !== null) checks.pass('hash chain')
    let hash: string
    try {
      hash = entryHash(entry)
    } catch {
      hash = ''
    }
    if (hash !== entry.hash) {
      checks.fail('entry hashes', where('the entry does not hash to its hash field: it was changed after it was written', 'hash'))
      parsed.intact = false
    } else checks.pass('entry hashes')
    previous = typeof entry.hash === 'string' ? entry.hash : ''
    const signed = typeof entry.hash === 'string' && /^[0-9a-f]{64}$/.test(entry.hash) && typeof entry.sig === 'string' && await verifyBytes(key, Buffer.from(entry.hash, 'hex'), entry.sig)
    if (!signed) {
      checks.fail('signatures', where('the signature is not the peer\'s signature of the entry\'s hash', 'sig'))
      parsed.intact = false
    } else checks.pass('signatures')
    if (entry.job !== header.job || entry.peer !== header.peer) {
      checks.fail('file structure', where('the entry belongs to another job or peer than the file', entry.job !== header.job ? 'job' : 'peer'))
      parsed.intact = false
    }
  }
  const first = parsed.entries[0]
  const last = parsed.entries.at(-1)
  if (first?.type !== 'start') {
    checks.fail('file structure', { file: file.name, peer: header.peer, seq: 0, message: 'the log does not begin with the job\'s start entry' })
    parsed.intact = false
  }
  if (last?.type !== 'final') {
    checks.fail('file structure', { file: file.name, peer: header.peer, seq: parsed.entries.length - 1, message: 'the log does not end with the job\'s final model: it was cut short, or the job did not finish here' })
  }
  parsed.entries.forEach((entry, index) => {
    if ((entry.type === 'start' && index !== 0) || (entry.type === 'final' && index !== parsed.entries.length - 1)) {
      checks.fail('file structure', { file: file.name, peer: header.peer, seq: index, message: `a ${entry.type} entry in the middle of the log` })
      parsed.intact = false
    }
  })
  return parsed
}

function key3 (peer: string, kind: string, round: number): string {
  return `${peer}\n${kind}\n${round}`
}

function relativeDistance (a: readonly number[], b: readonly number[]): number {
  let difference = 0
  let size = 0
  for (let index = 0; index < Math.max(a.length, b.length); index++) {
    difference += ((a[index] ?? Number.NaN) - (b[index] ?? Number.NaN)) ** 2
    size += (b[index] ?? 0) ** 2
  }
  return Math.sqrt(difference) / Math.max(1, Math.sqrt(size))
}

/** Checks one job's exported logs (one file per peer). Throws AuditInputError for input it cannot use. */
export async function verifyAuditTexts (files: readonly AuditFileText[]): Promise<AuditReport> {
  const started = performance.now()
  if (files.length === 0) throw new AuditInputError('no audit files given')
  const checks = new Checks()
  const notes: string[] = []
  const parsed: ParsedFile[] = []
  for (const file of files) {
    const before = checks.failures.length
    parsed.push(await parseFile(file, checks))
    rootCauseFirst(checks.failures, before)
  }
  const job = (parsed[0] as ParsedFile).header.job
  const other = parsed.find((file) => file.header.job !== job)
  if (other !== undefined) throw new AuditInputError(`${other.name} is the log of job ${other.header.job}, ${(parsed[0] as ParsedFile).name} of job ${job}: verify one job at a time`)

  // one log per peer; two different logs of the same peer are a split view
  const byPeer = new Map<string, ParsedFile>()
  for (const file of parsed) {
    const seen = byPeer.get(file.header.peer)
    if (seen === undefined) { byPeer.set(file.header.peer, file); continue }
    const same = seen.entries.length === file.entries.length && seen.entries.at(-1)?.hash === file.entries.at(-1)?.hash
    if (same) notes.push(`${file.name} repeats ${seen.name}`)
    else checks.fail('one history per peer', { file: file.name, peer: file.header.peer, message: `${file.name} and ${seen.name} are two different logs of the same peer` })
  }

  // Only logs whose chain and signatures hold are read further: what a broken log says cannot be trusted.
  for (const [peer, file] of [...byPeer]) {
    if (!file.intact) {
      byPeer.delete(peer)
      notes.push(`${file.name}: its chain or signatures do not hold, so its content was left out of the checks across peers`)
    }
  }
  try {
    await crossChecks(job, byPeer, parsed, checks, notes)
  } catch (error) {
    checks.fail('file structure', { message: `a signed entry has fields of the wrong shape: ${(error as Error).message}` })
  }

  const entries = parsed.reduce((sum, file) => sum + file.entries.length, 0)
  const seconds = (performance.now() - started) / 1000
  // the summary is read from the logs that hold; only when none does, from a broken one, and it says so
  const finalOf = (list: Iterable<ParsedFile>): FinalBody | undefined => [...list].map((file) => file.entries.at(-1)).find((entry): entry is SealedEntry & FinalBody => entry?.type === 'final' && isObject(entry))
  const intactFinal = byPeer.size > 0 ? finalOf(byPeer.values()) : finalOf(parsed)
  return {
    ok: checks.failures.length === 0,
    job,
    summary: { ...summarizeJob(startOf(byPeer, parsed), intactFinal), fromBrokenLog: byPeer.size === 0 },
    files: parsed.map((file) => ({ file: file.name, peer: file.header.peer, region: regionOf(byPeer, parsed, file.header.peer), job: file.header.job, entries: file.entries.length, checkpoints: file.checkpoints.length, intact: file.intact })),
    checks: [...checks.list.values()],
    failures: checks.failures.map((finding) => finding.peer === undefined ? finding : { ...finding, peer: regionOf(byPeer, parsed, finding.peer) }),
    notes,
    entries,
    seconds,
    entriesPerSecond: seconds > 0 ? entries / seconds : entries
  }
}

/**
 * Within one log, what a broken chain reports is ordered by place in the file, and everything after
 * the first failure is marked as following from it: one changed byte is one root cause, however many
 * checks it trips on the way.
 */
function rootCauseFirst (failures: AuditFinding[], from: number): void {
  if (failures.length <= from) return
  const own = failures.splice(from).map((finding, order) => ({ finding, order }))
  // the header's count of entries is wrong whenever a line was split, joined or lost: a consequence
  // of the damaged line, not a cause before it
  const place = (finding: AuditFinding): number => finding.field === 'entries' && finding.check === 'file structure' ? Number.MAX_SAFE_INTEGER - 1 : (finding.line ?? Number.MAX_SAFE_INTEGER)
  own.sort((a, b) => (place(a.finding) - place(b.finding)) || a.order - b.order)
  const first = (own[0] as { finding: AuditFinding }).finding
  const where = `${first.file ?? ''}${first.line === undefined ? '' : `:${first.line}`}`
  own.forEach(({ finding }, index) => {
    failures.push(index === 0 ? { ...finding, rootCause: true } : { ...finding, followsFrom: where })
  })
}

function startOf (byPeer: ReadonlyMap<string, ParsedFile>, parsed: readonly ParsedFile[]): StartBody | undefined {
  for (const file of [...byPeer.values(), ...parsed]) {
    const first = file.entries[0]
    if (first?.type === 'start' && isObject(first.graph) && Array.isArray(first.graph.names)) return first
  }
  return undefined
}

function regionOf (byPeer: ReadonlyMap<string, ParsedFile>, parsed: readonly ParsedFile[], peer: string): string {
  const graph = startOf(byPeer, parsed)?.graph
  const index = graph?.names.indexOf(peer) ?? -1
  return index >= 0 ? (graph?.regions?.[index] ?? peer) : peer
}

async function crossChecks (job: string, byPeer: Map<string, ParsedFile>, parsed: readonly ParsedFile[], checks: Checks, notes: string[]): Promise<void> {
  // the job as the start entries state it: the same algorithm, parameters, model and graph everywhere
  const starts = [...byPeer.values()].map((file) => ({ file, start: file.entries[0] as StartBody | undefined })).filter((item) => item.start?.type === 'start')
  const reference = starts[0]?.start
  const region = (peer: string): string => regionOf(byPeer, parsed, peer)
  for (const { file, start } of starts.slice(1)) {
    const spec = (body: StartBody | undefined): string => canonicalJson({ format: body?.format, job: body?.job, algorithm: body?.algorithm, params: body?.params, model: body?.model, graph: body?.graph, diameter: body?.diameter })
    const same = spec(start) === spec(reference)
    if (same) checks.pass('same job everywhere')
    else checks.fail('same job everywhere', { file: file.name, peer: region(file.header.peer), seq: 0, message: 'the job\'s algorithm, parameters, model or graph differ from the other peers\'' })
  }
  const graph = reference?.graph
  const isNeighbour = (a: string, b: string): boolean => {
    if (graph === undefined) return false
    const ia = graph.names.indexOf(a)
    const ib = graph.names.indexOf(b)
    return ia >= 0 && ib >= 0 && (graph.neighbours[ia] ?? []).includes(ib)
  }
  if (graph !== undefined) {
    for (const peer of byPeer.keys()) {
      if (!graph.names.includes(peer)) checks.fail('same job everywhere', { peer, message: 'the peer is not a member of the job\'s graph' })
    }
  }

  // checkpoints: the author's signature, the countersignatures, and that the logs pass through them
  const allCheckpoints = parsed.flatMap((file) => file.checkpoints.map((checkpoint) => ({ file, checkpoint })))
  const validHeads = new Map<string, Set<number>>()
  // a head whose signature fails, by peer and length: an end of log it leaves uncovered follows from it
  const forgedHeads = new Map<string, AuditFinding>()
  const checkpointKeys = new Set<string>()
  for (const { file, checkpoint } of allCheckpoints) {
    const where = { file: file.name, line: checkpoint.line, peer: region(String(checkpoint.peer)) }
    if (typeof checkpoint.peer !== 'string' || typeof checkpoint.hash !== 'string' || typeof checkpoint.sig !== 'string' || !Number.isInteger(checkpoint.length) || checkpoint.job !== job || !Array.isArray(checkpoint.countersignatures)) {
      checks.fail('checkpoint signatures', { ...where, message: 'a checkpoint with missing or mistyped fields, or of another job' })
      continue
    }
    let authorKey: PublicKey
    try { authorKey = publicKeyOf(checkpoint.peer) } catch { checks.fail('checkpoint signatures', { ...where, field: 'peer', message: 'the checkpoint names a peer id without a public key' }); continue }
    if (!await verifyBytes(authorKey, checkpointStatement(checkpoint), checkpoint.sig)) {
      checks.fail('checkpoint signatures', { ...where, field: 'sig', message: 'the checkpoint is not signed by the peer it names' })
      forgedHeads.set(`${checkpoint.peer}\n${checkpoint.length}`, checks.failures.at(-1) as AuditFinding)
      continue
    }
    checks.pass('checkpoint signatures')
    for (const countersignature of checkpoint.countersignatures) {
      let ok = false
      try {
        ok = isObject(countersignature) && typeof countersignature.by === 'string' && typeof countersignature.sig === 'string' &&
          await verifyBytes(publicKeyOf(countersignature.by), countersignStatement(checkpoint, countersignature.by), countersignature.sig)
      } catch {
        ok = false
      }
      if (!ok) checks.fail('countersignatures', { ...where, field: 'countersignatures', message: `a countersignature by ${region(String(countersignature?.by))} does not verify` })
      else if (graph !== undefined && !isNeighbour(countersignature.by, checkpoint.peer)) checks.fail('countersignatures', { ...where, field: 'countersignatures', message: `${region(countersignature.by)} countersigned but is not a graph neighbour of ${region(checkpoint.peer)}` })
      else checks.pass('countersignatures')
    }
    const heads = validHeads.get(checkpoint.peer) ?? new Set<number>()
    heads.add(checkpoint.length)
    validHeads.set(checkpoint.peer, heads)
    checkpointKeys.add(`${checkpoint.peer}\n${checkpoint.length}\n${checkpoint.hash}`)
    const log = byPeer.get(checkpoint.peer)
    if (log === undefined) continue
    const entry = log.entries[checkpoint.length - 1]
    if (entry === undefined || entry.hash !== checkpoint.hash) {
      const who = checkpoint.countersignatures.map((signature) => region(signature.by)).join(', ')
      checks.fail('logs match checkpoints', {
        ...where,
        seq: checkpoint.length - 1,
        message: entry === undefined
          ? `${region(checkpoint.peer)} published a head at ${checkpoint.length} entries (held in ${file.name}${who === '' ? '' : `, countersigned by ${who}`}), but its log has ${log.entries.length}: entries were removed`
          : `${region(checkpoint.peer)}'s log does not pass through the head it published at ${checkpoint.length} entries (held in ${file.name}${who === '' ? '' : `, countersigned by ${who}`}): its history was rewritten`
      })
    } else checks.pass('logs match checkpoints')
  }
  for (const [peer, log] of byPeer) {
    if (log.entries.length === 0) continue
    if (validHeads.get(peer)?.has(log.entries.length) === true) checks.pass('end of log checkpointed')
    else {
      const forged = forgedHeads.get(`${peer}\n${log.entries.length}`)
      if (forged !== undefined) forged.rootCause = true
      checks.fail('end of log checkpointed', {
        file: log.name,
        peer: region(peer),
        seq: log.entries.length - 1,
        message: forged === undefined ? 'no checkpoint covers the end of the log: entries may have been removed from its end' : 'no valid checkpoint covers the end of the log: the one that did is not genuine',
        ...(forged === undefined ? {} : { followsFrom: `${forged.file ?? ''}${forged.line === undefined ? '' : `:${forged.line}`}` })
      })
    }
  }

  // messages: what each peer logged as sent, against what its neighbours logged as received
  const sentBy = new Map<string, SentRecord[]>()
  const rounds = new Map<string, RoundBody[]>()
  for (const [peer, log] of byPeer) {
    const list: RoundBody[] = []
    for (const entry of log.entries) {
      if (entry.type === 'start') continue
      if (entry.type === 'round') list.push(entry)
      const sent = entry.type === 'round' && Array.isArray(entry.sent) ? entry.sent : []
      for (const record of [...sent, ...(Array.isArray(entry.late?.sent) ? entry.late.sent : [])]) {
        const key = key3(peer, String(record.kind), Number(record.round))
        const records = sentBy.get(key) ?? []
        records.push(record)
        sentBy.set(key, records)
      }
    }
    rounds.set(peer, list)
  }
  for (const [peer, list] of rounds) {
    const file = byPeer.get(peer) as ParsedFile
    const final = file.entries.at(-1)
    // the final entry's late messages are checked like a round's
    const withFinal: RoundBody[] = final?.type === 'final' && final.late !== undefined
      ? [...list, { type: 'round', job, peer, phase: 'final', round: -1, jobRound: -1, deadline: false, sent: [], received: [], late: final.late, ...{ seq: final.seq } } as RoundBody]
      : list
    for (const entry of withFinal) {
      for (const record of [...(Array.isArray(entry.sent) ? entry.sent : []), ...(Array.isArray(entry.late?.sent) ? entry.late.sent : [])]) {
        if (record.to !== undefined) continue
        let digest = ''
        try {
          if (!isNumberArray(record.values) || typeof record.data !== 'string') throw new Error('missing')
          digest = sha256Hex(encodeConsensusMessage({ job, kind: record.kind, round: record.round, from: peer, values: Float64Array.from(record.values), data: fromHex(record.data) }))
        } catch {
          digest = ''
        }
        if (digest !== record.digest) checks.fail('sent vectors match their digests', { file: file.name, peer: region(peer), seq: (entry as SealedEntry).seq, phase: entry.phase, round: entry.round, field: 'sent.values', message: `the vector logged as sent (${record.kind}, round ${record.round}) does not match the digest of the message` })
        else checks.pass('sent vectors match their digests')
      }
      for (const record of [...(Array.isArray(entry.received) ? entry.received : []), ...(Array.isArray(entry.late?.received) ? entry.late.received : [])] as ReceivedRecord[]) {
        if (!byPeer.has(record.from)) continue
        const candidates = sentBy.get(key3(record.from, record.kind, record.round)) ?? []
        const match = candidates.some((sent) => sent.digest === record.digest && (sent.to === undefined || sent.to === peer))
        if (match) checks.pass('received = sent')
        else {
          checks.fail('received = sent', {
            file: file.name, peer: region(peer), seq: (entry as SealedEntry).seq, phase: entry.phase, round: entry.round, field: 'received',
            message: `logged a ${record.kind} message from ${region(record.from)} for round ${record.round} that ${region(record.from)}'s log does not show as sent (digest ${record.digest.slice(0, 12)}…)`
          })
        }
      }
      // skipped and heard edges, against this peer's own receipts
      const admm = entry.admm
      if (admm !== undefined) {
        const receivedFrom = new Set(entry.received.filter((record) => record.kind === entry.phase && record.round === entry.round).map((record) => record.from))
        for (const neighbour of admm.heard) {
          if (receivedFrom.has(neighbour)) checks.pass('skipped edges')
          else checks.fail('skipped edges', { file: file.name, peer: region(peer), seq: (entry as SealedEntry).seq, phase: entry.phase, round: entry.round, field: 'admm.heard', message: `updated the edge to ${region(neighbour)} without logging its message` })
        }
        for (const neighbour of admm.skipped) {
          if (!receivedFrom.has(neighbour)) checks.pass('skipped edges')
          else checks.fail('skipped edges', { file: file.name, peer: region(peer), seq: (entry as SealedEntry).seq, phase: entry.phase, round: entry.round, field: 'admm.skipped', message: `skipped the edge to ${region(neighbour)} although its message was logged as received` })
        }
      }
    }
  }

  // consensus ADMM: the penalty is the same at both ends, and every dual update follows from the logged vectors
  if (graph !== undefined) {
    const phases = new Set<string>()
    for (const list of rounds.values()) for (const entry of list) if (entry.admm !== undefined) phases.add(entry.phase)
    let oneSided = 0
    let unverifiable = 0
    for (const phase of phases) {
      const byPhase = new Map<string, RoundBody[]>()
      for (const [peer, list] of rounds) byPhase.set(peer, list.filter((entry) => entry.phase === phase && entry.admm !== undefined))
      try {
        const result = checkDualUpdates({ graph, rounds: byPhase })
        checks.pass('dual updates recomputed', result.checked)
        for (const finding of result.findings) {
          const log = byPeer.get(finding.peer)
          const entry = log?.entries.find((candidate) => candidate.type === 'round' && candidate.phase === finding.phase && candidate.round === finding.round)
          checks.fail('dual updates recomputed', { file: log?.name ?? '', peer: region(finding.peer), seq: entry?.seq ?? -1, phase: finding.phase, round: finding.round, field: finding.field, message: `${finding.message}${finding.neighbour === '' ? '' : ` (edge to ${region(finding.neighbour)})`}` })
        }
        oneSided += result.oneSided
        unverifiable += result.unverifiable
      } catch (error) {
        checks.fail('dual updates recomputed', { message: `the ADMM records of phase ${phase} cannot be read: ${(error as Error).message}` })
      }
      const penalties = new Map<number, number>()
      for (const [peer, list] of byPhase) {
        for (const entry of list) {
          const seen = penalties.get(entry.round)
          const penalty = (entry.admm as NonNullable<RoundBody['admm']>).penalty
          if (seen === undefined) penalties.set(entry.round, penalty)
          else if (seen !== penalty) checks.fail('penalty equal at both ends', { file: byPeer.get(peer)?.name ?? '', peer: region(peer), seq: (entry as SealedEntry).seq, phase, round: entry.round, field: 'admm.penalty', message: `penalty ${penalty}, where other peers used ${seen}` })
          else checks.pass('penalty equal at both ends')
        }
      }
    }
    if (oneSided > 0) notes.push(`${oneSided} edge-rounds were heard at one end and skipped at the other (a message lost one way); the edge owner's next message carries its dual, and both ends agree again`)
    if (unverifiable > 0) notes.push(`${unverifiable} edge-rounds could not be recomputed because the neighbour's log is not among the files`)
  }

  // the final models agree within the job's tolerance
  const finals = [...byPeer.entries()].map(([peer, log]) => ({ peer, log, final: log.entries.at(-1) })).filter((item): item is { peer: string, log: ParsedFile, final: SealedEntry & FinalBody } => item.final?.type === 'final')
  if (finals.length > 0) {
    const base = finals[0] as { peer: string, log: ParsedFile, final: FinalBody }
    const tolerance = Number(base.final.tolerance)
    const hops = Math.max(1, Number(reference?.diameter ?? 1))
    const bound = Math.max(1e-9, 10 * tolerance * hops)
    let spread = 0
    for (const item of finals) {
      const distance = relativeDistance(item.final.standardizedCoefficients, base.final.standardizedCoefficients)
      spread = Math.max(spread, Number.isNaN(distance) ? Number.POSITIVE_INFINITY : distance)
      const sameTerms = canonicalJson(item.final.terms) === canonicalJson(base.final.terms)
      // a forest is agreed exactly: every member took the same splits from the same masked totals
      if (item.final.resultDigest !== base.final.resultDigest) {
        checks.fail('final models agree', { file: item.log.name, peer: region(item.peer), seq: item.log.entries.length - 1, field: 'resultDigest', message: `the published result differs from ${region(base.peer)}'s: the members must publish the same figures from the same sums` })
        continue
      }
      if (item.final.trees !== undefined || base.final.trees !== undefined) {
        if (canonicalJson(item.final.trees ?? null) !== canonicalJson(base.final.trees ?? null)) {
          checks.fail('final models agree', { file: item.log.name, peer: region(item.peer), seq: item.log.entries.length - 1, field: 'trees', message: `the final forest differs from ${region(base.peer)}'s: the members must grow the same trees from the same sums` })
          continue
        }
      }
      if (!sameTerms || !(distance <= bound)) {
        checks.fail('final models agree', { file: item.log.name, peer: region(item.peer), seq: item.log.entries.length - 1, field: 'standardizedCoefficients', message: sameTerms ? `the final model differs from ${region(base.peer)}'s by ${distance.toExponential(2)} (relative), more than the job allows (${bound.toExponential(2)})` : 'the final model has other terms' })
      } else checks.pass('final models agree')
    }
    notes.push(`final models: largest relative difference between peers ${spread.toExponential(2)} (allowed: 10 x tolerance x diameter = ${bound.toExponential(2)})`)
  }
}

/** An export's text; AUDIT_INPUT_UNUSABLE when it cannot be read or is empty. */
export async function readAuditFile (path: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    throw new AuditInputError(`${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`)
  }
  if (text.length === 0) throw new AuditInputError(`${path}: the file is empty`)
  return text
}

export async function verifyAuditFiles (paths: readonly string[]): Promise<AuditReport> {
  const files: AuditFileText[] = []
  for (const path of paths) files.push({ name: path, text: await readAuditFile(path) })
  return await verifyAuditTexts(files)
}

function describeFinding (finding: AuditFinding): string {
  const where = [
    finding.file === undefined || finding.file === '' ? null : `${finding.file}${finding.line === undefined ? '' : `:${finding.line}`}`,
    finding.peer === undefined ? null : `peer ${plain(finding.peer, 60)}`,
    finding.seq === undefined ? null : `entry ${finding.seq}`,
    finding.phase === undefined ? null : `${plain(finding.phase, 30)} round ${finding.round}`,
    finding.field === undefined ? null : `field ${finding.field}`
  ].filter((part) => part !== null).join(', ')
  return `${where}: ${finding.message}`
}

/**
 * The report as a person reads it: what was run, what was checked and what it means, the files, and
 * the failures, root causes first. `all` lists every failure, those that follow from a root cause too.
 */
export function formatReport (report: AuditReport, options: { all?: boolean } = {}): string {
  const lines: string[] = []
  lines.push('What was run, as the regions\' signed logs state it:')
  for (const line of describeJob(report.summary, report.job)) lines.push(`  ${line}`)
  lines.push('')
  lines.push(`What was checked, from these ${report.files.length} log file(s) alone (no record, no network):`)
  for (const check of report.checks) {
    const meaning = CHECK_MEANINGS[check.name] ?? check.name
    lines.push(`  ${check.failed === 0 ? 'ok  ' : 'FAIL'} ${meaning} (${check.name}: ${check.checked} checked${check.failed === 0 ? '' : `, ${check.failed} failed`})`)
  }
  lines.push('  Not checkable from logs: whether each region\'s own records are right. The logs show that the')
  lines.push('  computation on them was done as stated, not what the records hold.')
  lines.push('')
  lines.push(`job ${plain(report.job)}: ${report.files.length} log(s), ${report.entries} entries, verified in ${report.seconds.toFixed(2)} s (${Math.round(report.entriesPerSecond)} entries/s)`)
  for (const file of report.files) lines.push(`  ${plain(file.region, 40).padEnd(16)} ${String(file.entries).padStart(6)} entries ${String(file.checkpoints).padStart(4)} checkpoints  ${file.file}`)
  for (const note of report.notes) lines.push(`note: ${note}`)
  if (report.failures.length > 0) {
    const causes = report.failures.filter((finding) => finding.rootCause === true)
    const following = report.failures.filter((finding) => finding.followsFrom !== undefined)
    const others = report.failures.filter((finding) => finding.rootCause !== true && finding.followsFrom === undefined)
    for (const finding of causes) lines.push(`ROOT CAUSE in ${finding.file ?? 'a log'}: ${describeFinding(finding)}`)
    if (causes.length > 0) {
      lines.push(following.length === 0
        ? '  (nothing else in that log failed; its content was left out of the checks across logs)'
        : `  ${following.length} later failure(s) in the same log(s) follow from it and are ${options.all === true ? 'listed below' : 'not listed (--all lists them)'}; the log's content was left out of the checks across logs`)
    }
    const listed = options.all === true ? [...others, ...following] : others
    if (listed.length > 0) {
      lines.push(`${causes.length > 0 ? 'other ' : ''}failure(s): ${listed.length}`)
      for (const finding of (options.all === true ? listed : listed.slice(0, 50))) lines.push(`  ${describeFinding(finding)}${finding.followsFrom === undefined ? '' : ` (follows from ${finding.followsFrom})`}`)
      if (options.all !== true && listed.length > 50) lines.push(`  … and ${listed.length - 50} more (--all or --json lists them all)`)
    }
  }
  lines.push(report.ok ? 'VERIFIED: every check holds' : 'NOT VERIFIED')
  return `${lines.join('\n')}\n`
}

export type { EntryBody }
