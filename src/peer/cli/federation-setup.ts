import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Command } from 'commander'
import { z } from 'zod'
import { EpimeshError } from '../../errors.ts'
import type { CaseSchema } from '../../store/schema.ts'
import { echo, OptionInvalidError } from '../../store/errors.ts'
import { FederationInvalidError, FederationReadError, type FederationIssue } from '../errors.ts'
import { loadFederation, modelSchema, parseFederation, type FeatureSpec, type Federation, type Topology } from '../federation.ts'
import { loadIdentity } from '../identity.ts'
import { withStore } from './store-commands.ts'
import { dirOption } from './dir-option.ts'

/**
 * `epimesh id`, `epimesh federation check` and `epimesh federation init`: setting up a federation
 * without learning its file's format from validation errors. `id` shows what a member's entry needs
 * (peer id, region, addresses); `init` writes a file from the members' data folders; `check` lists
 * every problem of a file, and with `--dir` whether it fits that folder (its peer id, its columns).
 */

/** A federation file or data folder that does not pass `federation check` (every problem printed first). */
export class FederationCheckFailedError extends EpimeshError {
  static override readonly name = 'FederationCheckFailedError'
  readonly exitCode = 2
  constructor (message: string) { super('FEDERATION_INVALID', message) }
}

/** `federation init` would overwrite a file. */
export class FederationFileExistsError extends EpimeshError {
  static override readonly name = 'FederationFileExistsError'
  readonly exitCode = 2
  constructor (message: string) { super('FEDERATION_FILE_EXISTS', message) }
}

/** A folder's schema cannot give the model `federation init` was asked for. */
export class FederationSchemaMismatchError extends EpimeshError {
  static override readonly name = 'FederationSchemaMismatchError'
  readonly exitCode = 2
  constructor (message: string) { super('FEDERATION_SCHEMA_MISMATCH', message) }
}

/** Federation files of 10,000 members are a few megabytes; a larger file is not one. */
const MAX_FEDERATION_BYTES = 16 << 20
const TOPOLOGIES: readonly Topology[] = ['ring', 'complete', 'star', 'line']
const out = (line: string): void => { process.stdout.write(`${line}\n`) }

/** What a data folder says of itself: its identity's peer id, its region, its schema, its last known addresses. */
export interface FolderIdentity {
  dir: string
  peerId: string
  region: string
  schema: CaseSchema | null
  /** the multiaddrs the peer listened on when it last wrote status.json; empty when unknown */
  addresses: string[]
  /** when status.json was written (null: no status file) */
  addressesUpdatedAt: string | null
}

/** The listen addresses a peer recorded in DIR/status.json, if it has run (only well-formed strings). */
async function knownAddresses (dir: string): Promise<{ addresses: string[], updatedAt: string | null }> {
  let status: unknown
  try {
    const path = join(dir, 'status.json')
    if ((await stat(path)).size > MAX_FEDERATION_BYTES) return { addresses: [], updatedAt: null }
    status = JSON.parse(await readFile(path, 'utf8'))
  } catch {
    return { addresses: [], updatedAt: null }
  }
  const record = typeof status === 'object' && status !== null ? status as Record<string, unknown> : {}
  const addresses = Array.isArray(record.addresses) ? record.addresses.filter((value): value is string => typeof value === 'string' && value.length > 0 && value.length <= 1000).slice(0, 16) : []
  return { addresses, updatedAt: typeof record.updatedAt === 'string' ? record.updatedAt.slice(0, 40) : null }
}

/** Reads a data folder's identity (IDENTITY_MISSING, exit 2, for a folder init did not make), region and schema. */
export async function readFolder (dir: string): Promise<FolderIdentity> {
  const { peerId } = await loadIdentity(dir)
  const { region, schema } = await withStore(dir, async (store) => ({ region: await store.region() as string, schema: await store.schema() }))
  const { addresses, updatedAt } = await knownAddresses(dir)
  return { dir, peerId, region, schema, addresses, addressesUpdatedAt: updatedAt }
}

/** Whether a schema's column can be a model's feature or outcome, and as what. */
function columnKind (schema: CaseSchema, column: string): 'number' | 'category' | 'date' | 'dropped' | 'hashed' | 'id' | 'absent' {
  if (column === schema.id) return 'id'
  const rule = schema.columns[column]
  if (rule === undefined) return 'absent'
  if ('action' in rule) return rule.action === 'drop' ? 'dropped' : 'hashed'
  return rule.type
}

const KIND_WORDS: Record<string, string> = {
  id: 'is the record id column (stored only as a salted hash)',
  absent: 'is not a column',
  date: 'is a date column',
  dropped: 'is dropped at import',
  hashed: 'is stored only as a salted hash',
  number: 'is a number column',
  category: 'is a category column'
}

/**
 * The problems of a federation's model for one data folder: its peer id must be a member (of its own
 * region), the outcome and every feature a column of its schema of the matching type (number for a
 * number or binary feature, category for a category one, whose levels must cover the schema's).
 */
export function folderProblems (federation: Pick<Federation, 'members' | 'model'>, folder: FolderIdentity): FederationIssue[] {
  const issues: FederationIssue[] = []
  const index = federation.members.findIndex((member) => member.peerId === folder.peerId)
  if (index < 0) {
    const byRegion = federation.members.findIndex((member) => member.region === folder.region)
    issues.push({ path: 'members', message: `${folder.dir}'s peer id ${folder.peerId} is not a member${byRegion < 0 ? '' : ` (members[${byRegion}] is ${folder.region} with another peer id: ${federation.members[byRegion]?.peerId ?? ''})`}` })
  } else if (federation.members[index]?.region !== folder.region) {
    issues.push({ path: `members[${index}].region`, message: `${folder.dir} serves ${folder.region}, the file names its peer id ${federation.members[index]?.region ?? ''}` })
  }
  const schema = folder.schema
  if (schema === null) {
    issues.push({ path: 'model', message: `${folder.dir} holds no case records yet (no schema): import them first (epimesh import --dir ${folder.dir} --cases FILE)` })
    return issues
  }
  const columns = Object.keys(schema.columns).filter((column) => columnKind(schema, column) === 'number' || columnKind(schema, column) === 'category')
  const known = `(${folder.dir}'s columns: ${columns.slice(0, 20).join(', ')}${columns.length > 20 ? ', ...' : ''})`
  const outcome = columnKind(schema, federation.model.outcome)
  if (outcome !== 'number' && outcome !== 'category') issues.push({ path: 'model.outcome', message: `"${federation.model.outcome}" ${KIND_WORDS[outcome] ?? ''} in ${folder.dir}'s schema ${known}` })
  else if (outcome === 'category' && federation.model.family === 'poisson') issues.push({ path: 'model.outcome', message: `"${federation.model.outcome}" is a category column in ${folder.dir}'s schema; a poisson model's outcome is a count, a number column` })
  federation.model.features.forEach((feature, featureIndex) => {
    const path = `model.features[${featureIndex}]`
    const kind = columnKind(schema, feature.name)
    const wanted = feature.type === 'categorical' ? 'category' : 'number'
    if (kind !== wanted) {
      issues.push({ path, message: `"${feature.name}" ${KIND_WORDS[kind] ?? ''} in ${folder.dir}'s schema; a ${typeWord(feature.type)} feature needs a ${wanted} column${kind === 'absent' ? ` ${known}` : ''}` })
      return
    }
    const rule = schema.columns[feature.name]
    if (feature.type === 'categorical' && rule !== undefined && 'levels' in rule) {
      const missing = rule.levels.filter((level) => !(feature.levels ?? []).includes(level))
      if (missing.length > 0) issues.push({ path: `${path}.levels`, message: `${folder.dir}'s schema allows ${missing.map((level) => `"${level}"`).join(', ')} for "${feature.name}", which the feature's levels lack` })
    }
  })
  return issues
}

/** One line on a valid file: its id, members, graph and model. */
export function federationSummary (federation: Federation): string {
  const graph = 'topology' in federation.graph ? `${federation.graph.topology} graph` : 'graph'
  const model = federation.model
  const terms = model.features.map((feature) => feature.type === 'categorical' ? `${feature.name} (${feature.levels?.length ?? 0} levels)` : feature.name)
  return `federation "${federation.federationId}": ${federation.members.length} members (${federation.members.map((member) => member.region).join(', ')}); ${graph} with ${federation.edges.length} edges; model ${model.kind ?? 'glm'} ${model.family} ${model.outcome} ~ ${terms.join(' + ')} (${model.algorithm}, lambda ${model.lambda})`
}

/** A feature as a federation file states it, in the schemas' words: number, binary, or category with its levels. */
export interface FeatureEntry { name: string, type: 'number' | 'binary' | 'category', levels?: string[] }

/** The word a federation file uses for a feature's type, as the schemas do (the model's numeric and categorical are a schema's number and category). */
export const typeWord = (type: FeatureSpec['type']): FeatureEntry['type'] => type === 'categorical' ? 'category' : type === 'numeric' ? 'number' : 'binary'

/** A feature typed from the folders' schemas: a number column, or a category with every folder's levels (sorted, as R orders a factor's). */
function featureFromSchemas (column: string, folders: readonly FolderIdentity[]): FeatureEntry {
  let type: 'number' | 'category' | undefined
  const levels = new Set<string>()
  for (const folder of folders) {
    const schema = folder.schema as CaseSchema
    const kind = columnKind(schema, column)
    if (kind !== 'number' && kind !== 'category') throw new FederationSchemaMismatchError(`"${column}" ${KIND_WORDS[kind] ?? ''} in ${folder.dir}'s schema: a feature must be a number or category column in every folder`)
    if (type !== undefined && kind !== type) throw new FederationSchemaMismatchError(`"${column}" is a ${kind} column in ${folder.dir}'s schema but a ${type} column in ${folders[0]?.dir ?? ''}'s: the folders must agree on its type`)
    type = kind
    const rule = schema.columns[column]
    if (rule !== undefined && 'levels' in rule) for (const level of rule.levels) levels.add(level)
  }
  if (type === 'number') return { name: column, type: 'number' }
  const sorted = [...levels].sort()
  if (sorted.length < 2) throw new FederationSchemaMismatchError(`"${column}" has only ${sorted.length} level in the folders' schemas (${sorted.join(', ')}); a category feature needs at least two`)
  return { name: column, type: 'category', levels: sorted }
}

export interface FederationInitOptions {
  federationId: string
  topology: Topology
  family: 'binomial' | 'poisson'
  algorithm: 'admm' | 'newton'
  outcome?: string
  features?: string[]
}

/**
 * A federation document for the given folders: their regions and peer ids (with the addresses they
 * last listened on), the graph, and the model with its features typed from their schemas. Without
 * `outcome` the schemas' own outcome (the same in every folder); without `features`, every number and
 * category column the folders share except the outcome. Validated by parseFederation before it is
 * returned, so that `init` never writes a file `check` refuses.
 */
export function federationDocument (folders: readonly FolderIdentity[], options: FederationInitOptions): Record<string, unknown> {
  const first = folders[0]
  if (first === undefined) throw new OptionInvalidError('name at least one data folder')
  for (const folder of folders) {
    if (folder.schema === null) throw new FederationSchemaMismatchError(`${folder.dir} holds no case records yet (no schema), so its columns are unknown: import them first (epimesh import --dir ${folder.dir} --cases FILE --schema FILE)`)
  }
  const schemas = folders.map((folder) => folder.schema as CaseSchema)
  let outcome = options.outcome
  if (outcome === undefined) {
    const stated = new Set(schemas.map((schema) => schema.outcome ?? ''))
    if (stated.size !== 1 || stated.has('')) throw new OptionInvalidError(`the folders' schemas do not state one outcome (${[...stated].map((name) => name === '' ? 'none' : `"${name}"`).join(', ')}): give --outcome COLUMN`)
    outcome = [...stated][0] as string
  }
  for (const folder of folders) {
    const kind = columnKind(folder.schema as CaseSchema, outcome)
    if (kind !== 'number' && kind !== 'category') throw new FederationSchemaMismatchError(`the outcome "${outcome}" ${KIND_WORDS[kind] ?? ''} in ${folder.dir}'s schema`)
    if (kind === 'category' && options.family === 'poisson') throw new FederationSchemaMismatchError(`the outcome "${outcome}" is a category column in ${folder.dir}'s schema; a poisson model's outcome is a count, a number column`)
  }
  const featureNames = options.features ?? Object.keys((schemas[0] as CaseSchema).columns)
    .filter((column) => column !== outcome && schemas.every((schema) => ['number', 'category'].includes(columnKind(schema, column))))
  if (featureNames.length === 0) throw new OptionInvalidError('the folders share no number or category column besides the outcome: give --features a,b,c')
  const document = {
    version: 1,
    federationId: options.federationId,
    members: folders.map((folder) => ({ region: folder.region, peerId: folder.peerId, ...(folder.addresses.length > 0 ? { addresses: folder.addresses } : {}) })),
    graph: { topology: options.topology },
    model: {
      family: options.family,
      outcome,
      features: featureNames.map((name) => featureFromSchemas(name, folders)),
      lambda: 0,
      algorithm: options.algorithm,
      tolerance: 1e-8,
      maxRounds: 3000,
      roundDeadlineMs: 2000,
      dropAfterRounds: 0
    }
  }
  parseFederation(document, 'the federation file to write')
  return document
}

function listOption (value: string, name: string, what: { plural: string, singular: string } = { plural: 'column names', singular: 'a column' }): string[] {
  const items = value.split(',').map((item) => item.trim())
  if (items.length === 0 || items.some((item) => item === '')) throw new OptionInvalidError(`${name} must be a comma-separated list of ${what.plural}, got ${echo(value)}`)
  if (new Set(items).size !== items.length) throw new OptionInvalidError(`${name} names ${what.singular} twice: ${echo(value)}`)
  return items
}

function choice<T extends string> (value: string, allowed: readonly T[], name: string): T {
  if (!(allowed as readonly string[]).includes(value)) throw new OptionInvalidError(`${name} must be one of ${allowed.join(', ')}; got ${echo(value)}`)
  return value as T
}

/**
 * Loads and validates a federation file, every problem as an issue (a file that cannot be read is
 * thrown). For a file that does not validate, `parts` holds its members and model when those parts
 * pass on their own, so that a data folder can still be checked against them.
 */
async function checkedFederation (file: string): Promise<{ federation: Federation | null, parts: Pick<Federation, 'members' | 'model'> | null, issues: FederationIssue[] }> {
  let size: number
  try {
    size = (await stat(file)).size
  } catch (cause) {
    throw new FederationReadError(`cannot read the federation file ${file}`, { cause })
  }
  if (size > MAX_FEDERATION_BYTES) return { federation: null, parts: null, issues: [{ path: '', message: `larger than ${MAX_FEDERATION_BYTES} bytes; not a federation file` }] }
  try {
    const federation = await loadFederation(file)
    return { federation, parts: federation, issues: [] }
  } catch (error) {
    if (!(error instanceof FederationInvalidError)) throw error
    return { federation: null, parts: await validParts(file), issues: [...error.issues] }
  }
}

const memberPart = z.object({ region: z.string(), peerId: z.string(), addresses: z.array(z.string()).optional() })

/** The members and model of a federation file that fails validation elsewhere, when both pass on their own. */
async function validParts (file: string): Promise<Pick<Federation, 'members' | 'model'> | null> {
  try {
    const raw = JSON.parse(await readFile(file, 'utf8')) as { members?: unknown, model?: unknown }
    const members = z.array(memberPart).max(10_000).safeParse(raw.members)
    const model = modelSchema.safeParse(raw.model)
    if (!members.success || !model.success) return null
    return { members: members.data.map((member) => ({ ...member, addresses: member.addresses ?? [] })), model: model.data }
  } catch {
    return null
  }
}

export function registerFederationSetup (program: Command): void {
  program.command('id')
    .description('a data folder\'s peer id, region and last known listen addresses: what its entry in the federation file needs')
    .addOption(dirOption('the peer\'s data folder'))
    .option('--json', 'one JSON object on stdout', false)
    .action(async (options: { dir: string, json: boolean }) => {
      const folder = await readFolder(options.dir)
      if (options.json) {
        out(JSON.stringify({ peerId: folder.peerId, region: folder.region, addresses: folder.addresses, addressesUpdatedAt: folder.addressesUpdatedAt }))
        return
      }
      out(`peer id    ${folder.peerId}`)
      out(`region     ${folder.region}`)
      out(`addresses  ${folder.addresses.length === 0 ? `none known (${folder.addressesUpdatedAt === null ? 'the peer has not run yet' : 'the peer recorded none'}; start --listen sets them)` : `${folder.addresses.join(' ')} (as of ${folder.addressesUpdatedAt ?? '?'})`}`)
    })

  const federation = program.command('federation').description('write a federation file from the members\' data folders, or check one')

  federation.command('check')
    .description('validate a federation file: every problem with its field, or a one-line summary; with --dir, whether it fits that data folder')
    .argument('<file>', 'the federation file')
    .option('--dir <dir>', 'a member\'s data folder: its peer id must be a member, the model\'s columns in its schema')
    .option('--json', 'one JSON object on stdout', false)
    .action(async (file: string, options: { dir?: string, json: boolean }) => {
      const { federation: checked, parts, issues } = await checkedFederation(file)
      if (parts !== null && options.dir !== undefined) issues.push(...folderProblems(parts, await readFolder(options.dir)))
      if (options.json) out(JSON.stringify({ file, valid: issues.length === 0, problems: issues, ...(checked === null ? {} : { federationId: checked.federationId, members: checked.members.length, edges: checked.edges.length }) }))
      if (issues.length > 0) {
        if (!options.json) for (const issue of issues) out(`${file}: ${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`)
        throw new FederationCheckFailedError(`${file}: ${issues.length} problem${issues.length === 1 ? '' : 's'}`)
      }
      if (!options.json) out(`${file}: valid; ${federationSummary(checked as Federation)}${options.dir === undefined ? '' : `; fits ${options.dir}`}`)
    })

  federation.command('init')
    .description('write a federation file from the members\' data folders: their peer ids and regions, the graph, and the model typed from their schemas')
    .requiredOption('--out <file>', 'the federation file to write')
    .argument('<dirs...>', 'the members\' data folders, in member order')
    .option('--outcome <column>', 'the model\'s outcome (default: the schemas\' outcome)')
    .option('--features <a,b,c>', 'the model\'s features (default: every number and category column the folders share)')
    .option('--family <family>', 'binomial or poisson', 'binomial')
    .option('--algorithm <algorithm>', 'admm or newton', 'admm')
    .option('--topology <topology>', `the graph: ${TOPOLOGIES.join(', ')} (default: ring from three members, else line)`)
    .option('--id <federationId>', 'the federation\'s id', 'federation')
    .option('--addresses <a,b,c>', 'each member\'s listen address, in member order (what its start --listen will be), for folders whose peer has not run yet; default: the addresses each peer last listened on')
    .option('--force', 'overwrite an existing file', false)
    .option('--json', 'one JSON object on stdout: {out, federation} (the file as written)', false)
    .action(async (dirs: string[], options: { out: string, outcome?: string, features?: string, family: string, algorithm: string, topology?: string, id: string, addresses?: string, force: boolean, json: boolean }) => {
      const topology = options.topology === undefined ? (dirs.length >= 3 ? 'ring' : 'line') : choice(options.topology, TOPOLOGIES, '--topology')
      const family = choice(options.family, ['binomial', 'poisson'] as const, '--family')
      const algorithm = choice(options.algorithm, ['admm', 'newton'] as const, '--algorithm')
      const features = options.features === undefined ? undefined : listOption(options.features, '--features')
      if (new Set(dirs).size !== dirs.length) throw new OptionInvalidError('a data folder is named twice')
      const folders: FolderIdentity[] = []
      for (const dir of dirs) folders.push(await readFolder(dir))
      if (options.addresses !== undefined) {
        const addresses = listOption(options.addresses, '--addresses', { plural: 'listen addresses (multiaddrs)', singular: 'an address' })
        if (addresses.length !== folders.length) throw new OptionInvalidError(`--addresses gives ${addresses.length} address${addresses.length === 1 ? '' : 'es'} for ${folders.length} folders: one per folder, in their order`)
        folders.forEach((folder, index) => { folder.addresses = [addresses[index] as string] })
      }
      const document = federationDocument(folders, { federationId: options.id, topology, family, algorithm, ...(options.outcome === undefined ? {} : { outcome: options.outcome }), ...(features === undefined ? {} : { features }) })
      try {
        await writeFile(options.out, `${JSON.stringify(document, null, 2)}\n`, { flag: options.force ? 'w' : 'wx' })
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new FederationFileExistsError(`${options.out} already exists: give --force to replace it`)
        throw error
      }
      const summary = federationSummary(parseFederation(document, options.out))
      out(options.json ? JSON.stringify({ out: options.out, federation: document }) : `wrote ${options.out}: ${summary}`)
    })
}
