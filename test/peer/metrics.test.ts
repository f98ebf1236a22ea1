import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createPeer, type Peer } from '../../src/index.ts'
import { main } from '../../src/peer/cli/main.ts'
import { MetricsRecorder, parseMetricsAddress, ROUND_BUCKETS } from '../../src/peer/runtime/metrics.ts'
import { fixture } from '../helpers/data.ts'
import { freePort } from '../helpers/process.ts'

/**
 * The Prometheus endpoint: three peers in this process, one serving /metrics; every route answers 401
 * without its token, the text parses as the exposition format, and the counters move during a job.
 */

interface Sample { name: string, labels: Record<string, string>, value: number }
interface Exposition { types: Map<string, string>, help: Map<string, string>, samples: Sample[] }

/** A strict reader of the text exposition format (0.0.4): throws on any line it does not understand. */
function parseExposition (text: string): Exposition {
  const types = new Map<string, string>()
  const help = new Map<string, string>()
  const samples: Sample[] = []
  if (!text.endsWith('\n')) throw new Error('the text does not end with a newline')
  for (const [index, line] of text.slice(0, -1).split('\n').entries()) {
    const where = `line ${index + 1}: ${line}`
    if (line.startsWith('# HELP ')) {
      const match = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line)
      if (match === null) throw new Error(`bad HELP, ${where}`)
      help.set(match[1] as string, match[2] as string)
      continue
    }
    if (line.startsWith('# TYPE ')) {
      const match = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line)
      if (match === null) throw new Error(`bad TYPE, ${where}`)
      if (types.has(match[1] as string)) throw new Error(`second TYPE, ${where}`)
      types.set(match[1] as string, match[2] as string)
      continue
    }
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (match === null) throw new Error(`bad sample, ${where}`)
    const labels: Record<string, string> = {}
    const labelText = match[2] ?? ''
    const labelPattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y
    let at = 0
    while (at < labelText.length) {
      labelPattern.lastIndex = at
      const label = labelPattern.exec(labelText)
      if (label === null) throw new Error(`bad labels, ${where}`)
      labels[label[1] as string] = (label[2] as string).replace(/\\(.)/g, (_, char: string) => char === 'n' ? '\n' : char)
      at = labelPattern.lastIndex
    }
    const valueText = match[3] as string
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText)
    if (valueText !== 'NaN' && Number.isNaN(value)) throw new Error(`bad value, ${where}`)
    const name = match[1] as string
    // every sample belongs to a family declared before it
    const family = types.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '')
    if (!types.has(family)) throw new Error(`sample without a TYPE, ${where}`)
    if (name !== family && types.get(family) !== 'histogram') throw new Error(`suffix on a ${types.get(family) ?? '?'}, ${where}`)
    samples.push({ name, labels, value })
  }
  return { types, help, samples }
}

const valueOf = (exposition: Exposition, name: string, labels: Record<string, string> = {}): number => {
  const found = exposition.samples.filter((sample) => sample.name === name && Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
  return (found[0] as Sample).value
}

describe('metrics address', () => {
  it('takes PORT (on 127.0.0.1), HOST:PORT and [IPv6]:PORT and refuses anything else', () => {
    expect(parseMetricsAddress('9464')).toEqual({ host: '127.0.0.1', port: 9464 })
    expect(parseMetricsAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 })
    expect(parseMetricsAddress('localhost:1')).toEqual({ host: 'localhost', port: 1 })
    expect(parseMetricsAddress('[::1]:9464')).toEqual({ host: '::1', port: 9464 })
    for (const bad of ['', 'abc', '127.0.0.1', '127.0.0.1:', '127.0.0.1:65536', 'example.com:80', '::1:80', '[127.0.0.1]:80', '1.2.3:80', '127.0.0.1:-1', '127.0.0.1:80 ', `127.0.0.1:${'9'.repeat(80)}`]) {
      expect(() => parseMetricsAddress(bad), bad).toThrow(expect.objectContaining({ code: 'METRICS_ADDRESS' }))
    }
  })

  it('records round durations from progress reports, each rise of the round once', () => {
    let now = 0
    const recorder = new MetricsRecorder(() => now)
    const progress = (job: string, jobRound: number): void => { recorder.progress({ job, kind: 'glm', state: 'running', phase: 'fit', round: jobRound, jobRound }) }
    progress('a', 0)
    now = 20
    progress('a', 1)
    progress('a', 1)
    now = 620
    progress('a', 3)
    now = 5000
    progress('b', 0)
    expect(recorder.rounds).toBe(3)
    expect(recorder.durationCount).toBe(3)
    expect(recorder.durationSum).toBeCloseTo(0.62, 12)
    expect(recorder.buckets[ROUND_BUCKETS.indexOf(0.025)]).toBe(1)
    expect(recorder.buckets[ROUND_BUCKETS.indexOf(0.5)]).toBe(2)
    recorder.jobFailed('x')
    recorder.jobFailed('x')
    expect(recorder.failed).toBe(1)
  })
})

describe('metrics endpoint', () => {
  let base = ''
  const peers: Peer[] = []

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-metrics-'))
    const lines = (await readFile(fixture('infert.csv'), 'utf8')).trim().split('\n')
    const members: Array<{ region: string, peerId: string, dir: string, address: string }> = []
    for (const [index, region] of ['alpha', 'beta', 'gamma'].entries()) {
      const dir = join(base, region)
      const quiet = vi.spyOn(process.stdout, 'write').mockImplementation(() => true)
      let stdout = ''
      quiet.mockImplementation((chunk) => { stdout += String(chunk); return true })
      try {
        expect(await main(['init', '--dir', dir, '--region', region])).toBe(0)
        const file = join(base, `${region}.csv`)
        await writeFile(file, `id,${lines[0]}\n${lines.slice(1).map((line, row) => `${row + 1},${line}`).filter((_, row) => row % 3 === index).join('\n')}\n`)
        expect(await main(['import', '--dir', dir, '--cases', file])).toBe(0)
      } finally {
        quiet.mockRestore()
      }
      members.push({ region, peerId: /peer id (\S+)/.exec(stdout)?.[1] as string, dir, address: `/ip4/127.0.0.1/tcp/${await freePort()}` })
    }
    const federation = {
      version: 1,
      federationId: 'metrics-test',
      members: members.map(({ region, peerId, address }) => ({ region, peerId, addresses: [address] })),
      graph: { topology: 'ring' },
      model: { family: 'binomial', outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'].map((name) => ({ name, type: 'numeric' })), lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 3000, roundDeadlineMs: 1000, dropAfterRounds: 0 }
    }
    const started = await Promise.all(members.map(async (member, index) => await createPeer({ dir: member.dir, federation, listen: [member.address], watchProposals: false, ...(index === 0 ? { metrics: `127.0.0.1:${await freePort()}` } : {}) })))
    peers.push(...started)
  }, 60_000)

  afterAll(async () => {
    await Promise.allSettled(peers.map(async (peer) => { await peer.stop() }))
    if (base !== '') await rm(base, { recursive: true, force: true })
  })

  it('answers 401 to every route without the token, and writes the token for its user only', async () => {
    const metrics = peers[0]?.metrics
    expect(metrics).not.toBeNull()
    expect(peers[1]?.metrics).toBeNull()
    const { url, token } = metrics as { url: string, token: string }
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/)
    const origin = new URL(url).origin
    for (const [path, headers] of [['/metrics', {}], ['/', {}], ['/status', {}], ['/metrics', { authorization: `Bearer ${token}x` }], ['/metrics', { authorization: token }], ['/metrics', { authorization: 'Bearer ' }]] as Array<[string, Record<string, string>]>) {
      const response = await fetch(`${origin}${path}`, { headers })
      expect(response.status, `${path} ${JSON.stringify(headers)}`).toBe(401)
      await response.text()
    }
    const other = await fetch(`${origin}/other`, { headers: { authorization: `Bearer ${token}` } })
    expect(other.status).toBe(404)
    await other.text()
    const file = join(base, 'alpha', 'metrics.token')
    expect((await readFile(file, 'utf8')).trim()).toBe(token)
    expect((await stat(file)).mode & 0o777).toBe(0o600)
  })

  it('serves Prometheus text whose counters move during a job', async () => {
    const { url, token } = peers[0]?.metrics as { url: string, token: string }
    const scrape = async (): Promise<Exposition> => {
      const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } })
      expect(response.status).toBe(200)
      expect(response.headers.get('content-type')).toContain('text/plain; version=0.0.4')
      return parseExposition(await response.text())
    }
    const before = await scrape()
    for (const name of ['rounds_total', 'round_duration_seconds', 'messages_sent_total', 'messages_received_total', 'messages_rejected_total', 'bytes_sent_total', 'bytes_received_total', 'neighbours_connected', 'job_state', 'store_bytes', 'jobs_finished_total', 'jobs_failed_total']) {
      expect(before.types.has(`epimesh_${name}`), name).toBe(true)
      expect(before.help.get(`epimesh_${name}`)?.length ?? 0, name).toBeGreaterThan(10)
    }
    expect(valueOf(before, 'epimesh_neighbours_connected')).toBe(2)
    expect(valueOf(before, 'epimesh_job_state', { state: 'idle' })).toBe(1)
    expect(valueOf(before, 'epimesh_rounds_total')).toBe(0)
    expect(valueOf(before, 'epimesh_jobs_finished_total')).toBe(0)
    expect(valueOf(before, 'epimesh_store_bytes')).toBeGreaterThan(0)
    expect(valueOf(before, 'epimesh_messages_rejected_total', { code: 'MESSAGE_MALFORMED' })).toBe(0)

    // scraped while the job runs, until it has finished
    const job = (peers[0] as Peer).propose({ id: 'metrics-job' })
    let running: Exposition | null = null
    let done = false
    void job.finally(() => { done = true }).catch(() => {})
    while (!done) {
      const during = await scrape()
      if (valueOf(during, 'epimesh_job_state', { state: 'running' }) === 1 && valueOf(during, 'epimesh_rounds_total') > 0) running = during
      await new Promise((resolve) => setTimeout(resolve, 25))
    }
    const outcome = await job
    expect(outcome.model?.rounds ?? 0).toBeGreaterThan(5)
    expect(running, 'no scrape saw the job running').not.toBeNull()
    const after = await vi.waitFor(async () => {
      const scraped = await scrape()
      expect(valueOf(scraped, 'epimesh_jobs_finished_total')).toBe(1)
      return scraped
    }, { timeout: 5000, interval: 50 })
    expect(valueOf(after, 'epimesh_job_state', { state: 'finished' })).toBe(1)
    expect(valueOf(after, 'epimesh_job_state', { state: 'idle' })).toBe(0)
    const rounds = valueOf(after, 'epimesh_rounds_total')
    expect(rounds).toBeGreaterThan(5)
    // every round of the job's phases (the fit's rounds and the sums after it), seen from the first report on
    const jobRound = valueOf(after, 'epimesh_job_round')
    expect(jobRound).toBeGreaterThanOrEqual(outcome.model?.rounds ?? 0)
    expect(rounds).toBeLessThanOrEqual(jobRound)
    expect(rounds).toBeGreaterThanOrEqual(jobRound - 1)
    expect(valueOf(after, 'epimesh_round_duration_seconds_count')).toBe(rounds)
    expect(valueOf(after, 'epimesh_round_duration_seconds_bucket', { le: '+Inf' })).toBe(rounds)
    expect(valueOf(after, 'epimesh_round_duration_seconds_sum')).toBeGreaterThan(0)
    // buckets are cumulative
    const buckets = after.samples.filter((sample) => sample.name === 'epimesh_round_duration_seconds_bucket').map((sample) => sample.value)
    expect(buckets.every((value, index) => index === 0 || value >= (buckets[index - 1] as number))).toBe(true)
    for (const name of ['epimesh_messages_sent_total', 'epimesh_messages_received_total', 'epimesh_bytes_sent_total', 'epimesh_bytes_received_total']) {
      expect(valueOf(after, name), name).toBeGreaterThan(valueOf(before, name))
      expect(valueOf(running as Exposition, name), name).toBeLessThanOrEqual(valueOf(after, name))
    }
    // a ring of three: each round, a message to each of two neighbours
    expect(valueOf(after, 'epimesh_messages_sent_total')).toBeGreaterThanOrEqual(2 * rounds)
    expect(valueOf(after, 'epimesh_store_bytes')).toBeGreaterThanOrEqual(valueOf(before, 'epimesh_store_bytes'))
  }, 60_000)
})
