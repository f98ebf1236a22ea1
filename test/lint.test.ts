import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ESLint } from 'eslint'
import { describe, expect, it } from 'vitest'

/**
 * The architecture's rules fail on the imports they forbid: each case lints a small file placed in the
 * folder it would live in, with the project's own configuration.
 */
const root = fileURLToPath(new URL('..', import.meta.url))
const eslint = new ESLint({ cwd: root })

async function rulesBroken (path: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: join(root, path) })
  return (result?.messages ?? []).map((message) => message.ruleId ?? message.message)
}

describe('the lint rules that keep the layers', () => {
  it('refuse an upward import: learning from consensus, consensus from peer, store from peer or learning', async () => {
    expect(await rulesBroken('src/learning/probe.ts', "import { buildTopology } from '../consensus/topology.ts'\nexport const probe = buildTopology\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/consensus/jobs/probe.ts', "import { createPeerNode } from '../../peer/net/node.ts'\nexport const probe = createPeerNode\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/store/probe.ts', "import { loadIdentity } from '../peer/identity.ts'\nexport const probe = loadIdentity\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/store/probe.ts', "import { fitModel } from '../learning/fit.ts'\nexport const probe = fitModel\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/errors.ts', "import { sha256 } from './consensus/sha256.ts'\nexport const probe = sha256\n")).toContain('no-restricted-imports')
  })

  it('keep the store\'s key layout private to src/store', async () => {
    const probe = "import { layoutOf } from '../../store/layout.ts'\nexport const probe = layoutOf\n"
    expect(await rulesBroken('src/peer/audit/probe.ts', probe)).toContain('no-restricted-imports')
    expect(await rulesBroken('test/peer/probe.test.ts', "import { layoutOf } from '../../src/store/layout.ts'\nexport const probe = layoutOf\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/store/probe.ts', "import { layoutOf } from './layout.ts'\nexport const probe = layoutOf\n")).toEqual([])
  })

  it('refuse I/O, clocks and randomness in the pure cores', async () => {
    expect(await rulesBroken('src/consensus/protocols/probe.ts', "import { readFile } from 'node:fs/promises'\nexport const probe = readFile\n")).toContain('no-restricted-imports')
    expect(await rulesBroken('src/learning/probe.ts', 'export const probe = (): number => Date.now() + Math.random()\n')).toEqual(expect.arrayContaining(['no-restricted-properties']))
  })

  it('accept the imports that flow the right way', async () => {
    expect(await rulesBroken('src/consensus/jobs/probe.ts', "import { fitModel } from '../../learning/fit.ts'\nexport const probe = fitModel\n")).toEqual([])
    expect(await rulesBroken('src/peer/runtime/probe.ts', "import { Store } from '../../store/store.ts'\nimport { fitJobProtocol } from '../../consensus/jobs/fit-job.ts'\nexport const probe = [Store, fitJobProtocol]\n")).toEqual([])
  })

  it('refuse an import cycle', async () => {
    const folder = await mkdtemp(join(root, 'src/consensus/lint-probe-'))
    try {
      await writeFile(join(folder, 'a.ts'), "import { b } from './b.ts'\nexport const a = (): number => b() + 1\n")
      await writeFile(join(folder, 'b.ts'), "import { a } from './a.ts'\nexport const b = (): number => a() - 1\n")
      const [result] = await eslint.lintFiles([relative(root, join(folder, 'a.ts'))])
      expect((result?.messages ?? []).map((message) => message.ruleId)).toContain('import-x/no-cycle')
    } finally {
      await rm(folder, { recursive: true, force: true })
    }
  })
})
