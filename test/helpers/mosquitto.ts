/*
 * A real Mosquitto broker for a test, on a free port, with its config in a
 * temporary directory; stopped after the test. It can be stopped and started
 * again on the same port and persistence file (a remote broker that goes
 * away mid-stream). Tests that need it are skipped where `mosquitto` is not
 * installed (.ci/run installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { onTestFinished } from 'vitest'
import { listening, until } from './wait.js'

export const hasMosquitto = spawnSync('sh', ['-c', 'command -v mosquitto']).status === 0

export interface MosquittoOptions {
  /** Extra mosquitto.conf lines for the listener (cafile, certfile, password_file, ...). */
  listener?: string[]
  /** Extra lines after the listener: a `connection` section (a Mosquitto bridge), ... */
  extra?: string[]
  /** Keep sessions and queues in a persistence file across stop() and start() (saved on a graceful stop). */
  persistence?: boolean
  /** Users for a password_file: `allow_anonymous false` then. */
  users?: Record<string, string>
  port?: number
}

export interface Mosquitto {
  readonly port: number
  readonly url: string
  readonly dir: string
  /** Starts it again after stop(), on the same port and files. */
  start(): Promise<void>
  /** SIGTERM (Mosquitto saves its persistence file and closes connections), or SIGKILL; resolves once it has exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>
  /** Sends a signal and returns: SIGSTOP freezes it (connections stay open, nothing is read or acknowledged), SIGCONT resumes it. */
  signal(signal: NodeJS.Signals): void
}

export async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

/** Starts Mosquitto; it is stopped (and its directory removed) after the current test. */
export async function startMosquitto (options: MosquittoOptions = {}): Promise<Mosquitto> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'switchyard-mosquitto-'))
  const port = options.port ?? await freePort()
  const lines = [`listener ${port} 127.0.0.1`, ...(options.listener ?? [])]
  if (options.users) {
    const file = path.join(dir, 'passwd')
    writeFileSync(file, '')
    for (const [user, password] of Object.entries(options.users)) {
      const r = spawnSync('mosquitto_passwd', ['-b', file, user, password], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`mosquitto_passwd failed: ${r.stderr}`)
    }
    lines.push(`password_file ${file}`, 'allow_anonymous false')
  } else {
    lines.push('allow_anonymous true')
  }
  lines.push(options.persistence === true ? `persistence true\npersistence_location ${dir}/` : 'persistence false')
  // Run as root, Mosquitto would switch to the "mosquitto" user, who cannot read our temporary files.
  lines.push(`user ${os.userInfo().username}`)
  lines.push('log_dest stderr', 'log_type error', 'log_type warning', 'max_queued_messages 100000', ...(options.extra ?? []))
  const conf = path.join(dir, 'mosquitto.conf')
  writeFileSync(conf, lines.join('\n') + '\n')
  let proc: ChildProcess | undefined
  let stderr = ''
  const start = async () => {
    stderr = ''
    const child = spawn('mosquitto', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
    child.stderr!.on('data', d => { stderr += String(d) })
    proc = child
    const exited = new Promise<never>((_resolve, reject) => child.once('exit', code => reject(new Error(`mosquitto exited ${code}: ${stderr}`))))
    exited.catch(() => {})
    await Promise.race([until(() => listening(port), `mosquitto on port ${port}`, 10_000), exited])
  }
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const child = proc
    proc = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const gone = new Promise<void>(resolve => child.once('exit', () => resolve()))
    child.kill(signal)
    // A frozen (SIGSTOP) broker acts on the signal once it runs again.
    child.kill('SIGCONT')
    await gone
  }
  onTestFinished(async () => {
    await stop('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return { port, url: `mqtt://127.0.0.1:${port}`, dir, start, stop, signal: sig => { proc?.kill(sig) } }
}

export interface HoldingProxy {
  readonly port: number
  /** From now on, bytes towards the broker are held back, not forwarded: what is sent is in flight, unacknowledged. */
  hold(): void
  /** Drops the held bytes (they never reach the broker) and closes every connection; later connections flow again. */
  cut(): void
}

/**
 * A TCP proxy in front of a broker on `targetPort`, closed after the test.
 * With hold() then cut(), a connection breaks with messages in flight that
 * the broker never received: they must be sent again, deterministically
 * (a stopped broker may or may not have read what was in its socket).
 */
export async function holdingProxy (targetPort: number): Promise<HoldingProxy> {
  const sockets = new Set<net.Socket>()
  let holding = false
  const server = net.createServer(client => {
    const upstream = net.connect(targetPort, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => { sockets.delete(s); client.destroy(); upstream.destroy() })
    }
    client.on('data', chunk => { if (!holding) upstream.write(chunk) })
    upstream.on('data', chunk => client.write(chunk))
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', () => resolve()))
  onTestFinished(() => new Promise<void>(resolve => { for (const s of sockets) s.destroy(); server.close(() => resolve()) }))
  return {
    port: (server.address() as net.AddressInfo).port,
    hold: () => { holding = true },
    cut: () => {
      for (const s of sockets) s.destroy()
      holding = false
    }
  }
}
