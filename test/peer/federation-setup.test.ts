import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { createPeer } from '../../src/index.ts'
import { main } from '../../src/peer/cli/main.ts'
import { parseFederation } from '../../src/peer/federation.ts'

/**
 * Setting up a federation from the command line: `id` shows a folder's peer id and region, `federation
 * init` writes a file from the members' folders (features typed from their schemas), `federation
 * check` lists every problem of a file, and with --dir whether it fits a folder. Run in-process on
 * data folders made with `init` and `import`.
 */

let base = ''
const peerIds = new Map<string, string>()
const dir = (region: string): string => join(base, region)

async function run (args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    return { status: await main(args), stdout, stderr }
  } finally {
    out.mockRestore()
    err.mockRestore()
  }
}

async function must (args: string[]): Promise<string> {
  const result = await run(args)
  expect(result.status, result.stderr).toBe(0)
  return result.stdout
}

const schema = (sexLevels: string[]): object => ({
  version: 1,
  id: 'id',
  outcome: 'case',
  date: 'onset',
  columns: { age: { type: 'number' }, sex: { type: 'category', levels: sexLevels }, case: { type: 'number' }, onset: { type: 'date' }, note: { action: 'drop' } }
})

/** A federation file as an operator writes it by hand (the README's example, for these folders). */
function handWritten (sexLevels: string[] = ['f', 'm', 'u']): any {
  return {
    version: 1,
    federationId: 'three-regions',
    members: ['alpha', 'beta', 'gamma'].map((region) => ({ region, peerId: peerIds.get(region) })),
    graph: { topology: 'ring' },
    model: { family: 'binomial', outcome: 'case', features: [{ name: 'age', type: 'number' }, { name: 'sex', type: 'category', levels: sexLevels }], lambda: 0, algorithm: 'admm', tolerance: 1e-8, maxRounds: 3000, roundDeadlineMs: 2000, dropAfterRounds: 0 }
  }
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'epimesh-federation-setup-'))
  // three regions with records; gamma's schema allows a third level of sex; delta has no records yet
  for (const [region, levels] of [['alpha', ['f', 'm']], ['beta', ['f', 'm']], ['gamma', ['f', 'm', 'u']], ['delta', null]] as const) {
    const initialised = await must(['init', '--dir', dir(region), '--region', region])
    peerIds.set(region, /peer id (\S+)/.exec(initialised)?.[1] as string)
    if (levels === null) continue
    await writeFile(join(base, `${region}-schema.json`), JSON.stringify(schema([...levels])))
    await writeFile(join(base, `${region}.csv`), 'id,age,sex,case,onset,note\n1,30,f,1,2024-01-02,x\n2,41,m,0,2024-01-03,y\n3,52,f,0,2024-01-04,z\n')
    await must(['import', '--dir', dir(region), '--cases', join(base, `${region}.csv`), '--schema', join(base, `${region}-schema.json`)])
  }
})
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

describe('epimesh id', () => {
  it('prints the folder\'s peer id, region and known addresses', async () => {
    const text = await must(['id', '--dir', dir('alpha')])
    expect(text).toContain(`peer id    ${peerIds.get('alpha') ?? ''}`)
    expect(text).toContain('region     alpha')
    expect(text).toContain('none known')
    expect(JSON.parse(await must(['id', '--dir', dir('beta'), '--json']))).toEqual({ peerId: peerIds.get('beta'), region: 'beta', addresses: [], addressesUpdatedAt: null })
    // the addresses a peer recorded when it last ran
    const address = `/ip4/127.0.0.1/tcp/4711/p2p/${peerIds.get('gamma') ?? ''}`
    await writeFile(join(dir('gamma'), 'status.json'), JSON.stringify({ peerId: peerIds.get('gamma'), updatedAt: '2026-01-01T00:00:00.000Z', addresses: [address, 7] }))
    expect(JSON.parse(await must(['id', '--dir', dir('gamma'), '--json']))).toMatchObject({ addresses: [address], addressesUpdatedAt: '2026-01-01T00:00:00.000Z' })
    await rm(join(dir('gamma'), 'status.json'))
  })

  it('shows the addresses a started peer listens on', async () => {
    const federation = { ...handWritten(), members: [{ region: 'beta', peerId: peerIds.get('beta') }], graph: { topology: 'line' } }
    const peer = await createPeer({ dir: dir('beta'), federation, listen: ['/ip4/127.0.0.1/tcp/0'], watchProposals: false }, { signal: AbortSignal.timeout(20_000) })
    try {
      const shown = JSON.parse(await must(['id', '--dir', dir('beta'), '--json'])) as { addresses: string[] }
      expect(shown.addresses.length).toBeGreaterThan(0)
      expect(shown.addresses).toEqual(peer.addresses())
      for (const address of shown.addresses) expect(address).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/\\d+/p2p/${peerIds.get('beta') ?? ''}$`))
    } finally {
      await peer.stop()
    }
    await rm(join(dir('beta'), 'status.json'))
  })

  it('exits 2 with IDENTITY_MISSING on a folder without identity', async () => {
    const missing = await run(['id', '--dir', join(base, 'nowhere')])
    expect(missing.status).toBe(2)
    expect(missing.stderr).toContain('[IDENTITY_MISSING]')
    expect(missing.stdout).toBe('')
  })
})

describe('epimesh federation check', () => {
  it('passes a valid file with a one-line summary, and says whether it fits each folder', async () => {
    const file = join(base, 'hand.json')
    await writeFile(file, JSON.stringify(handWritten()))
    const checked = await must(['federation', 'check', file])
    expect(checked).toContain('valid;')
    expect(checked).toContain('3 members (alpha, beta, gamma)')
    expect(checked).toContain('ring graph with 3 edges')
    expect(checked).toContain('binomial case ~ age + sex (3 levels)')
    for (const region of ['alpha', 'beta', 'gamma']) expect(await must(['federation', 'check', file, '--dir', dir(region)])).toContain(`fits ${dir(region)}`)
    expect(JSON.parse(await must(['federation', 'check', file, '--json']))).toMatchObject({ valid: true, problems: [], members: 3, edges: 3 })

    // a folder that is not a member, and has no records: both said
    const outsider = await run(['federation', 'check', file, '--dir', dir('delta'), '--json'])
    expect(outsider.status).toBe(2)
    const problems = JSON.parse(outsider.stdout).problems as Array<{ path: string, message: string }>
    expect(problems.map((problem) => problem.path)).toEqual(['members', 'model'])
    expect(problems[0]?.message).toContain(peerIds.get('delta'))

    // gamma's records may say "u", which a file with two levels lacks; the file is fine for the others
    const twoLevels = join(base, 'two-levels.json')
    await writeFile(twoLevels, JSON.stringify(handWritten(['f', 'm'])))
    await must(['federation', 'check', twoLevels, '--dir', dir('alpha')])
    const gamma = await run(['federation', 'check', twoLevels, '--dir', dir('gamma')])
    expect(gamma.status).toBe(2)
    expect(gamma.stdout.trim().split('\n')).toHaveLength(1)
    expect(gamma.stdout).toContain('model.features[1].levels: ')
    expect(gamma.stdout).toContain('"u"')
  })

  it('prints every problem of a bad file, and of a folder against it, and exits 2', async () => {
    const good = handWritten()
    const bad = structuredClone(good)
    bad.model.features[0].type = 'integer'
    bad.model.tolerance = 0
    bad.members[1].peerId = 'not-a-peer-id'
    const badFile = join(base, 'bad.json')
    await writeFile(badFile, JSON.stringify(bad))
    const result = await run(['federation', 'check', badFile])
    expect(result.status).toBe(2)
    const lines = result.stdout.trim().split('\n')
    expect(lines).toHaveLength(3)
    expect(lines.map((line) => line.slice(badFile.length + 2).split(':')[0]).sort()).toEqual(['members[1].peerId', 'model.features[0].type', 'model.tolerance'])
    expect(result.stderr).toContain('3 problems [FEDERATION_INVALID]')

    // a graph the members cannot form, an outcome and a feature the folder lacks: all three at once
    const unfit = structuredClone(good)
    unfit.members = unfit.members.slice(0, 2)
    unfit.model.outcome = 'Death'
    unfit.model.features.push({ name: 'onset', type: 'number' })
    const unfitFile = join(base, 'unfit.json')
    await writeFile(unfitFile, JSON.stringify(unfit))
    const against = await run(['federation', 'check', unfitFile, '--dir', dir('alpha'), '--json'])
    expect(against.status).toBe(2)
    const report = JSON.parse(against.stdout) as { valid: boolean, problems: Array<{ path: string, message: string }> }
    expect(report.valid).toBe(false)
    expect(report.problems.map((problem) => problem.path)).toEqual(['graph.topology', 'model.outcome', 'model.features[2]'])
    expect(report.problems[1]?.message).toContain('"Death" is not a column')
    expect(report.problems[2]?.message).toContain('date column')

    // a count model of a category outcome
    const counted = structuredClone(good)
    counted.model.family = 'poisson'
    counted.model.outcome = 'sex'
    counted.model.features = [{ name: 'age', type: 'numeric' }]
    const countedFile = join(base, 'counted.json')
    await writeFile(countedFile, JSON.stringify(counted))
    const countedCheck = await run(['federation', 'check', countedFile, '--dir', dir('alpha')])
    expect(countedCheck.status).toBe(2)
    expect(countedCheck.stdout).toContain('model.outcome: "sex" is a category column')

    const notJson = join(base, 'not.json')
    await writeFile(notJson, '{"version": 1,')
    const broken = await run(['federation', 'check', notJson])
    expect(broken.status).toBe(2)
    expect(broken.stdout).toContain('not valid JSON')
    expect((await run(['federation', 'check', join(base, 'absent.json')])).stderr).toContain('[FEDERATION_READ_FAILED]')
  })
})

describe('epimesh federation init', () => {
  it('writes a file from the folders, typed from their schemas, that check passes for every member', async () => {
    const file = join(base, 'federation.json')
    const written = await must(['federation', 'init', '--out', file, dir('alpha'), dir('beta'), dir('gamma')])
    expect(written).toContain('3 members (alpha, beta, gamma)')
    const document = JSON.parse(await readFile(file, 'utf8'))
    expect(document.members).toEqual(['alpha', 'beta', 'gamma'].map((region) => ({ region, peerId: peerIds.get(region) })))
    expect(document.graph).toEqual({ topology: 'ring' })
    // the schema's outcome; every number and category column besides it; the date and the dropped column left out
    expect(document.model.outcome).toBe('case')
    expect(document.model.features).toEqual([{ name: 'age', type: 'number' }, { name: 'sex', type: 'category', levels: ['f', 'm', 'u'] }])
    expect(parseFederation(document).edges).toHaveLength(3)

    // the file written is the one a hand would write, and check passes it for every member
    expect(document).toEqual({ ...handWritten(), federationId: 'federation' })
    for (const region of ['alpha', 'beta', 'gamma']) expect(await must(['federation', 'check', file, '--dir', dir(region)])).toContain(`fits ${dir(region)}`)
  })

  it('refuses to overwrite a file without --force; takes the outcome, features and topology asked for', async () => {
    const file = join(base, 'chosen.json')
    await writeFile(file, 'keep me')
    const refused = await run(['federation', 'init', '--out', file, dir('alpha'), dir('beta')])
    expect(refused.status).toBe(2)
    expect(refused.stderr).toContain('[FEDERATION_FILE_EXISTS]')
    expect(await readFile(file, 'utf8')).toBe('keep me')

    const printed = JSON.parse(await must(['federation', 'init', '--out', file, '--force', '--outcome', 'case', '--features', 'sex', '--topology', 'complete', '--id', 'two-regions', '--json', dir('alpha'), dir('beta')]))
    const document = JSON.parse(await readFile(file, 'utf8'))
    // --json: the file as written
    expect(printed).toEqual({ out: file, federation: document })
    expect(document.federationId).toBe('two-regions')
    expect(document.graph).toEqual({ topology: 'complete' })
    expect(document.model.features).toEqual([{ name: 'sex', type: 'category', levels: ['f', 'm'] }])
    expect(await must(['federation', 'check', file, '--dir', dir('beta')])).toContain('2 members (alpha, beta); complete graph with 1 edges')
    // --addresses: the members' listen addresses, in their order, before their peers have run
    await must(['federation', 'init', '--out', file, '--force', '--outcome', 'case', '--features', 'sex', '--addresses', '/ip4/127.0.0.1/tcp/4001,/ip4/127.0.0.1/tcp/4002', dir('alpha'), dir('beta')])
    expect(JSON.parse(await readFile(file, 'utf8')).members.map((member: { addresses?: string[] }) => member.addresses)).toEqual([['/ip4/127.0.0.1/tcp/4001'], ['/ip4/127.0.0.1/tcp/4002']])
    const short = await run(['federation', 'init', '--out', file, '--force', '--addresses', '/ip4/127.0.0.1/tcp/4001', dir('alpha'), dir('beta')])
    expect(short.status).toBe(2)
    expect(short.stderr).toContain('--addresses gives 1 address for 2 folders')
    const notAddress = await run(['federation', 'init', '--out', file, '--force', '--outcome', 'case', '--features', 'sex', '--addresses', 'here,there', dir('alpha'), dir('beta')])
    expect(notAddress.status).toBe(2)
    expect(notAddress.stderr).toContain('members[0].addresses[0]')
  })

  it('refuses columns a schema cannot give, and folders without records', async () => {
    const file = join(base, 'never.json')
    for (const [args, code] of [
      [['--features', 'onset'], 'FEDERATION_SCHEMA_MISMATCH'],
      [['--features', 'note'], 'FEDERATION_SCHEMA_MISMATCH'],
      [['--outcome', 'Death'], 'FEDERATION_SCHEMA_MISMATCH'],
      [['--outcome', 'sex', '--features', 'age', '--family', 'poisson'], 'FEDERATION_SCHEMA_MISMATCH'],
      [['--topology', 'mesh'], 'OPTION_INVALID'],
      [['--features', 'age,,sex'], 'OPTION_INVALID']
    ] as const) {
      const result = await run(['federation', 'init', '--out', file, ...args, dir('alpha'), dir('beta'), dir('gamma')])
      expect(result.status, args.join(' ')).toBe(2)
      expect(result.stderr).toContain(`[${code}]`)
    }
    const empty = await run(['federation', 'init', '--out', file, dir('alpha'), dir('delta')])
    expect(empty.status).toBe(2)
    expect(empty.stderr).toContain('[FEDERATION_SCHEMA_MISMATCH]')
    expect(empty.stderr).toContain(dir('delta'))
    await expect(readFile(file)).rejects.toMatchObject({ code: 'ENOENT' })
  })
})
