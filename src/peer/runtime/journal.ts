import { appendFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { dataPath } from '../paths.ts'
import type { MachineInput } from '../../consensus/machine.ts'
import { decodeConsensusMessage, encodeConsensusMessage } from '../net/codec.ts'
import type { JobProposal } from './proposal.ts'

/**
 * A running job's write-ahead journal in the peer's data folder: the proposal, the secret seed of its
 * mask generator, and every input the machine stepped on, each appended before the step whose messages
 * depend on it. A peer killed mid-job and restarted replays the journal through a fresh machine (the
 * machines are deterministic given their inputs and seed), sends its last messages again and goes on.
 *
 *   DIR/jobs/<id>/job.json      { proposal, seed }
 *   DIR/jobs/<id>/inputs.log    one input per line: {"m": base64 message} or {"d": round}
 *
 * When the job has ended and its result is stored, the inputs and the seed are deleted (the seed
 * would let whoever reads the folder recompute this peer's masks); job.json keeps the proposal.
 */
export interface JobJournal {
  begin (proposal: JobProposal, seed: Uint8Array): Promise<void>
  append (job: string, input: MachineInput): Promise<void>
  load (job: string): Promise<{ proposal: JobProposal, seed: Uint8Array, inputs: MachineInput[] } | null>
  /** the job ended and its result is kept: its inputs and mask seed are deleted, its proposal kept */
  finish (job: string): Promise<void>
  /** ids of jobs begun here, newest first */
  list (): Promise<string[]>
}

export function fileJournal (dir: string): JobJournal {
  const jobDir = (job: string): string => dataPath(dir, 'jobs', job)
  return {
    async begin (proposal, seed) {
      await mkdir(jobDir(proposal.id), { recursive: true, mode: 0o700 })
      const path = join(jobDir(proposal.id), 'job.json')
      await writeFile(`${path}.tmp`, JSON.stringify({ proposal, seed: Buffer.from(seed).toString('hex'), begunAt: new Date().toISOString() }), { mode: 0o600 })
      await rename(`${path}.tmp`, path)
      await writeFile(join(jobDir(proposal.id), 'inputs.log'), '', { mode: 0o600 })
    },
    async append (job, input) {
      // only what came from outside is journalled: a machine's own inputs (moved-on) follow from those
      if (input.type === 'moved-on') return
      const line = input.type === 'deadline'
        ? JSON.stringify({ d: input.round })
        : JSON.stringify({ m: Buffer.from(encodeConsensusMessage(input.message)).toString('base64') })
      await appendFile(join(jobDir(job), 'inputs.log'), `${line}\n`, { mode: 0o600 })
    },
    async finish (job) {
      const path = join(jobDir(job), 'job.json')
      let header: { proposal?: unknown, begunAt?: unknown }
      try {
        header = JSON.parse(await readFile(path, 'utf8')) as { proposal?: unknown, begunAt?: unknown }
      } catch {
        return
      }
      await writeFile(`${path}.tmp`, JSON.stringify({ proposal: header.proposal, begunAt: header.begunAt, finishedAt: new Date().toISOString() }), { mode: 0o600 })
      await rename(`${path}.tmp`, path)
      await rm(join(jobDir(job), 'inputs.log'), { force: true })
    },
    async load (job) {
      let header: { proposal: JobProposal, seed?: string }
      try {
        header = JSON.parse(await readFile(join(jobDir(job), 'job.json'), 'utf8')) as { proposal: JobProposal, seed?: string }
      } catch {
        return null
      }
      // a finished job's journal keeps no seed: nothing to resume
      if (typeof header.seed !== 'string') return null
      const text = await readFile(join(jobDir(job), 'inputs.log'), 'utf8').catch(() => '')
      const inputs: MachineInput[] = []
      for (const line of text.split('\n')) {
        if (line.trim() === '') continue
        let entry: { d?: number, m?: string }
        try {
          entry = JSON.parse(line) as { d?: number, m?: string }
        } catch {
          break // a line cut short by a kill: everything before it is whole
        }
        if (typeof entry.d === 'number') inputs.push({ type: 'deadline', round: entry.d })
        else if (typeof entry.m === 'string') inputs.push({ type: 'message', message: decodeConsensusMessage(Buffer.from(entry.m, 'base64')) })
      }
      return { proposal: header.proposal, seed: Buffer.from(header.seed, 'hex'), inputs }
    },
    async list () {
      const entries = await readdir(dataPath(dir, 'jobs'), { withFileTypes: true }).catch(() => [])
      const begun = await Promise.all(entries.filter((entry) => entry.isDirectory()).map(async (entry) => {
        try {
          const header = JSON.parse(await readFile(join(dataPath(dir, 'jobs', entry.name), 'job.json'), 'utf8')) as { begunAt?: unknown }
          return { id: entry.name, at: typeof header.begunAt === 'string' ? Date.parse(header.begunAt) : 0 }
        } catch {
          return { id: entry.name, at: 0 }
        }
      }))
      return begun.sort((a, b) => b.at - a.at || (a.id < b.id ? 1 : -1)).map((entry) => entry.id)
    }
  }
}
