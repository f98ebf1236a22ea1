#!/usr/bin/env node
// The command-line entry point. In a clone there is no build step: `npm ci` and the command works. The
// TypeScript sources and their dependencies are bundled by esbuild (tsx's own compiler) into
// node_modules/.cache/epimesh-HASH/, once per version of the sources and the lock file (HASH is their
// digest; a few seconds, once), and the bundle runs on plain node: loading the sources through tsx's
// loader instead costs every process seconds (each of libp2p's hundreds of modules passes through the
// loader's hooks), and the demo and the tests start many. Should the bundle
// fail, the sources run through tsx's loader as before. The published package holds no sources, only
// their build in dist/ (npm pack builds it), which runs on plain node.
import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const root = fileURLToPath(new URL('..', import.meta.url))
const fromSources = existsSync(join(root, 'src/peer/cli/main.ts'))

/** Every .ts file under a folder, sorted. */
function sources (dir) {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith('.ts'))
    .map((entry) => join(entry.parentPath ?? entry.path, entry.name))
    .sort()
}

/**
 * The bundle of the current sources: its folder (built now if missing), or null when it cannot be built.
 * The folder sits three levels below the package root, as src/peer/cli/ does: the commands find the
 * package's own files (package.json, this file) at '../../../' from import.meta.url, from the sources,
 * from dist/peer/cli/ and from the bundle alike.
 */
async function bundle () {
  const files = sources(join(root, 'src'))
  const hash = createHash('sha256')
  hash.update(`bundle 2 ${process.version}\n`)
  // the dependencies are bundled too: their versions are in the lock file
  for (const file of [...files, join(root, 'package-lock.json')].filter((path) => existsSync(path))) hash.update(`${file.slice(root.length)}\n`).update(readFileSync(file))
  const cache = join(root, 'node_modules', '.cache')
  const out = join(cache, `epimesh-${hash.digest('hex').slice(0, 16)}`)
  if (existsSync(join(out, 'main.js'))) return out
  const { build } = await import('esbuild')
  const building = `${out}.${process.pid}.tmp`
  mkdirSync(cache, { recursive: true })
  try {
    await build({
      entryPoints: { main: join(root, 'src/peer/cli/main.ts'), polyfill: join(root, 'src/peer/polyfill.ts') },
      outdir: building,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: 'node20',
      // LevelDB's native binding stays where npm put it; everything else is bundled, which spares each
      // process resolving, opening and compiling hundreds of small modules (1.1 s of CPU against 0.35 s
      // to load the peer's code); CommonJS modules inside still get a require of their own
      external: ['classic-level', 'level', 'esbuild', 'tsx'],
      banner: { js: "import { createRequire as epimeshCreateRequire } from 'node:module'; const require = epimeshCreateRequire(import.meta.url);" },
      logLevel: 'silent'
    })
  } catch (error) {
    rmSync(building, { recursive: true, force: true })
    throw error
  }
  try {
    renameSync(building, out)
  } catch {
    // another process built the same bundle a moment ago
    rmSync(building, { recursive: true, force: true })
  }
  // bundles of older sources, once a day old (a process started from one may still load its chunks)
  for (const entry of readdirSync(cache)) {
    const path = join(cache, entry)
    if (entry.startsWith('epimesh-') && path !== out && Date.now() - statSync(path).mtimeMs > 24 * 3600_000) rmSync(path, { recursive: true, force: true })
  }
  return out
}

let entry = null
if (fromSources) {
  const out = process.env.EPIMESH_BUNDLE === '0' ? null : await bundle().catch(() => null)
  if (out === null) {
    const { register } = await import('tsx/esm/api')
    register()
    entry = { polyfill: join(root, 'src/peer/polyfill.ts'), main: join(root, 'src/peer/cli/main.ts') }
  } else {
    entry = { polyfill: join(out, 'polyfill.js'), main: join(out, 'main.js') }
  }
} else {
  entry = { polyfill: join(root, 'dist/peer/polyfill.js'), main: join(root, 'dist/peer/cli/main.js') }
}
// A reader that stops early (`epimesh status | head -2`) closes the pipe: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => { if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw error })
}
await import(pathToFileURL(entry.polyfill).href)
const { main } = await import(pathToFileURL(entry.main).href)
process.exitCode = await main(process.argv.slice(2))
