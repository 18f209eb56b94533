/*
 * The admin HTTP(S) listener (config "admin"; off unless configured). Logins,
 * sessions and CSRF are in admin/auth.ts, the dispatcher in admin/router.ts,
 * the operations (publish, retained, disconnect, rule test, SSE stream,
 * history) in admin/api.ts, the console's files in console-static.ts; the
 * read-only GETs are here (docs/operations.md):
 *   GET /metrics      Prometheus text format
 *   GET /healthz      200 while every listener is up and persistence is writable, else 503 with the reason
 *   GET /api/rules    every rule's state (docs/rules.md)
 *   GET /api/clients  the connected clients
 *   GET /api/cluster  a cluster node: every node, their sums, this node's counters (503 while Redis is away)
 *   GET /api/bridges  every bridge's state and counters (docs/bridges.md)
 * With admin.passwordFile, all of it but /healthz needs a login (docs/security.md#the-admin-listener).
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import { createSecureContext } from 'node:tls'
import type { Config } from '../config.js'
import { ConfigError, SwitchyardError } from '../errors.js'
import type { Message } from '../message.js'
import type { ErrorInput, RuleError, RuleStateView } from '../rules/state.js'
import type { Limits } from '../rules/validate.js'
import { AdminAuth } from './admin/auth.js'
import { HttpError, sendError } from './admin/http.js'
import { RuleTestBench } from './admin/rule-test.js'
import { dispatch, type RouterContext } from './admin/router.js'
import { StreamHub } from './admin/stream.js'
import { History, type TrafficCounters } from './history.js'

export interface Health {
  ok: boolean
  listeners: Array<{ type: string, port: number, up: boolean }>
  persistence: { ok: boolean, error?: string }
  /** A cluster node: its cluster parts' health (src/cluster/context.ts); not ok turns /healthz 503. */
  cluster?: { nodeId: string, ok: boolean, errors: string[], redis?: unknown }
}

export interface AdminSource {
  metrics(): Promise<{ contentType: string, body: string }>
  health(): Promise<Health>
  rules(): unknown
  /** `query`: GET /api/clients's parameters (a cluster node reads ?node= and ?local=1). May reject with ERR_CLUSTER_UNAVAILABLE carrying `clients`. */
  clients(query: URLSearchParams): unknown
  /** A cluster node only. Rejects with ERR_CLUSTER_UNAVAILABLE while Redis is away. */
  cluster?(): Promise<unknown>
  /** Every bridge's state and counters (docs/bridges.md). */
  bridges?(): unknown
  /**
   * Publishes for an administrator (POST /api/publish, DELETE /api/retained):
   * origin 'api' with `username`, checked as broker.publish() is (ERR_INVALID_*).
   */
  publish(message: { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean }, username: string | null): Promise<void>
  /** broker.subscribe(): the bus (GET /api/stream). ERR_INVALID_FILTER for a filter MQTT forbids. */
  subscribe(filter: string, handler: (message: Message) => void): () => void
  /** Up to `limit` retained messages whose topic matches `filter` (MQTT matching: `#` does not match `$SYS/`). */
  retained(filter: string, limit: number): Promise<Array<{ topic: string, payload: Buffer, qos: 0 | 1 | 2 }>>
  /** Closes a connected client's connection; false when there is none of that id. */
  disconnect(clientId: string): boolean
  /** One rule's state, source and last errors with their inputs (GET /api/rules/<name>). */
  rule(name: string): (Omit<RuleStateView, 'lastErrors'> & { source: string, lastErrors: Array<RuleError & { input?: ErrorInput }> }) | undefined
  /** What a rule test runs with: the rules' limits and limits.maxPacketSize, as in production. */
  readonly ruleLimits: { limits: Limits, maxPacketSize: number }
  /** The counters GET /api/history samples. */
  traffic(): TrafficCounters
}

export interface AdminServer {
  readonly host: string
  readonly port: number
  readonly secure: boolean
  /** Re-reads admin.passwordFile (SIGHUP); problems, if any, and the old state is kept. */
  reload(): Promise<string[]>
  close(): Promise<void>
}

export async function startAdmin (config: NonNullable<Config['admin']>, source: AdminSource, onError: (err: Error) => void): Promise<AdminServer> {
  const auth = await AdminAuth.load(config)
  const tls = config.cert !== undefined && config.key !== undefined ? readTls(config.cert, config.key) : undefined
  const history = new History(() => source.traffic())
  const streams = new StreamHub()
  const bench = new RuleTestBench(source.ruleLimits.limits, source.ruleLimits.maxPacketSize)
  const ctx: RouterContext = {
    auth,
    source,
    history,
    streams,
    bench,
    // a payload of limits.maxPacketSize in base64 (4/3), and room for the rest of the JSON
    bodyLimit: Math.ceil(source.ruleLimits.maxPacketSize * 4 / 3) + 64 * 1024,
    readOnly: async (req, res) => {
      const { status, type, body } = await route(req, source)
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }
  }
  const handler: http.RequestListener = (req, res) => {
    dispatch(ctx, req, res).catch((err: Error) => {
      if (res.headersSent) { res.destroy(); return }
      if (err instanceof HttpError) return sendError(res, err)
      onError(err)
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('internal error\n')
    })
  }
  const server = tls ? https.createServer({ ...tls }, handler) : http.createServer(handler)
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new SwitchyardError('ERR_LISTEN', `admin listener on ${config.host}:${config.port}: ${err.code ?? err.message}`, { cause: err })))
    server.listen(config.port, config.host, () => resolve())
  })
  history.start()
  const address = server.address()
  let closing: Promise<void> | undefined
  return {
    host: config.host,
    port: typeof address === 'object' && address ? address.port : config.port,
    secure: tls !== undefined,
    reload: async () => {
      const problems = await auth.reload()
      // The reload signed every console session out: their live tails too.
      if (problems.length === 0 && auth.required) streams.endSession(undefined)
      return problems
    },
    close: () => {
      closing ??= (async () => {
        history.stop()
        streams.closeAll()
        await Promise.all([
          new Promise<void>(resolve => {
            server.close(() => resolve())
            server.closeAllConnections()
          }),
          bench.close()
        ])
      })()
      return closing
    }
  }
}

/** admin.cert and admin.key, read and checked before the port is bound (ERR_TLS names the key and file). */
function readTls (certFile: string, keyFile: string): { cert: Buffer, key: Buffer } {
  const read = (field: string, file: string): Buffer => {
    try {
      return readFileSync(file)
    } catch (err) {
      throw new ConfigError([`admin.${field}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`], undefined, { code: 'ERR_TLS', cause: err })
    }
  }
  const tls = { cert: read('cert', certFile), key: read('key', keyFile) }
  try {
    createSecureContext(tls)
  } catch (err) {
    throw new ConfigError([`admin.cert, admin.key: cannot serve HTTPS with ${certFile} and ${keyFile}: ${(err as Error).message}; give a PEM certificate and the PEM private key it was issued for, without a passphrase`], undefined, { code: 'ERR_TLS', cause: err })
  }
  return tls
}

const json = (status: number, value: unknown) => ({ status, type: 'application/json', body: JSON.stringify(value, null, 2) + '\n' })

async function route (req: http.IncomingMessage, source: AdminSource): Promise<{ status: number, type: string, body: string }> {
  const path = (req.url ?? '/').split('?')[0]
  if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'only GET' })
  switch (path) {
    case '/metrics': {
      const { contentType, body } = await source.metrics()
      return { status: 200, type: contentType, body }
    }
    case '/healthz': {
      const health = await source.health()
      return json(health.ok ? 200 : 503, health)
    }
    case '/api/rules': return json(200, source.rules())
    case '/api/bridges': return json(200, source.bridges?.() ?? [])
    case '/api/clients': {
      try {
        return json(200, await source.clients(new URL(req.url ?? '/', 'http://admin').searchParams))
      } catch (err) {
        // A cluster node while Redis is away: this node's own clients, marked partial.
        if ((err as { code?: string }).code === 'ERR_CLUSTER_UNAVAILABLE') return json(503, { error: (err as Error).message, partial: true, clients: (err as { clients?: unknown }).clients ?? [] })
        throw err
      }
    }
    case '/api/cluster': {
      if (!source.cluster) return json(404, { error: 'not a cluster node (no "cluster" in the config)' })
      try {
        return json(200, await source.cluster())
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_CLUSTER_UNAVAILABLE') return json(503, { error: (err as Error).message })
        throw err
      }
    }
    default: return json(404, { error: 'not found', paths: ['/metrics', '/healthz', '/api/rules', '/api/clients', '/api/bridges', ...(source.cluster ? ['/api/cluster'] : [])] })
  }
}
