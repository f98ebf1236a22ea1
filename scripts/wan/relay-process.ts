/**
 * The delaying relay as a process of its own (the WAN experiment starts it inside the router
 * namespace): `node --import tsx scripts/wan/relay-process.ts CONFIG.json [MAX_SECONDS]`.
 * Prints one JSON line when it listens ({"event":"relay.listening"}), and one with its statistics
 * ({"event":"relay.stats", ...}) when it stops: on SIGTERM or SIGINT, when its standard input closes
 * (the process that started it is gone), or after MAX_SECONDS (default 600) at the latest.
 */
import { readFile } from 'node:fs/promises'
import { createDelayRelayInit, DelayRelay } from '../../src/peer/net/delay-relay.ts'

const [configPath, maxSecondsText] = process.argv.slice(2)
if (configPath === undefined) {
  process.stderr.write('usage: relay-process.ts CONFIG.json [MAX_SECONDS]\n')
  process.exit(2)
}
const maxSeconds = maxSecondsText === undefined ? 600 : Number(maxSecondsText)
if (!Number.isFinite(maxSeconds) || maxSeconds <= 0 || maxSeconds > 86_400) {
  process.stderr.write(`MAX_SECONDS must be a number of seconds from 1 to 86400, got ${maxSecondsText}\n`)
  process.exit(2)
}
let init
try {
  init = createDelayRelayInit(JSON.parse(await readFile(configPath, 'utf8')), configPath)
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`)
  process.exit(2)
}
const relay = new DelayRelay(init, { onEvent: (event, fields) => { process.stderr.write(`${JSON.stringify({ event, ...fields })}\n`) } })
await relay.start()
process.stdout.write(`${JSON.stringify({ event: 'relay.listening', routes: init.routes.length })}\n`)

let stopping = false
const stop = async (why: string): Promise<void> => {
  if (stopping) return
  stopping = true
  const stats = relay.stats()
  await relay.stop()
  process.stdout.write(`${JSON.stringify({ event: 'relay.stats', why, ...stats })}\n`, () => { process.exit(0) })
}
process.once('SIGTERM', () => { void stop('SIGTERM') })
process.once('SIGINT', () => { void stop('SIGINT') })
process.stdin.on('end', () => { void stop('stdin closed') })
process.stdin.on('error', () => { void stop('stdin closed') })
process.stdin.resume()
setTimeout(() => { void stop('time limit') }, maxSeconds * 1000).unref()
