import { vi } from 'vitest'
import { main } from '../../src/peer/cli/main.ts'

/** `epimesh ARGS` run in this process: its exit status and what it printed (the exit code is reset after). */
export async function cli (args: string[]): Promise<{ status: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => { stdout += String(chunk); return true })
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => { stderr += String(chunk); return true })
  try {
    process.exitCode = undefined
    return { status: await main(args), stdout, stderr }
  } finally {
    process.exitCode = undefined
    out.mockRestore()
    err.mockRestore()
  }
}
