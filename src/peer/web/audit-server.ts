import { randomBytes } from 'node:crypto'
import type { AuditFileText } from '../audit/verify.ts'
import { auditPageHtml } from './audit-page.ts'
import { buildAuditView, roundAt, type AuditView } from './audit-view.ts'
import { startWebServer, type Route, type WebServer } from './server.ts'

/**
 * `epimesh audit serve`: the logs are verified once, at start, offline; then the page, one round at a
 * time for its slider (/round.json?i=N), and the report as JSON for scripts (/report.json), behind the
 * token of the local web server.
 */
export interface AuditServer {
  readonly web: WebServer
  readonly view: AuditView
  close (): Promise<void>
}

export interface AuditServeOptions {
  readonly files: readonly AuditFileText[]
  readonly host: string
  readonly port: number
  readonly token?: string
}

const json = (status: number, value: unknown): { status: number, type: string, body: string } => ({ status, type: 'application/json; charset=utf-8', body: JSON.stringify(value) })

export async function serveAudit (options: AuditServeOptions): Promise<AuditServer> {
  const view = await buildAuditView(options.files)
  const nonce = randomBytes(16).toString('base64')
  const page = auditPageHtml(view, { nonce, generated: new Date().toISOString() })
  const routes = new Map<string, Route>([
    ['/', () => ({ type: 'text/html; charset=utf-8', body: page })],
    ['/round.json', (request) => {
      const asked = request.query.get('i') ?? ''
      if (!/^\d{1,9}$/.test(asked)) return json(400, { error: 'i must be a round position: a whole number from 0' })
      const round = roundAt(view, Number(asked))
      return round === undefined ? json(404, { error: `no round at position ${asked}: there are ${view.positions.length}` }) : json(200, round)
    }],
    ['/report.json', () => json(200, view.report)]
  ])
  const web = await startWebServer({ host: options.host, port: options.port, routes, ...(options.token === undefined ? {} : { token: options.token }) })
  return { web, view, close: async () => { await web.close() } }
}
