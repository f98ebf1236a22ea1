import { open, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import type { PrivateKey } from '@libp2p/interface'
import { EpimeshError } from '../errors.ts'
import { storageFailure } from '../store/errors.ts'
import { exposedKeyProblem, secureFolder } from '../store/files.ts'

/**
 * A peer's persistent identity: an Ed25519 key in DIR/identity.key (mode 0600), so that the peer id
 * stays the same across restarts and every log entry it signs can be checked against it. A key that
 * group or others can read is refused, as ssh refuses such a private key.
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

/** The identity key exists but this user may not read it. */
export class IdentityUnreadableError extends EpimeshError {
  static override readonly name = 'IdentityUnreadableError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('IDENTITY_UNREADABLE', message, options) }
}

/** The identity key is empty, damaged, or not an Ed25519 key. */
export class IdentityCorruptError extends EpimeshError {
  static override readonly name = 'IdentityCorruptError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('IDENTITY_CORRUPT', message, options) }
}

/** The identity key can be read by group or others. */
export class IdentityExposedError extends EpimeshError {
  static override readonly name = 'IdentityExposedError'
  readonly exitCode = 2
  constructor (message: string, options?: { cause?: unknown }) { super('IDENTITY_EXPOSED', message, options) }
}

export async function createIdentity (dir: string): Promise<{ privateKey: PrivateKey, peerId: string }> {
  await secureFolder(dir, true)
  const privateKey = await generateKeyPair('Ed25519')
  const path = join(dir, IDENTITY_FILE)
  let handle
  try {
    // 'wx': refuse to overwrite an existing identity
    handle = await open(path, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new IdentityExistsError(`${path} already exists; a peer keeps its identity`, { cause: error })
    throw storageFailure(error) ?? error
  }
  try {
    await handle.writeFile(privateKeyToProtobuf(privateKey))
    await handle.sync()
  } catch (error) {
    throw storageFailure(error) ?? error
  } finally {
    await handle.close()
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() }
}

export async function loadIdentity (dir: string): Promise<{ privateKey: PrivateKey, peerId: string }> {
  const path = join(dir, IDENTITY_FILE)
  let bytes: Uint8Array
  try {
    const info = await stat(path)
    if (info.isDirectory()) throw new IdentityCorruptError(`${path} is a folder, not an identity key`)
    const exposed = exposedKeyProblem(path, info.mode)
    if (exposed !== null) throw new IdentityExposedError(exposed)
    bytes = await readFile(path)
  } catch (error) {
    if (error instanceof EpimeshError) throw error
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new IdentityMissingError(`no identity in ${dir}: run epimesh init first`, { cause: error })
    if (code === 'EACCES' || code === 'EPERM') throw new IdentityUnreadableError(`${path} cannot be read (permission denied): run epimesh as the user who owns the data folder`, { cause: error })
    throw storageFailure(error) ?? error
  }
  if (bytes.length === 0) throw new IdentityCorruptError(`${path} is empty: restore the identity key from a backup (a new one, from epimesh init in a new folder, gives a new peer id)`)
  let privateKey: PrivateKey
  try {
    privateKey = privateKeyFromProtobuf(bytes)
  } catch (error) {
    throw new IdentityCorruptError(`${path} is not an identity key (${bytes.length} bytes that do not decode): restore it from a backup`, { cause: error })
  }
  if (privateKey.type !== 'Ed25519') throw new IdentityCorruptError(`${path} is a ${privateKey.type} key, not an Ed25519 key`)
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() }
}
