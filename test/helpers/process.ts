import { createServer } from 'node:net'

/** A TCP port on 127.0.0.1 that was free a moment ago (for peers started as separate processes). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => { resolve(typeof address === 'object' && address !== null ? address.port : 0) })
    })
  })
}

/** Polls `check` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function waitFor (check: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  throw new Error('timed out')
}
