// The architecture, kept true by the linter:
// - the consensus and learning cores stay pure: the simulator and the real peer run the same code, so no
//   I/O, clock or global randomness may enter them;
// - imports flow one way: learning <- consensus <- peer, and store <- peer; src/errors.ts (the base
//   error) depends on nothing, and the library entry src/index.ts may import anything;
// - no import cycles anywhere (import-x/no-cycle);
// - the store's key layout (src/store/layout.ts) is private to src/store and the store's own tests:
//   everything else goes through the typed methods of Store.
// test/lint.test.ts shows each rule failing on a deliberately wrong import.
import tseslint from 'typescript-eslint'
import { importX } from 'eslint-plugin-import-x'
import { createTypeScriptImportResolver } from 'eslint-import-resolver-typescript'

const impureModules = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http',
  'child_process', 'node:child_process', 'os', 'node:os', 'timers', 'node:timers', 'process', 'node:process',
  'crypto', 'node:crypto', 'worker_threads', 'node:worker_threads', 'level', 'memory-level', 'classic-level',
  'pino'
]

/** An upward or sideways import between the four folders, by the folder of the importing file. */
const layerPatterns = {
  learning: [
    { group: ['**/consensus/**', '../consensus/*', '../consensus'], message: 'learning is the bottom layer: it imports nothing from consensus.' },
    { group: ['**/peer/**', '../peer/*', '../peer'], message: 'learning imports nothing from peer.' },
    { group: ['**/store/**', '../store/*', '../store'], message: 'learning imports nothing from store.' }
  ],
  consensus: [
    { group: ['**/peer/**', '../peer/*', '../../peer/*'], message: 'consensus imports learning only, never peer.' },
    { group: ['**/store/**', '../store/*', '../../store/*'], message: 'consensus imports learning only, never store.' }
  ],
  store: [
    { group: ['**/peer/**', '../peer/*'], message: 'store is below peer: it imports nothing from peer.' },
    { group: ['**/consensus/**', '../consensus/*'], message: 'store imports nothing from consensus.' },
    { group: ['**/learning/**', '../learning/*'], message: 'store imports nothing from learning.' }
  ]
}

const nonetwork = [
  { group: ['libp2p', '@libp2p/*', '@chainsafe/*'], message: 'No networking in the pure cores.' }
]

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**', '.scratch/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off'
    }
  },
  {
    files: ['src/**/*.ts'],
    plugins: { 'import-x': importX },
    settings: {
      'import-x/resolver-next': [createTypeScriptImportResolver()],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js']
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }]
    }
  },
  {
    // the learning, consensus and errors blocks below replace this rule for their files with stricter ones
    files: ['src/**/*.ts', 'scripts/**/*.ts', 'test/**/*.ts'],
    ignores: ['src/store/**', 'test/store/**'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/store/layout', '**/store/layout.ts'], message: 'the store\'s key layout is private to src/store: use the methods of Store.' }] }]
    }
  },
  {
    files: ['src/learning/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impureModules.map((name) => ({ name, message: 'src/learning stays pure: no I/O.' })),
        patterns: [...nonetwork, ...layerPatterns.learning]
      }]
    }
  },
  {
    files: ['src/consensus/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impureModules.map((name) => ({ name, message: 'src/consensus stays pure: no I/O.' })),
        patterns: [...nonetwork, ...layerPatterns.consensus]
      }]
    }
  },
  {
    files: ['src/store/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: layerPatterns.store }]
    }
  },
  {
    files: ['src/errors.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['./*', '../*'], message: 'the base error depends on nothing.' }] }]
    }
  },
  {
    files: ['src/consensus/**/*.ts', 'src/learning/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error',
        { name: 'Date', message: 'Pass a Clock in; the cores take time as an argument.' },
        { name: 'process', message: 'No process access in the pure cores.' },
        { name: 'setTimeout', message: 'No timers in the pure cores.' },
        { name: 'setInterval', message: 'No timers in the pure cores.' },
        { name: 'setImmediate', message: 'No timers in the pure cores.' },
        { name: 'performance', message: 'No clock in the pure cores.' },
        { name: 'fetch', message: 'No I/O in the pure cores.' },
        { name: 'crypto', message: 'Randomness is injected as an Rng.' }
      ],
      'no-restricted-properties': ['error',
        { object: 'Math', property: 'random', message: 'Randomness is injected as an Rng (see src/consensus/rng.ts).' },
        { object: 'Date', property: 'now', message: 'Pass a Clock in.' }
      ]
    }
  }
)
