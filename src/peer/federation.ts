import { graphFromEdges, type Graph } from '../consensus/graph.ts'
import { jointRiskGraph } from '../consensus/protocols/joint-risk.ts'
import { readFile } from 'node:fs/promises'
import { dirname, isAbsolute, resolve } from 'node:path'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { z } from 'zod'
import { FederationInvalidError, FederationReadError, type FederationIssue } from './errors.ts'
import { excerpt, isRegionName, REGION_NAME_RULE } from '../consensus/ids.ts'
import { COLUMN_NAME_PATTERN, DEFAULT_TREE_SETTINGS, JOB_BOUNDS } from './job-bounds.ts'

/**
 * The federation file: who the members are (peer ids are the trust anchors: the connection gater admits
 * no one else), which members exchange model messages (the graph, never inferred from connections:
 * the DHT connects almost everyone to everyone), where to join, the optional pre-shared key of a private
 * network, and the model the federation fits.
 */

export type Topology = 'ring' | 'complete' | 'star' | 'line'
export type FeatureType = 'numeric' | 'binary' | 'categorical'

export interface FederationMember {
  region: string
  peerId: string
  /** known multiaddrs of this member; optional, the DHT finds current ones */
  addresses: string[]
  /** the region's outline (a GeoJSON Polygon or MultiPolygon, longitude and latitude), for the operator's map */
  geometry?: RegionGeometry
}

/** A region's outline as GeoJSON geometry: rings of [longitude, latitude] positions, each ring closed. */
export type RegionGeometry =
  | { type: 'Polygon', coordinates: number[][][] }
  | { type: 'MultiPolygon', coordinates: number[][][][] }

export interface FeatureSpec {
  name: string
  type: FeatureType
  levels?: string[]
}

export interface ModelSpec {
  /** a regression (the default when absent) or gradient-boosted trees */
  kind?: 'glm' | 'gbdt'
  /** the trees' settings (kind "gbdt"; DEFAULT_TREE_SETTINGS when absent) */
  trees?: { trees: number, depth: number, learningRate: number, gamma: number, minChildWeight: number, bins: number }
  family: 'binomial' | 'poisson'
  outcome: string
  features: FeatureSpec[]
  lambda: number
  algorithm: 'admm' | 'newton'
  tolerance: number
  maxRounds: number
  roundDeadlineMs: number
  dropAfterRounds: number
  /** ADMM: clip a neighbour's iterate to clip x max(1, |start|) (default 1); null turns clipping off */
  clip?: number | null
}

/** `maskPartners`: give every region with a single neighbour a second edge (see withMaskPartners) */
export type GraphSpec = ({ edges: Array<[string, string]> } | { topology: Topology }) & { maskPartners?: boolean }

export interface Federation {
  version: 1
  federationId: string
  description?: string
  members: FederationMember[]
  graph: GraphSpec
  /** the graph as region pairs, whatever form the file used; each undirected edge once */
  edges: ReadonlyArray<readonly [string, string]>
  bootstrap: string[]
  network: {
    /** CIDR multiaddrs of the consortium ('/ip4/10.1.0.0/ipcidr/16') exempt from inbound rate limits */
    allow: string[]
  }
  /** as written: 64 hex digits, or a path to a key file */
  psk?: string
  /** the pnet swarm key document, once the key is known (inline hex, or read by loadFederation) */
  preSharedKey?: Uint8Array
  /** a key file still to be read (parseFederation does no I/O; loadFederation reads it) */
  preSharedKeyFile?: string
  model: ModelSpec
  /** the h thresholds of the warning levels yellow, orange and red (increasing, in (0, 1)), for the operator's view */
  warningLevels?: [number, number, number]
}

/** Bounds of a region's outline: positions per member, and over the whole file. */
export const GEOMETRY_BOUNDS = Object.freeze({ positionsPerMember: 20_000, positionsInFile: 200_000, rings: 1_000 })

const FEDERATION_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
const HEX_KEY = /^[0-9a-fA-F]{64}$/

const multiaddrString = z.string().min(1).superRefine((value, ctx) => {
  try {
    multiaddr(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: `not a valid multiaddr: ${JSON.stringify(excerpt(value))}` })
  }
})

const peerIdString = z.string().min(1).superRefine((value, ctx) => {
  try {
    const id = peerIdFromString(value)
    if (id.type !== 'Ed25519') ctx.addIssue({ code: 'custom', message: `must be an Ed25519 peer id, got ${id.type}` })
  } catch {
    ctx.addIssue({ code: 'custom', message: `not a valid peer id: ${JSON.stringify(excerpt(value))}` })
  }
})

const columnName = z.string().regex(COLUMN_NAME_PATTERN, `1 to ${JOB_BOUNDS.nameLength.max} characters, no control characters`)

/** A finite number in [min, max] (zod's own checks let a value of 3e9 ms through). */
function bounded (range: { min: number, max: number }, integer = false) {
  const base = integer ? z.number().int() : z.number()
  return base.refine(Number.isFinite, 'must be finite').refine((value) => value >= range.min && value <= range.max, `must be between ${range.min} and ${range.max}`)
}

/**
 * A feature's type, in the words of the schemas (`number`, `category`) or the earlier ones of the
 * federation files (`numeric`, `categorical`), and `binary` (a number that is 0 or 1); each is read as
 * the type the model uses (numeric, binary, categorical), so that both spellings make the same job.
 */
export const FEATURE_TYPE_WORDS: Readonly<Record<string, FeatureType>> = Object.freeze({ number: 'numeric', numeric: 'numeric', binary: 'binary', category: 'categorical', categorical: 'categorical' })

export const FEATURE_TYPE_RULE = 'a feature\'s type is "number" (or "numeric"), "binary" (a number that is 0 or 1) or "category" (or "categorical", with its levels)'

const featureType = z.string({ error: FEATURE_TYPE_RULE }).refine((word) => Object.hasOwn(FEATURE_TYPE_WORDS, word), { error: (issue) => `${typeof issue.input === 'string' ? `"${excerpt(issue.input)}" is no type: ` : ''}${FEATURE_TYPE_RULE}` })
  .transform((word) => FEATURE_TYPE_WORDS[word] as FeatureType)

const featureSchema = z.strictObject({
  name: columnName,
  type: featureType,
  levels: z.array(columnName).max(JOB_BOUNDS.levels.max).optional()
}).superRefine((feature, ctx) => {
  if (feature.type === 'categorical') {
    if (feature.levels === undefined || feature.levels.length < 2) {
      ctx.addIssue({ code: 'custom', path: ['levels'], message: 'a category feature needs at least two levels' })
    } else if (new Set(feature.levels).size !== feature.levels.length) {
      ctx.addIssue({ code: 'custom', path: ['levels'], message: 'levels must be distinct' })
    }
  } else if (feature.levels !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['levels'], message: `only category features have levels, this one is ${feature.type === 'numeric' ? 'a number' : 'binary'}` })
  }
})

/** A model as a federation file states it and as a proposal carries it; every number bounded by JOB_BOUNDS. */
/** Boosted trees' settings (a model of kind "gbdt"); `lambda` is the L2 penalty on leaf weights. */
export const treeSettingsSchema = z.strictObject({
  trees: bounded(JOB_BOUNDS.trees, true),
  depth: bounded(JOB_BOUNDS.depth, true),
  learningRate: bounded(JOB_BOUNDS.learningRate),
  gamma: bounded(JOB_BOUNDS.gamma),
  minChildWeight: bounded(JOB_BOUNDS.minChildWeight),
  bins: bounded(JOB_BOUNDS.bins, true)
})

export type TreeSettings = z.infer<typeof treeSettingsSchema>

export { DEFAULT_TREE_SETTINGS }

export const modelSchema = z.strictObject({
  /** a regression (the default) or gradient-boosted trees */
  kind: z.enum(['glm', 'gbdt']).optional(),
  trees: treeSettingsSchema.optional(),
  family: z.enum(['binomial', 'poisson']),
  outcome: columnName,
  features: z.array(featureSchema).min(1).max(JOB_BOUNDS.features.max),
  lambda: bounded(JOB_BOUNDS.lambda),
  algorithm: z.enum(['admm', 'newton']),
  tolerance: bounded(JOB_BOUNDS.tolerance),
  maxRounds: bounded(JOB_BOUNDS.maxRounds, true),
  roundDeadlineMs: bounded(JOB_BOUNDS.roundDeadlineMs, true),
  dropAfterRounds: bounded(JOB_BOUNDS.dropAfterRounds, true),
  clip: bounded(JOB_BOUNDS.clipRadius).nullable().optional()
}).superRefine((model, ctx) => {
  if (model.trees !== undefined && model.kind !== 'gbdt') ctx.addIssue({ code: 'custom', path: ['trees'], message: 'tree settings apply only to a model of kind "gbdt"' })
  if (model.kind === 'gbdt') {
    // the deepest level's histograms, which every member builds and the masked sums carry: bounded, so
    // that a proposal cannot make every member allocate gigabytes
    const settings = model.trees ?? DEFAULT_TREE_SETTINGS
    const slots = model.features.reduce((total, feature) => total + (feature.type === 'categorical' ? (feature.levels?.length ?? 2) : settings.bins) + 1, 0)
    const values = 2 ** (settings.depth - 1) * slots * 3
    if (values > JOB_BOUNDS.treeHistogramValues) ctx.addIssue({ code: 'custom', path: ['trees'], message: `the deepest level's histograms would hold ${values} values (2^(depth - 1) nodes x ${slots} bins x 3), more than ${JOB_BOUNDS.treeHistogramValues}: use fewer bins, a smaller depth or fewer features` })
  }
  const seen = new Set<string>()
  model.features.forEach((feature, index) => {
    if (seen.has(feature.name)) ctx.addIssue({ code: 'custom', path: ['features', index, 'name'], message: `duplicate feature ${excerpt(feature.name)}` })
    if (feature.name === model.outcome) ctx.addIssue({ code: 'custom', path: ['features', index, 'name'], message: 'the outcome cannot also be a feature' })
    seen.add(feature.name)
  })
})

const position = z.array(z.number().refine(Number.isFinite, 'must be finite')).min(2).max(3).superRefine((value, ctx) => {
  const [longitude, latitude] = value as [number, number]
  if (longitude < -180 || longitude > 180) ctx.addIssue({ code: 'custom', path: [0], message: 'a longitude must be between -180 and 180' })
  if (latitude < -90 || latitude > 90) ctx.addIssue({ code: 'custom', path: [1], message: 'a latitude must be between -90 and 90' })
})

const ring = z.array(position).min(4, 'a ring needs at least four positions (the first repeated last)').max(GEOMETRY_BOUNDS.positionsPerMember).refine((value) => {
  const first = value[0]
  const last = value.at(-1)
  return first !== undefined && last !== undefined && first[0] === last[0] && first[1] === last[1]
}, 'a ring must be closed: its last position the same as its first')

/** A GeoJSON Polygon or MultiPolygon, bounded in rings and positions. */
export const geometrySchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('Polygon'), coordinates: z.array(ring).min(1).max(GEOMETRY_BOUNDS.rings) }),
  z.strictObject({ type: z.literal('MultiPolygon'), coordinates: z.array(z.array(ring).min(1).max(GEOMETRY_BOUNDS.rings)).min(1).max(GEOMETRY_BOUNDS.rings) })
]).superRefine((geometry, ctx) => {
  const rings = geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat()
  if (rings.length > GEOMETRY_BOUNDS.rings) ctx.addIssue({ code: 'custom', path: ['coordinates'], message: `at most ${GEOMETRY_BOUNDS.rings} rings` })
  const positions = rings.reduce((total, entry) => total + entry.length, 0)
  if (positions > GEOMETRY_BOUNDS.positionsPerMember) ctx.addIssue({ code: 'custom', path: ['coordinates'], message: `at most ${GEOMETRY_BOUNDS.positionsPerMember} positions per region, this outline has ${positions} (simplify it)` })
})

const warningLevelsSchema = z.tuple([z.number(), z.number(), z.number()]).refine((levels) => levels.every((level) => Number.isFinite(level) && level > 0 && level < 1), 'each level must be between 0 and 1').refine((levels) => levels[0] < levels[1] && levels[1] < levels[2], 'the levels must increase: yellow, orange, red')

const graphSchema = z.union([
  z.strictObject({ edges: z.array(z.tuple([z.string().min(1), z.string().min(1)])), maskPartners: z.boolean().optional() }),
  z.strictObject({ topology: z.enum(['ring', 'complete', 'star', 'line']), maskPartners: z.boolean().optional() })
])

const federationSchema = z.strictObject({
  version: z.literal(1),
  federationId: z.string().regex(FEDERATION_ID, 'letters, digits, ".", "_" or "-", at most 64, starting with a letter or digit'),
  description: z.string().max(2000).optional(),
  members: z.array(z.strictObject({
    region: z.string().refine(isRegionName, REGION_NAME_RULE),
    peerId: peerIdString,
    addresses: z.array(multiaddrString).max(16).optional(),
    geometry: geometrySchema.optional()
  })).min(1).max(10_000).superRefine((members, ctx) => {
    let positions = 0
    for (const member of members) {
      const geometry = member.geometry
      if (geometry === undefined) continue
      const rings = geometry.type === 'Polygon' ? geometry.coordinates : geometry.coordinates.flat()
      positions += rings.reduce((total, entry) => total + entry.length, 0)
    }
    if (positions > GEOMETRY_BOUNDS.positionsInFile) ctx.addIssue({ code: 'custom', message: `the regions' outlines hold ${positions} positions, more than ${GEOMETRY_BOUNDS.positionsInFile} in one file (simplify them)` })
  }),
  graph: graphSchema,
  bootstrap: z.array(multiaddrString).optional(),
  network: z.strictObject({
    allow: z.array(multiaddrString).optional()
  }).optional(),
  psk: z.string().min(1).optional(),
  model: modelSchema,
  warningLevels: warningLevelsSchema.optional()
})

type FederationDocument = z.infer<typeof federationSchema>

/**
 * Validates a parsed federation document. Throws FederationInvalidError (FEDERATION_INVALID) listing
 * every offending field by path. Does no I/O: a `psk` that is a file path is left in
 * `preSharedKeyFile` (resolved against the directory of `sourceName` when that is a path).
 */
export function parseFederation (json: unknown, sourceName = 'federation'): Federation {
  const parsed = federationSchema.safeParse(json)
  if (!parsed.success) {
    throw new FederationInvalidError(sourceName, parsed.error.issues.map((issue) => ({ path: formatPath(issue.path), message: issue.message })))
  }
  const document = parsed.data
  const issues: FederationIssue[] = []
  checkMembers(document, issues)
  const published = issues.length === 0 ? resolveEdges(document, issues) : []
  if (issues.length === 0) checkConnected(document, published, issues)
  const edges = document.graph.maskPartners === true && issues.length === 0 ? withMaskPartners(document, published) : published
  checkBootstrap(document, issues)
  if (issues.length > 0) throw new FederationInvalidError(sourceName, issues)

  const federation: Federation = {
    version: 1,
    federationId: document.federationId,
    members: document.members.map((member) => ({ region: member.region, peerId: member.peerId, addresses: member.addresses ?? [], ...(member.geometry === undefined ? {} : { geometry: member.geometry as RegionGeometry }) })),
    graph: document.graph,
    edges,
    bootstrap: document.bootstrap ?? [],
    network: { allow: document.network?.allow ?? [] },
    model: document.model
  }
  if (document.description !== undefined) federation.description = document.description
  if (document.warningLevels !== undefined) federation.warningLevels = document.warningLevels
  if (document.psk !== undefined) {
    federation.psk = document.psk
    if (HEX_KEY.test(document.psk)) federation.preSharedKey = swarmKeyFromHex(document.psk)
    else federation.preSharedKeyFile = isAbsolute(document.psk) ? document.psk : resolve(dirname(sourceName), document.psk)
  }
  return federation
}

/** Reads, parses and validates a federation file, and reads its pre-shared key file if it names one. */
export async function loadFederation (path: string, options: { signal?: AbortSignal } = {}): Promise<Federation> {
  let text: string
  try {
    text = await readFile(path, { encoding: 'utf8', signal: options.signal })
  } catch (cause) {
    throw new FederationReadError(`cannot read the federation file ${path}`, { cause })
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (cause) {
    throw new FederationInvalidError(path, [{ path: '', message: `not valid JSON (${(cause as Error).message})` }], { cause })
  }
  const federation = parseFederation(json, path)
  if (federation.preSharedKeyFile !== undefined) {
    federation.preSharedKey = await readPreSharedKey(federation.preSharedKeyFile, options)
    delete federation.preSharedKeyFile
  }
  return federation
}

/**
 * Reads a pre-shared key file: either the libp2p swarm key document ('/key/swarm/psk/1.0.0/', '/base16/',
 * 64 hex digits, as written by `generateKey` of @libp2p/pnet) or just the 64 hex digits.
 */
export async function readPreSharedKey (path: string, options: { signal?: AbortSignal } = {}): Promise<Uint8Array> {
  let text: string
  try {
    text = await readFile(path, { encoding: 'utf8', signal: options.signal })
  } catch (cause) {
    throw new FederationReadError(`cannot read the pre-shared key file ${path}`, { cause })
  }
  const lines = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0)
  const hex = lines.length === 1 ? lines[0] : (lines[0] === '/key/swarm/psk/1.0.0/' && lines[1] === '/base16/' && lines.length === 3 ? lines[2] : undefined)
  if (hex === undefined || !HEX_KEY.test(hex)) {
    throw new FederationInvalidError(path, [{ path: 'psk', message: 'not a swarm key: expected 64 hex digits, alone or in the /key/swarm/psk/1.0.0/ format' }])
  }
  return swarmKeyFromHex(hex)
}

/** The pnet key document for 32 key bytes given as hex. */
export function swarmKeyFromHex (hex: string): Uint8Array {
  if (!HEX_KEY.test(hex)) throw new RangeError('a pre-shared key is 64 hex digits')
  return new TextEncoder().encode(`/key/swarm/psk/1.0.0/\n/base16/\n${hex.toLowerCase()}`)
}

export function memberByRegion (federation: Federation, region: string): FederationMember | undefined {
  return federation.members.find((member) => member.region === region)
}

export function memberByPeerId (federation: Federation, peerId: string): FederationMember | undefined {
  return federation.members.find((member) => member.peerId === peerId)
}

export function isMember (federation: Federation, peerId: string): boolean {
  return memberByPeerId(federation, peerId) !== undefined
}

/** The peer ids of a member's graph neighbours, in member order; empty for a non-member. */
export function neighboursOf (federation: Federation, peerId: string): string[] {
  const self = memberByPeerId(federation, peerId)
  if (self === undefined) return []
  const regions = new Set<string>()
  for (const [a, b] of federation.edges) {
    if (a === self.region) regions.add(b)
    else if (b === self.region) regions.add(a)
  }
  return federation.members.filter((member) => regions.has(member.region)).map((member) => member.peerId)
}

function checkMembers (document: FederationDocument, issues: FederationIssue[]): void {
  const regions = new Map<string, number>()
  const peerIds = new Map<string, number>()
  document.members.forEach((member, index) => {
    const region = regions.get(member.region)
    if (region !== undefined) issues.push({ path: `members[${index}].region`, message: `duplicate region ${member.region} (also members[${region}])` })
    regions.set(member.region, index)
    const peer = peerIds.get(member.peerId)
    if (peer !== undefined) issues.push({ path: `members[${index}].peerId`, message: `duplicate peer id (also members[${peer}])` })
    peerIds.set(member.peerId, index)
    member.addresses?.forEach((address, addressIndex) => {
      const named = multiaddr(address).getComponents().find((component) => component.name === 'p2p')?.value
      if (named !== undefined && named !== member.peerId) {
        issues.push({ path: `members[${index}].addresses[${addressIndex}]`, message: 'names a different peer id than the member' })
      }
    })
  })
}

/**
 * `graph.maskPartners`: every region with a single neighbour gets a second edge, to the first other
 * neighbour (in member order) of that neighbour, the rule the joint risk's simulator uses. A masked
 * sum hides a region's value only from a peer that lacks one of its masks, and a region's only
 * neighbour holds both; with a second partner, unmasking takes two colluding peers. Every member
 * derives the same edges from the file, and the peers use them like any other edge.
 */
function withMaskPartners (document: FederationDocument, edges: ReadonlyArray<readonly [string, string]>): Array<readonly [string, string]> {
  const regions = document.members.map((member) => member.region)
  const graph = jointRiskGraph(graphFromEdges(regions, edges.map(([a, b]) => [a, b] as [string, string])))
  return graph.neighbours.flatMap((list, node) => list.filter((other) => other > node).map((other) => [regions[node] as string, regions[other] as string] as const))
}

function resolveEdges (document: FederationDocument, issues: FederationIssue[]): Array<readonly [string, string]> {
  const regions = document.members.map((member) => member.region)
  const graph = document.graph
  if ('topology' in graph) {
    const n = regions.length
    const pairs: Array<[number, number]> = []
    switch (graph.topology) {
      case 'ring':
        if (n < 3) {
          issues.push({ path: 'graph.topology', message: `a ring needs at least three members, there are ${n}` })
          return []
        }
        for (let i = 0; i < n; i++) pairs.push([i, (i + 1) % n])
        break
      case 'line':
        for (let i = 0; i + 1 < n; i++) pairs.push([i, i + 1])
        break
      case 'star':
        for (let i = 1; i < n; i++) pairs.push([0, i])
        break
      case 'complete':
        for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) pairs.push([i, j])
        break
    }
    return pairs.map(([a, b]) => [regions[a] as string, regions[b] as string] as const)
  }
  const known = new Set(regions)
  const seen = new Set<string>()
  const edges: Array<readonly [string, string]> = []
  graph.edges.forEach(([a, b], index) => {
    if (!known.has(a)) issues.push({ path: `graph.edges[${index}][0]`, message: `${excerpt(a)} is not a member region` })
    if (!known.has(b)) issues.push({ path: `graph.edges[${index}][1]`, message: `${excerpt(b)} is not a member region` })
    if (a === b) issues.push({ path: `graph.edges[${index}]`, message: 'an edge cannot join a region to itself' })
    const key = a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`
    if (seen.has(key)) issues.push({ path: `graph.edges[${index}]`, message: 'duplicate edge' })
    seen.add(key)
    edges.push([a, b])
  })
  return edges
}

function checkConnected (document: FederationDocument, edges: ReadonlyArray<readonly [string, string]>, issues: FederationIssue[]): void {
  const adjacency = new Map<string, string[]>(document.members.map((member) => [member.region, []]))
  for (const [a, b] of edges) {
    adjacency.get(a)?.push(b)
    adjacency.get(b)?.push(a)
  }
  const start = document.members[0]?.region as string
  const reached = new Set([start])
  const queue = [start]
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    for (const neighbour of adjacency.get(next) ?? []) {
      if (!reached.has(neighbour)) {
        reached.add(neighbour)
        queue.push(neighbour)
      }
    }
  }
  const unreached = document.members.filter((member) => !reached.has(member.region)).map((member) => member.region)
  if (unreached.length > 0) issues.push({ path: 'graph', message: `the graph is not connected: ${unreached.join(', ')} cannot be reached from ${start}` })
}

function checkBootstrap (document: FederationDocument, issues: FederationIssue[]): void {
  const peerIds = new Set(document.members.map((member) => member.peerId))
  document.bootstrap?.forEach((address, index) => {
    const named = multiaddr(address).getComponents().find((component) => component.name === 'p2p')?.value
    if (named !== undefined && !peerIds.has(named)) issues.push({ path: `bootstrap[${index}]`, message: 'names a peer id that is not a member' })
  })
}

function formatPath (path: readonly PropertyKey[]): string {
  let out = ''
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`
    else out += out === '' ? String(key) : `.${String(key)}`
  }
  return out
}

/** The federation's graph over peer ids, in member order: the same on every peer. */
export function federationGraph (federation: Federation): Graph {
  const byRegion = new Map(federation.members.map((member) => [member.region, member.peerId]))
  return graphFromEdges(federation.members.map((member) => member.peerId), federation.edges.map(([a, b]) => [byRegion.get(a) as string, byRegion.get(b) as string]))
}

/** A member's region, or the peer id itself for a peer that is not a member. */
export function regionOf (federation: Federation, peerId: string): string {
  return memberByPeerId(federation, peerId)?.region ?? peerId
}
