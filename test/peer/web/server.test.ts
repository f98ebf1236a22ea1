import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startWebServer, type WebRequest, type WebServer } from '../../../src/peer/web/server.ts'
import { browserSkipReason, launchBrowser } from '../../helpers/browser.ts'

describe('the token-protected web server', () => {
  let server: WebServer
  beforeAll(async () => {
    server = await startWebServer({
      host: '127.0.0.1',
      port: 0,
      routes: new Map([
        ['/', () => ({ type: 'text/html; charset=utf-8', body: '<!doctype html><title>t</title><h1 id="h">hello</h1>' })],
        ['/data.json', (request: WebRequest) => ({ type: 'application/json', body: JSON.stringify({ q: request.query.get('q') }) })],
        ['/boom', () => { throw new Error('broken route') }]
      ])
    })
  })
  afterAll(async () => { await server.close() })

  it('answers 401 to every route without the token, and serves with it', async () => {
    for (const path of ['/', '/data.json', '/nothing', '/boom']) {
      const response = await fetch(`${server.url}${path}`)
      expect(response.status).toBe(401)
      expect(await response.text()).not.toContain('hello')
    }
    const wrong = await fetch(`${server.url}/data.json`, { headers: { authorization: 'Bearer nope' } })
    expect(wrong.status).toBe(401)
    const right = await fetch(`${server.url}/data.json?q=x`, { headers: { authorization: `Bearer ${server.token}` } })
    expect(right.status).toBe(200)
    expect(await right.json()).toEqual({ q: 'x' })
    const missing = await fetch(`${server.url}/nothing`, { headers: { authorization: `Bearer ${server.token}` } })
    expect(missing.status).toBe(404)
    const broken = await fetch(`${server.url}/boom`, { headers: { authorization: `Bearer ${server.token}` } })
    expect(broken.status).toBe(500)
    const post = await fetch(`${server.url}/`, { method: 'POST', headers: { authorization: `Bearer ${server.token}` } })
    expect(post.status).toBe(405)
  })

  it('is bound to loopback', () => {
    expect(new URL(server.url).hostname).toBe('127.0.0.1')
  })

  it('trades the token in the address for a cookie and drops it from the address', async () => {
    const response = await fetch(server.loginUrl, { redirect: 'manual' })
    expect(response.status).toBe(303)
    expect(response.headers.get('location')).toBe('/')
    const cookie = response.headers.get('set-cookie') ?? ''
    expect(cookie).toMatch(/HttpOnly/)
    expect(cookie).toMatch(/SameSite=Strict/)
    const again = await fetch(`${server.url}/`, { headers: { cookie: cookie.split(';')[0] ?? '' } })
    expect(again.status).toBe(200)
  })

  it.skipIf(browserSkipReason !== undefined)('lets a real browser in through the printed address', async () => {
    const browser = await launchBrowser()
    try {
      const page = await browser.newPage()
      await page.goto(server.loginUrl)
      expect(await page.textContent('#h')).toBe('hello')
      expect(page.url()).toBe(`${server.url}/`)
    } finally {
      await browser.close()
    }
  }, 60_000)
})
