import { mkdir, open, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { EpimeshError } from '../learning/errors.ts'

/**
 * A peer's persistent identity: an Ed25519 key in DIR/identity.key (mode 0600), so that the peer id
 * stays the same across restarts and every log entry it signs can be checked against it.
 */
export const IDENTITY_FILE = 'identity.key'

export class IdentityExistsError extends EpimeshError {
  static override readonly name = 'IdentityExistsError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('IDENTITY_EXISTS', message, options) }
}

export class IdentityMissingError extends EpimeshError {
  static override readonly name = 'IdentityMissingError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('IDENTITY_MISSING', message, options) }
}

export async function createIdentity (dir: string): Promise<{ privateKey: PrivateKey, peerId: string }> {
  await mkdir(dir, { recursive: true })
  const privateKey = await generateKeyPair('Ed25519')
  let handle
  try {
    // 'wx': refuse to overwrite an existing identity
    handle = await open(join(dir, IDENTITY_FILE), 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new IdentityExistsError(`${join(dir, IDENTITY_FILE)} already exists; a peer keeps its identity`, { cause: error })
    throw error
  }
  try {
    await handle.writeFile(privateKeyToProtobuf(privateKey))
    await handle.sync()
  } finally {
    await handle.close()
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() }
}

export async function loadIdentity (dir: string): Promise<{ privateKey: PrivateKey, peerId: string }> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(join(dir, IDENTITY_FILE))
  } catch (error) {
    throw new IdentityMissingError(`no identity in ${dir}: run epimesh init first`, { cause: error })
  }
  const privateKey = privateKeyFromProtobuf(bytes)
  if (privateKey.type !== 'Ed25519') throw new IdentityMissingError(`${join(dir, IDENTITY_FILE)} is not an Ed25519 key`)
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() }
}
