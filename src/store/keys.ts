import { createHash, randomBytes, scrypt as scryptCallback, type ScryptOptions } from 'node:crypto'
import { mkdir, readFile, realpath, rm, stat } from 'node:fs/promises'
import { homedir } from 'node:os'
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path'
import { z } from 'zod'
import { deriveStoreKeys, keyCheckMatches, keyCheckValue, MASTER_KEY_BYTES, type StoreKeys } from './crypto.ts'
import {
  StoreCorruptError, StoreKeyExposedError, StoreKeyInsideFolderError, StoreKeyInvalidError, StoreKeyMissingError,
  StoreKeyUnreadableError, StoreKeyWrongError, storageFailure
} from './errors.ts'
import { exposedKeyProblem, writePrivateFileAtomically } from './files.ts'

/**
 * Where a store's key comes from. The key never lives in the data folder: a copy or a backup of the
 * folder must not carry it.
 *
 *   a key file        `--store-key FILE` or EPIMESH_STORE_KEY_FILE: 32 bytes, or 64 hexadecimal digits
 *   a passphrase      EPIMESH_STORE_PASSPHRASE, stretched with scrypt (its salt is kept in the folder)
 *   by default        a random key that `init` writes to ${EPIMESH_KEYS_DIR:-~/.config/epimesh/keys}/<store id>.key
 *
 * The data folder keeps DIR/store.json: the store's random id, which kind of key it was created with
 * (and the scrypt parameters), and a key check value, so that a wrong key is told apart at once.
 */
export const STORE_FILE = 'store.json'
export const STORE_FORMAT = 'epimesh-store'
/** scrypt's cost, as OWASP recommends it: 2^17 x 8 x 128 bytes = 128 MiB of memory per derivation (once per process) */
export const SCRYPT = Object.freeze({ N: 2 ** 17, r: 8, p: 1 })

export interface StoreKeySource {
  /** a key file: 32 bytes or 64 hexadecimal digits (default EPIMESH_STORE_KEY_FILE) */
  keyFile?: string
  /** a passphrase to derive the key from (default EPIMESH_STORE_PASSPHRASE) */
  passphrase?: string
  /** where the default keys are kept (default EPIMESH_KEYS_DIR, else ~/.config/epimesh/keys) */
  keysDir?: string
}

export function defaultKeysDir (env: NodeJS.ProcessEnv = process.env): string {
  const configured = env.EPIMESH_KEYS_DIR
  if (configured !== undefined && configured !== '') return resolve(configured)
  return join(env.HOME !== undefined && env.HOME !== '' ? env.HOME : homedir(), '.config', 'epimesh', 'keys')
}

/** The key source named by the environment (the CLI's `--store-key` sets EPIMESH_STORE_KEY_FILE). */
export function storeKeySourceFromEnv (env: NodeJS.ProcessEnv = process.env): StoreKeySource {
  return {
    ...(env.EPIMESH_STORE_KEY_FILE !== undefined && env.EPIMESH_STORE_KEY_FILE !== '' ? { keyFile: resolve(env.EPIMESH_STORE_KEY_FILE) } : {}),
    ...(env.EPIMESH_STORE_PASSPHRASE !== undefined && env.EPIMESH_STORE_PASSPHRASE !== '' ? { passphrase: env.EPIMESH_STORE_PASSPHRASE } : {}),
    keysDir: defaultKeysDir(env)
  }
}

const base64url = z.string().regex(/^[A-Za-z0-9_-]+$/).max(100)
const storeFileSchema = z.object({
  format: z.literal(STORE_FORMAT),
  version: z.literal(1),
  storeId: base64url,
  key: z.discriminatedUnion('kind', [
    z.object({ kind: z.literal('file') }).strict(),
    z.object({ kind: z.literal('passphrase'), kdf: z.literal('scrypt'), salt: base64url, N: z.number().int().min(2 ** 14).max(2 ** 20), r: z.number().int().min(1).max(32), p: z.number().int().min(1).max(16) }).strict()
  ]),
  check: base64url
}).strict()

export type StoreFile = z.infer<typeof storeFileSchema>

/** DIR/store.json, or null when there is none. */
export async function readStoreFile (dir: string): Promise<StoreFile | null> {
  const path = join(dir, STORE_FILE)
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw storageFailure(error) ?? error
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (error) {
    throw new StoreCorruptError(`${path} is not JSON: the store's description is damaged`, { cause: error })
  }
  const parsed = storeFileSchema.safeParse(json)
  if (!parsed.success) throw new StoreCorruptError(`${path} is not a store description: ${parsed.error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ').slice(0, 200)}`)
  return parsed.data
}

async function scrypt (passphrase: string, salt: Buffer, params: { N: number, r: number, p: number }): Promise<Buffer> {
  const options: ScryptOptions = { ...params, maxmem: 256 * params.N * params.r + 1024 * 1024 }
  return await new Promise((resolvePromise, reject) => {
    scryptCallback(passphrase.normalize('NFC'), salt, MASTER_KEY_BYTES, options, (error, key) => { if (error === null) resolvePromise(key); else reject(error) })
  })
}

/** Derived passphrase keys, so that a process that opens its store often stretches the passphrase once. */
const derived = new Map<string, Buffer>()

async function passphraseKey (passphrase: string, key: Extract<StoreFile['key'], { kind: 'passphrase' }>): Promise<Buffer> {
  const id = createHash('sha256').update(key.salt).update('\u0000').update(`${key.N},${key.r},${key.p}`).update('\u0000').update(passphrase).digest('hex')
  let master = derived.get(id)
  if (master === undefined) {
    master = await scrypt(passphrase, Buffer.from(key.salt, 'base64url'), key)
    derived.set(id, master)
  }
  return master
}

/** A key file named for a data folder must lie outside it. */
async function assertOutside (dir: string, keyFile: string): Promise<void> {
  const realDir = await realpath(dir).catch(() => resolve(dir))
  const parent = await realpath(dirname(resolve(keyFile))).catch(() => dirname(resolve(keyFile)))
  const inside = relative(realDir, join(parent, basename(keyFile)))
  if (inside === '' || (!inside.startsWith('..') && !isAbsolute(inside))) {
    throw new StoreKeyInsideFolderError(`the store key ${keyFile} is inside the data folder ${dir}: keep it elsewhere, so that a copy of the folder does not carry its key`)
  }
}

/** Reads a key file: refused if group or others can read it, if it cannot be read, or if it is not a key. */
export async function readKeyFile (path: string): Promise<Buffer | null> {
  let bytes: Buffer
  try {
    const info = await stat(path)
    if (info.isDirectory()) throw new StoreKeyUnreadableError(`the store key ${path} is a folder, not a key file`)
    const exposed = exposedKeyProblem(path, info.mode)
    if (exposed !== null) throw new StoreKeyExposedError(exposed)
    bytes = await readFile(path)
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return null
    if (code === 'EACCES' || code === 'EPERM') throw new StoreKeyUnreadableError(`the store key ${path} cannot be read (permission denied): it must belong to the user who runs epimesh`, { cause: error })
    if (code === 'EISDIR') throw new StoreKeyUnreadableError(`the store key ${path} is a folder, not a key file`, { cause: error })
    throw storageFailure(error) ?? error
  }
  if (bytes.length === 0) throw new StoreKeyInvalidError(`the store key ${path} is empty`)
  if (bytes.length === MASTER_KEY_BYTES) return bytes
  const text = bytes.toString('latin1').trim()
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex')
  throw new StoreKeyInvalidError(`the store key ${path} is not a key: ${bytes.length} bytes, where a key is ${MASTER_KEY_BYTES} bytes or 64 hexadecimal digits`)
}

/** A new random key written to `path` (mode 0600, never over an existing file); its folder is created 0700. */
async function writeNewKeyFile (path: string): Promise<Buffer> {
  const master = randomBytes(MASTER_KEY_BYTES)
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
  } catch (error) {
    throw storageFailure(error) ?? error
  }
  await writePrivateFileAtomically(path, `${master.toString('hex')}\n`, true)
  return master
}

export interface UnlockedStore {
  storeId: string
  keys: StoreKeys
  /** where the key came from, for messages: a file's path, or "the passphrase" */
  keyFrom: string
}

/**
 * Creates the key of a new store in `dir` and writes DIR/store.json: the key file named (created
 * with a random key if it does not exist yet), else a passphrase if one is given, else a random key in
 * the keys folder under the store's new id.
 */
export async function createStoreKey (dir: string, source: StoreKeySource): Promise<UnlockedStore> {
  const storeId = randomBytes(16).toString('base64url')
  let master: Buffer
  let key: StoreFile['key']
  let keyFrom: string
  if (source.keyFile === undefined && source.passphrase !== undefined) {
    const salt = randomBytes(16).toString('base64url')
    key = { kind: 'passphrase', kdf: 'scrypt', salt, ...SCRYPT }
    master = await passphraseKey(source.passphrase, key)
    keyFrom = 'the passphrase in EPIMESH_STORE_PASSPHRASE'
  } else {
    const path = source.keyFile ?? join(source.keysDir ?? defaultKeysDir(), `${storeId}.key`)
    await assertOutside(dir, path)
    master = (await readKeyFile(path)) ?? await writeNewKeyFile(path)
    key = { kind: 'file' }
    keyFrom = path
  }
  const description: StoreFile = { format: STORE_FORMAT, version: 1, storeId, key, check: keyCheckValue(master, storeId) }
  await writePrivateFileAtomically(join(dir, STORE_FILE), `${JSON.stringify(description, null, 2)}\n`, true)
  return { storeId, keys: deriveStoreKeys(master, storeId), keyFrom }
}

/** The keys of an existing store, checked against its key check value. */
export async function unlockStoreKey (dir: string, description: StoreFile, source: StoreKeySource): Promise<UnlockedStore> {
  const { storeId } = description
  let master: Buffer
  let keyFrom: string
  if (description.key.kind === 'passphrase') {
    if (source.passphrase === undefined) throw new StoreKeyMissingError(`the store in ${dir} is encrypted with a key derived from a passphrase: set EPIMESH_STORE_PASSPHRASE`)
    master = await passphraseKey(source.passphrase, description.key)
    keyFrom = 'the passphrase in EPIMESH_STORE_PASSPHRASE'
  } else {
    const path = source.keyFile ?? join(source.keysDir ?? defaultKeysDir(), `${storeId}.key`)
    await assertOutside(dir, path)
    const read = await readKeyFile(path)
    if (read === null) {
      throw new StoreKeyMissingError(source.keyFile !== undefined
        ? `the store key ${path} does not exist`
        : `no key for the store in ${dir} (store id ${storeId}): it is kept outside the data folder, at ${path}; restore it there from your key backup, or name its file with --store-key FILE or EPIMESH_STORE_KEY_FILE`)
    }
    master = read
    keyFrom = path
  }
  if (!keyCheckMatches(master, storeId, description.check)) {
    throw new StoreKeyWrongError(`${keyFrom} is not the key of the store in ${dir} (store id ${storeId})`)
  }
  return { storeId, keys: deriveStoreKeys(master, storeId), keyFrom }
}

/**
 * Removes the key that `init` made for the store in `dir` in the keys folder, for a folder about to
 * be deleted with it (the demo's). A key named by the operator (a file, a passphrase) is left alone.
 */
export async function removeDefaultKey (dir: string, source: StoreKeySource = storeKeySourceFromEnv()): Promise<void> {
  if (source.keyFile !== undefined) return
  const description = await readStoreFile(dir).catch(() => null)
  if (description === null || description.key.kind !== 'file') return
  await rm(join(source.keysDir ?? defaultKeysDir(), `${description.storeId}.key`), { force: true })
}
