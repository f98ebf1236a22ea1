import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'

/**
 * Setting up a federation from the command line: `id` shows a folder's peer id and region. Run
 * in-process on data folders made with `init` and `import`.
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

  it('exits 2 with IDENTITY_MISSING on a folder without identity', async () => {
    const missing = await run(['id', '--dir', join(base, 'nowhere')])
    expect(missing.status).toBe(2)
    expect(missing.stderr).toContain('[IDENTITY_MISSING]')
    expect(missing.stdout).toBe('')
  })
})
