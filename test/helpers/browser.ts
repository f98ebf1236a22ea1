/**
 * A real headless browser for the web-view tests: Debian's Chromium driven by playwright-core
 * (no browser download). Where Chromium is missing the tests are skipped with a clear message
 * `.ci/run` installs it.
 */
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome']

/** The Chromium executable to use: CHROMIUM_PATH if set, else the first system install found. */
export function chromiumPath(): string | undefined {
  const fromEnv = process.env.CHROMIUM_PATH
  if (fromEnv !== undefined && fromEnv !== '') return existsSync(fromEnv) ? fromEnv : undefined
  return CANDIDATES.find((p) => existsSync(p))
}

/** Why the browser tests are skipped, or undefined when they can run. */
export const browserSkipReason: string | undefined =
  chromiumPath() === undefined
    ? 'browser tests skipped: no Chromium found (install Debian\'s "chromium" package or set CHROMIUM_PATH)'
    : undefined

if (browserSkipReason !== undefined) console.warn(browserSkipReason)

/** Launches headless Chromium; the caller closes it. */
export async function launchBrowser(): Promise<Browser> {
  const executablePath = chromiumPath()
  if (executablePath === undefined) throw new Error(browserSkipReason)
  return chromium.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  })
}
