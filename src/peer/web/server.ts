import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { randomBytes, timingSafeEqual } from 'node:crypto'

/**
 * A small local web server behind a token, for the operator's and the auditor's pages.
 *
 * The pages show sensitive aggregates, so every route answers 401 without the token. A browser
 * opens the printed address `http://HOST:PORT/?token=TOKEN` once: the server answers with an
 * HttpOnly, SameSite=Strict cookie and a redirect to the same path without the token, so the token
 * leaves the address bar and the history. Scripts may instead send `Authorization: Bearer TOKEN`.
 * Only GET and HEAD are served; request heads and bodies are bounded by time and size.
 */

export interface WebRequest {
  readonly path: string
  readonly query: URLSearchParams
  readonly raw: IncomingMessage
}

/** What a route answers: a status, a content type and a body, or a stream it writes itself. */
export type WebAnswer =
  | { readonly status?: number, readonly type: string, readonly body: string | Buffer }
  | { readonly stream: (response: ServerResponse) => void }

export type Route = (request: WebRequest) => WebAnswer | Promise<WebAnswer>

export interface WebServer {
  /** The base address, e.g. http://127.0.0.1:8080 */
  readonly url: string
  /** The address a browser opens once to be let in. */
  readonly loginUrl: string
  readonly token: string
  close (): Promise<void>
}

export interface WebServerOptions {
  readonly host: string
  readonly port: number
  /** Exact paths to routes; a path not listed answers 404 (after the token check). */
  readonly routes: ReadonlyMap<string, Route>
  readonly token?: string
}

const COOKIE = 'epimesh_token'

function cookieToken (request: IncomingMessage): string | undefined {
  const header = String(request.headers.cookie ?? '').slice(0, 4096)
  for (const part of header.split(';')) {
    const [name, ...rest] = part.trim().split('=')
    if (name === COOKIE) return rest.join('=')
  }
  return undefined
}

function sameSecret (given: string | undefined, expected: Buffer): boolean {
  if (given === undefined) return false
  const bytes = Buffer.from(given.slice(0, 256))
  return bytes.length === expected.length && timingSafeEqual(bytes, expected)
}

function send (response: ServerResponse, status: number, type: string, body: string | Buffer, headers: Record<string, string> = {}): void {
  response.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
    ...headers
  })
  response.end(body)
}

/** Starts the server; it listens on `host` only (the callers default to 127.0.0.1). */
export async function startWebServer (options: WebServerOptions): Promise<WebServer> {
  const token = options.token ?? randomBytes(24).toString('base64url')
  const secret = Buffer.from(token)
  const bearer = Buffer.from(`Bearer ${token}`)
  const server: Server = createServer((request, response) => {
    let url: URL
    try {
      url = new URL((request.url ?? '/').slice(0, 8192), 'http://local')
    } catch {
      send(response, 400, 'text/plain; charset=utf-8', 'bad request\n'); return
    }
    const fromQuery = url.searchParams.get('token') ?? undefined
    const authorised = sameSecret(String(request.headers.authorization ?? ''), bearer) ||
      sameSecret(cookieToken(request), secret) || sameSecret(fromQuery, secret)
    if (!authorised) { send(response, 401, 'text/plain; charset=utf-8', 'unauthorised: open the address printed at start, with its token\n', { 'www-authenticate': 'Bearer' }); return }
    if (request.method !== 'GET' && request.method !== 'HEAD') { send(response, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { allow: 'GET, HEAD' }); return }
    if (fromQuery !== undefined) {
      url.searchParams.delete('token')
      const rest = url.searchParams.toString()
      send(response, 303, 'text/plain; charset=utf-8', '', {
        location: `${url.pathname}${rest === '' ? '' : `?${rest}`}`,
        'set-cookie': `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`
      })
      return
    }
    const route = options.routes.get(url.pathname)
    if (route === undefined) { send(response, 404, 'text/plain; charset=utf-8', 'not found\n'); return }
    Promise.resolve()
      .then(async () => await route({ path: url.pathname, query: url.searchParams, raw: request }))
      .then((answer) => {
        if ('stream' in answer) { answer.stream(response); return }
        send(response, answer.status ?? 200, answer.type, request.method === 'HEAD' ? '' : answer.body)
      })
      .catch((error: unknown) => {
        if (!response.headersSent) send(response, 500, 'text/plain; charset=utf-8', `internal error: ${error instanceof Error ? error.message : String(error)}\n`)
        else response.destroy()
      })
  })
  server.headersTimeout = 10_000
  server.requestTimeout = 10_000
  server.maxConnections = 64
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve() })
  })
  const bound = server.address() as AddressInfo
  const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address
  const url = `http://${host}:${bound.port}`
  return {
    url,
    loginUrl: `${url}/?token=${token}`,
    token,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => { server.close(() => { resolve() }) })
    }
  }
}
