/*
 * The web console's files, served by the admin listener (docs/operations.md#console):
 *   GET /                     console/index.html
 *   GET /console/<file>       console/*.js, *.css (one level, names checked, no traversal)
 *   GET /console/vendor/<f>   Preact, htm and uPlot, read from node_modules through a fixed
 *                             allow-list, so the console works offline and ships no copies
 * Every answer carries `Content-Security-Policy: default-src 'self'`: the console
 * runs no inline script and talks to no other origin.
 */
import { createHash } from 'node:crypto'
import { readFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { gzipSync } from 'node:zlib'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type http from 'node:http'

/** From src/ops/ (tests) and dist/ops/ (the package), the console is two levels up. */
const CONSOLE_DIR = fileURLToPath(new URL('../../console/', import.meta.url))

interface VendorFile { pkg: string, file: string, rewrite?: (text: string) => string }

/**
 * The only library files served. Preact's hooks import the bare specifier
 * "preact", which a browser cannot resolve without an import map, and an
 * inline import map would need 'unsafe-inline' in the CSP: point it at the
 * file next to it instead.
 */
const VENDOR: Record<string, VendorFile> = {
  'preact.mjs': { pkg: 'preact', file: 'dist/preact.mjs' },
  'hooks.mjs': { pkg: 'preact', file: 'hooks/dist/hooks.mjs', rewrite: text => text.replaceAll(/from\s*"preact"/g, 'from"./preact.mjs"') },
  'htm.mjs': { pkg: 'htm', file: 'dist/htm.module.js' },
  'uPlot.esm.js': { pkg: 'uplot', file: 'dist/uPlot.esm.js' },
  'uPlot.min.css': { pkg: 'uplot', file: 'dist/uPlot.min.css' }
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml'
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY'
}

/** A file name of the console's own: letters, digits, dashes, one extension; so no "..", no "/", no hidden files. */
const OWN_FILE = /^[a-z0-9][a-z0-9-]*\.(js|css|svg|html)$/

/** `gzipped`: compressed once when first read (uPlot's ESM file is 145 KB, 42 KB gzipped). */
interface Asset { body: Buffer, gzipped: Buffer, type: string, etag: string, cache: string }
const cache = new Map<string, Asset | null>()

/**
 * Answers a request for the console, and returns true; returns false when
 * the path is not the console's, for the caller's other routes.
 */
export function serveConsole (req: http.IncomingMessage, res: http.ServerResponse): boolean {
  const pathname = (req.url ?? '/').split('?')[0] ?? '/'
  let asset: Asset | null
  if (pathname === '/' || pathname === '/index.html') asset = own('index.html')
  else if (pathname.startsWith('/console/vendor/')) asset = vendor(pathname.slice('/console/vendor/'.length))
  else if (pathname.startsWith('/console/')) asset = own(pathname.slice('/console/'.length))
  else return false

  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8', ...SECURITY_HEADERS })
    res.end('only GET\n')
    return true
  }
  if (!asset) {
    res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...SECURITY_HEADERS })
    res.end('not found\n')
    return true
  }
  const headers = { 'content-type': asset.type, etag: asset.etag, 'cache-control': asset.cache, vary: 'Accept-Encoding', ...SECURITY_HEADERS }
  if (req.headers['if-none-match'] === asset.etag) {
    res.writeHead(304, headers)
    res.end()
    return true
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))
  const body = gzip ? asset.gzipped : asset.body
  res.writeHead(200, { ...headers, 'content-length': body.length, ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
  res.end(req.method === 'HEAD' ? undefined : body)
  return true
}

/** The console's own files change with the package: revalidate each time (a 304 costs one round trip). */
function own (name: string): Asset | null {
  if (!OWN_FILE.test(name)) return null
  return load('own:' + name, () => path.join(CONSOLE_DIR, name), undefined, 'no-cache')
}

/** The libraries change only with an upgrade; an hour keeps reloads cheap without pinning an old version for long. */
function vendor (name: string): Asset | null {
  const entry = Object.hasOwn(VENDOR, name) ? VENDOR[name] : undefined
  if (!entry) return null
  return load('vendor:' + name, () => path.join(packageRoot(entry.pkg), entry.file), entry.rewrite, 'public, max-age=3600')
}

function load (key: string, locate: () => string, rewrite: ((text: string) => string) | undefined, cacheControl: string): Asset | null {
  const known = cache.get(key)
  if (known !== undefined) return known
  let asset: Asset | null = null
  try {
    const file = locate()
    let body = readFileSync(file)
    if (rewrite) body = Buffer.from(rewrite(body.toString('utf8')))
    const type = TYPES[path.extname(file)] ?? 'application/octet-stream'
    asset = { body, gzipped: gzipSync(body), type, etag: '"' + createHash('sha256').update(body).digest('base64url').slice(0, 22) + '"', cache: cacheControl }
  } catch {
    asset = null
  }
  // The console's own files are re-read when missing, so a file added later is found; everything read is kept.
  if (asset) cache.set(key, asset)
  return asset
}

const require = createRequire(import.meta.url)

/** A package's directory, found from its entry point (not every package exports its package.json). */
function packageRoot (pkg: string): string {
  let dir = path.dirname(require.resolve(pkg))
  for (;;) {
    const manifest = path.join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === pkg) return dir
    const up = path.dirname(dir)
    if (up === dir) throw new Error(`package ${pkg}: no package.json above its entry point`)
    dir = up
  }
}
