import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'

/** The command line's entry point in this process: exit code and stdout. */
async function run (args: string[]): Promise<{ status: number, stdout: string }> {
  let stdout = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true)
  try {
    process.exitCode = undefined
    return { status: await main(args), stdout }
  } finally {
    process.exitCode = undefined
    out.mockRestore()
    err.mockRestore()
  }
}

/** Stdout as exactly one JSON object on one line. */
function oneObject (stdout: string): Record<string, unknown> {
  const lines = stdout.split('\n').filter((line) => line !== '')
  expect(lines).toHaveLength(1)
  const parsed = JSON.parse(lines[0] as string) as unknown
  expect(typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)).toBe(true)
  return parsed as Record<string, unknown>
}

let base = ''
beforeAll(async () => { base = await mkdtemp(join(tmpdir(), 'epimesh-json-')) })
afterAll(async () => { await rm(base, { recursive: true, force: true }) })

describe('--json on init and schema', () => {
  it('init: the peer id, region and folder, the same peer id that id gives', async () => {
    const dir = join(base, 'anhui')
    const init = await run(['init', '--dir', dir, '--region', 'Anhui', '--json'])
    expect(init.status).toBe(0)
    const object = oneObject(init.stdout)
    expect(Object.keys(object).sort()).toEqual(['dir', 'peerId', 'region'])
    expect(object).toMatchObject({ region: 'Anhui', dir })
    expect(String(object.peerId)).toMatch(/^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/)
    const id = await run(['id', '--dir', dir, '--json'])
    expect(oneObject(id.stdout).peerId).toBe(object.peerId)
  })

  it('schema: null before the first import, the stored schema after it, and what --set replaced', async () => {
    const dir = join(base, 'jiangsu')
    expect((await run(['init', '--dir', dir, '--region', 'Jiangsu'])).status).toBe(0)
    const empty = await run(['schema', '--dir', dir, '--json'])
    expect(empty.status).toBe(0)
    expect(oneObject(empty.stdout)).toEqual({ schema: null })

    await writeFile(join(base, 'cases.csv'), 'id,age,death\nr1,34,0\nr2,71,1\nr3,55,0\n')
    expect((await run(['import', '--dir', dir, '--cases', join(base, 'cases.csv')])).status).toBe(0)
    const shown = await run(['schema', '--dir', dir, '--json'])
    expect(shown.status).toBe(0)
    const schema = oneObject(shown.stdout).schema as { columns: Record<string, unknown> }
    expect(Object.keys(schema.columns)).toEqual(expect.arrayContaining(['age', 'death']))

    await writeFile(join(base, 'same.schema.json'), JSON.stringify(schema))
    const set = await run(['schema', '--dir', dir, '--set', join(base, 'same.schema.json'), '--json'])
    expect(set.status).toBe(0)
    expect(oneObject(set.stdout)).toEqual({ replaced: true, records: 3 })
  })
})
