import { KEEP_ALIVE, type Libp2p, type PeerId } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { multiaddr } from '@multiformats/multiaddr'
import { combineSignals, sleep, waitUntil, withTimeout } from './abort.ts'
import type { Logger } from 'pino'

/**
 * Keeps this peer linked to its graph neighbours. One reachable member is enough to join: the bootstrap
 * addresses get this node into the DHT, and each neighbour's current addresses are then found by peer id
 * (`peerRouting.findPeer`) and dialled, retrying with a capped exponential backoff for as long as the
 * service runs. Neighbours are tagged KEEP_ALIVE so that the connection manager never prunes them and
 * redials them itself after a drop; this loop covers what that cannot (a neighbour that restarted on a
 * new address, or one that was never reached).
 */

export interface NeighbourLinksInit {
  neighbours: readonly string[]
  /** multiaddrs to join through, normally with /p2p/<member id> */
  bootstrap: readonly string[]
  dialTimeoutMs: number
  retryInitialMs: number
  retryMaxMs: number
  retryFactor: number
  checkIntervalMs: number
}

export interface NeighbourLinksComponents {
  libp2p: Libp2p
  logger?: Logger
}

export interface NeighbourStatus {
  connected: string[]
  missing: string[]
}

export class NeighbourLinks {
  private controller: AbortController | null = null
  private loops: Array<Promise<void>> = []
  private readonly wakers = new Map<string, () => void>()
  private readonly neighbourIds: PeerId[]
  private readonly onDisconnect = (event: CustomEvent<PeerId>): void => {
    this.wakers.get(event.detail.toString())?.()
  }

  constructor (private readonly init: NeighbourLinksInit, private readonly components: NeighbourLinksComponents) {
    this.neighbourIds = init.neighbours.map((id) => peerIdFromString(id))
  }

  async start (): Promise<void> {
    if (this.controller !== null) return
    const controller = new AbortController()
    this.controller = controller
    const { libp2p } = this.components
    await Promise.all(this.neighbourIds.map(async (peer) => {
      await libp2p.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } })
    }))
    libp2p.addEventListener('peer:disconnect', this.onDisconnect)
    this.loops = [
      this.bootstrapLoop(controller.signal),
      ...this.neighbourIds.map(async (peer) => { await this.neighbourLoop(peer, controller.signal) })
    ]
  }

  async stop (): Promise<void> {
    const controller = this.controller
    if (controller === null) return
    this.controller = null
    controller.abort()
    this.components.libp2p.removeEventListener('peer:disconnect', this.onDisconnect)
    for (const wake of this.wakers.values()) wake()
    await Promise.allSettled(this.loops)
    this.loops = []
  }

  status (): NeighbourStatus {
    const connected: string[] = []
    const missing: string[] = []
    for (const peer of this.neighbourIds) {
      (this.isConnected(peer) ? connected : missing).push(peer.toString())
    }
    return { connected, missing }
  }

  /** Waits until every neighbour is connected, or the time-out / signal ends the wait. */
  async waitForNeighbours (options: { signal?: AbortSignal, timeoutMs: number }): Promise<NeighbourStatus> {
    await waitUntil(() => this.status().missing.length === 0, {
      signal: withTimeout(combineSignals(options.signal, this.controller?.signal), options.timeoutMs),
      target: this.components.libp2p,
      events: ['peer:connect', 'connection:open']
    })
    return this.status()
  }

  private isConnected (peer: PeerId): boolean {
    return this.components.libp2p.getConnections(peer).some((connection) => connection.status === 'open')
  }

  /** Dials the bootstrap list whenever this node is connected to no one. */
  private async bootstrapLoop (signal: AbortSignal): Promise<void> {
    const { libp2p, logger } = this.components
    const self = libp2p.peerId.toString()
    const targets = this.init.bootstrap
      .map((address) => multiaddr(address))
      .filter((address) => address.getComponents().find((component) => component.name === 'p2p')?.value !== self)
    if (targets.length === 0) return
    let delay = this.init.retryInitialMs
    while (!signal.aborted) {
      if (libp2p.getConnections().length === 0) {
        const results = await Promise.allSettled(targets.map(async (address) => {
          await libp2p.dial(address, { signal: withTimeout(signal, this.init.dialTimeoutMs) })
        }))
        const reached = results.filter((result) => result.status === 'fulfilled').length
        logger?.debug({ reached, of: targets.length }, 'bootstrap')
        if (reached === 0) {
          await sleep(delay, signal)
          delay = Math.min(this.init.retryMaxMs, delay * this.init.retryFactor)
          continue
        }
        delay = this.init.retryInitialMs
      }
      await sleep(this.init.checkIntervalMs, signal)
    }
  }

  private async neighbourLoop (peer: PeerId, signal: AbortSignal): Promise<void> {
    const id = peer.toString()
    let delay = this.init.retryInitialMs
    let attempts = 0
    while (!signal.aborted) {
      if (this.isConnected(peer)) {
        delay = this.init.retryInitialMs
        attempts = 0
        await this.pause(id, this.init.checkIntervalMs, signal)
        continue
      }
      attempts++
      try {
        await this.connect(peer, withTimeout(signal, this.init.dialTimeoutMs), attempts > 1)
        this.components.logger?.debug({ neighbour: id, attempts }, 'neighbour connected')
        continue
      } catch (err) {
        if (signal.aborted) return
        this.components.logger?.debug({ neighbour: id, attempts, err: (err as Error).message, retryInMs: delay }, 'neighbour not reached')
      }
      await this.pause(id, delay, signal)
      delay = Math.min(this.init.retryMaxMs, delay * this.init.retryFactor)
    }
  }

  /** Known addresses first; failing that (or on a retry), ask the DHT for current ones. */
  private async connect (peer: PeerId, signal: AbortSignal, refresh: boolean): Promise<void> {
    const { libp2p } = this.components
    if (!refresh) {
      const known = await libp2p.peerStore.get(peer, { signal }).then((stored) => stored.addresses.length, () => 0)
      if (known > 0) {
        try {
          await libp2p.dial(peer, { signal })
          return
        } catch {
          // fall through to a DHT lookup
        }
      }
    }
    await libp2p.peerRouting.findPeer(peer, { signal, useCache: false })
    await libp2p.dial(peer, { signal })
  }

  private async pause (id: string, ms: number, signal: AbortSignal): Promise<void> {
    const woken = new AbortController()
    this.wakers.set(id, () => { woken.abort() })
    try {
      await sleep(ms, combineSignals(signal, woken.signal))
    } finally {
      this.wakers.delete(id)
    }
  }
}
