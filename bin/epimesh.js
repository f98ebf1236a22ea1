#!/usr/bin/env node
// The command-line entry point. The sources are TypeScript run through tsx's loader, so a fresh clone
// needs no build step: `npm ci` and the command works.
import { register } from 'tsx/esm/api'

register()
// A reader that stops early (`epimesh status | head -2`) closes the pipe: that is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => { if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0); else throw error })
}
await import('../src/peer/polyfill.ts')
const { main } = await import('../src/peer/cli/main.ts')
process.exitCode = await main(process.argv.slice(2))
