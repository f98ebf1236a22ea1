import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // stores' keys in a temporary folder (EPIMESH_KEYS_DIR), never in the home folder
    globalSetup: ['test/setup/keys-dir.ts'],
    setupFiles: ['test/setup/keys-dir-check.ts']
  }
})
