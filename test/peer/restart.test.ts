import { spawn, type ChildProcess } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, describe, expect, it } from 'vitest'
import { createIdentity } from '../../src/peer/identity.ts'
import { exportAudit } from '../../src/peer/cli/audit.ts'
import { verifyAuditTexts } from '../../src/peer/audit/verify.ts'
import { Store, type StoredModel } from '../../src/store/store.ts'
import { relativeError, R_INFERT } from '../helpers/data.ts'
import { freePort, waitFor } from '../helpers/process.ts'

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))
const INFERT = fileURLToPath(new URL('../fixtures/infert.csv', import.meta.url))
const children: ChildProcess[] = []
let base = ''
afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL')
  if (base !== '' && process.env.KEEP_TEST_DIRS === undefined) await rm(base, { recursive: true, force: true })
})


function startPeer (dir: string, federation: string, listen: string, extra: string[]): { child: ChildProcess, exit: Promise<number> } {
  const child = spawn(process.execPath, [BIN, 'start', '--dir', dir, '--federation', federation, '--listen', listen, '--cases', join(dir, 'cases.csv'), '--job-id', 'restart-1', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] })
  children.push(child)
  const logFile = createWriteStream(join(dir, 'peer.log'))
  child.stderr?.pipe(logFile)
  const exit = new Promise<number>((resolve) => { child.on('exit', (code, signal) => { resolve(code ?? (signal === null ? 1 : 128)) }) })
  return { child, exit }
}

/** Exports the round logs of these peers and verifies them together, as an auditor would. */
async function verifyLogs (dirs: readonly string[]): Promise<Awaited<ReturnType<typeof verifyAuditTexts>>> {
  const files = await Promise.all(dirs.map(async (dir) => ({ name: dir, text: (await exportAudit(dir, 'restart-1')).text })))
  return await verifyAuditTexts(files)
}


/** The job's model as the peer of `dir` keeps it in its store. */
async function storedModel (dir: string): Promise<StoredModel> {
  const model = await Store.use(dir, async (store) => await store.getModel('restart-1'))
  if (model === null) throw new Error(`${dir} holds no model of restart-1`)
  return model
}

async function setUp (federationId: string, dropAfterRounds: number): Promise<{ members: Array<{ region: string, peerId: string, addresses: string[], dir: string }>, federation: string, header: string, lines: string[] }> {
    base = await mkdtemp(join(tmpdir(), 'epimesh-restart-'))
    const lines = (await readFile(INFERT, 'utf8')).trim().split('\n')
    const header = lines[0] as string
    const regions = ['north', 'east', 'south', 'west']
    const members = []
    for (const [index, region] of regions.entries()) {
      const dir = join(base, region)
      const { peerId } = await createIdentity(dir)
      const rows = lines.slice(1).filter((_, row) => row % regions.length === index)
      await writeFile(join(dir, 'cases.csv'), `${header}\n${rows.join('\n')}\n`)
      // this test reads the records from a CSV file (start --cases) instead of the store
      members.push({ region, peerId, addresses: [`/ip4/127.0.0.1/tcp/${await freePort()}`], dir })
    }
    const federation = join(base, 'federation.json')
    await writeFile(federation, JSON.stringify({
      version: 1,
      federationId,
      members: members.map(({ region, peerId, addresses }) => ({ region, peerId, addresses })),
      graph: { topology: 'ring' },
      bootstrap: members[0]?.addresses,
      model: {
        family: 'binomial', outcome: 'case',
        features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })),
        lambda: 0, algorithm: 'admm', tolerance: 1e-10, maxRounds: 3000, roundDeadlineMs: 500, dropAfterRounds
      }
    }))
    return { members, federation, header, lines }
}

describe('a peer killed mid-job', () => {
  it('is restarted, replays its journal, rejoins, and the job completes with the pooled fit on every peer', async () => {
    const { members, federation } = await setUp('restart-test', 0)
    const peers = members.map((member, index) => startPeer(member.dir, federation, member.addresses[0] as string, index === 0 ? ['--propose'] : []))
    const victim = members[2] as (typeof members)[number]
    // kill the victim mid-job: once its journal holds a few hundred inputs (the sums are over, ADMM runs)
    const journalPath = join(victim.dir, 'jobs', 'restart-1', 'inputs.log')
    await waitFor(async () => (await readFile(journalPath, 'utf8').catch(() => '')).split('\n').length > 150, 60_000, 20)
    peers[2]?.child.kill('SIGKILL')
    expect(await peers[2]?.exit).toBe(128)
    await new Promise((resolve) => setTimeout(resolve, 1500))
    const restarted = startPeer(victim.dir, federation, victim.addresses[0] as string, [])
    const codes = await Promise.all([peers[0]?.exit, peers[1]?.exit, restarted.exit, peers[3]?.exit])
    expect(codes).toEqual([0, 0, 0, 0])
    for (const member of members) {
      const model = await storedModel(member.dir)
      expect(model.converged).toBe(true)
      expect(relativeError(model.coefficients.map((row) => row.estimate), R_INFERT.estimate)).toBeLessThan(1e-6)
      expect(relativeError(model.coefficients.map((row) => row.standardError ?? Number.NaN), R_INFERT.standardError)).toBeLessThan(1e-6)
    }
    // the restarted peer replayed its journal; once the model was stored the journal let go of its
    // inputs and mask seed
    const resumed = (await readFile(join(victim.dir, 'peer.log'), 'utf8')).split('\n').filter((line) => line.includes('"job.resume"')).map((line) => JSON.parse(line) as { inputs: number })
    expect(resumed).toHaveLength(1)
    expect(resumed[0]?.inputs).toBeGreaterThan(50)
    await expect(readFile(journalPath)).rejects.toMatchObject({ code: 'ENOENT' })
    expect(JSON.parse(await readFile(join(victim.dir, 'jobs', 'restart-1', 'job.json'), 'utf8'))).not.toHaveProperty('seed')
    // the restarted peer's round log, rebuilt from its journal, is one unbroken chain that agrees with its neighbours'
    const report = await verifyLogs(members.map((member) => member.dir))
    expect(report.failures).toEqual([])
    expect(report.checks.find((check) => check.name === 'received = sent')?.checked).toBeGreaterThan(100)
  }, 150_000)

  it('and never restarted is dropped; the others end at the pooled fit of their own data', async () => {
    const { members, federation, header, lines } = await setUp('drop-test', 6)
    const peers = members.map((member, index) => startPeer(member.dir, federation, member.addresses[0] as string, index === 0 ? ['--propose'] : []))
    const victim = members[2] as (typeof members)[number]
    const journalPath = join(victim.dir, 'jobs', 'restart-1', 'inputs.log')
    // Die early in ADMM, so that the neighbours drop it; a peer that dies inside one of the exact sums
    // ends the job instead (SUM_INCOMPLETE, see the README).
    const { decodeConsensusMessage } = await import('../../src/peer/net/codec.ts')
    await waitFor(async () => {
      const lines = (await readFile(journalPath, 'utf8').catch(() => '')).trim().split('\n')
      const last = lines.length > 1 ? JSON.parse(lines[lines.length - 2] as string) as { m?: string } : {}
      if (last.m === undefined) return false
      const message = decodeConsensusMessage(Buffer.from(last.m, 'base64'))
      return message.kind === 'admm' && message.round >= 8
    }, 60_000, 20)
    peers[2]?.child.kill('SIGKILL')
    const codes = await Promise.all([peers[0]?.exit, peers[1]?.exit, peers[3]?.exit])
    expect(codes).toEqual([0, 0, 0])
    // the pooled fit of the three survivors' rows, computed here from their files
    const { buildDesign } = await import('../../src/learning/design.ts')
    const { fitModel } = await import('../../src/learning/fit.ts')
    const columns = header.split(',').map((cell) => cell.replaceAll('"', ''))
    const rows = lines.slice(1).filter((_, row) => row % 4 !== 2).map((line) => Object.fromEntries(line.split(',').map((cell, index) => [columns[index], cell.replaceAll('"', '')])))
    const spec = { outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' as const })) }
    const pooled = fitModel(buildDesign(rows, spec), ['(Intercept)', 'age', 'parity', 'induced', 'spontaneous'], { family: 'binomial' })
    for (const member of members.filter((_, index) => index !== 2)) {
      const model = await storedModel(member.dir)
      expect(model.dropped).toEqual([victim.peerId])
      expect(relativeError(model.coefficients.map((row) => row.estimate), pooled.coefficients.estimate)).toBeLessThan(1e-6)
      expect(relativeError(model.coefficients.map((row) => row.standardError ?? Number.NaN), pooled.coefficients.standardError)).toBeLessThan(1e-6)
    }
    // the survivors' logs verify, the dropped neighbour shown as such
    const survivors = members.filter((_, index) => index !== 2).map((member) => member.dir)
    const report = await verifyLogs(survivors)
    expect(report.failures).toEqual([])
  }, 150_000)
})
