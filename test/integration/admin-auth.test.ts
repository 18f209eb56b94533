/*
 * Issue 15: an admin listener that is safe to expose. Logins (HTTP Basic,
 * the console's session cookie), their backoff, CSRF, HTTPS, and the refusal
 * to start on a non-loopback address without a login.
 */
import { describe, expect, it } from 'vitest'
import { setPassword } from '../../src/auth/passwd.js'
import { createBroker, parseConfig, type ConfigError } from '../../src/index.js'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { startBroker, tempDir, testCerts } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { urlFor } from '../helpers/broker.js'
import { ADMIN_USER, adminBroker, adminPasswordFile, basic, login, request } from './admin-support.js'

describe('admin login', () => {
  it('asks for a login on every route but /healthz, with a Basic challenge for API clients only', async () => {
    const broker = await adminBroker()
    for (const p of ['/metrics', '/api/clients', '/api/rules', '/api/history', '/api/retained?filter=%23', '/api/stream']) {
      const res = await request(broker, p)
      expect(res.status, p).toBe(401)
      expect(res.json).toMatchObject({ authRequired: true })
      expect(res.headers['www-authenticate']).toBe('Basic realm="switchyard", charset="UTF-8"')
    }
    // The console: no header, so the browser opens no popup of its own.
    const fromConsole = await request(broker, '/api/session', { headers: { 'x-requested-with': 'switchyard-console' } })
    expect(fromConsole.status).toBe(401)
    expect(fromConsole.json).toMatchObject({ authRequired: true })
    expect(fromConsole.headers['www-authenticate']).toBeUndefined()
    expect((await request(broker, '/healthz')).status).toBe(200)
    // Never a CORS header, on any answer.
    expect(fromConsole.headers['access-control-allow-origin']).toBeUndefined()
  })

  it('takes HTTP Basic on the API and /metrics (Prometheus)', async () => {
    const broker = await adminBroker()
    const metrics = await request(broker, '/metrics', { headers: { authorization: basic() } })
    expect(metrics.status).toBe(200)
    expect(metrics.text).toContain('switchyard_clients_connected')
    const session = await request(broker, '/api/session', { headers: { authorization: basic() } })
    expect(session.json).toMatchObject({ user: ADMIN_USER, authRequired: true })
  })

  it('refuses a wrong password with 401, and backs off after three failures, as for MQTT', async () => {
    const broker = await adminBroker()
    const delays: number[] = []
    for (let i = 0; i < 5; i++) {
      const res = await request(broker, '/api/clients', { headers: { authorization: basic(ADMIN_USER, 'wrong') } })
      expect(res.status).toBe(401)
      delays.push(res.json.delayedMs)
    }
    // src/auth/backoff.ts: three free failures, then 250 ms doubling
    expect(delays).toEqual([0, 0, 0, 250, 500])
    // A failed console login counts for the same address, and a success clears it.
    const failedLogin = await request(broker, '/api/login', { method: 'POST', body: { username: ADMIN_USER, password: 'nope' } })
    expect(failedLogin.status).toBe(401)
    expect(failedLogin.json).toMatchObject({ error: 'bad username or password', delayedMs: 1000 })
    await login(broker)
    const again = await request(broker, '/api/clients', { headers: { authorization: basic('nobody', 'wrong') } })
    expect(again.json.delayedMs).toBe(0)
  })

  it('signs the console in with a session cookie, and out again', async () => {
    const broker = await adminBroker()
    const res = await request(broker, '/api/login', { method: 'POST', body: { username: ADMIN_USER, password: 'correct horse' } })
    expect(res.status).toBe(200)
    expect(res.json).toEqual({ user: ADMIN_USER, csrfToken: expect.any(String) })
    const setCookie = String(res.headers['set-cookie']![0])
    expect(setCookie).toMatch(/^switchyard_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\//)
    expect(setCookie).not.toContain('Secure')
    const cookie = setCookie.split(';')[0]!
    const session = await request(broker, '/api/session', { headers: { cookie } })
    expect(session.json).toEqual({ user: ADMIN_USER, csrfToken: res.json.csrfToken, authRequired: true })
    expect((await request(broker, '/api/clients', { headers: { cookie } })).status).toBe(200)

    const out = await request(broker, '/api/logout', { method: 'POST', headers: { cookie, 'x-csrf-token': res.json.csrfToken } })
    expect(out.status).toBe(200)
    expect(String(out.headers['set-cookie']![0])).toMatch(/^switchyard_session=; .*Max-Age=0/)
    expect((await request(broker, '/api/clients', { headers: { cookie } })).status).toBe(401)
  })

  it('refuses a change authenticated by the cookie without the CSRF token (403), and takes it with the token', async () => {
    const broker = await adminBroker()
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('csrf/#', { qos: 1 })
    const { cookie, csrfToken } = await login(broker)
    const body = { topic: 'csrf/t', payload: 'x', qos: 1, retain: false }
    const without = await request(broker, '/api/publish', { method: 'POST', headers: { cookie }, body })
    expect(without.status).toBe(403)
    expect(without.json.error).toContain('X-CSRF-Token')
    const wrong = await request(broker, '/api/publish', { method: 'POST', headers: { cookie, 'x-csrf-token': 'guess' }, body })
    expect(wrong.status).toBe(403)
    // A form post from another site: text/plain, the cookie, no token.
    const form = await request(broker, '/api/publish', { method: 'POST', headers: { cookie }, body: JSON.stringify(body), contentType: 'text/plain' })
    expect(form.status).toBe(403)
    const ok = await request(broker, '/api/publish', { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken }, body: { ...body, payload: 'with token' } })
    expect(ok.status).toBe(200)
    // Only the one with the token was published: it is the first to arrive.
    const [first] = await inbox(sub).waitFor(1)
    expect(first!.payload).toBe('with token')
  })

  it('asks Basic and anonymous callers for JSON on every change, which a cross-site form cannot send', async () => {
    const broker = await adminBroker()
    const form = await request(broker, '/api/clients/x/disconnect', { method: 'POST', headers: { authorization: basic() }, body: 'a=b', contentType: 'application/x-www-form-urlencoded' })
    expect(form.status).toBe(403)
    const json = await request(broker, '/api/clients/x/disconnect', { method: 'POST', headers: { authorization: basic(), 'content-type': 'application/json' } })
    expect(json.status).toBe(404)

    const anonymous = await adminBroker({ login: false })
    const session = await request(anonymous, '/api/session')
    expect(session.json).toEqual({ user: null, csrfToken: expect.any(String), authRequired: false })
    expect((await request(anonymous, '/api/clients/x/disconnect', { method: 'POST' })).status).toBe(403)
    expect((await request(anonymous, '/api/clients/x/disconnect', { method: 'POST', headers: { 'x-csrf-token': session.json.csrfToken } })).status).toBe(404)
    // DNS rebinding: a page under another name that resolves to 127.0.0.1.
    expect((await request(anonymous, '/api/clients', { headers: { host: 'attacker.example:80' } })).status).toBe(403)
  })
})

describe('admin reload', () => {
  it('re-reads admin.passwordFile on reload, and signs every console session out', async () => {
    const file = await adminPasswordFile()
    const broker = await startBroker({ admin: { port: 0, passwordFile: file } })
    const { cookie } = await login(broker)
    expect((await request(broker, '/api/clients', { headers: { cookie } })).status).toBe(200)
    expect((await request(broker, '/api/clients', { headers: { authorization: basic('second', 'pw2') } })).status).toBe(401)
    await setPassword(file, 'second', 'pw2', false)
    expect(await broker.reload()).toEqual({ ok: true, problems: [] })
    expect((await request(broker, '/api/clients', { headers: { authorization: basic('second', 'pw2') } })).status).toBe(200)
    expect((await request(broker, '/api/clients', { headers: { cookie } })).status).toBe(401)
  })
})

describe('admin exposure', () => {
  it('checks the admin keys at the boundary, every problem at once', () => {
    let problems: readonly string[] = []
    try {
      parseConfig({ admin: { host: '10.0.0.1', cert: 'missing.crt', allowAnonymous: true, passwordFile: 'nope' } }, { baseDir: '/x' })
    } catch (err) {
      problems = (err as ConfigError).problems
    }
    expect(problems).toEqual([
      expect.stringMatching(/^admin\.passwordFile: file not found: nope \(resolved to \/x\/nope\); create it with `switchyard passwd -c <file> <user>`/),
      expect.stringMatching(/^admin\.cert: file not found: missing\.crt/),
      'admin: "cert" and "key" go together; set both to serve the admin listener over HTTPS, or neither for HTTP',
      expect.stringMatching(/^admin\.allowAnonymous: true, but admin\.passwordFile is set too/)
    ])
  })

  it('refuses to start on a non-loopback address without a passwordFile, naming the key and the fix', async () => {
    const err = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, log: { level: 'silent' }, rules: { dir: null }, admin: { host: '0.0.0.0', port: 0 } }).catch(e => e as ConfigError)
    expect(err).toMatchObject({ code: 'ERR_CONFIG_INVALID' })
    expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^admin\.host: "0\.0\.0\.0" is not a loopback address .*"passwordFile".*"allowAnonymous": true/)])
  })

  it('starts there with a passwordFile, or with allowAnonymous', async () => {
    const withLogin = await startBroker({ admin: { host: '0.0.0.0', port: 0, passwordFile: await adminPasswordFile() } })
    expect((await request(withLogin, '/api/clients')).status).toBe(401)
    const open = await startBroker({ admin: { host: '0.0.0.0', port: 0, allowAnonymous: true } })
    expect((await request(open, '/api/clients')).status).toBe(200)
  })

  it('serves HTTPS with admin.cert and admin.key, and marks the cookie Secure', async () => {
    const { cert, key } = testCerts()
    const broker = await adminBroker({ admin: { cert, key } })
    const res = await request(broker, '/api/login', { method: 'POST', body: { username: ADMIN_USER, password: 'correct horse' }, secure: true })
    expect(res.status).toBe(200)
    expect(String(res.headers['set-cookie']![0])).toMatch(/; Secure$/)
    const metrics = await request(broker, '/metrics', { headers: { authorization: basic() }, secure: true })
    expect(metrics.status).toBe(200)
    // Plain HTTP gets no answer from it.
    await expect(request(broker, '/healthz')).rejects.toThrow()
  })

  it('refuses to start with a certificate it cannot serve (ERR_TLS, naming the keys)', async () => {
    const bad = path.join(tempDir(), 'bad.crt')
    writeFileSync(bad, 'not a certificate\n')
    const err = await startBroker({ admin: { port: 0, passwordFile: await adminPasswordFile(), cert: bad, key: testCerts().key } }).catch(e => e as ConfigError)
    expect(err).toMatchObject({ code: 'ERR_TLS' })
    expect((err as ConfigError).problems).toEqual([expect.stringMatching(/^admin\.cert, admin\.key: cannot serve HTTPS with .*bad\.crt/)])
  })
})
