import { relativeDistance } from '../../learning/linalg.ts'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Command } from 'commander'
import { createRng, forkRng } from '../../consensus/rng.ts'
import { concatBlocks } from '../../learning/design.ts'
import { fitModel } from '../../learning/fit.ts'
import { DatasetError, prepareModel, readDataset } from '../data/dataset.ts'
import { partitionByValue, splitRows } from '../../consensus/partition.ts'
import { buildTopology } from '../../consensus/topology.ts'
import { DEFAULT_TREE_SETTINGS, parseFederation } from '../federation.ts'
import { createIdentity } from '../identity.ts'
import { importCases } from '../../store/import.ts'
import { Store, type StoredForecast, type StoredModel } from '../../store/store.ts'
import { stat } from './inspect.ts'
import { removeDefaultKey, storeKeySourceFromEnv } from '../../store/keys.ts'
import type { CaseSchema } from '../../store/schema.ts'
import { localDesign, localTreeData } from '../runtime/checks.ts'
import { treeParams } from '../runtime/job-kinds.ts'
import { compareForests, featureImportance, fitGbdt, gbdtModelFromJson, type GbdtModel, type TreeData } from '../../learning/gbdt.ts'
import { DEMO_PROVINCES, generateCases, SYNTHETIC_SCHEMA, SYNTHETIC_TRUTH, toCsv } from '../data/synthetic-cases.ts'
import { importSeries } from '../../store/import.ts'
import { generateSeries, seriesCsv, type ProvinceSeries } from '../data/synthetic-series.ts'
import { parseForecastProposal } from '../runtime/forecast-proposal.ts'
import { fitEndemicEpidemic, panelRegions } from '../../learning/endemic-epidemic.ts'
import { freePort } from '../net/free-port.ts'

/**
 * The main job: a federation of four provincial peers on this machine, each a separate process with
 * its own data folder and identity, talking over libp2p on 127.0.0.1. They fit the shared severity
 * model by consensus ADMM without exchanging a record, then run the regional-risk job on their weekly
 * case counts (forecasts, each province's h, the joint risk by masked sum), and the demo checks both
 * against the pooled fits and the plain sum that nobody in a real federation could compute.
 */
interface DemoOptions {
  dir?: string
  keep: boolean
  seed: number
  algorithm: 'admm' | 'newton'
  lambda: number
  tolerance: number
  json: boolean
  data?: string
  outcome?: string
  features?: string
  peers: number
  partitionBy?: string
  topology?: string
  /** the shared model: a regression (default) or boosted trees */
  model?: 'glm' | 'gbdt'
  family?: 'binomial' | 'poisson'
  trees?: number
  depth?: number
}

interface PeerData { region: string, csv: string, rows: number, schema: CaseSchema }

function csvCell (value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value)
  return /[",\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text
}

/** Splits a researcher's CSV over peers (evenly or one per value of a column), with the model it implies. */
async function splitDataset (options: DemoOptions, rng: ReturnType<typeof createRng>): Promise<{ peers: PeerData[], features: Array<{ name: string, type: string, levels?: string[] }>, outcome: string, edges: Array<[string, string]> }> {
  const dataset = await readDataset(options.data as string)
  const outcome = options.outcome as string
  const prepared = prepareModel(dataset, {
    outcome,
    family: 'binomial',
    ...(options.features === undefined ? {} : { features: options.features.split(',').map((name) => name.trim()) }),
    ...(options.partitionBy === undefined ? {} : { exclude: [options.partitionBy] })
  })
  const columns = [outcome, ...prepared.spec.features.map((feature) => feature.name)]
  const schema: CaseSchema = {
    version: 1,
    id: 'record',
    outcome,
    columns: Object.fromEntries(columns.map((column) => {
      const feature = prepared.spec.features.find((candidate) => candidate.name === column)
      return [column, feature !== undefined && feature.type === 'categorical' ? { type: 'category', levels: feature.levels } : { type: 'number' }]
    }))
  }
  let names: string[]
  let parts: number[][]
  if (options.partitionBy !== undefined) {
    ;({ names, parts } = partitionByValue(prepared.kept.map((index) => String(dataset.rows[index]?.[options.partitionBy as string]))))
  } else {
    parts = splitRows(prepared.rows.length, options.peers, 'even', forkRng(rng, 'split'))
    names = parts.map((_, index) => `region-${index + 1}`)
  }
  const peers = parts.map((indices, index) => ({
    region: names[index] as string,
    rows: indices.length,
    schema,
    csv: [['record', ...columns].join(','), ...indices.map((row) => [String(row + 1), ...columns.map((column) => csvCell(prepared.rows[row]?.[column]))].join(','))].join('\n') + '\n'
  }))
  const graph = buildTopology(options.topology ?? 'ring', names.length, forkRng(rng, 'topology'), names)
  const edges = graph.neighbours.flatMap((list, node) => list.filter((other) => other > node).map((other) => [names[node], names[other]] as [string, string]))
  // the federation file in the schemas' words (number, category), as federation init writes it
  const features = prepared.spec.features.map((feature) => feature.type === 'numeric' ? { name: feature.name, type: 'number' } : { name: feature.name, type: 'category', levels: feature.levels })
  return { peers, features, outcome, edges }
}

/** A value the demonstration's own peers must have stored. */
function required<T> (value: T | null, missing: string): T {
  if (value === null) throw new Error(missing)
  return value
}

const BIN = fileURLToPath(new URL('../../../bin/epimesh.js', import.meta.url))

/** The synthetic weekly series: three years of weeks from a Monday. */
const SERIES_FROM = '2023-01-02'
const SERIES_WEEKS = 156

function neighbourLists (regions: readonly string[], edges: ReadonlyArray<readonly [string, string]>): number[][] {
  const lists = regions.map(() => [] as number[])
  for (const [a, b] of edges) {
    const ia = regions.indexOf(a)
    const ib = regions.indexOf(b)
    lists[ia]?.push(ib)
    lists[ib]?.push(ia)
  }
  return lists.map((list) => list.sort((x, y) => x - y))
}


/** The provinces' shared borders. */
const DEMO_EDGES: Array<[string, string]> = [
  ['Shanghai', 'Jiangsu'], ['Shanghai', 'Zhejiang'], ['Jiangsu', 'Zhejiang'], ['Jiangsu', 'Anhui'], ['Zhejiang', 'Anhui']
]

const DEMO_FEATURES = [
  { name: 'age', type: 'number' },
  { name: 'max_temperature', type: 'number' },
  { name: 'lymphocytes', type: 'number' },
  { name: 'white_cells', type: 'number' },
  { name: 'lung_imaging', type: 'binary' },
  { name: 'prior_illness', type: 'binary' },
  { name: 'contact', type: 'binary' },
  { name: 'healthcare_worker', type: 'binary' },
  { name: 'sex', type: 'category', levels: ['F', 'M'] }
] as const


/** A line of a peer's JSON log, as far as the demo reads it. */
interface PeerLogRecord { event?: string, job?: unknown, phase?: unknown, round?: unknown, level?: number, msg?: string, reason?: unknown }

/** The demonstration's peer processes: each job followed through their logs, all stopped at the end. */
interface PeerProcesses {
  /** resolves when every member has stored its outcome of `job`; rejects when one declines it, it expires or fails, or a peer exits */
  until: (job: string, onRecord: (index: number, record: PeerLogRecord) => void) => Promise<void>
  /** once every stored model's lineage is sealed (its audit log closed), stops every peer; throws if one exited with an error */
  stop: () => Promise<void>
}

/** How long the demonstration waits for its peers to join, for a job to end, and for the audit logs to close. */
const DEMO_WAITS = Object.freeze({ joinMs: 110_000, jobMs: 110_000, sealMs: 15_000, countersignMs: 1000 })

/**
 * Starts every member's peer (`epimesh start`) as its own process and resolves once each has joined its
 * graph neighbours. Each peer keeps running between the jobs, as an operator's would.
 */
async function startPeers (members: ReadonlyArray<{ region: string, dir: string, addresses: string[] }>, federationPath: string, say: (line: string) => void): Promise<PeerProcesses> {
  const listeners = new Set<(index: number, record: PeerLogRecord) => void>()
  const children: ChildProcess[] = []
  const exits: Array<Promise<number>> = []
  /** per member: the jobs whose model it stored, and those whose lineage is sealed (or failed to be) */
  const stored = members.map(() => new Set<string>())
  const sealed = members.map(() => new Set<string>())
  let stopping = false
  const emit = (index: number, record: PeerLogRecord): void => {
    const job = typeof record.job === 'string' ? record.job : ''
    if (record.event === 'model.stored') stored[index]?.add(job)
    if (record.event === 'model.lineage.sealed' || record.event === 'model.lineage.failed') sealed[index]?.add(job)
    for (const listener of [...listeners]) listener(index, record)
  }
  members.forEach((member, index) => {
    const child = spawn(process.execPath, [BIN, 'start', '--dir', member.dir, '--federation', federationPath, '--listen', member.addresses[0] as string], { stdio: ['ignore', 'ignore', 'pipe'] })
    children.push(child)
    let buffer = ''
    child.stderr?.setEncoding('utf8')
    child.stderr?.on('data', (chunk: string) => {
      buffer += chunk
      const lines = buffer.split('\n')
      buffer = lines.pop() ?? ''
      for (const line of lines) {
        let record: PeerLogRecord
        try {
          record = JSON.parse(line) as PeerLogRecord
        } catch {
          if (line.trim() !== '') say(`  ${member.region}: ${line}`)
          continue
        }
        if ((record.level ?? 0) >= 50) say(`  ${member.region}: ${record.msg ?? line}`)
        emit(index, record)
      }
    })
    exits.push(new Promise((resolveExit) => {
      child.on('exit', (code) => {
        if (!stopping) emit(index, { event: 'peer.exited', msg: `the peer process exited (code ${code ?? 'none'})` })
        resolveExit(code ?? 1)
      })
    }))
  })
  /** Waits until `done` holds, or rejects with what `failed` names, or after `ms`. */
  const follow = async (ms: number, what: string, onRecord: (index: number, record: PeerLogRecord) => string | null, done: () => boolean): Promise<void> => {
    if (done()) return
    let listener: (index: number, record: PeerLogRecord) => void = () => {}
    let timer: NodeJS.Timeout | undefined
    try {
      await new Promise<void>((resolveDone, reject) => {
        timer = setTimeout(() => { reject(new Error(`${what}: not done within ${ms / 1000} s`)) }, ms)
        listener = (index, record) => {
          const failure = onRecord(index, record)
          if (failure !== null) reject(new Error(`${what}: ${members[index]?.region ?? ''}: ${failure}`))
          else if (done()) resolveDone()
        }
        listeners.add(listener)
      })
    } finally {
      clearTimeout(timer)
      listeners.delete(listener)
    }
  }
  const stop = async (): Promise<void> => {
    if (stopping) return
    // a finished job's audit log closes a round deadline after its end (neighbours still finishing
    // are recorded), then the model's lineage is sealed with its head; then a moment more for the
    // neighbours' countersignatures of the last checkpoint, as `start --exit-after-job` waits
    const allSealed = (): boolean => stored.every((jobs, index) => [...jobs].every((job) => sealed[index]?.has(job) === true))
    const wasSealed = allSealed()
    await follow(DEMO_WAITS.sealMs, 'closing the audit logs', () => null, allSealed).catch(() => {})
    if (!wasSealed) await new Promise((resolveWait) => setTimeout(resolveWait, DEMO_WAITS.countersignMs))
    stopping = true
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM')
    const codes = await Promise.all(exits)
    if (codes.some((code) => code !== 0)) throw new Error(`a peer process failed (exit codes ${codes.join(', ')}); logs above`)
  }
  const ready = members.map(() => false)
  try {
    await follow(DEMO_WAITS.joinMs, 'starting the peers', (index, record) => {
      if (record.msg === 'neighbour exchange ready') ready[index] = true
      return record.event === 'peer.exited' ? String(record.msg) : null
    }, () => ready.every(Boolean))
  } catch (error) {
    stopping = true
    for (const child of children) child.kill('SIGTERM')
    await Promise.all(exits)
    throw error
  }
  return {
    until: async (job, onRecord) => {
      const finished = members.map(() => false)
      await follow(DEMO_WAITS.jobMs, `job ${job}`, (index, record) => {
        if (record.event === 'peer.exited' || record.event === 'job.proposal.unreadable') return String(record.msg)
        if (record.job !== job) return null
        onRecord(index, record)
        if (record.event === 'model.stored' || record.event === 'stats.stored') finished[index] = true
        if (record.event === 'job.declined' || record.event === 'job.expired' || record.event === 'job.failed') return `${record.event}${record.reason === undefined ? '' : ` (${String(record.reason)})`}`
        return null
      }, () => finished.every(Boolean))
    },
    stop
  }
}

export async function runDemo (options: DemoOptions): Promise<Record<string, unknown>> {
  const say = (line: string): void => { if (!options.json) process.stdout.write(`${line}\n`) }
  const base = options.dir === undefined ? await mkdtemp(join(tmpdir(), 'epimesh-demo-')) : resolve(options.dir)
  await mkdir(base, { recursive: true })
  // the files each region imports stay outside its data folder, which holds only the encrypted store
  // (each store's key is made as init makes it, outside the folders, and removed with them)
  const inputs = join(base, 'inputs')
  await mkdir(inputs, { recursive: true })
  const rng = createRng(options.seed)
  say(`epimesh demo: ${options.data === undefined ? `${DEMO_PROVINCES.length} provincial peers` : `peers for ${options.data}`} on 127.0.0.1, data folders under ${base}`)

  const custom = options.data === undefined ? null : await splitDataset(options, rng)
  if (custom !== null && custom.peers.length > 64) throw new DatasetError('the demo starts one process per peer: at most 64')
  const peerData: PeerData[] = custom?.peers ?? DEMO_PROVINCES.map((province) => {
    const rows = generateCases(province, forkRng(rng, province.region))
    return { region: province.region, rows: rows.length, csv: toCsv(rows), schema: SYNTHETIC_SCHEMA }
  })
  // weekly case counts per province, for the regional-risk job (the synthetic provinces only)
  const series = custom !== null
    ? null
    : generateSeries(peerData.map((peer) => peer.region), neighbourLists(peerData.map((peer) => peer.region), DEMO_EDGES), { from: SERIES_FROM, weeks: SERIES_WEEKS, rng: forkRng(rng, 'series') })
  const members: Array<{ region: string, peerId: string, addresses: string[], dir: string, port: number }> = []
  for (const [index, peer] of peerData.entries()) {
    const dir = join(base, peer.region.toLowerCase().replace(/[^a-z0-9._-]+/g, '-'))
    const { peerId } = await createIdentity(dir)
    const name = basename(dir)
    await writeFile(join(inputs, `${name}-cases.csv`), peer.csv)
    // each region's records go into its own store, as an operator's import would put them
    const store = await Store.open(dir)
    try {
      await store.configure({ region: peer.region, peerId })
      await importCases(store, { file: join(inputs, `${name}-cases.csv`), schema: peer.schema })
      const own = series?.[index]
      if (own !== undefined) {
        await writeFile(join(inputs, `${name}-series.csv`), seriesCsv(own))
        await importSeries(store, join(inputs, `${name}-series.csv`))
      }
    } finally {
      await store.close()
    }
    const port = await freePort()
    members.push({ region: peer.region, peerId, addresses: [`/ip4/127.0.0.1/tcp/${port}`], dir, port })
    say(`  ${peer.region.padEnd(9)} ${String(peer.rows).padStart(4)} case records, peer ${peerId}`)
  }
  const document = {
    version: 1,
    federationId: 'yangtze-delta-demo',
    description: 'Demonstration federation of four neighbouring provinces (synthetic records)',
    members: members.map(({ region, peerId, addresses }) => ({ region, peerId, addresses })),
    graph: { edges: custom?.edges ?? DEMO_EDGES },
    bootstrap: members[0]?.addresses ?? [],
    model: {
      ...(options.model === 'gbdt' ? { kind: 'gbdt', trees: { ...DEFAULT_TREE_SETTINGS, ...(options.trees === undefined ? {} : { trees: options.trees }), ...(options.depth === undefined ? {} : { depth: options.depth }) } } : {}),
      family: options.family ?? 'binomial',
      outcome: custom?.outcome ?? 'severe',
      features: custom?.features ?? DEMO_FEATURES,
      lambda: options.lambda,
      algorithm: options.algorithm,
      tolerance: options.tolerance,
      maxRounds: 3000,
      roundDeadlineMs: 2000,
      dropAfterRounds: 0
    }
  }
  const federationPath = join(base, 'federation.json')
  await writeFile(federationPath, JSON.stringify(document, null, 2))
  const federation = parseFederation(document, federationPath)

  // Every member's peer as its own process, started once for both jobs and stopped at the end; the
  // first member proposes each job as an operator would (epimesh propose: a file in its proposals/).
  const peers = await startPeers(members, federationPath, say)
  let summary: Record<string, unknown>
  try {
    summary = await runJobs()
  } finally {
    await peers.stop()
  }
  if (!options.keep && !options.json && options.dir === undefined) {
    if (summary.kind !== 'gbdt') say('(data folders removed; run with --keep to keep them)')
    for (const member of members) await removeDefaultKey(member.dir)
    await rm(base, { recursive: true, force: true })
  }
  return summary

  /** One job: proposed through the first member's peer; its phases from that peer's log, until every member stored its outcome. */
  async function runJob (jobId: string, proposal: Record<string, unknown>): Promise<number> {
    const started = Date.now()
    const phases = new Set<string>()
    const finished = peers.until(jobId, (index, record) => {
      if (record.event === 'job.phase' && index === 0) {
        // a tree job's phases are numbered (level-3.17: the 17th level's sum, chunk 3): shown once per name
        const phase = String(record.phase).replace(/-\d+\.\d+$/, '')
        if (!phases.has(phase)) {
          phases.add(phase)
          say(`  [${((Date.now() - started) / 1000).toFixed(1)} s] ${members[index]?.region ?? ''}: phase ${phase} at round ${String(record.round)}`)
        }
      }
    })
    const folder = join(members[0]?.dir as string, 'proposals')
    await mkdir(folder, { recursive: true, mode: 0o700 })
    await writeFile(join(folder, `${jobId}.json.tmp`), JSON.stringify({ type: 'job.propose', id: jobId, proposer: '', model: federation.model, ...proposal }), { mode: 0o600 })
    await rename(join(folder, `${jobId}.json.tmp`), join(folder, `${jobId}.json`))
    await finished
    return (Date.now() - started) / 1000
  }

  async function runJobs (): Promise<Record<string, unknown>> {
    const jobId = `demo-${options.seed}`
    const seconds = await runJob(jobId, {})

    /** The regional-risk job on the provinces' weekly series: forecasts, h, the joint risk. */
    const regionalRisk = async (riskJob: string, all: readonly ProvinceSeries[]): Promise<Record<string, unknown>> => {
      say('')
      say(`regional risk (job ${riskJob}): ${SERIES_WEEKS} weeks of case counts stay in each province's store; the shared model is hhh4's endemic-epidemic one, and neighbours share their weekly counts`)
      const riskSeconds = await runJob(riskJob, { forecast: { from: SERIES_FROM, periods: SERIES_WEEKS, period: 'week' } })
      const forecasts = await Promise.all(members.map(async (member) => await Store.use(member.dir, async (store) => required(await store.getForecast(riskJob), `${member.region} holds no forecast of job ${riskJob}`))))
      // what only this demonstration can check: the pooled fit of every series, and the plain sum of h
      const plan = parseForecastProposal({ from: SERIES_FROM, periods: SERIES_WEEKS, period: 'week' })
      const neighbours = neighbourLists(members.map((member) => member.region), DEMO_EDGES)
      const spec = plan.endemicEpidemic
      if (spec === null) throw new Error('the demo\'s forecasting job uses the endemic-epidemic model')
      const regions = panelRegions({ counts: all.map((entry) => Float64Array.from(entry.weeks, (week) => week.count)), populations: all.map((entry) => entry.population) }, neighbours)
        .map((region) => ({ ...region, start: plan.start }))
      const pooled = fitEndemicEpidemic(spec, regions).shared
      const relative = Math.max(...forecasts.map((entry) => relativeDistance(entry.model.coefficients.map((row) => row.estimate), pooled)))
      const plainSum = forecasts.reduce((sum, entry) => sum + entry.h, 0)
      const joint = (forecasts[0] as StoredForecast).joint
      say(`  ${'region'.padEnd(9)} ${'next week'.padStart(10)} ${'90% interval'.padStart(14)} ${'per 100k/7d'.padStart(12)} ${'h'.padStart(7)}   (each h known to its region only)`)
      for (const entry of forecasts) {
        const next = entry.forecast[0] as StoredForecast['forecast'][number]
        say(`  ${entry.region.padEnd(9)} ${next.mean.toFixed(1).padStart(10)} ${`[${next.lower}, ${next.upper}]`.padStart(14)} ${entry.rate.toFixed(2).padStart(12)} ${entry.h.toFixed(4).padStart(7)}`)
      }
      say(`joint risk by masked sum (every province holds it): sum ${joint.sum.toFixed(4)}, mean ${joint.mean.toFixed(4)} over ${joint.regions} provinces; plain sum ${plainSum.toFixed(4)} (difference ${Math.abs(joint.sum - plainSum).toExponential(1)})`)
      say(`shared forecasting model: ${(forecasts[0] as StoredForecast).model.rounds} rounds, ${riskSeconds.toFixed(1)} s; largest relative difference from the pooled fit: ${relative.toExponential(2)}`)
      return {
        job: riskJob,
        seconds: riskSeconds,
        pooledRelativeError: relative,
        regions: forecasts.map((entry) => ({ region: entry.region, h: entry.h, forecast: entry.forecast })),
        jointRisk: { sum: joint.sum, mean: joint.mean },
        plainSum
      }
    }

    const models = await Promise.all(members.map(async (member) => await Store.use(member.dir, async (store) => required(await store.getModel(jobId), `${member.region} holds no model of job ${jobId}`))))
    const first = models[0] as StoredModel
    if (first.forest !== undefined) return await treeSummary(models, seconds)
    // The pooled fit, which only this demonstration can compute: it holds every region's rows. (Each
    // store is read between the uses its running peer makes of it: Store.use waits for the other.)
    const blocks = await Promise.all(members.map(async (member) => await Store.use(member.dir, async (store) => localDesign(await store.allRows(), federation.model))))
    const pooled = fitModel(concatBlocks(blocks.map((entry) => entry.block)), blocks[0]?.terms ?? [], { family: 'binomial', lambda: options.lambda, standardize: true })
    const maxDifference = Math.max(...models.flatMap((model) => model.coefficients.map((row, index) => Math.abs(row.estimate - (pooled.coefficients.estimate[index] as number)) / Math.max(1e-12, Math.abs(pooled.coefficients.estimate[index] as number)))))
    const summary = {
      job: jobId,
      rounds: first.rounds,
      seconds,
      converged: models.every((model) => model.converged),
      coefficients: Object.fromEntries(first.coefficients.map((row) => [row.term, row.estimate])),
      standardErrors: Object.fromEntries(first.coefficients.map((row) => [row.term, row.standardError])),
      pValues: Object.fromEntries(first.coefficients.map((row) => [row.term, row.pValue])),
      pooledRelativeError: maxDifference,
      metrics: first.metrics,
      ...(custom === null ? { truth: SYNTHETIC_TRUTH } : {}),
      federation: federationPath,
      peers: members.map((member) => ({ region: member.region, peerId: member.peerId, dir: member.dir }))
    }
    say('')
    say(`shared model (job ${jobId}, ${first.rounds} rounds, ${seconds.toFixed(1)} s, ${first.rows} records in ${first.peers} regions; none left its region):`)
    say(`  ${'term'.padEnd(20)} ${'estimate'.padStart(11)} ${'std. error'.padStart(11)} ${'z'.padStart(8)} ${'p'.padStart(10)}`)
    for (const row of first.coefficients) {
      say(`  ${row.term.padEnd(20)} ${row.estimate.toFixed(5).padStart(11)} ${stat(row.standardError, (value) => value.toFixed(5)).padStart(11)} ${stat(row.z, (value) => value.toFixed(2)).padStart(8)} ${stat(row.pValue, (value) => value.toExponential(2)).padStart(10)}`)
    }
    if (first.metrics !== null) {
      const { auc, brier, hosmerLemeshow } = first.metrics
      say(`computed by the federation: AUC ${stat(auc, (value) => value.toFixed(4))}, Brier ${stat(brier, (value) => value.toFixed(4))}, Hosmer-Lemeshow ${stat(hosmerLemeshow.statistic, (value) => value.toFixed(2))} on ${hosmerLemeshow.df} df (p = ${stat(hosmerLemeshow.pValue, (value) => value.toFixed(3))})`)
    }
    say(`every region holds the same model; largest relative difference from the pooled fit: ${maxDifference.toExponential(2)}`)
    const risk = series === null ? null : await regionalRisk(`${jobId}-risk`, series)
    if (risk !== null) Object.assign(summary, { risk })
    say(`files: ${base} (federation.json, inputs/ (the files imported); per region: identity.key, store/ (encrypted, with the models${risk === null ? '' : ' and forecasts'}; its key in ${storeKeySourceFromEnv().keyFile ?? storeKeySourceFromEnv().keysDir}), status.json)`)
    say('models: npx epimesh model --dir <region folder> [--job <job>] [--json]')
    say('audit: npx epimesh audit export --all --dir <region folder> (once per region) --out <folder>, then npx epimesh audit verify <folder>/<job>.*.jsonl')
    return summary

    /** Boosted trees: every region's forest against the pooled one grown with the same bin edges. */
    async function treeSummary (models: StoredModel[], seconds: number): Promise<Record<string, unknown>> {
      const forests = models.map((model) => gbdtModelFromJson(model.forest as NonNullable<StoredModel['forest']>))
      const first = forests[0] as GbdtModel
      const parts = await Promise.all(members.map(async (member) => await Store.use(member.dir, async (store) => localTreeData(await store.allRows(), federation.model).data)))
      const pooled = fitGbdt(concatTreeData(parts), first.bins, treeParams(federation.model))
      const comparisons = forests.map((forest) => compareForests(forest, pooled))
      const summary = {
        job: jobId,
        kind: 'gbdt',
        rounds: (models[0] as StoredModel).rounds,
        seconds,
        trees: first.trees.length,
        rows: (models[0] as StoredModel).rows,
        sameTreesAsPooled: comparisons.every((entry) => entry.sameStructure),
        maxLeafDifference: Math.max(...comparisons.map((entry) => entry.maxLeafDifference)),
        importance: featureImportance(first).sort((a, b) => b.gain - a.gain),
        metrics: (models[0] as StoredModel).metrics,
        federation: federationPath,
        peers: members.map((member) => ({ region: member.region, peerId: member.peerId, dir: member.dir }))
      }
      say('')
      say(`shared boosted trees (job ${jobId}, ${summary.trees} trees, ${summary.rounds} rounds, ${seconds.toFixed(1)} s, ${summary.rows} records in ${members.length} regions; none left its region)`)
      say(`every region holds ${summary.sameTreesAsPooled ? 'the same trees as the pooled fit with the same bin edges' : 'trees that DIFFER from the pooled fit'}; largest leaf difference ${summary.maxLeafDifference.toExponential(2)}`)
      for (const entry of summary.importance.slice(0, 5)) say(`  ${entry.feature.padEnd(20)} gain ${entry.gain.toPrecision(5).padStart(10)} in ${entry.splits} splits`)
      if (summary.metrics !== null) say(`computed by the federation on the training rows: AUC ${stat(summary.metrics.auc, (value) => value.toFixed(4))}, Brier ${stat(summary.metrics.brier, (value) => value.toFixed(4))}`)
      return summary
    }
  }
}

/** Several regions' tree data as one (what only a demonstration holds). */
function concatTreeData (parts: readonly TreeData[]): TreeData {
  const rows = parts.reduce((total, part) => total + part.rows, 0)
  const first = parts[0] as TreeData
  const columns = first.columns.map(() => new Float64Array(rows))
  const y = new Float64Array(rows)
  const offset = first.offset === undefined ? undefined : new Float64Array(rows)
  let at = 0
  for (const part of parts) {
    part.columns.forEach((column, index) => { (columns[index] as Float64Array).set(column, at) })
    y.set(part.y, at)
    if (offset !== undefined && part.offset !== undefined) offset.set(part.offset, at)
    at += part.rows
  }
  return { rows, features: first.features, columns, y, ...(offset === undefined ? {} : { offset }) }
}

export function registerDemo (program: Command): void {
  program.command('demo')
    .description('run a local federation of four provincial peers on synthetic data: the shared severity model, then the regional risk (the main job)')
    .option('--dir <dir>', 'where to put the data folders (kept); default: a temporary folder')
    .option('--keep', 'keep the temporary data folders (always kept with --json, for auditing)', false)
    .option('--seed <n>', 'seed of the synthetic records', (value) => Number(value), 1)
    .option('--algorithm <name>', 'admm or newton', 'admm')
    .option('--lambda <l>', 'L2 penalty', (value) => Number(value), 0)
    .option('--tolerance <t>', 'ADMM stopping tolerance', (value) => Number(value), 1e-8)
    .option('--data <file.csv>', 'run on this data set instead of the synthetic provinces')
    .option('--outcome <column>', 'outcome column of --data')
    .option('--features <list>', 'feature columns of --data (default: all others)')
    .option('--peers <n>', 'peers to split --data over', (value) => Number(value), 4)
    .option('--partition-by <column>', 'one peer per value of this column of --data')
    .option('--topology <spec>', 'graph between the peers of --data (ring, complete, star, line, grid, er:p, ...)', 'ring')
    .option('--model <kind>', 'the shared model: glm (a regression) or gbdt (boosted trees)', 'glm')
    .option('--family <name>', 'binomial or poisson (with --data)', 'binomial')
    .option('--trees <n>', 'boosted trees: how many', (value) => Number(value))
    .option('--depth <d>', 'boosted trees: the deepest level', (value) => Number(value))
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: DemoOptions) => {
      if (options.data !== undefined && options.outcome === undefined) throw new DatasetError('--data needs --outcome')
      if (options.model !== 'glm' && options.model !== 'gbdt') throw new DatasetError(`--model must be glm or gbdt, got ${String(options.model)}`)
      if (options.family !== 'binomial' && options.family !== 'poisson') throw new DatasetError(`--family must be binomial or poisson, got ${String(options.family)}`)
      if (options.family === 'poisson' && options.data === undefined) throw new DatasetError('--family poisson needs --data (the synthetic provinces have a binary outcome)')
      const summary = await runDemo(options)
      if (options.json) process.stdout.write(`${JSON.stringify(summary)}\n`)
    })
}
