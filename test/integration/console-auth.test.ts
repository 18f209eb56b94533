/*
 * The web console's sign-in, in a real Chromium, against a real broker whose
 * admin listener has a password file; and the API's refusals as a browser
 * meets them (src/ops/admin/auth.ts; docs/operations.md#console).
 */
import { describe, expect, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { ADMIN, haveChromium, signIn, startConsoleBroker, useChromium } from '../helpers/browser.js'
import { connect, inbox } from '../helpers/client.js'

const chromium = useChromium()

describe.skipIf(!haveChromium)('console sign-in', { timeout: 60_000 }, () => {
  test('a wrong password is refused; the right one opens the console, and signing out closes it', async () => {
    const { consoleUrl } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await page.goto('/')
    await page.getByLabel('Username').fill(ADMIN.username)
    await page.getByLabel('Password').fill('not the password')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('Wrong username or password')
    expect(await page.getByRole('navigation', { name: 'Main' }).count()).toBe(0)

    await page.getByLabel('Password').fill(ADMIN.password)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('navigation', { name: 'Main' }).waitFor()
    await page.getByRole('heading', { name: 'Overview' }).waitFor()
    // uPlot drew the chart (its module loaded under the CSP).
    await page.getByRole('img', { name: /Messages per second in and out/ }).locator('canvas').waitFor()

    // The session survives a reload (the HttpOnly cookie), and ends with "Sign out".
    await page.reload()
    await page.getByRole('heading', { name: 'Overview' }).waitFor()
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    await page.reload()
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
  })

  test('the session cookie is HttpOnly and SameSite=Strict: page scripts cannot read it', async () => {
    const { consoleUrl } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    const [cookie] = await page.context().cookies()
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: 'Strict' })
    expect(await page.evaluate('document.cookie')).toBe('')
  })

  test('when the session ends elsewhere, the next request brings back the sign-in form', async () => {
    const { consoleUrl } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await signIn(page)
    // Signed out from another tab of the same browser: same cookie, its own request.
    const other = await page.context().newPage()
    await other.goto('/')
    await other.getByRole('button', { name: 'Sign out' }).click()
    await other.getByRole('button', { name: 'Sign in' }).waitFor()
    await page.getByRole('link', { name: 'Clients' }).click()
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
  })

  test('an anonymous loopback admin listener opens the console without a sign-in, and its forms work', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker({}, { login: false })
    const sub = await connect(mqttUrl)
    await sub.subscribeAsync('anon/#', { qos: 1 })
    const page = await chromium.newPage(consoleUrl)
    await page.goto('/#/publish')
    await page.getByLabel('Topic', { exact: true }).fill('anon/hello')
    await page.getByLabel('Message').fill('from the console')
    await page.getByRole('button', { name: 'Publish' }).click()
    expect((await inbox(sub).waitFor(1)).map(m => m.payload)).toEqual(['from the console'])
    expect(await page.getByRole('button', { name: 'Sign out' }).count()).toBe(0)
  })
})

describe.skipIf(!haveChromium)('the API from the browser', { timeout: 60_000 }, () => {
  test('without credentials an API call gets 401; a signed-in POST without the CSRF token is refused and publishes nothing', async () => {
    const { consoleUrl, mqttUrl } = await startConsoleBroker()
    const page = await chromium.newPage(consoleUrl)
    await page.goto('/')
    await page.getByRole('button', { name: 'Sign in' }).waitFor()
    const anonymous = await page.evaluate(async () => {
      const res = await fetch('/api/clients', { headers: { 'x-requested-with': 'switchyard-console' } })
      return { status: res.status, basicChallenge: res.headers.get('www-authenticate') }
    })
    // No WWW-Authenticate for the console: the browser must not pop up its own login dialog.
    expect(anonymous).toEqual({ status: 401, basicChallenge: null })

    await signIn(page)
    const sub = await connect(mqttUrl)
    await sub.subscribeAsync('csrf/#', { qos: 1 })
    const publish = (csrf: boolean) => page.evaluate(async (withToken) => {
      const session = await (await fetch('/api/session', { headers: { 'x-requested-with': 'switchyard-console' } })).json() as { csrfToken: string }
      const headers: Record<string, string> = { 'content-type': 'application/json', 'x-requested-with': 'switchyard-console' }
      if (withToken) headers['x-csrf-token'] = session.csrfToken
      const res = await fetch('/api/publish', { method: 'POST', headers, body: JSON.stringify({ topic: 'csrf/forged', payload: withToken ? 'with token' : 'forged', qos: 1, retain: false }) })
      return res.status
    }, csrf)
    expect(await publish(false)).toBe(403)
    const accepted = await publish(true)
    expect(accepted >= 200 && accepted < 300, `status ${accepted}`).toBe(true)
    await inbox(sub).waitFor(1)
    const got = await barrier(sub, sub, 'csrf/barrier')
    expect(got.map(m => m.payload)).toEqual(['with token'])
  })
})
