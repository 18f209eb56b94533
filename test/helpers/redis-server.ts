/*
 * A real redis-server of the test file's own, for tests of Redis outages:
 * stop/kill/start take it away and bring it back on the same port with the
 * same data (AOF), which helpers/redis.ts (useRedis) does not do. Settings as
 * there: a free port, a temporary directory, appendonly yes, appendfsync
 * everysec. Started before the file's tests and removed after them.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { REDIS_SERVER } from './redis.js'

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Whether the process runs (it may be stopped by SIGSTOP). */
  readonly running: boolean
  /** Starts it (again) on the same port and data; resolves when it answers PING (AOF loaded). */
  start(): Promise<void>
  /** SIGTERM: Redis writes its AOF and exits. */
  stop(): Promise<void>
  /** kill -9 (or another signal): a hard outage. SIGSTOP/SIGCONT freeze and thaw it. */
  kill(signal?: NodeJS.Signals): Promise<void>
}

/** Registers beforeAll/afterAll for a Redis of the file's own; call at the top of a test file. */
export function redisServer (): RedisServer {
  let dir = ''
  let port = 0
  let child: ChildProcess | undefined

  const exited = (c: ChildProcess): Promise<void> => c.exitCode !== null || c.signalCode !== null
    ? Promise.resolve()
    : new Promise(resolve => c.once('exit', () => resolve()))

  const server: RedisServer = {
    get port () { return port },
    get url () { return `redis://127.0.0.1:${port}/0` },
    get dir () { return dir },
    get running () { return child !== undefined && child.exitCode === null && child.signalCode === null },
    async start () {
      if (server.running) throw new Error('redis-server is already running')
      child = spawn(REDIS_SERVER, [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', dir,
        '--appendonly', 'yes', '--appendfsync', 'everysec', '--save', '',
        '--daemonize', 'no', '--protected-mode', 'no', '--logfile', path.join(dir, 'redis.log')
      ], { stdio: 'ignore' })
      const c = child
      const deadline = Date.now() + 10_000
      while (!(await pong(port))) {
        if (c.exitCode !== null) throw new Error(`redis-server exited with ${c.exitCode}; see ${path.join(dir, 'redis.log')}`)
        if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not answer PING within 10 s`)
        await new Promise(resolve => setTimeout(resolve, 20))
      }
    },
    async stop () {
      if (!child) return
      child.kill('SIGTERM')
      await exited(child)
    },
    async kill (signal = 'SIGKILL') {
      if (!child) return
      child.kill(signal)
      if (signal === 'SIGKILL' || signal === 'SIGTERM') await exited(child)
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-redis-'))
    port = await freePort()
    await server.start()
  })
  afterAll(async () => {
    if (child) {
      child.kill('SIGCONT')
      child.kill('SIGKILL')
      await exited(child)
    }
    rmSync(dir, { recursive: true, force: true })
  })
  return server
}

function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

/** Whether a Redis on `port` answers PING with PONG (not LOADING, not refused). */
function pong (port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = net.connect(port, '127.0.0.1')
    let data = ''
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => done(false))
    socket.once('error', () => done(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.on('data', chunk => {
      data += chunk.toString()
      if (data.includes('\r\n')) done(data.startsWith('+PONG'))
    })
  })
}
