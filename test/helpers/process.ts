import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { freePort } from '../../src/peer/net/free-port.ts'
export { freePort }

const BIN = fileURLToPath(new URL('../../bin/epimesh.js', import.meta.url))

/** Runs `epimesh ARGS` as its own process; killed after `timeoutMs`. */
export async function runEpimesh (args: string[], timeoutMs: number): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const timer = setTimeout(() => { child.kill('SIGKILL') }, timeoutMs)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code: code ?? 1, stdout, stderr })
    })
  })
}


/** Polls `check` every `intervalMs` until it holds; throws after `timeoutMs`. */
export async function waitFor (check: () => Promise<boolean>, timeoutMs: number, intervalMs = 50): Promise<void> {
  const until = Date.now() + timeoutMs
  while (Date.now() < until) {
    if (await check()) return
    await new Promise((resolve) => setTimeout(resolve, intervalMs))
  }
  throw new Error('timed out')
}
