import '../../src/peer/polyfill.ts'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { generateKey } from '@libp2p/pnet'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { FederationInvalidError } from '../../src/peer/errors.ts'
import { isMember, loadFederation, memberByPeerId, memberByRegion, neighboursOf, parseFederation } from '../../src/peer/federation.ts'
import { federationJson, makeMembers, type Member } from './helpers.ts'

let members: Member[]
let dir: string

beforeAll(async () => {
  members = await makeMembers(5)
  dir = await mkdtemp(join(tmpdir(), 'epimesh-federation-'))
})

afterAll(async () => {
  await rm(dir, { recursive: true, force: true })
})

function issuesOf (json: unknown): Array<{ path: string, message: string }> {
  try {
    parseFederation(json, 'federation.json')
  } catch (err) {
    expect(err).toBeInstanceOf(FederationInvalidError)
    expect((err as FederationInvalidError).code).toBe('FEDERATION_INVALID')
    return [...(err as FederationInvalidError).issues]
  }
  throw new Error('expected the federation to be refused')
}

const ids = (indices: number[]): string[] => indices.map((index) => (members[index] as Member).peerId)

describe('topologies and neighbours', () => {
  test('ring, line, star, complete and explicit edges', () => {
    const ring = parseFederation(federationJson(members, { topology: 'ring' }))
    expect(neighboursOf(ring, ids([0])[0] as string)).toEqual(ids([1, 4]))
    expect(neighboursOf(ring, ids([2])[0] as string)).toEqual(ids([1, 3]))
    const line = parseFederation(federationJson(members, { topology: 'line' }))
    expect(neighboursOf(line, ids([0])[0] as string)).toEqual(ids([1]))
    expect(neighboursOf(line, ids([4])[0] as string)).toEqual(ids([3]))
    const star = parseFederation(federationJson(members, { topology: 'star' }))
    expect(neighboursOf(star, ids([0])[0] as string)).toEqual(ids([1, 2, 3, 4]))
    expect(neighboursOf(star, ids([3])[0] as string)).toEqual(ids([0]))
    const complete = parseFederation(federationJson(members, { topology: 'complete' }))
    expect(neighboursOf(complete, ids([2])[0] as string)).toEqual(ids([0, 1, 3, 4]))
    const explicit = parseFederation(federationJson(members, { edges: [['region-0', 'region-3'], ['region-3', 'region-1'], ['region-1', 'region-2'], ['region-2', 'region-4']] }))
    expect(neighboursOf(explicit, ids([3])[0] as string)).toEqual(ids([0, 1]))
    expect(explicit.edges).toHaveLength(4)
  })

  test('maskPartners gives every region with a single neighbour a second edge, two hops away', () => {
    const document = federationJson(members, { topology: 'line' })
    ;(document.graph as Record<string, unknown>).maskPartners = true
    const line = parseFederation(document)
    // region-0's only neighbour is region-1, whose other neighbour is region-2; region-4's is region-3, then region-2
    expect(neighboursOf(line, ids([0])[0] as string)).toEqual(ids([1, 2]))
    expect(neighboursOf(line, ids([4])[0] as string)).toEqual(ids([2, 3]))
    expect(neighboursOf(line, ids([2])[0] as string)).toEqual(ids([0, 1, 3, 4]))
    expect(line.edges).toHaveLength(6)
    for (const member of members) expect(neighboursOf(line, member.peerId).length).toBeGreaterThanOrEqual(2)
    // off by default, and a ring has nothing to add
    expect(parseFederation(federationJson(members, { topology: 'line' })).edges).toHaveLength(4)
    const ring = federationJson(members, { topology: 'ring' })
    ;(ring.graph as Record<string, unknown>).maskPartners = true
    expect(parseFederation(ring).edges).toHaveLength(5)
  })

  test('lookups by region and peer id', () => {
    const federation = parseFederation(federationJson(members))
    expect(memberByRegion(federation, 'region-2')?.peerId).toBe(ids([2])[0])
    expect(memberByPeerId(federation, ids([3])[0] as string)?.region).toBe('region-3')
    expect(memberByRegion(federation, 'nowhere')).toBeUndefined()
    expect(isMember(federation, ids([4])[0] as string)).toBe(true)
    expect(neighboursOf(federation, 'not-a-member')).toEqual([])
  })
})

describe('validation names the offending field', () => {
  test('schema errors carry their path', () => {
    const json = federationJson(members) as any
    json.members[2].peerId = 'not-a-peer-id'
    json.model.maxRounds = 0
    json.model.features.push({ name: 'district', type: 'categorical' })
    json.bootstrap = ['not a multiaddr']
    const paths = issuesOf(json).map((issue) => issue.path)
    expect(paths).toEqual(expect.arrayContaining(['members[2].peerId', 'model.maxRounds', 'model.features[1].levels', 'bootstrap[0]']))
  })

  test('a feature\'s type in the schemas\' words or the earlier ones makes the same model; another word is refused naming the accepted ones', () => {
    const schemaWords = federationJson(members) as any
    schemaWords.model.features = [{ name: 'age', type: 'number' }, { name: 'flag', type: 'binary' }, { name: 'sex', type: 'category', levels: ['f', 'm'] }]
    const earlierWords = federationJson(members) as any
    earlierWords.model.features = [{ name: 'age', type: 'numeric' }, { name: 'flag', type: 'binary' }, { name: 'sex', type: 'categorical', levels: ['f', 'm'] }]
    const model = parseFederation(schemaWords, 'federation.json').model
    expect(model.features.map((feature) => feature.type)).toEqual(['numeric', 'binary', 'categorical'])
    expect(model).toEqual(parseFederation(earlierWords, 'federation.json').model)
    const wrong = federationJson(members) as any
    wrong.model.features = [{ name: 'age', type: 'integer' }]
    const [issue] = issuesOf(wrong)
    expect(issue).toMatchObject({ path: 'model.features[0].type' })
    expect(issue?.message).toBe('"integer" is no type: a feature\'s type is "number" (or "numeric"), "binary" (a number that is 0 or 1) or "category" (or "categorical", with its levels)')
    // levels on a number feature: said in the same words
    schemaWords.model.features[0].levels = ['a', 'b']
    expect(issuesOf(schemaWords)[0]?.message).toBe('only category features have levels, this one is a number')
  })

  test('a model of kind gbdt takes tree settings within their bounds; tree settings on a regression are refused', () => {
    const json = federationJson(members) as any
    json.model.kind = 'gbdt'
    json.model.trees = { trees: 20, depth: 3, learningRate: 0.1, gamma: 0, minChildWeight: 1, bins: 16 }
    expect(parseFederation(json, 'federation.json').model.trees?.depth).toBe(3)
    json.model.trees = { trees: 0, depth: 11, learningRate: 2, gamma: -1, minChildWeight: 1, bins: 1 }
    expect(issuesOf(json).map((issue) => issue.path)).toEqual(expect.arrayContaining(['model.trees.trees', 'model.trees.depth', 'model.trees.learningRate', 'model.trees.gamma', 'model.trees.bins']))
    // a proposal whose deepest level's histograms would be huge is refused, not allocated
    json.model.trees = { trees: 20, depth: 10, learningRate: 0.1, gamma: 0, minChildWeight: 1, bins: 256 }
    json.model.features = Array.from({ length: 20 }, (_, index) => ({ name: `x${index}`, type: 'numeric' }))
    expect(issuesOf(json)).toEqual([expect.objectContaining({ path: 'model.trees', message: expect.stringMatching(/deepest level's histograms would hold 7895040 values/) })])
    json.model.trees = { trees: 20, depth: 3, learningRate: 0.1, gamma: 0, minChildWeight: 1, bins: 16 }
    delete json.model.kind
    expect(issuesOf(json)).toEqual([expect.objectContaining({ path: 'model.trees', message: expect.stringMatching(/only to a model of kind "gbdt"/) })])
  })

  test('edges must name member regions, and the graph must be connected', () => {
    expect(issuesOf(federationJson(members, { edges: [['region-0', 'region-9'], ['region-1', 'region-1']] })).map((issue) => issue.path))
      .toEqual(expect.arrayContaining(['graph.edges[0][1]', 'graph.edges[1]']))
    const disconnected = issuesOf(federationJson(members, { edges: [['region-0', 'region-1'], ['region-2', 'region-3'], ['region-3', 'region-4']] }))
    expect(disconnected).toEqual([expect.objectContaining({ path: 'graph' })])
    expect(disconnected[0]?.message).toContain('region-2')
  })

  test('duplicates and a small ring are refused', () => {
    const json = federationJson(members) as any
    json.members[3].region = 'region-1'
    json.members[4].peerId = json.members[0].peerId
    expect(issuesOf(json).map((issue) => issue.path)).toEqual(expect.arrayContaining(['members[3].region', 'members[4].peerId']))
    expect(issuesOf(federationJson(members.slice(0, 2), { topology: 'ring' })).map((issue) => issue.path)).toEqual(['graph.topology'])
    expect(issuesOf(federationJson(members, { edges: [['region-0', 'region-1'], ['region-1', 'region-0']] })).map((issue) => issue.path)).toContain('graph.edges[1]')
  })

  test('unknown fields are refused rather than ignored', () => {
    const json = { ...federationJson(members), bootsrap: [] }
    expect(issuesOf(json)[0]?.message).toContain('bootsrap')
  })

  test('a bootstrap address must name a member', async () => {
    const outsider = (await makeMembers(1, 'outsider'))[0] as Member
    const issues = issuesOf(federationJson(members, { bootstrap: [`/ip4/127.0.0.1/tcp/4001/p2p/${outsider.peerId}`] }))
    expect(issues.map((issue) => issue.path)).toEqual(['bootstrap[0]'])
  })
})

describe('files and pre-shared keys', () => {
  test('loadFederation reads the file and a key file next to it', async () => {
    const key = new Uint8Array(95)
    generateKey(key)
    await writeFile(join(dir, 'swarm.key'), key)
    await writeFile(join(dir, 'federation.json'), JSON.stringify(federationJson(members, { psk: 'swarm.key' })))
    const federation = await loadFederation(join(dir, 'federation.json'))
    expect(federation.preSharedKey).toEqual(key)
    expect(federation.preSharedKeyFile).toBeUndefined()
  })

  test('an inline hex key becomes a swarm key document', () => {
    const federation = parseFederation(federationJson(members, { psk: 'AB'.repeat(32) }))
    expect(new TextDecoder().decode(federation.preSharedKey)).toBe(`/key/swarm/psk/1.0.0/\n/base16/\n${'ab'.repeat(32)}`)
  })

  test('unreadable and invalid files have their own codes', async () => {
    await expect(loadFederation(join(dir, 'missing.json'))).rejects.toMatchObject({ code: 'FEDERATION_READ_FAILED' })
    await writeFile(join(dir, 'broken.json'), '{ "version": 1,')
    await expect(loadFederation(join(dir, 'broken.json'))).rejects.toMatchObject({ code: 'FEDERATION_INVALID' })
    await writeFile(join(dir, 'bad.key'), 'not a key')
    await writeFile(join(dir, 'with-bad-key.json'), JSON.stringify(federationJson(members, { psk: 'bad.key' })))
    await expect(loadFederation(join(dir, 'with-bad-key.json'))).rejects.toMatchObject({ code: 'FEDERATION_INVALID' })
  })
})
