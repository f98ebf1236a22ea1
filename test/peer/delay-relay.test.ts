import { createConnection, createServer, type Server, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import { afterEach, describe, expect, it } from 'vitest'
import { createDelayRelayInit, DelayRelay, DelayRelayConfigError, type DelayRelayInit } from '../../src/peer/net/delay-relay.ts'
import { freePort } from '../helpers/process.ts'

const stops: Array<() => Promise<void>> = []
afterEach(async () => { for (const stop of stops.splice(0).reverse()) await stop() })

/** An echo server on 127.0.0.1 that ends its side when the client ends. */
async function echoServer (): Promise<{ port: number, server: Server }> {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('data', (chunk) => { socket.write(chunk) })
    socket.on('end', () => { socket.end() })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  stops.push(async () => { await new Promise<void>((resolve) => { server.close(() => { resolve() }) }) })
  const address = server.address()
  return { port: typeof address === 'object' && address !== null ? address.port : 0, server }
}

async function relayTo (port: number, settings: Partial<DelayRelayInit>): Promise<{ relay: DelayRelay, port: number }> {
  const listen = await freePort()
  const relay = new DelayRelay(createDelayRelayInit({ routes: [{ listen: { host: '127.0.0.1', port: listen }, target: { host: '127.0.0.1', port } }], ...settings }))
  await relay.start()
  stops.push(async () => { await relay.stop() })
  return { relay, port: listen }
}

async function connect (port: number): Promise<Socket> {
  const socket = createConnection({ host: '127.0.0.1', port, noDelay: true, allowHalfOpen: true })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  stops.push(async () => { socket.destroy() })
  return socket
}

/** Reads until `bytes` bytes have arrived (or the stream ends); resolves with them and the time. */
async function readBytes (socket: Socket, bytes: number, timeoutMs = 5000): Promise<{ data: Buffer, at: number }> {
  return await new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let length = 0
    const timer = setTimeout(() => { cleanup(); reject(new Error(`only ${length} of ${bytes} bytes in ${timeoutMs} ms`)) }, timeoutMs)
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      length += chunk.length
      if (length >= bytes) { cleanup(); resolve({ data: Buffer.concat(chunks), at: performance.now() }) }
    }
    const cleanup = (): void => { clearTimeout(timer); socket.off('data', onData) }
    socket.on('data', onData)
  })
}

describe('the delaying TCP relay', () => {
  it('adds the one-way delay in each direction: an echo round trip takes at least twice the delay', async () => {
    const echo = await echoServer()
    const { relay, port } = await relayTo(echo.port, { delayMs: 40, holdProbability: 0 })
    const socket = await connect(port)
    const trips: number[] = []
    for (let trip = 0; trip < 5; trip++) {
      const sent = performance.now()
      socket.write(`ping ${trip}`)
      const { data, at } = await readBytes(socket, `ping ${trip}`.length)
      expect(data.toString()).toBe(`ping ${trip}`)
      trips.push(at - sent)
    }
    // the first trip also waits for the onward connection (opened one delay after the client's)
    for (const trip of trips) expect(trip).toBeGreaterThanOrEqual(79)
    expect(Math.min(...trips.slice(1))).toBeLessThan(80 + 60)
    const stats = relay.stats()
    expect(stats.connections).toBe(1)
    expect(stats.held).toBe(0)
    expect(stats.bytes).toBe(2 * trips.reduce((total, _, trip) => total + `ping ${trip}`.length, 0))
  })

  it('holds a fraction of the segments back further and keeps every byte in order behind them', async () => {
    const echo = await echoServer()
    const { relay, port } = await relayTo(echo.port, { delayMs: 5, holdProbability: 0.2, holdMs: 60, segmentBytes: 10, seed: 7 })
    const socket = await connect(port)
    const message = Buffer.from(Array.from({ length: 400 }, (_, index) => `<${String(index).padStart(4, '0')}>`).join(''))
    const started = performance.now()
    // written in pieces of uneven sizes, as an application's writes come
    for (let at = 0, step = 1; at < message.length; at += step, step = (step * 7) % 97 + 1) socket.write(message.subarray(at, at + step))
    const { data, at } = await readBytes(socket, message.length)
    expect(data.equals(message)).toBe(true)
    const stats = relay.stats()
    // every segment counted in both directions; about a fifth of them held
    expect(stats.segments).toBeGreaterThanOrEqual(2 * Math.ceil(message.length / 10))
    expect(stats.held / stats.segments).toBeGreaterThan(0.1)
    expect(stats.held / stats.segments).toBeLessThan(0.3)
    // at least one hold in each direction lies on the path of the last byte
    expect(at - started).toBeGreaterThanOrEqual(60)
  })

  it('passes the end of each direction on after the bytes before it, and closes the connection', async () => {
    const echo = await echoServer()
    const { relay, port } = await relayTo(echo.port, { delayMs: 20, holdProbability: 0 })
    const socket = await connect(port)
    socket.end('last words')
    const received: Buffer[] = []
    socket.on('data', (chunk: Buffer) => { received.push(chunk) })
    await new Promise<void>((resolve) => { socket.once('end', resolve) })
    expect(Buffer.concat(received).toString()).toBe('last words')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(relay.stats().open).toBe(0)
  })

  it('refuses connections beyond its bound and reports an onward dial that fails', async () => {
    const echo = await echoServer()
    const { relay, port } = await relayTo(echo.port, { delayMs: 1, holdProbability: 0, maxConnections: 1 })
    const first = await connect(port)
    first.write('x')
    await readBytes(first, 1)
    const second = createConnection({ host: '127.0.0.1', port })
    second.on('error', () => {})
    await new Promise<void>((resolve) => { second.once('close', () => { resolve() }) })
    expect(relay.stats().refused).toBe(1)

    const nowhere = await freePort()
    const events: string[] = []
    const dead = new DelayRelay(createDelayRelayInit({ routes: [{ listen: { host: '127.0.0.1', port: await freePort() }, target: { host: '127.0.0.1', port: nowhere } }], delayMs: 1 }), { onEvent: (event) => { events.push(event) } })
    await dead.start()
    stops.push(async () => { await dead.stop() })
    const orphan = createConnection({ host: '127.0.0.1', port: dead.init.routes[0]?.listen.port as number })
    orphan.on('error', () => {})
    await new Promise<void>((resolve) => { orphan.once('close', () => { resolve() }) })
    expect(dead.stats().failedDials).toBe(1)
    expect(events).toEqual(['relay.dial.failed'])
  })

  it('validates its configuration by schema, naming the field', () => {
    const check = (value: unknown): string => {
      try {
        createDelayRelayInit(value, 'relay.json')
      } catch (error) {
        expect(error).toBeInstanceOf(DelayRelayConfigError)
        expect((error as DelayRelayConfigError).code).toBe('RELAY_CONFIG_INVALID')
        return (error as Error).message
      }
      throw new Error('accepted')
    }
    const route = { listen: { host: '10.0.0.1', port: 4001 }, target: { host: '10.0.1.2', port: 4001 } }
    expect(check({ routes: [] })).toMatch(/relay\.json: routes/)
    expect(check({ routes: [route], delayMs: -1 })).toMatch(/delayMs/)
    expect(check({ routes: [route], holdProbability: 2 })).toMatch(/holdProbability/)
    expect(check({ routes: [{ ...route, target: { host: 'example.org', port: 4001 } }] })).toMatch(/routes\.0\.target\.host/)
    expect(check({ routes: [route], extra: 1 })).toMatch(/extra|unrecognized/i)
    const init = createDelayRelayInit({ routes: [route] })
    expect(init).toMatchObject({ delayMs: 20, holdProbability: 0.01, holdMs: 200, segmentBytes: 1448 })
  })
})
