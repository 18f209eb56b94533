/*
 * Who may use the admin listener (docs/security.md#the-admin-listener).
 *
 * With admin.passwordFile (the broker's password file format), every route
 * but /healthz and the console's static files needs a login: HTTP Basic (the
 * API, Prometheus on /metrics) or the session cookie POST /api/login sets
 * (the console). Failed logins back off per address, as failed CONNECTs do
 * (src/auth/backoff.ts, through the same Authenticator).
 *
 * CSRF: a cookie rides along with any request a browser makes, so every
 * POST and DELETE authenticated by the cookie must carry X-CSRF-Token, the
 * session's token (a cross-site page cannot read it). Basic and anonymous
 * callers must send Content-Type: application/json (or the X-CSRF-Token of
 * GET /api/session): a cross-site form cannot, and a cross-site fetch() can
 * only after a CORS preflight, which this listener never grants (it sends no
 * CORS headers at all).
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto'
import type http from 'node:http'
import { Authenticator } from '../../auth/authenticator.js'
import { isLoopback } from '../../config.js'
import { ConfigError } from '../../errors.js'
import { HttpError, isJson } from './http.js'

export const SESSION_COOKIE = 'switchyard_session'
/** The console sends it, so that a 401 does not open the browser's Basic login popup. */
export const CONSOLE_HEADER = 'switchyard-console'
const SESSION_TTL_MS = 12 * 3600_000
const MAX_SESSIONS = 1000
const BASIC_CACHE_MS = 60_000

export interface Caller {
  /** The administrator; null for an anonymous admin listener. */
  readonly user: string | null
  readonly via: 'session' | 'basic' | 'anonymous'
  /** The CSRF token this caller's console sends (the session's, or the listener's anonymous one); '' for Basic. */
  readonly csrfToken: string
  /** The session's id (its cookie value), for logout. */
  readonly session?: string
}

interface Session { user: string, csrfToken: string, expires: number }

const token = (): string => randomBytes(32).toString('base64url')

export class AdminAuth {
  readonly #auth: Authenticator | undefined
  readonly #secure: boolean
  readonly #loopback: boolean
  readonly #sessions = new Map<string, Session>()
  readonly #basic = new Map<string, { user: string, expires: number }>()
  readonly #anonymousToken = token()

  private constructor (auth: Authenticator | undefined, secure: boolean, loopback: boolean) {
    this.#auth = auth
    this.#secure = secure
    this.#loopback = loopback
  }

  /** Reads admin.passwordFile; a ConfigError names every bad line. */
  static async load (config: { host: string, passwordFile?: string | undefined, cert?: string | undefined }): Promise<AdminAuth> {
    let auth: Authenticator | undefined
    if (config.passwordFile !== undefined) {
      try {
        auth = await Authenticator.load({ passwordFile: config.passwordFile, allowAnonymous: false })
      } catch (err) {
        throw new ConfigError((err as Error).message.split('\n').map(line => `admin.passwordFile: ${line}`))
      }
    }
    return new AdminAuth(auth, config.cert !== undefined, isLoopback(config.host))
  }

  /** True with a passwordFile: everything but /healthz needs a login. */
  get required (): boolean { return this.#auth !== undefined }

  /** Re-reads the password file (SIGHUP); on success every console session ends, so a removed administrator is out at once. */
  async reload (): Promise<string[]> {
    if (!this.#auth) return []
    const problems = await this.#auth.reload()
    if (problems.length > 0) return problems.map(p => `admin.passwordFile: ${p}`)
    this.#sessions.clear()
    this.#basic.clear()
    return []
  }

  /**
   * Who makes this request; throws 401 (with the backoff's delay already
   * waited) when it needs a login and has none that holds, 403 for a
   * request to an anonymous loopback listener under another host name.
   */
  async identify (req: http.IncomingMessage): Promise<Caller> {
    if (!this.#auth) {
      // An anonymous loopback listener is reachable from this machine's
      // browser: a page whose name resolves to 127.0.0.1 (DNS rebinding)
      // would be same-origin. Answer only requests addressed by a loopback name.
      if (this.#loopback && !isLoopback(hostName(req.headers.host))) {
        throw new HttpError(403, `Host ${JSON.stringify(req.headers.host ?? '')} is not a loopback name: this admin listener has no login and answers only requests addressed to 127.0.0.1, [::1] or localhost`)
      }
      return { user: null, via: 'anonymous', csrfToken: this.#anonymousToken }
    }
    const authorization = req.headers.authorization
    if (authorization !== undefined) return this.#basicCaller(req, authorization)
    const id = sessionCookie(req)
    const session = id === undefined ? undefined : this.#sessions.get(id)
    if (id !== undefined && session !== undefined) {
      if (session.expires > Date.now()) return { user: session.user, via: 'session', csrfToken: session.csrfToken, session: id }
      this.#sessions.delete(id)
    }
    throw this.unauthorized(req, id === undefined ? 'login required: sign in (POST /api/login) or use HTTP Basic' : 'the session has expired or ended; sign in again')
  }

  /** POST /api/login: a session and its cookie, or 401 after the backoff's delay. */
  async login (req: http.IncomingMessage, username: string, password: string): Promise<{ caller: Caller, cookie: string }> {
    const user = await this.#check(req, username, password)
    if (this.#sessions.size >= MAX_SESSIONS) this.#sessions.delete(this.#sessions.keys().next().value!)
    const id = token()
    const session: Session = { user, csrfToken: token(), expires: Date.now() + SESSION_TTL_MS }
    this.#sessions.set(id, session)
    return { caller: { user, via: 'session', csrfToken: session.csrfToken, session: id }, cookie: this.#cookie(id, SESSION_TTL_MS / 1000) }
  }

  /** POST /api/logout: ends the session; the cookie that clears it in the browser. */
  logout (caller: Caller | undefined): string {
    if (caller?.session !== undefined) this.#sessions.delete(caller.session)
    return this.#cookie('', 0)
  }

  /** Whether the request carries a session cookie that is still valid (for logout without a login). */
  hasSession (req: http.IncomingMessage): boolean {
    const id = sessionCookie(req)
    return id !== undefined && (this.#sessions.get(id)?.expires ?? 0) > Date.now()
  }

  /** The CSRF rule (top of this file), for every POST and DELETE; 403 when it fails. */
  checkCsrf (req: http.IncomingMessage, caller: Caller): void {
    const sent = req.headers['x-csrf-token']
    const matches = caller.via !== 'basic' && typeof sent === 'string' && equal(sent, caller.csrfToken)
    if (caller.via === 'session') {
      if (!matches) throw new HttpError(403, 'this request changes something: send the X-CSRF-Token header with the csrfToken of POST /api/login or GET /api/session')
      return
    }
    if (!matches && !isJson(req)) {
      throw new HttpError(403, 'this request changes something: send it with Content-Type: application/json' + (caller.via === 'anonymous' ? ', or with the X-CSRF-Token header from GET /api/session' : ''))
    }
  }

  /** A 401; with WWW-Authenticate for API clients, not for the console (no browser popup). */
  unauthorized (req: http.IncomingMessage, message: string): HttpError {
    const fromConsole = req.headers['x-requested-with'] === CONSOLE_HEADER
    return new HttpError(401, message, { extra: { authRequired: true }, headers: fromConsole ? {} : { 'www-authenticate': 'Basic realm="switchyard", charset="UTF-8"' } })
  }

  async #basicCaller (req: http.IncomingMessage, authorization: string): Promise<Caller> {
    const match = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization)
    if (!match) throw this.unauthorized(req, 'the Authorization header is not HTTP Basic (Basic <base64 of user:password>)')
    // A Basic caller sends its password with every request (Prometheus every
    // scrape): a verified header is remembered for a minute, not hashed again.
    const key = createHash('sha256').update(match[1]!).digest('base64')
    const cached = this.#basic.get(key)
    if (cached !== undefined && cached.expires > Date.now()) return { user: cached.user, via: 'basic', csrfToken: '' }
    const decoded = Buffer.from(match[1]!, 'base64').toString('utf8')
    const colon = decoded.indexOf(':')
    const user = await this.#check(req, colon < 0 ? decoded : decoded.slice(0, colon), colon < 0 ? '' : decoded.slice(colon + 1))
    if (this.#basic.size >= MAX_SESSIONS) this.#basic.clear()
    this.#basic.set(key, { user, expires: Date.now() + BASIC_CACHE_MS })
    // Basic callers have no session and no token: checkCsrf asks them for JSON.
    return { user, via: 'basic', csrfToken: '' }
  }

  async #check (req: http.IncomingMessage, username: string, password: string): Promise<string> {
    const result = await this.#auth!.authenticate({ clientId: '', username, password: Buffer.from(password, 'utf8'), identity: undefined, address: req.socket.remoteAddress ?? '' })
    if (result.ok && result.username !== null) return result.username
    // Held as a failed CONNECT's CONNACK is: other requests are not slowed.
    const delayMs = result.ok ? 0 : result.delayMs
    if (delayMs > 0) await new Promise(resolve => setTimeout(resolve, delayMs))
    const err = this.unauthorized(req, 'bad username or password')
    // Said, so that a client (and a test) can see the backoff without timing it.
    err.extra.delayedMs = delayMs
    throw err
  }

  #cookie (value: string, maxAgeSeconds: number): string {
    return `${SESSION_COOKIE}=${value}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAgeSeconds}${this.#secure ? '; Secure' : ''}`
  }
}

function sessionCookie (req: http.IncomingMessage): string | undefined {
  const header = req.headers.cookie
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim() || undefined
  }
  return undefined
}

function hostName (host: string | undefined): string {
  if (host === undefined) return ''
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'))
  const colon = host.lastIndexOf(':')
  return colon < 0 ? host : host.slice(0, colon)
}

function equal (a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}
