/*
 * The admin listener's tests' helpers: a broker with an admin listener and a
 * password file, and plain HTTP(S) requests (fetch cannot take a test CA).
 */
import http from 'node:http'
import https from 'node:https'
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { setPassword } from '../../src/auth/passwd.js'
import type { Broker, ConfigInput } from '../../src/index.js'
import { startBroker, tempDir, testCerts } from '../helpers/broker.js'

export const ADMIN_USER = 'ops'
export const ADMIN_PASSWORD = 'correct horse'

/** A password file with one administrator, written by the code behind `switchyard passwd`. */
export async function adminPasswordFile (): Promise<string> {
  const file = path.join(tempDir(), 'admin.passwd')
  await setPassword(file, ADMIN_USER, ADMIN_PASSWORD, true)
  return file
}

/** A broker with an admin listener on a free loopback port; `login`: with a password file. */
export async function adminBroker (options: { login?: boolean, admin?: Record<string, unknown>, config?: ConfigInput } = {}): Promise<Broker> {
  const admin = { port: 0, ...(options.login === false ? {} : { passwordFile: await adminPasswordFile() }), ...options.admin }
  return startBroker({ admin: admin as ConfigInput['admin'], ...options.config })
}

export const basic = (user = ADMIN_USER, password = ADMIN_PASSWORD): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')

export interface Answer { status: number, headers: http.IncomingHttpHeaders, text: string, json: any }

/** One request to the broker's admin listener; `body` is sent as JSON unless `contentType` says otherwise. */
export function request (broker: Broker, p: string, options: { method?: string, headers?: Record<string, string>, body?: unknown, contentType?: string | null, secure?: boolean } = {}): Promise<Answer> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body)
  const headers: Record<string, string> = { ...options.headers }
  if (body !== undefined && options.contentType !== null) headers['content-type'] = options.contentType ?? 'application/json'
  const lib = options.secure ? https : http
  return new Promise((resolve, reject) => {
    const req = lib.request({
      host: '127.0.0.1',
      port: broker.admin!.port,
      path: p,
      method: options.method ?? 'GET',
      headers,
      ...(options.secure ? { ca: readFileSync(testCerts().ca), servername: 'localhost' } : {})
    }, res => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString()
        let json: unknown
        try { json = JSON.parse(text) } catch { json = undefined }
        resolve({ status: res.statusCode!, headers: res.headers, text, json })
      })
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** Signs in through POST /api/login: the cookie to send back and the CSRF token. */
export async function login (broker: Broker): Promise<{ cookie: string, csrfToken: string }> {
  const res = await request(broker, '/api/login', { method: 'POST', body: { username: ADMIN_USER, password: ADMIN_PASSWORD } })
  if (res.status !== 200) throw new Error(`login failed: ${res.status} ${res.text}`)
  const cookie = String(res.headers['set-cookie']![0]).split(';')[0]!
  return { cookie, csrfToken: res.json.csrfToken }
}
