import '../../src/peer/polyfill.ts'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { createFitJobParams } from '../../src/consensus/jobs/fit-job.ts'
import { graphFromEdges, type Graph } from '../../src/consensus/graph.ts'
import { splitRows } from '../../src/consensus/partition.ts'
import { createRng } from '../../src/consensus/rng.ts'
import type { RoundBody } from '../../src/consensus/audit/recorder.ts'
import { selectRows } from '../../src/learning/design.ts'
import { createGlmProblem } from '../../src/learning/problem.ts'
import { canonicalJson, entryHash, messageDigest, sealEntry, signCheckpoint, type SealedEntry, type Checkpoint } from '../../src/peer/audit/log.ts'
import { simulateAuditedFit } from '../../src/peer/audit/simulation.ts'
import { AuditInputError, verifyAuditTexts, type AuditFileText, type AuditReport } from '../../src/peer/audit/verify.ts'
import { main } from '../../src/peer/cli/main.ts'
import { loadModel, relativeError, R_INFERT } from '../helpers/data.ts'

/**
 * The audit log of a whole job, written by the simulator with the machines, recorder, sealing and
 * checkpoints a real peer uses (the network test in federation-processes does the same over libp2p),
 * then verified, and tampered with in every way the issue names.
 */
const PEERS = 6
let keys: PrivateKey[]
let graph: Graph
let files: Array<{ peer: string, text: string }>
let entries: number

async function simulate (options: { linkLoss?: number, seed?: number } = {}): Promise<Awaited<ReturnType<typeof simulateAuditedFit>>> {
  const { block, terms } = await loadModel('infert.csv', { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'] })
  const parts = splitRows(block.rows, PEERS, 'even', createRng(3))
  return await simulateAuditedFit({
    job: 'job-audit',
    graph,
    keys,
    problems: parts.map((rows) => createGlmProblem({ family: 'binomial', block: selectRows(block, rows), terms, interceptColumn: 0 })),
    params: createFitJobParams({ tolerance: 1e-10 }),
    seed: options.seed ?? 11,
    ...(options.linkLoss === undefined ? {} : { network: { linkLoss: options.linkLoss } })
  })
}

const texts = (list: ReadonlyArray<{ peer: string, text: string }>): AuditFileText[] => list.map((file, index) => ({ name: `peer-${index}.jsonl`, text: file.text }))

function failed (report: AuditReport, check: string): number {
  return report.checks.find((item) => item.name === check)?.failed ?? 0
}

async function detects (list: AuditFileText[]): Promise<boolean> {
  try {
    return !(await verifyAuditTexts(list)).ok
  } catch (error) {
    if (error instanceof AuditInputError) return true
    throw error
  }
}

function parseLines (text: string): { header: string, entries: SealedEntry[], checkpoints: Checkpoint[] } {
  const lines = text.trimEnd().split('\n')
  const parsed = lines.slice(1).map((line) => JSON.parse(line) as SealedEntry | Checkpoint)
  return {
    header: lines[0] as string,
    entries: parsed.filter((line): line is SealedEntry => line.type !== 'checkpoint'),
    checkpoints: parsed.filter((line): line is Checkpoint => line.type === 'checkpoint')
  }
}

function rebuild (header: string, entryList: readonly SealedEntry[], checkpoints: readonly Checkpoint[]): string {
  const head = JSON.parse(header) as Record<string, unknown>
  head.entries = entryList.length
  head.checkpoints = checkpoints.length
  return `${[canonicalJson(head), ...entryList.map((entry) => canonicalJson(entry)), ...checkpoints.map((checkpoint) => canonicalJson(checkpoint))].join('\n')}\n`
}

beforeAll(async () => {
  keys = await Promise.all(Array.from({ length: PEERS }, async () => await generateKeyPair('Ed25519')))
  const ids = keys.map((key) => peerIdFromPrivateKey(key).toString())
  // a ring with one chord: peers with two and with three neighbours
  graph = graphFromEdges(ids, [...ids.map((id, index) => [id, ids[(index + 1) % PEERS] as string] as [string, string]), [ids[0] as string, ids[3] as string]])
  const run = await simulate()
  files = run.files
  entries = run.entries
  for (const result of run.results) expect(relativeError(result?.coefficients ?? [], R_INFERT.estimate)).toBeLessThan(1e-6)
}, 60_000)

describe('the round logs of a job', () => {
  test('verify: every chain, signature and checkpoint, sent = received, every dual update recomputed, the final models equal', async () => {
    expect(entries).toBeGreaterThanOrEqual(1000)
    const report = await verifyAuditTexts(texts(files))
    expect(report.failures).toEqual([])
    expect(report.ok).toBe(true)
    const checked = Object.fromEntries(report.checks.map((check) => [check.name, check.checked]))
    expect(checked.signatures).toBe(entries)
    expect(checked['received = sent']).toBeGreaterThan(1000)
    expect(checked['dual updates recomputed']).toBeGreaterThan(1000)
    expect(checked['logs match checkpoints']).toBeGreaterThanOrEqual(2 * PEERS)
    expect(checked.countersignatures).toBeGreaterThan(0)
  })

  test('with messages lost on the links, the skipped edges and the dual updates still check out', async () => {
    const lossy = await simulate({ linkLoss: 0.2, seed: 5 })
    const report = await verifyAuditTexts(texts(lossy.files))
    expect(report.failures).toEqual([])
    const skipped = lossy.files.flatMap((file) => parseLines(file.text).entries).filter((entry): entry is SealedEntry & RoundBody => entry.type === 'round' && (entry.admm?.skipped.length ?? 0) > 0)
    expect(skipped.length).toBeGreaterThan(10)
    expect(report.notes.some((note) => note.includes('heard at one end and skipped at the other'))).toBe(true)
  }, 60_000)

  test('the log holds no private message in the clear: masks are logged by digest only', () => {
    for (const file of files) {
      for (const entry of parseLines(file.text).entries) {
        if (entry.type !== 'round') continue
        for (const sent of entry.sent) if (sent.to !== undefined) expect(Object.keys(sent).sort()).toEqual(['digest', 'kind', 'round', 'to'])
      }
    }
  })
})

describe('tampering', () => {
  test('flipping any one of 1,000 seeded random bytes of a log is detected', async () => {
    const rng = createRng(20261123)
    const target = 1
    const original = Buffer.from((files[target] as { text: string }).text, 'utf8')
    let detected = 0
    const trials = 1000
    for (let trial = 0; trial < trials; trial++) {
      const position = Math.floor(rng() * original.length)
      const bit = 1 << Math.floor(rng() * 8)
      const tampered = Buffer.from(original)
      tampered[position] = (tampered[position] as number) ^ bit
      if (await detects([{ name: 'tampered.jsonl', text: tampered.toString('latin1') }])) detected++
    }
    expect(detected).toBe(trials)
  }, 120_000)

  test('deleting or reordering entries breaks the chain', async () => {
    const { header, entries: list, checkpoints } = parseLines((files[2] as { text: string }).text)
    const deleted = rebuild(header, [...list.slice(0, 40), ...list.slice(41)], checkpoints)
    const report = await verifyAuditTexts([{ name: 'deleted.jsonl', text: deleted }])
    expect(failed(report, 'hash chain')).toBeGreaterThan(0)
    const swapped = [...list]
    ;[swapped[40], swapped[41]] = [swapped[41] as SealedEntry, swapped[40] as SealedEntry]
    expect(failed(await verifyAuditTexts([{ name: 'reordered.jsonl', text: rebuild(header, swapped, checkpoints) }]), 'hash chain')).toBeGreaterThan(0)
  })

  test('truncating a log, its own checkpoints with it, is caught by the checkpoints its neighbours countersigned', async () => {
    const target = 2
    const { header, entries: list, checkpoints } = parseLines((files[target] as { text: string }).text)
    // cut back to the first checkpoint, where the log still ends on a signed head, and drop every later checkpoint
    const cut = 100
    const kept = checkpoints.filter((checkpoint) => checkpoint.peer !== (files[target] as { peer: string }).peer || checkpoint.length <= cut)
    const truncated = texts(files)
    truncated[target] = { name: 'truncated.jsonl', text: rebuild(header, list.slice(0, cut), kept) }
    const report = await verifyAuditTexts(truncated)
    expect(report.ok).toBe(false)
    expect(failed(report, 'logs match checkpoints')).toBeGreaterThan(0)
    expect(report.failures.some((finding) => finding.message.includes('entries were removed') && finding.message.includes('countersigned by'))).toBe(true)
  })

  test('a peer that rewrites its history and signs it again with its own key is caught by its neighbours', async () => {
    const target = 3
    const peer = (files[target] as { peer: string }).peer
    const { header, entries: list, checkpoints } = parseLines((files[target] as { text: string }).text)
    // change the iterate it claims to have sent in one ADMM round, then re-seal the whole chain from there
    const index = list.findIndex((entry) => entry.type === 'round' && entry.phase === 'admm' && entry.round === 10)
    const forged = list.map((entry) => structuredClone(entry))
    const entry = forged[index] as SealedEntry & RoundBody
    const sent = entry.sent.find((record) => record.to === undefined) as NonNullable<RoundBody['sent'][number]>
    sent.values = (sent.values as number[]).map((value, position) => position === 5 ? value + 0.5 : value)
    sent.digest = messageDigest({ job: entry.job, kind: sent.kind, round: sent.round, from: peer, values: Float64Array.from(sent.values), data: Buffer.from(sent.data as string, 'hex') })
    const admm = entry.admm as NonNullable<RoundBody["admm"]>
    admm.x[1] = (admm.x[1] as number) + 0.5
    for (let position = index; position < forged.length; position++) {
      const { seq, prev: _prev, hash: _hash, sig: _sig, ...body } = forged[position] as SealedEntry
      forged[position] = await sealEntry(body as never, seq, position === 0 ? '0'.repeat(64) : (forged[position - 1] as SealedEntry).hash, keys[target] as PrivateKey)
    }
    // its own checkpoints, signed again over the new history (its neighbours will not countersign those)
    const ownAgain = await Promise.all(checkpoints.filter((checkpoint) => checkpoint.peer === peer).map(async (checkpoint) => await signCheckpoint(keys[target] as PrivateKey, { job: checkpoint.job, peer, length: checkpoint.length, hash: (forged[checkpoint.length - 1] as SealedEntry).hash })))
    const forgedText = rebuild(header, forged, [...ownAgain, ...checkpoints.filter((checkpoint) => checkpoint.peer !== peer)])
    // alone, the forged log is consistent: a log cannot vouch for itself against its author's key
    const alone = await verifyAuditTexts([{ name: 'forged.jsonl', text: forgedText }])
    expect(failed(alone, 'hash chain') + failed(alone, 'signatures') + failed(alone, 'entry hashes')).toBe(0)
    // with its neighbours' logs: their received digests and their countersigned checkpoints contradict it
    const all = texts(files)
    all[target] = { name: 'forged.jsonl', text: forgedText }
    const report = await verifyAuditTexts(all)
    expect(report.ok).toBe(false)
    expect(failed(report, 'received = sent')).toBeGreaterThan(0)
    expect(failed(report, 'logs match checkpoints')).toBeGreaterThan(0)
    expect(report.failures.some((finding) => finding.message.includes('history was rewritten'))).toBe(true)
    // and a hash recomputed over a changed entry no longer matches the original
    expect(entryHash(forged[index] as SealedEntry)).not.toBe((list[index] as SealedEntry).hash)
  })
})

describe('epimesh audit verify', () => {
  let dir: string
  let paths: string[]
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'epimesh-audit-'))
    paths = await Promise.all(files.map(async (file, index) => {
      const path = join(dir, `peer-${index}.jsonl`)
      await writeFile(path, file.text)
      return path
    }))
  })
  afterAll(async () => { await rm(dir, { recursive: true, force: true }) })

  test('exit 0 when everything holds, 1 when something fails, 2 on unusable input', async () => {
    const quiet = process.stdout.write
    process.stdout.write = () => true
    try {
      expect(await main(['audit', 'verify', ...paths])).toBe(0)
      expect(await main(['audit', 'verify', '--json', ...paths])).toBe(0)
      const bad = join(dir, 'bad.jsonl')
      await writeFile(bad, (files[0] as { text: string }).text.replace('"round":7,', '"round":8,'))
      process.exitCode = undefined
      expect(await main(['audit', 'verify', bad, ...paths.slice(1)])).toBe(1)
      process.exitCode = undefined
      const notAnExport = join(dir, 'not.jsonl')
      await writeFile(notAnExport, 'region,cases\nA,1\n')
      expect(await main(['audit', 'verify', notAnExport])).toBe(2)
      expect(await main(['audit', 'verify', join(dir, 'missing.jsonl')])).toBe(2)
    } finally {
      process.stdout.write = quiet
      process.exitCode = undefined
    }
  })

  test('show prints one round across peers and plots the residuals', async () => {
    const svg = join(dir, 'residuals.svg')
    let printed = ''
    const quiet = process.stdout.write
    process.stdout.write = ((chunk: string) => { printed += chunk; return true }) as typeof process.stdout.write
    try {
      expect(await main(['audit', 'show', ...paths, '--round', '40', '--plot', svg])).toBe(0)
      expect(printed).toMatch(/^phase admm, round \d+ of the phase \(job round 40 in /)
      expect(printed.match(/primal residual/g)?.length).toBe(PEERS)
      expect(printed).toContain('skipped none')
      expect(await readFile(svg, 'utf8')).toMatch(/^<svg/)
      expect(await main(['audit', 'show', ...paths, '--round', 'x'])).toBe(2)
    } finally {
      process.stdout.write = quiet
      process.exitCode = undefined
    }
  })
})
