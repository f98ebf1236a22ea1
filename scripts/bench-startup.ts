/**
 * How fast a job gets going. Two figures:
 * - a proposal to a running federation: 3 regions' peers in this process (each its own libp2p node over
 *   TCP on 127.0.0.1, its own store), the first proposes a fit of infert (exact Newton unless --algorithm admm) again and again; for each
 *   proposal the time to every member's round 0 (`job.start`), to every member's first round done
 *   (`job.round.first`), and to the proposer's outcome;
 * - `npm start` end to end (`node bin/epimesh.js demo`: four peer processes, two jobs), unless --no-demo.
 *
 *   npx tsx scripts/bench-startup.ts [--peers 3] [--proposals 9] [--algorithm newton|admm] [--no-demo]
 */
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { median, startFederation, timeProposal } from './startup-lib.ts'

function option (name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`)
  return index > 0 ? (process.argv[index + 1] as string) : fallback
}
const peers = Number(option('peers', '3'))
const proposals = Number(option('proposals', '9'))
const algorithm = option('algorithm', 'newton') as 'admm' | 'newton'

const federation = await startFederation(peers)
const timings: Array<{ start: number, firstRound: number, done: number }> = []
try {
  for (let index = 0; index < proposals; index++) {
    const timing = await timeProposal(federation, `startup-${index}`, { algorithm })
    timings.push(timing)
    process.stdout.write(`proposal ${index}: every member at round 0 after ${timing.start.toFixed(1)} ms, first round done after ${timing.firstRound.toFixed(1)} ms, outcome after ${timing.done.toFixed(0)} ms\n`)
  }
} finally {
  await federation.stop()
}
const column = (key: 'start' | 'firstRound' | 'done'): string => `median ${median(timings.map((entry) => entry[key])).toFixed(1)} ms (min ${Math.min(...timings.map((entry) => entry[key])).toFixed(1)}, max ${Math.max(...timings.map((entry) => entry[key])).toFixed(1)})`
process.stdout.write(`proposal to a running ${peers}-peer federation, ${proposals} proposals:\n`)
process.stdout.write(`  to round 0 at every member:          ${column('start')}\n`)
process.stdout.write(`  to the first round done everywhere:  ${column('firstRound')}\n`)
process.stdout.write(`  to the proposer's outcome:           ${column('done')}\n`)

if (!process.argv.includes('--no-demo')) {
  const bin = fileURLToPath(new URL('../bin/epimesh.js', import.meta.url))
  const started = performance.now()
  const code = await new Promise<number>((resolve) => {
    const child = spawn(process.execPath, [bin, 'demo'], { stdio: ['ignore', 'ignore', 'inherit'] })
    child.on('exit', (exit) => { resolve(exit ?? 1) })
  })
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(`npm start (node bin/epimesh.js demo): ${seconds.toFixed(1)} s end to end, exit code ${code}\n`)
  if (code !== 0) process.exitCode = 1
}
