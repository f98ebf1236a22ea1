import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { EpimeshError } from '../../errors.ts'
import type { Federation } from '../federation.ts'
import type { PeerStatus } from '../runtime/peer.ts'
import { parseListenAddress } from '../runtime/metrics.ts'
import { DashboardData, DEFAULT_WARNING_LEVELS, type WarningLevels } from './dashboard-data.ts'
import { changedSections, PAGE_SCRIPT, pageHtml, renderSections } from './dashboard-page.ts'
import { startWebServer, type Route, type WebServer } from './server.ts'

/**
 * The operator's view of a region's peer (`epimesh start --http`, or `epimesh dashboard` on a folder
 * whose peer is not running): the page, its sections as JSON for the page's script, the snapshot as
 * JSON for scripts, and with a live peer its Prometheus text at /metrics, all behind the web server's
 * token (src/peer/web/server.ts). The token is written to DIR/http.token (0600).
 */

export class HttpAddressError extends EpimeshError {
  static override readonly name = 'HttpAddressError'
  readonly exitCode = 2
  constructor (flag: string, value: string, reason: string) {
    super('HTTP_ADDRESS', `${flag} ${JSON.stringify(value.slice(0, 80))}: ${reason} (give PORT or HOST:PORT, HOST an IP address or localhost; 127.0.0.1 unless given)`)
  }
}

/** `PORT`, `HOST:PORT` or `[IPv6]:PORT`, on 127.0.0.1 unless a host is given. */
export function parseHttpAddress (value: string, flag = '--http'): { host: string, port: number } {
  return parseListenAddress(value, (reason) => new HttpAddressError(flag, value, reason))
}

export interface DashboardInit {
  dir: string
  federation: Federation | null
  /** the running peer of this process; null serves the folder's saved state */
  live: { status: () => PeerStatus, metricsText?: () => Promise<string> } | null
  address: { host: string, port: number }
  /** the h thresholds of yellow, orange and red: the flag's, else the federation file's, else 0.25, 0.5, 0.75 */
  levels?: WarningLevels
  /** for the saved-state view: whether a peer has started on the folder since */
  peerRunning?: () => Promise<boolean>
  /** write the token to DIR/http.token (default true) */
  writeToken?: boolean
  token?: string
}

export interface Dashboard extends WebServer {
  close (): Promise<void>
}

export const TOKEN_FILE = 'http.token'

export async function startDashboard (init: DashboardInit): Promise<Dashboard> {
  const levels = init.levels ?? init.federation?.warningLevels ?? DEFAULT_WARNING_LEVELS
  const data = new DashboardData({ dir: init.dir, federation: init.federation, live: init.live, levels, ...(init.peerRunning === undefined ? {} : { peerRunning: init.peerRunning }) })
  const html = 'text/html; charset=utf-8'
  const json = 'application/json; charset=utf-8'
  const routes = new Map<string, Route>([
    ['/', async () => ({ type: html, body: pageHtml(await renderSections(await data.snapshot())) })],
    ['/dashboard.js', () => ({ type: 'text/javascript; charset=utf-8', body: PAGE_SCRIPT })],
    ['/api/fragments', async (request) => ({ type: json, body: JSON.stringify(changedSections(await renderSections(await data.snapshot()), request.query.get('known'))) })],
    ['/api/state', async () => ({ type: json, body: JSON.stringify(await data.snapshot()) })]
  ])
  const metricsText = init.live?.metricsText
  if (metricsText !== undefined) routes.set('/metrics', async () => ({ type: 'text/plain; version=0.0.4; charset=utf-8', body: await metricsText() }))
  data.start()
  let server: WebServer
  try {
    server = await startWebServer({ host: init.address.host, port: init.address.port, routes, ...(init.token === undefined ? {} : { token: init.token }) })
  } catch (error) {
    data.stop()
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL' || code === 'EACCES') throw new HttpAddressError('--http', `${init.address.host}:${init.address.port}`, code === 'EADDRINUSE' ? 'the port is in use' : code === 'EACCES' ? 'not allowed to listen there' : 'not an address of this machine')
    throw error
  }
  if (init.writeToken !== false) {
    // the token beside the store, readable by this user only
    const tokenFile = join(init.dir, TOKEN_FILE)
    await rm(tokenFile, { force: true })
    await writeFile(tokenFile, `${server.token}\n`, { mode: 0o600 })
  }
  return {
    url: server.url,
    loginUrl: server.loginUrl,
    token: server.token,
    close: async () => {
      data.stop()
      await server.close()
    }
  }
}
