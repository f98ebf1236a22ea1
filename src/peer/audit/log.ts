import { isJobId, JOB_ID_RULE } from '../../consensus/ids.ts'
import { createHash } from 'node:crypto'
import { publicKeyFromProtobuf, publicKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import type { PrivateKey, PublicKey } from '@libp2p/interface'
import { z } from 'zod'
import type { EntryBody } from '../../consensus/audit/recorder.ts'
import type { ConsensusMessage } from '../../consensus/types.ts'
import type { AuditCheckpoint } from '../../store/store.ts'
import { encodeConsensusMessage } from '../net/codec.ts'

/**
 * The signed, hash-chained form of the round log (the store keeps it: Store.appendAudit).
 *
 * Every entry is encoded canonically (JSON, keys sorted, no spaces, numbers in their shortest exact
 * form), so that the same entry always hashes the same and an exported line can be checked to be
 * exactly the canonical form of what it says. Entry n holds the hash of entry n-1 (`prev`, 64 zeros
 * for the first), its own `hash` = sha256 of its canonical form without `hash` and `sig`, and `sig`,
 * the peer's Ed25519 signature of that hash with its libp2p key.
 *
 * A checkpoint is a signed statement of a log's head (job, peer, length, hash of the last entry),
 * published on the federation topic every K entries and at the job's end; each graph neighbour checks
 * the signature and countersigns it. A peer that later shows a log that does not pass through a head
 * it published is contradicted by its own signature, kept by its neighbours.
 */

export const GENESIS = '0'.repeat(64)
export const AUDIT_FILE_FORMAT = 'epimesh-audit'

export type SealedEntry = EntryBody & { seq: number, prev: string, hash: string, sig: string }

/** A checkpoint, with the countersignatures gathered on it, as the store keeps it (src/store/records.ts). */
export type Checkpoint = AuditCheckpoint
export type Countersignature = Checkpoint['countersignatures'][number]

function canonicalNumber (value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`a non-finite number cannot be logged: ${value}`)
  return Object.is(value, -0) ? '0' : JSON.stringify(value)
}

/** JSON with sorted keys and no whitespace; undefined members are left out, as JSON.stringify does. */
export function canonicalJson (value: unknown): string {
  if (value === null) return 'null'
  switch (typeof value) {
    case 'number': return canonicalNumber(value)
    case 'string': return JSON.stringify(value)
    case 'boolean': return value ? 'true' : 'false'
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((item) => item === undefined ? 'null' : canonicalJson(item)).join(',')}]`
      if (ArrayBuffer.isView(value)) return canonicalJson(Array.from(value as unknown as ArrayLike<number>))
      const record = value as Record<string, unknown>
      const keys = Object.keys(record).filter((key) => record[key] !== undefined).sort()
      return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`).join(',')}}`
    }
    default: throw new TypeError(`cannot encode a ${typeof value} canonically`)
  }
}

export function sha256Hex (data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex')
}

/** The digest of a consensus message as logged by its sender and its receiver: sha256 of its wire encoding. */
/** The digest the audit log keeps of a message: of its wire encoding without the author's signature (the sender logs it before signing). */
export function messageDigest (message: ConsensusMessage): string {
  if (message.signature === undefined) return sha256Hex(encodeConsensusMessage(message))
  const { signature: _signature, ...unsigned } = message
  return sha256Hex(encodeConsensusMessage(unsigned))
}

export function entryHash (entry: Omit<SealedEntry, 'hash' | 'sig'> | SealedEntry): string {
  const { hash: _hash, sig: _sig, ...body } = entry as SealedEntry
  return sha256Hex(canonicalJson(body))
}

export function checkpointStatement (checkpoint: Pick<Checkpoint, 'job' | 'peer' | 'length' | 'hash'>): Uint8Array {
  return new TextEncoder().encode(canonicalJson({ type: 'checkpoint', job: checkpoint.job, peer: checkpoint.peer, length: checkpoint.length, hash: checkpoint.hash }))
}

export function countersignStatement (checkpoint: Pick<Checkpoint, 'job' | 'peer' | 'length' | 'hash'>, by: string): Uint8Array {
  return new TextEncoder().encode(canonicalJson({ type: 'countersign', job: checkpoint.job, peer: checkpoint.peer, length: checkpoint.length, hash: checkpoint.hash, by }))
}

export function publicKeyOf (peerId: string): PublicKey {
  const key = peerIdFromString(peerId).publicKey
  if (key === undefined) throw new RangeError(`peer id ${peerId} does not carry its public key`)
  return key
}

export function encodePublicKey (key: PublicKey): string {
  return Buffer.from(publicKeyToProtobuf(key)).toString('base64')
}

export function decodePublicKey (text: string): PublicKey {
  return publicKeyFromProtobuf(Buffer.from(text, 'base64'))
}

export async function signBytes (key: PrivateKey, data: Uint8Array): Promise<string> {
  return Buffer.from(await key.sign(data)).toString('base64')
}

export async function verifyBytes (key: PublicKey, data: Uint8Array, signature: string): Promise<boolean> {
  const bytes = Buffer.from(signature, 'base64')
  if (bytes.length !== 64 || bytes.toString('base64') !== signature) return false
  try {
    return await key.verify(data, bytes)
  } catch {
    return false
  }
}

export async function sealEntry (body: EntryBody, seq: number, prev: string, key: PrivateKey): Promise<SealedEntry> {
  const unsigned = { ...body, seq, prev }
  const hash = entryHash(unsigned)
  return { ...unsigned, hash, sig: await signBytes(key, Buffer.from(hash, 'hex')) } as SealedEntry
}

export async function signCheckpoint (key: PrivateKey, head: { job: string, peer: string, length: number, hash: string }): Promise<Checkpoint> {
  return { type: 'checkpoint', ...head, sig: await signBytes(key, checkpointStatement(head)), countersignatures: [] }
}

/**
 * One job's log as this peer writes it: entries sealed in order, the head, checkpoints. A running peer
 * keeps only the head (its entries go to the store as they are sealed); `keepEntries` keeps them all
 * in memory too, for a simulation that writes the files at the end.
 */
export class AuditTrail {
  readonly job: string
  readonly peer: string
  /** every entry sealed so far, when kept (empty otherwise) */
  readonly entries: SealedEntry[] = []
  private readonly key: PrivateKey
  private readonly keepEntries: boolean
  private sealed = 0
  private lastHash = GENESIS

  constructor (job: string, peer: string, key: PrivateKey, { keepEntries = false }: { keepEntries?: boolean } = {}) {
    this.job = job
    this.peer = peer
    this.key = key
    this.keepEntries = keepEntries
  }

  /** entries sealed so far */
  get length (): number {
    return this.sealed
  }

  head (): { length: number, hash: string } {
    return { length: this.sealed, hash: this.lastHash }
  }

  async append (bodies: readonly EntryBody[]): Promise<SealedEntry[]> {
    const sealed: SealedEntry[] = []
    for (const body of bodies) {
      const entry = await sealEntry(body, this.sealed, this.lastHash, this.key)
      this.sealed++
      this.lastHash = entry.hash
      if (this.keepEntries) this.entries.push(entry)
      sealed.push(entry)
    }
    return sealed
  }

  async checkpoint (): Promise<Checkpoint> {
    return await signCheckpoint(this.key, { job: this.job, peer: this.peer, ...this.head() })
  }
}

/** The exported file: a header line, the entries as they were signed, then the checkpoints held. */
export function auditFileText (job: string, peer: string, entryLines: readonly string[], checkpoints: readonly Checkpoint[]): string {
  const header = { format: AUDIT_FILE_FORMAT, version: 1, job, peer, publicKey: encodePublicKey(publicKeyOf(peer)), entries: entryLines.length, checkpoints: checkpoints.length }
  return `${[canonicalJson(header), ...entryLines, ...checkpoints.map((checkpoint) => canonicalJson(checkpoint))].join('\n')}\n`
}

/* ---------------------------------------------------------------------------------------------- */
/* On the federation topic                                                                         */
/* ---------------------------------------------------------------------------------------------- */

const hex64 = z.string().regex(/^[0-9a-f]{64}$/)
const signature = z.string().min(1).max(200)

const jobId = z.string().refine(isJobId, JOB_ID_RULE)

export const checkpointAnnouncement = z.object({
  type: z.literal('audit.checkpoint'),
  job: jobId,
  peer: z.string().min(1).max(200),
  length: z.number().int().nonnegative(),
  hash: hex64,
  sig: signature
}).strict()

export const countersignAnnouncement = z.object({
  type: z.literal('audit.countersign'),
  job: jobId,
  peer: z.string().min(1).max(200),
  length: z.number().int().nonnegative(),
  hash: hex64,
  by: z.string().min(1).max(200),
  sig: signature
}).strict()
