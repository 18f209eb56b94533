/*
 * The admin HTTP listener (config "admin"; off unless configured):
 *   GET /metrics      Prometheus text format
 *   GET /healthz      200 while every listener is up and persistence is writable, else 503 with the reason
 *   GET /api/rules    every rule's state (docs/rules.md)
 *   GET /api/clients  the connected clients
 *   GET /api/cluster  a cluster node: every node, their sums, this node's counters (503 while Redis is away)
 * It has no authentication: keep it on loopback or behind a proxy.
 */
import http from 'node:http'
import type { Config } from '../config.js'
import { SwitchyardError } from '../errors.js'

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
  clients(): unknown
  /** A cluster node only. Rejects with ERR_CLUSTER_UNAVAILABLE while Redis is away. */
  cluster?(): Promise<unknown>
}

export interface AdminServer {
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

export async function startAdmin (config: NonNullable<Config['admin']>, source: AdminSource, onError: (err: Error) => void): Promise<AdminServer> {
  const server = http.createServer((req, res) => {
    route(req, source).then(({ status, type, body }) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' })
      res.end(body)
    }, (err: Error) => {
      onError(err)
      res.writeHead(500, { 'content-type': 'text/plain' })
      res.end('internal error\n')
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(new SwitchyardError('ERR_LISTEN', `admin listener on ${config.host}:${config.port}: ${err.code ?? err.message}`, { cause: err })))
    server.listen(config.port, config.host, () => resolve())
  })
  const address = server.address()
  let closing: Promise<void> | undefined
  return {
    host: config.host,
    port: typeof address === 'object' && address ? address.port : config.port,
    close: () => {
      closing ??= new Promise(resolve => {
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    }
  }
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
    case '/api/clients': return json(200, source.clients())
    case '/api/cluster': {
      if (!source.cluster) return json(404, { error: 'not a cluster node (no "cluster" in the config)' })
      try {
        return json(200, await source.cluster())
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_CLUSTER_UNAVAILABLE') return json(503, { error: (err as Error).message })
        throw err
      }
    }
    default: return json(404, { error: 'not found', paths: ['/metrics', '/healthz', '/api/rules', '/api/clients', ...(source.cluster ? ['/api/cluster'] : [])] })
  }
}
