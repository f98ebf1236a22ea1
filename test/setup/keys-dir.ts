import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * The test run's stores keep their keys in a temporary folder, never in the home folder: every
 * store a test creates without naming a key gets a random one in EPIMESH_KEYS_DIR, and the test
 * workers and the processes they start inherit it.
 */
export default async function setup (): Promise<() => Promise<void>> {
  const keys = await mkdtemp(join(tmpdir(), 'epimesh-test-keys-'))
  process.env.EPIMESH_KEYS_DIR = keys
  delete process.env.EPIMESH_STORE_KEY_FILE
  delete process.env.EPIMESH_STORE_PASSPHRASE
  return async () => { await rm(keys, { recursive: true, force: true }) }
}
