import type { KeyObject } from 'node:crypto'
import { Worker } from 'node:worker_threads'
import { seal } from './crypto.ts'

/**
 * Sealing many values at once, for an import. Sealing (AES-256-GCM, crypto.ts) is most of what an
 * import costs per row on the main thread; a large import hands it to a worker thread, which seals one
 * chunk while the main thread reads and checks the next and LevelDB writes the one before. The values
 * and the key are the same as when sealed inline, and so is every byte format: only the thread differs.
 */
export interface Sealer {
  /** The sealed bytes of each JSON text, as values of one kind of record (the sublevel's name). */
  seal: (kind: string, texts: string[]) => Promise<Buffer[]>
  close: () => Promise<void>
}

export interface SealRequest {
  id: number
  key: KeyObject
  kind: string
  texts: string[]
}

export interface SealReply {
  id: number
  bytes: Uint8Array
  ends: Uint32Array
}

/** The texts sealed, end to end in one buffer (which a worker can hand over without a copy), with the end of each. */
export function sealTexts (request: Omit<SealRequest, 'id'>): { bytes: Uint8Array<ArrayBuffer>, ends: Uint32Array<ArrayBuffer> } {
  const context = Buffer.from(request.kind, 'utf8')
  const sealed = request.texts.map((text) => seal(request.key, context, Buffer.from(text, 'utf8')))
  const ends = new Uint32Array(sealed.length)
  let total = 0
  sealed.forEach((value, index) => {
    total += value.length
    ends[index] = total
  })
  const bytes = new Uint8Array(total)
  let at = 0
  for (const value of sealed) {
    bytes.set(value, at)
    at += value.length
  }
  return { bytes, ends }
}

function split (bytes: Uint8Array, ends: Uint32Array): Buffer[] {
  const values: Buffer[] = []
  let start = 0
  for (const end of ends) {
    values.push(Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start))
    start = end
  }
  return values
}

/** Sealing on the calling thread. */
export function inlineSealer (key: KeyObject): Sealer {
  return {
    seal: async (kind, texts) => {
      const context = Buffer.from(kind, 'utf8')
      return texts.map((text) => seal(key, context, Buffer.from(text, 'utf8')))
    },
    close: async () => {}
  }
}

/**
 * The worker's entry is a module of this folder; run from the TypeScript sources, the worker first
 * registers the same loader (tsx) the main thread runs under, which a worker does not inherit.
 */
const BOOTSTRAP = `
const { workerData } = require('node:worker_threads')
;(async () => {
  if (workerData.loader !== null) (await import(workerData.loader)).register()
  await import(workerData.entry)
})().catch((error) => { process.nextTick(() => { throw error }) })
`

/**
 * A sealer on a worker thread, started and ready, or null when no worker can be started here (it
 * failed, or was not ready within `readyMs`): the caller seals inline then.
 */
export async function startSealWorker (key: KeyObject, readyMs = 10_000): Promise<Sealer | null> {
  const fromSources = import.meta.url.endsWith('.ts')
  const entry = new URL(fromSources ? './seal-worker.ts' : './seal-worker.js', import.meta.url).href
  let loader: string | null = null
  if (fromSources) {
    try {
      loader = import.meta.resolve('tsx/esm/api')
    } catch {
      return null
    }
  }
  const worker = new Worker(BOOTSTRAP, { eval: true, workerData: { entry, loader } })
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => { resolve(false) }, readyMs)
    worker.once('message', (message) => {
      clearTimeout(timer)
      resolve(message === 'ready')
    })
    worker.once('error', () => {
      clearTimeout(timer)
      resolve(false)
    })
  })
  if (!ready) {
    await worker.terminate()
    return null
  }
  const waiting = new Map<number, { resolve: (values: Buffer[]) => void, reject: (error: Error) => void }>()
  let failure: Error | null = null
  const fail = (error: Error): void => {
    failure = error
    for (const { reject } of waiting.values()) reject(error)
    waiting.clear()
  }
  worker.on('message', (reply: SealReply) => {
    const request = waiting.get(reply.id)
    waiting.delete(reply.id)
    request?.resolve(split(reply.bytes, reply.ends))
  })
  worker.on('error', fail)
  worker.on('exit', () => { fail(new Error('the sealing thread stopped')) })
  let next = 0
  return {
    seal: async (kind, texts) => {
      if (failure !== null) throw failure
      const id = next++
      return await new Promise<Buffer[]>((resolve, reject) => {
        waiting.set(id, { resolve, reject })
        worker.postMessage({ id, key, kind, texts } satisfies SealRequest)
      })
    },
    close: async () => {
      worker.removeAllListeners('exit')
      await worker.terminate()
    }
  }
}
