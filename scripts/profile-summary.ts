/**
 * Summarises a V8 CPU profile (`node --cpu-prof`, or a benchmark's --profile): self time by package
 * (a dependency under node_modules, a file of ours under src/ or scripts/, Node's own code, the garbage
 * collector, idle) and by function, each as a share of the busy time (everything but idle).
 *
 *   npx tsx scripts/profile-summary.ts <file.cpuprofile> [--top 40] [--callers <function name>]
 *
 * `--callers` adds where a function's self time comes from: its callers' stacks, four frames up.
 */
import { readFile } from 'node:fs/promises'
import { z } from 'zod'

const profileSchema = z.object({
  nodes: z.array(z.object({
    id: z.number().int(),
    callFrame: z.object({ functionName: z.string(), url: z.string(), lineNumber: z.number().int() }),
    children: z.array(z.number().int()).optional()
  })).max(10_000_000),
  samples: z.array(z.number().int()).max(100_000_000),
  timeDeltas: z.array(z.number()).max(100_000_000)
})

function packageOf (url: string, name: string): string {
  if (url === '') return name.startsWith('(') ? name : '(native)'
  const modules = url.lastIndexOf('/node_modules/')
  if (modules >= 0) {
    const parts = url.slice(modules + '/node_modules/'.length).split('/')
    return parts[0]?.startsWith('@') === true ? `${parts[0]}/${parts[1] ?? ''}` : parts[0] ?? url
  }
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/').slice(0, 2).join('/')}`
  const own = /\/((?:src|scripts)\/.*)$/.exec(url)
  return own?.[1] ?? url
}

const args = process.argv.slice(2)
const file = args.find((arg) => !arg.startsWith('--'))
if (file === undefined) {
  console.error('usage: profile-summary.ts <file.cpuprofile> [--top N]')
  process.exit(2)
}
const topIndex = args.indexOf('--top')
const top = topIndex >= 0 ? Number(args[topIndex + 1]) : 40
if (!Number.isInteger(top) || top <= 0 || top > 10_000) {
  console.error(`--top: a whole number from 1 to 10000, got ${String(args[topIndex + 1])}`)
  process.exit(2)
}
const parsed = profileSchema.safeParse(JSON.parse(await readFile(file, 'utf8')))
if (!parsed.success) {
  console.error(`${file}: not a CPU profile: ${parsed.error.issues[0]?.path.join('.') ?? ''} ${parsed.error.issues[0]?.message ?? ''}`)
  process.exit(1)
}
const profile = parsed.data
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const selfUs = new Map<number, number>()
for (let index = 0; index < profile.samples.length; index++) {
  const id = profile.samples[index] as number
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[index] ?? 0))
}
const byPackage = new Map<string, number>()
const byFunction = new Map<string, number>()
let total = 0
let idle = 0
for (const [id, us] of selfUs) {
  const node = byId.get(id)
  if (node === undefined) continue
  const { functionName, url, lineNumber } = node.callFrame
  total += us
  if (functionName === '(idle)') { idle += us; continue }
  const pkg = packageOf(url, functionName)
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us)
  const key = `${functionName === '' ? '(anonymous)' : functionName}  ${pkg}${url === '' ? '' : `:${lineNumber + 1}`}`
  byFunction.set(key, (byFunction.get(key) ?? 0) + us)
}
const busy = total - idle
const callersIndex = args.indexOf('--callers')
const callersOf = callersIndex >= 0 ? args[callersIndex + 1] : undefined
const parent = new Map<number, number>()
for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
const byStack = new Map<string, number>()
if (callersOf !== undefined) {
  for (const [id, us] of selfUs) {
    if (byId.get(id)?.callFrame.functionName !== callersOf) continue
    const frames: string[] = []
    for (let up = parent.get(id); up !== undefined && frames.length < 4; up = parent.get(up)) {
      const frame = byId.get(up)?.callFrame
      if (frame !== undefined) frames.push(`${frame.functionName === '' ? '(anonymous)' : frame.functionName} (${packageOf(frame.url, frame.functionName)})`)
    }
    const key = frames.join(' < ')
    byStack.set(key, (byStack.get(key) ?? 0) + us)
  }
}
const show = (title: string, entries: Map<string, number>): void => {
  console.log(`\n${title}`)
  for (const [name, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(100 * us / busy).toFixed(1).padStart(6)}%  ${(us / 1000).toFixed(0).padStart(7)} ms  ${name}`)
  }
}
console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled, ${(busy / 1e6).toFixed(2)} s busy, ${(idle / 1e6).toFixed(2)} s idle`)
show('self time by package', byPackage)
show('self time by function', byFunction)
if (callersOf !== undefined) show(`${callersOf}: self time by callers`, byStack)
