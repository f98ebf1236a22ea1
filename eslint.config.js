// The consensus and learning cores must stay pure: the simulator and the real peer run the same code,
// so no I/O, clock or global randomness may enter them. Everything with side effects lives in src/peer
// and src/store.
import tseslint from 'typescript-eslint'

const impureModules = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http',
  'child_process', 'node:child_process', 'os', 'node:os', 'timers', 'node:timers', 'process', 'node:process',
  'crypto', 'node:crypto', 'worker_threads', 'node:worker_threads', 'level', 'memory-level', 'classic-level',
  'pino'
]

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'coverage/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off'
    }
  },
  {
    files: ['src/consensus/**/*.ts', 'src/learning/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: impureModules.map((name) => ({ name, message: 'src/consensus and src/learning stay pure: no I/O.' })),
        patterns: [
          { group: ['libp2p', '@libp2p/*', '@chainsafe/*'], message: 'No networking in the pure cores.' },
          { group: ['**/peer/**', '**/store/**', '../peer/*', '../store/*'], message: 'The pure cores must not depend on the shell.' }
        ]
      }],
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
