/*
 * A real, headless Chromium (Debian's, /usr/bin/chromium) driven by
 * playwright-core, for the console's tests. One browser per test file, a
 * fresh context (cookies, storage) per test. When a test fails, a screenshot
 * of every page it opened is saved in a directory kept for it, and its path
 * is printed.
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll } from 'vitest'
import type { Broker } from '../../src/index.js'
import { hashPassword } from '../../src/auth/passwords.js'
import { startBroker, tempDir, urlFor } from './broker.js'

export const CHROMIUM = process.env.SWITCHYARD_CHROMIUM ?? '/usr/bin/chromium'
export const haveChromium = existsSync(CHROMIUM)

const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'
]

export interface Chromium {
  /** A page in a fresh context, closed after the current test. */
  newPage(baseURL: string): Promise<Page>
}

/**
 * Registers the file's hooks: launch before all tests, close after; after
 * each test, screenshots on failure, then close that test's contexts.
 * Playwright's launch() gives Chromium a fresh --user-data-dir of its own
 * and removes it on close.
 */
export function useChromium (): Chromium {
  let browser: Browser | undefined
  let contexts: BrowserContext[] = []

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: 30_000 })
  }, 40_000)

  afterAll(async () => { await browser?.close() })

  afterEach(async (ctx) => {
    const open = contexts
    contexts = []
    if (ctx.task.result?.state === 'fail') {
      const dir = mkdtempSync(path.join(os.tmpdir(), `switchyard-console-${slug(ctx.task.name)}-`))
      let n = 0
      for (const context of open) {
        for (const page of context.pages()) {
          const file = path.join(dir, `page-${++n}-${slug(page.url())}.png`)
          await page.screenshot({ path: file, fullPage: true, timeout: 5000 }).catch(() => {})
        }
      }
      console.error(`console test "${ctx.task.name}" failed: screenshots in ${dir}`)
    }
    await Promise.all(open.map(c => c.close().catch(() => {})))
  })

  return {
    async newPage (baseURL) {
      if (!browser) throw new Error('useChromium(): the browser is not launched (call it at the top of the file)')
      const context = await browser.newContext({ baseURL, viewport: { width: 1280, height: 800 } })
      context.setDefaultTimeout(15_000)
      contexts.push(context)
      const page = await context.newPage()
      // A console error (a failed module load, a CSP refusal) is a bug: make it visible in the test output.
      page.on('pageerror', err => console.error(`page error: ${err.message}`))
      // (A refused request is logged by Chromium as "Failed to load resource"; the tests cause those on purpose.)
      page.on('console', msg => { if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) console.error(`browser console: ${msg.text()}`) })
      return page
    }
  }
}

function slug (text: string): string {
  return text.replace(/^https?:\/\/[^/]+/, '').replace(/[^a-zA-Z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60) || 'root'
}

export const ADMIN = { username: 'operator', password: 'correct horse battery' }

/**
 * A real broker with an admin listener on 127.0.0.1 that needs a login
 * (ADMIN, in a password file written as `switchyard passwd` writes it;
 * `login: false` for an anonymous loopback listener), and
 * rules from `rules` (file name → source). Closed after the current test.
 */
export async function startConsoleBroker (rules: Record<string, string> = {}, options: { login?: boolean } = {}): Promise<{ broker: Broker, mqttUrl: string, mqttPort: number, consoleUrl: string }> {
  const dir = tempDir('switchyard-console-')
  const passwordFile = path.join(dir, 'admins')
  writeFileSync(passwordFile, `${ADMIN.username}:${await hashPassword(ADMIN.password)}\n`)
  const admin = options.login === false ? { host: '127.0.0.1', port: 0 } : { host: '127.0.0.1', port: 0, passwordFile }
  const rulesDir = path.join(dir, 'rules')
  mkdirSync(rulesDir)
  for (const [file, source] of Object.entries(rules)) writeFileSync(path.join(rulesDir, file), source)
  const broker = await startBroker({ admin, rules: { dir: rulesDir } })
  if (!broker.admin) throw new Error('the broker has no admin listener')
  return { broker, mqttUrl: urlFor(broker), mqttPort: broker.listeners[0]!.port, consoleUrl: `http://127.0.0.1:${broker.admin.port}` }
}

/** Signs in through the form, as a person does, and waits for the console's navigation. */
export async function signIn (page: Page, credentials = ADMIN): Promise<void> {
  await page.goto('/')
  await page.getByLabel('Username').fill(credentials.username)
  await page.getByLabel('Password').fill(credentials.password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('navigation', { name: 'Main' }).waitFor()
}
