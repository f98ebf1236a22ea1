import { parentPort } from 'node:worker_threads'
import { sealTexts, type SealReply, type SealRequest } from './sealer.ts'

/**
 * The thread that seals an import's values (see sealer.ts): each request is a list of JSON texts of
 * one kind of record; the reply is their sealed bytes end to end in one transferred buffer, with the
 * end of each. The key comes with every request (a KeyObject crosses threads without its bytes being
 * exposed to JavaScript).
 */
const port = parentPort
if (port === null) throw new TypeError('seal-worker.ts is the entry of a worker thread, not a module to import')
port.on('message', (request: SealRequest) => {
  const { bytes, ends } = sealTexts(request)
  port.postMessage({ id: request.id, bytes, ends } satisfies SealReply, [bytes.buffer, ends.buffer])
})
port.postMessage('ready')
