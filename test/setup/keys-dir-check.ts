import { tmpdir } from 'node:os'

// Each test worker must see the temporary keys folder of the global setup.
if (process.env.EPIMESH_KEYS_DIR === undefined || !process.env.EPIMESH_KEYS_DIR.startsWith(tmpdir())) {
  throw new Error('EPIMESH_KEYS_DIR is not a temporary folder: the tests would write keys into the home folder')
}
