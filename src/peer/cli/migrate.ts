import type { Command } from 'commander'
import { migrateStore } from '../../store/migrate.ts'
import { UNENCRYPTED_LAYOUT_VERSION } from '../../store/store.ts'
import { dirOption } from './dir-option.ts'

/** `epimesh store migrate`: encrypts a store of the earlier, unencrypted layout in place (src/store/migrate.ts). */
export function registerMigrate (program: Command): void {
  const store = program.command('store').description('the local store\'s maintenance')
  store.command('migrate')
    .description(`encrypt a store of the earlier, unencrypted layout (v${UNENCRYPTED_LAYOUT_VERSION}) in place; its key is made as init makes one`)
    .addOption(dirOption('the peer\'s data folder'))
    .option('--json', 'one JSON object on stdout: {dir, records, storeId}', false)
    .action(async (options: { dir: string, json: boolean }) => {
      const { records, storeId } = await migrateStore(options.dir)
      if (options.json) process.stdout.write(`${JSON.stringify({ dir: options.dir, records, storeId: storeId ?? null })}\n`)
      else process.stdout.write(`encrypted ${records} records of ${options.dir} (store id ${storeId ?? '?'}); keep a backup of its key, which is not in the folder\n`)
    })
}
