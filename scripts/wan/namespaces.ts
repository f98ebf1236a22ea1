import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'

/**
 * A private network of Linux network namespaces for a WAN-like federation: one namespace per peer and
 * one router namespace, each peer joined to the router by its own veth pair. Every veth end is created
 * directly inside its namespace, so nothing appears in the host's own namespace, and every address
 * (10.77.0.0/16) exists only inside these namespaces:
 *
 *   peer i (namespace <prefix>-<i>)        router (namespace <prefix>-r)
 *     wan0 10.77.i.2/30  <---- veth ---->    p<i> 10.77.i.1/30
 *     route 10.77.0.0/24 via 10.77.i.1       lo   10.77.0.i/32  (peer i's address at the relay)
 *
 * The router does not forward IP packets (a new namespace starts with forwarding off) and a peer has
 * no route to another peer's 10.77.j.0/30: the only way from one peer to another is a process in the
 * router namespace (the delaying relay) that listens on 10.77.0.j and connects onwards to 10.77.j.2.
 * The namespaces' names carry a random suffix, so that runs side by side do not collide.
 */

export interface WanHost {
  /** the peer's namespace */
  namespace: string
  /** its own address, on its end of the veth */
  address: string
  /** the router's end of its veth */
  gateway: string
  /** where the others reach it: an address of the router, on which the relay listens */
  relayAddress: string
}

export interface WanNetwork {
  /** the random suffix shared by the namespaces' names */
  id: string
  router: string
  hosts: WanHost[]
  /** deletes every namespace created (their veths go with them); safe to call twice */
  teardown: () => Promise<void>
}

const IP_TIMEOUT_MS = 10_000
export const WAN_MAX_PEERS = 64

/** Runs `ip ARGS`; rejects with its error output. */
export async function ip (args: readonly string[]): Promise<string> {
  return await new Promise((resolve, reject) => {
    execFile('ip', [...args], { timeout: IP_TIMEOUT_MS }, (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() === '' ? error.message : stderr.trim()}`))
      else resolve(stdout)
    })
  })
}

/** The arguments of `ip` that run COMMAND ARGS inside a namespace (ip execs it: its pid is the command's). */
export function inNamespace (namespace: string, command: string, args: readonly string[]): string[] {
  return ['netns', 'exec', namespace, command, ...args]
}

/**
 * Whether this machine lets us build the network: Linux, root, the `ip` command, and a namespace with a
 * veth pair that can be created and deleted. The reason when not, for a skip message.
 */
export async function namespaceSupport (): Promise<{ supported: true } | { supported: false, reason: string }> {
  if (process.platform !== 'linux') return { supported: false, reason: `network namespaces need Linux (this is ${process.platform})` }
  if (process.getuid?.() !== 0) return { supported: false, reason: 'creating network namespaces needs root (run as root, or in a container that grants CAP_NET_ADMIN and CAP_SYS_ADMIN)' }
  try {
    await ip(['-V'])
  } catch (error) {
    return { supported: false, reason: `the \`ip\` command (iproute2) is not available: ${(error as Error).message}` }
  }
  const probe = `epw-probe-${randomBytes(4).toString('hex')}`
  try {
    await ip(['netns', 'add', probe])
  } catch (error) {
    return { supported: false, reason: `cannot create a network namespace: ${(error as Error).message}` }
  }
  try {
    await ip(['link', 'add', 'name', 'a', 'netns', probe, 'type', 'veth', 'peer', 'name', 'b', 'netns', probe])
    return { supported: true }
  } catch (error) {
    return { supported: false, reason: `cannot create a veth pair in a namespace: ${(error as Error).message}` }
  } finally {
    await ip(['netns', 'del', probe]).catch(() => {})
  }
}

/** Builds the router and `peers` peer namespaces; on any failure deletes what it made and rethrows. */
export async function createWanNetwork (peers: number): Promise<WanNetwork> {
  if (!Number.isInteger(peers) || peers < 2 || peers > WAN_MAX_PEERS) throw new RangeError(`peers must be an integer from 2 to ${WAN_MAX_PEERS}, got ${peers}`)
  const id = randomBytes(3).toString('hex')
  const router = `epw-${id}-r`
  const created: string[] = []
  let tornDown = false
  const teardown = async (): Promise<void> => {
    if (tornDown) return
    tornDown = true
    const failures: string[] = []
    for (const namespace of created.reverse()) await ip(['netns', 'del', namespace]).catch((error: unknown) => { failures.push((error as Error).message) })
    if (failures.length > 0) throw new Error(`tearing the network down: ${failures.join('; ')}`)
  }
  const add = async (namespace: string): Promise<void> => {
    await ip(['netns', 'add', namespace])
    created.push(namespace)
    await ip(['-n', namespace, 'link', 'set', 'lo', 'up'])
  }
  try {
    await add(router)
    const hosts: WanHost[] = []
    for (let index = 1; index <= peers; index++) {
      const host: WanHost = { namespace: `epw-${id}-${index}`, address: `10.77.${index}.2`, gateway: `10.77.${index}.1`, relayAddress: `10.77.0.${index}` }
      await add(host.namespace)
      await ip(['link', 'add', 'name', `p${index}`, 'netns', router, 'type', 'veth', 'peer', 'name', 'wan0', 'netns', host.namespace])
      await ip(['-n', router, 'addr', 'add', `${host.gateway}/30`, 'dev', `p${index}`])
      await ip(['-n', router, 'link', 'set', `p${index}`, 'up'])
      await ip(['-n', router, 'addr', 'add', `${host.relayAddress}/32`, 'dev', 'lo'])
      await ip(['-n', host.namespace, 'addr', 'add', `${host.address}/30`, 'dev', 'wan0'])
      await ip(['-n', host.namespace, 'link', 'set', 'wan0', 'up'])
      await ip(['-n', host.namespace, 'route', 'add', '10.77.0.0/24', 'via', host.gateway])
      hosts.push(host)
    }
    return { id, router, hosts, teardown }
  } catch (error) {
    await teardown().catch(() => {})
    throw error
  }
}

/** The namespaces of this kind that exist now (a run killed before its teardown leaves some). */
export async function wanNamespaces (id?: string): Promise<string[]> {
  const listed = await ip(['netns', 'list'])
  return listed.split('\n').map((line) => line.split(' ')[0] ?? '').filter((name) => name.startsWith(id === undefined ? 'epw-' : `epw-${id}-`))
}
