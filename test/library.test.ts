import { execFile } from 'node:child_process'
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { afterAll, describe, expect, it } from 'vitest'
import { readCsv, readForecastFiles, simulate, simulateForecast } from '../src/index.ts'
import { fixture, R_INFERT } from './helpers/data.ts'
import { GERMANY_2006 } from './helpers/forecast-data.ts'

/**
 * The published package as a user gets it: the project packed (`npm pack`, which builds dist/), the
 * tarball installed in a fresh folder without the network, and the README's library example run there
 * with plain node. The install is `npm ci --offline` from a lockfile that pins the tarball and the
 * project's own locked production dependencies, so npm takes every package from the cache that the
 * project's `npm ci` filled (a fresh `npm install` would ask the registry for version lists first);
 * development dependencies (tsx, TypeScript) are left out, so the package must run without them.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url))
const run = promisify(execFile)
let base = ''
afterAll(async () => { if (base !== '') await rm(base, { recursive: true, force: true }) })

/** npm itself: the one running the tests when there is one, else the one on the PATH. */
async function npm (args: string[], cwd: string): Promise<string> {
  const [command, prefix] = process.env.npm_execpath?.endsWith('.js') === true ? [process.execPath, [process.env.npm_execpath]] : ['npm', []]
  const { stdout } = await run(command, [...prefix, ...args], { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, maxBuffer: 64 * 1024 * 1024 })
  return stdout
}

/** The README's first JavaScript block under the library's heading. */
async function readmeExample (): Promise<string> {
  const readme = await readFile(join(ROOT, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('\n## For developers: the library'))
  const match = /```js\n([\s\S]*?)```/.exec(section)
  if (match === null) throw new Error('no library example in the README')
  return match[1] as string
}

describe('the packed library', () => {
  it('installs from its tarball without the network and runs the README example with plain node', async () => {
    base = await mkdtemp(join(tmpdir(), 'epimesh-library-'))
    // a clean copy of the project (no dist/, no build left over), with its installed modules
    const project = join(base, 'project')
    const skipped = new Set(['node_modules', '.git', 'dist', 'coverage', '.scratch'])
    await cp(ROOT, project, { recursive: true, filter: (source) => !skipped.has(relative(ROOT, source).split(sep)[0] as string) })
    await symlink(join(ROOT, 'node_modules'), join(project, 'node_modules'), 'dir')
    const packs = join(base, 'packs')
    await mkdir(packs)
    const [packed] = JSON.parse(await npm(['pack', '--json', '--pack-destination', packs], project)) as Array<{ filename: string, files: Array<{ path: string }> }>
    const files = packed?.files.map((file) => file.path) ?? []
    expect(files).toEqual(expect.arrayContaining(['package.json', 'README.md', 'bin/epimesh.js', 'dist/index.js', 'dist/index.d.ts', 'dist/peer/cli/main.js']))
    expect(files.filter((file) => file.startsWith('src/') || file.startsWith('test/') || file.endsWith('.ts') && !file.endsWith('.d.ts'))).toEqual([])

    const app = join(base, 'app')
    await mkdir(app)
    const tarball = `file:${relative(app, join(packs, packed?.filename as string))}`
    const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
    const manifest = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>
    const production = Object.entries(lock.packages).filter(([path, entry]) => path !== '' && entry.dev !== true)
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies: { epimesh: tarball } }))
    await writeFile(join(app, 'package-lock.json'), JSON.stringify({
      name: 'app',
      lockfileVersion: 3,
      requires: true,
      packages: {
        '': { name: 'app', dependencies: { epimesh: tarball } },
        'node_modules/epimesh': { version: manifest.version, resolved: tarball, license: manifest.license, dependencies: manifest.dependencies, bin: manifest.bin, engines: manifest.engines },
        ...Object.fromEntries(production)
      }
    }))
    // no install scripts: nothing here needs a build (LevelDB's binding comes prebuilt)
    await npm(['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], app)

    await writeFile(join(app, 'example.mjs'), await readmeExample())
    await cp(fixture('infert.csv'), join(app, 'infert.csv'))
    const { stdout } = await run(process.execPath, ['example.mjs'], { cwd: app })
    const lines = stdout.trim().split('\n')
    // the same simulation from the sources, in this process: the build changes nothing
    const expected = simulate({ data: await readCsv(fixture('infert.csv')), outcome: 'case', features: ['age', 'parity', 'induced', 'spontaneous'], peers: 8, topology: 'ring' })
    expect(lines[0]).toBe(`8 peers, ${expected.rounds} rounds, converged: true`)
    const table = lines.slice(1, 1 + R_INFERT.terms.length).map((line) => line.trim().split(/\s+/))
    expect(table.map((row) => row[0])).toEqual(R_INFERT.terms)
    table.forEach((row, index) => {
      // federated and pooled estimates, printed to 6 decimals, against R's glm
      expect(Math.abs(Number(row[1]) - (R_INFERT.estimate[index] as number))).toBeLessThan(1e-6)
      expect(Math.abs(Number(row[2]) - (R_INFERT.estimate[index] as number))).toBeLessThan(1e-6)
    })
    expect(Number(/pooled fit: (\S+)$/.exec(lines.at(-1) ?? '')?.[1])).toBeLessThan(1e-6)

    // the command line from the installed package: built JavaScript, no tsx
    const bin = join(app, 'node_modules', 'epimesh', 'bin', 'epimesh.js')
    expect((await run(process.execPath, [bin, '--help'], { cwd: app })).stdout).toContain('simulate-forecast [options]')
    const fromBin = JSON.parse((await run(process.execPath, [bin, 'simulate', '--data', 'infert.csv', '--outcome', 'case', '--features', 'age,parity,induced,spontaneous', '--peers', '8', '--json'], { cwd: app })).stdout) as { rounds: number, coefficients: Record<string, number> }
    expect(fromBin.rounds).toBe(expected.rounds)
    expect(fromBin.coefficients).toEqual(expected.coefficients)

    // and its types, through the package's exports, for a strict TypeScript user
    await writeFile(join(app, 'use.ts'), [
      'import { createPeer, fitGlm, simulate, type GlmFit, type JobOutcome, type SimulationResult } from \'epimesh\'',
      'const fit: SimulationResult = simulate({ data: [{ y: 1, x: 2 }, { y: 0, x: 1 }], outcome: \'y\' })',
      'const glm: GlmFit = fitGlm({ data: [{ y: 1, x: 2 }], outcome: \'y\', family: \'poisson\' })',
      'export const total: number = fit.relativeError + glm.logLikelihood',
      'export async function job (): Promise<JobOutcome> { const peer = await createPeer({ dir: \'d\', federation: \'f.json\' }, { signal: AbortSignal.timeout(1) }); return await peer.propose({ model: { lambda: 1 } }) }',
      '// @ts-expect-error: an outcome column is a name',
      'simulate({ data: [], outcome: 1 })'
    ].join('\n'))
    await writeFile(join(app, 'tsconfig.json'), JSON.stringify({
      compilerOptions: { target: 'ES2022', lib: ['ES2023'], module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] },
      files: ['use.ts']
    }))
    await run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app })
  }, 240_000)
})

describe('simulateForecast: the endemic-epidemic model by default, the log-linear one on request', () => {
  it('measlesDE: both models fitted by the simulated federation equal their pooled fits; the endemic-epidemic one forecasts better', async () => {
    const panel = await readForecastFiles({ counts: fixture('measlesDE_counts.csv'), population: fixture('measlesDE_population.csv'), adjacency: fixture('measlesDE_adjacency.csv'), totalPopulation: GERMANY_2006 })
    const endemicEpidemic = simulateForecast({ panel })
    const loglinear = simulateForecast({ panel, kind: 'loglinear' })
    expect(endemicEpidemic.fit.terms).toEqual(['ar.1', 'ne.1', 'end.1', 'end.sin(2 * pi * t/52)', 'end.cos(2 * pi * t/52)', '-log(overdisp)'])
    expect(loglinear.fit.terms[0]).toBe('(Intercept)')
    for (const output of [endemicEpidemic, loglinear]) expect(output.fit.relativeError).toBeLessThan(1e-6)
    expect(endemicEpidemic.skill?.model.logScore).toBeGreaterThan(loglinear.skill?.model.logScore as number)
    expect(simulateForecast({ panel, endemicEpidemic: { unitIntercepts: true } }).fit.terms).not.toContain('end.1')
    expect(() => simulateForecast({ panel, kind: 'arima' as 'loglinear' })).toThrow(/kind/)
  })
})
