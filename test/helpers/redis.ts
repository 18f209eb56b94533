/*
 * A real Redis for the cluster tests: /usr/bin/redis-server (`.ci/run`
 * installs it) on a free port, in a temporary directory, with AOF on
 * (`appendonly yes`, as docs/cluster.md asks of production), one per test
 * file: useRedis() starts it before the file's tests and stops it after.
 * Each test starts from an empty Redis (FLUSHALL before it).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach } from 'vitest'
import type { Broker, ConfigInput } from '../../src/index.js'
import { startBroker } from './broker.js'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

export interface RedisServer {
  readonly url: string
  readonly port: number
  /** With `tls`: rediss://localhost:<tlsPort>/0 */
  readonly tlsUrl?: string
  readonly dir: string
  /** A client of this server, closed by stop(). */
  readonly admin: Redis
  stop(): Promise<void>
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

export interface RedisOptions {
  /** Added to the test settings (e.g. ['--requirepass', 'x']). */
  args?: string[]
  /** Also listen with TLS (PEM files), on a port of its own. */
  tls?: { cert: string, key: string, ca: string }
}

/** Starts redis-server with the test settings; retries on other ports if one picked was taken meanwhile. */
export async function startRedis (options: RedisOptions = {}): Promise<RedisServer> {
  const args = options.args ?? []
  let lastError: Error | undefined
  for (let attempt = 0; attempt < 3; attempt++) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-redis-'))
    const port = await freePort()
    const tlsPort = options.tls ? await freePort() : undefined
    const tlsArgs = options.tls
      ? ['--tls-port', String(tlsPort), '--tls-cert-file', options.tls.cert, '--tls-key-file', options.tls.key, '--tls-ca-cert-file', options.tls.ca, '--tls-auth-clients', 'no']
      : []
    const child = spawn(REDIS_SERVER, [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
      '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
      '--daemonize', 'no', '--logfile', '', '--loglevel', 'warning',
      ...tlsArgs,
      ...args
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    try {
      const admin = await ready(port, child, () => stderr, args)
      return {
        url: `redis://127.0.0.1:${port}/0`,
        port,
        ...(tlsPort === undefined ? {} : { tlsUrl: `rediss://localhost:${tlsPort}/0` }),
        dir,
        admin,
        async stop () {
          admin.disconnect()
          await stopChild(child)
          rmSync(dir, { recursive: true, force: true })
        }
      }
    } catch (err) {
      lastError = err as Error
      await stopChild(child)
      rmSync(dir, { recursive: true, force: true })
    }
  }
  throw lastError!
}

async function ready (port: number, child: ChildProcess, stderr: () => string, args: string[]): Promise<Redis> {
  const pass = args.indexOf('--requirepass')
  const deadline = Date.now() + 10_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}: ${stderr()}`)
    const admin = new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...(pass >= 0 ? { password: args[pass + 1] } : {}) })
    admin.on('error', () => {})
    try {
      await admin.connect()
      if (await admin.ping() === 'PONG') return admin
    } catch {
      admin.disconnect()
    }
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server on port ${port} did not answer within 10 s: ${stderr()}`)
}

async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
  await exited
  clearTimeout(timer)
}

/**
 * One Redis for the current test file, emptied before each test. Read
 * `.url` inside tests (it is set in beforeAll).
 */
export function useRedis (options: RedisOptions = {}): { readonly url: string, readonly server: RedisServer } {
  let server: RedisServer | undefined
  beforeAll(async () => { server = await startRedis(options) }, 20_000)
  afterAll(async () => { await server?.stop() })
  beforeEach(async () => { await server?.admin.flushall() })
  return {
    get url () {
      if (!server) throw new Error('useRedis(): the server starts in beforeAll')
      return server.url
    },
    get server () {
      if (!server) throw new Error('useRedis(): the server starts in beforeAll')
      return server
    }
  }
}

/**
 * A Switchyard node of a cluster on `redis`: a real broker (startBroker: TCP
 * on port 0, silent log, closed after the test) with `cluster` set.
 */
export async function startNode (redis: string, nodeId: string, config: ConfigInput = {}, cluster: Partial<NonNullable<ConfigInput['cluster']>> = {}): Promise<Broker> {
  return await startBroker({ persistence: { type: 'redis' }, ...config, cluster: { redis, nodeId, ...cluster } })
}
