#!/usr/bin/env node
// The command-line entry point. In a clone the TypeScript sources run through tsx's loader, so there is
// no build step: `npm ci` and the command works. The published package holds no sources, only their
// build in dist/ (npm pack builds it), which runs on plain node.
import { existsSync } from 'node:fs'

const fromSources = existsSync(new URL('../src/peer/cli/main.ts', import.meta.url))
if (fromSources) {
  const { register } = await import('tsx/esm/api')
  register()
}
// A reader that stops early (`epimesh status | head -2`) closes the pipe: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => { if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw error })
}
await import(fromSources ? '../src/peer/polyfill.ts' : '../dist/peer/polyfill.js')
const { main } = await import(fromSources ? '../src/peer/cli/main.ts' : '../dist/peer/cli/main.js')
process.exitCode = await main(process.argv.slice(2))
