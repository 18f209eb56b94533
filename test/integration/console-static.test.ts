/*
 * The console's files (src/ops/console-static.ts) over a real socket: the
 * allow-list, content types, the CSP, revalidation, and no way out of the
 * console's directory.
 */
import http from 'node:http'
import net from 'node:net'
import { afterAll, beforeAll, describe, expect, test } from 'vitest'
import { serveConsole } from '../../src/ops/console-static.js'

let server: http.Server
let base = ''

beforeAll(async () => {
  server = http.createServer((req, res) => {
    if (serveConsole(req, res)) return
    res.writeHead(418)
    res.end('not the console')
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
})
afterAll(() => new Promise<void>(resolve => server.close(() => resolve())))

/** A raw GET, so that the path reaches the server exactly as written (fetch would normalize "..") */
function rawGet (path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`))
    let text = ''
    socket.on('data', d => { text += d })
    socket.on('end', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1])))
    socket.on('error', reject)
  })
}

describe('console files', () => {
  test('the page, its modules and the libraries, each with its type, the CSP and a cache policy', async () => {
    const cases: Array<[string, RegExp]> = [
      ['/', /^text\/html/],
      ['/console/main.js', /^text\/javascript/],
      ['/console/app.css', /^text\/css/],
      ['/console/vendor/preact.mjs', /^text\/javascript/],
      ['/console/vendor/hooks.mjs', /^text\/javascript/],
      ['/console/vendor/htm.mjs', /^text\/javascript/],
      ['/console/vendor/uPlot.esm.js', /^text\/javascript/],
      ['/console/vendor/uPlot.min.css', /^text\/css/]
    ]
    for (const [path, type] of cases) {
      const res = await fetch(base + path)
      expect(res.status, path).toBe(200)
      expect(res.headers.get('content-type'), path).toMatch(type)
      expect(res.headers.get('content-security-policy'), path).toMatch(/^default-src 'self'/)
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff')
      expect(res.headers.get('cache-control'), path).toBeTruthy()
      expect((await res.text()).length, path).toBeGreaterThan(0)
    }
  })

  test('Preact\'s hooks import preact by a path the browser can load, with no import map', async () => {
    const hooks = await (await fetch(base + '/console/vendor/hooks.mjs')).text()
    expect(hooks).toContain('from"./preact.mjs"')
    expect(hooks).not.toMatch(/from\s*["']preact["']/)
  })

  test('gzipped for a client that accepts it, plain for one that does not', async () => {
    const zipped = await fetch(base + '/console/vendor/uPlot.esm.js', { headers: { 'accept-encoding': 'gzip' } })
    expect(zipped.headers.get('content-encoding')).toBe('gzip')
    const plain = await fetch(base + '/console/vendor/uPlot.esm.js', { headers: { 'accept-encoding': 'identity' } })
    expect(plain.headers.get('content-encoding')).toBeNull()
    expect(await zipped.text()).toBe(await plain.text())
  })

  test('an unchanged file is revalidated with a 304', async () => {
    const first = await fetch(base + '/console/main.js')
    const etag = first.headers.get('etag')
    expect(etag).toBeTruthy()
    const again = await fetch(base + '/console/main.js', { headers: { 'if-none-match': etag! } })
    expect(again.status).toBe(304)
  })

  test('only the allow-list: no traversal, no other package file, no hidden file; other paths are not the console\'s', async () => {
    for (const path of [
      '/console/../package.json', '/console/..%2Fpackage.json', '/console/%2e%2e/package.json', '/console/vendor/../../package.json',
      '/console/vendor/package.json', '/console/vendor/..%2F..%2Fpackage.json', '/console/vendor/preact', '/console/.hidden.js',
      '/console/nope.js', '/console/sub/dir.js', '/console/vendor/constructor', '/console/vendor/__proto__'
    ]) {
      expect(await rawGet(path), path).toBe(404)
    }
    expect((await fetch(base + '/api/clients')).status).toBe(418)
    expect((await fetch(base + '/metrics')).status).toBe(418)
    expect((await fetch(base + '/console/main.js', { method: 'POST' })).status).toBe(405)
  })
})
