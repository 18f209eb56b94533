/*
 * The admin listener's one dispatcher. In order:
 *   1. /healthz answers anyone (load balancers);
 *   2. anything outside /api/ and /metrics is the console's static files
 *      (console-static.ts), served without login: they hold no data;
 *   3. a method the route does not take: 405, before any login is asked;
 *   4. /api/login, /api/session and /api/logout;
 *   5. every other route needs a caller (auth.ts), and POST and DELETE pass
 *      the CSRF rule;
 *   6. the operations (api.ts), then the read-only GETs of admin.ts.
 */
import type http from 'node:http'
import { serveConsole } from '../console-static.js'
import { api, type ApiContext, type Call } from './api.js'
import type { AdminAuth, Caller } from './auth.js'
import { HttpError, readJson, sendJson } from './http.js'

type Method = 'GET' | 'POST' | 'DELETE'
interface Route { method: Method, path: RegExp, handle: (ctx: ApiContext, call: Call) => Promise<void> }

const ROUTES: Route[] = [
  { method: 'POST', path: /^\/api\/publish$/, handle: api.publish },
  { method: 'GET', path: /^\/api\/retained$/, handle: api.retained },
  { method: 'DELETE', path: /^\/api\/retained\/(.+)$/, handle: api.clearRetained },
  { method: 'POST', path: /^\/api\/clients\/([^/]+)\/disconnect$/, handle: api.disconnect },
  { method: 'GET', path: /^\/api\/rules\/([^/]+)$/, handle: api.rule },
  { method: 'POST', path: /^\/api\/rules\/([^/]+)\/test$/, handle: api.testRule },
  { method: 'GET', path: /^\/api\/stream$/, handle: api.stream },
  { method: 'GET', path: /^\/api\/history$/, handle: api.history }
]

/** The read-only routes of admin.ts (metrics, health, rules, clients, cluster...): GET and HEAD only. */
export type ReadOnlyRoutes = (req: http.IncomingMessage, res: http.ServerResponse) => Promise<void>

export interface RouterContext extends ApiContext {
  auth: AdminAuth
  readOnly: ReadOnlyRoutes
}

export async function dispatch (ctx: RouterContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://admin.invalid')
  const path = url.pathname
  const method = req.method ?? 'GET'
  if (path === '/healthz') return ctx.readOnly(req, res)
  if (!path.startsWith('/api/') && path !== '/metrics') {
    if ((method === 'GET' || method === 'HEAD') && serveConsole(req, res)) return
    throw new HttpError(404, 'not found')
  }
  switch (path) {
    case '/api/login': return only(method, 'POST', () => login(ctx, req, res))
    case '/api/session': return only(method, 'GET', () => session(ctx, req, res))
    case '/api/logout': return only(method, 'POST', () => logout(ctx, req, res))
  }
  const matching = ROUTES.map(route => ({ route, match: route.path.exec(path) })).filter(r => r.match !== null)
  const found = matching.find(r => r.route.method === method)
  if (matching.length > 0 && found === undefined) {
    throw new HttpError(405, `${path} takes ${matching.map(r => r.route.method).join(', ')}`, { headers: { allow: matching.map(r => r.route.method).join(', ') } })
  }
  if (found === undefined && method !== 'GET' && method !== 'HEAD') throw new HttpError(405, 'only GET', { headers: { allow: 'GET, HEAD' } })
  const caller = await ctx.auth.identify(req)
  if (method === 'POST' || method === 'DELETE') ctx.auth.checkCsrf(req, caller)
  if (found === undefined) return ctx.readOnly(req, res)
  const param = found.match![1]
  await found.route.handle(ctx, { req, res, caller, url, ...(param === undefined ? {} : { param }) })
}

async function only (method: string, wanted: Method, run: () => Promise<void>): Promise<void> {
  if (method !== wanted) throw new HttpError(405, `only ${wanted}`, { headers: { allow: wanted } })
  await run()
}

const sessionView = (ctx: RouterContext, caller: Caller) => ({ user: caller.user, csrfToken: caller.csrfToken, authRequired: ctx.auth.required })

async function login (ctx: RouterContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const body = await readJson(req, 64 * 1024) as { username?: unknown, password?: unknown } | null
  if (!ctx.auth.required) {
    // No passwordFile: nothing to sign in to; the console goes on anonymously.
    sendJson(res, 200, sessionView(ctx, await ctx.auth.identify(req)))
    return
  }
  if (body === null || typeof body !== 'object' || typeof body.username !== 'string' || typeof body.password !== 'string') {
    throw new HttpError(400, 'send { "username": "...", "password": "..." } as JSON')
  }
  const { caller, cookie } = await ctx.auth.login(req, body.username, body.password)
  sendJson(res, 200, { user: caller.user, csrfToken: caller.csrfToken }, { 'set-cookie': cookie })
}

async function session (ctx: RouterContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  sendJson(res, 200, sessionView(ctx, await ctx.auth.identify(req)))
}

async function logout (ctx: RouterContext, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  let caller: Caller | undefined
  if (ctx.auth.required && ctx.auth.hasSession(req)) {
    caller = await ctx.auth.identify(req)
    // Signing someone out from another site is a CSRF too.
    ctx.auth.checkCsrf(req, caller)
  }
  // Its live tails end with it.
  if (caller?.session !== undefined) ctx.streams.endSession(caller.session)
  sendJson(res, 200, { ok: true }, { 'set-cookie': ctx.auth.logout(caller) })
}
