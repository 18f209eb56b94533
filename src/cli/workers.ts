/*
 * `cluster.workers: N` (docs/cluster.md#several-workers-on-one-machine):
 * `switchyard start` runs N cluster nodes on this machine. The primary
 * process forks N workers with node:cluster; each runs createBroker with the
 * same config and the same Redis, under the node id `<nodeId>-w<i>`, and the
 * listeners (MQTT and admin) are shared by node:cluster's round robin.
 *
 * The primary stays thin: it forwards SIGTERM, SIGINT and SIGHUP to the
 * workers, restarts a worker that dies (with a backoff, logged), writes the
 * pid file once every worker is ready, and exits once every worker has
 * exited after a shutdown. It never opens Redis or a listener itself.
 *
 * Nothing here touches `process`: cli.ts passes the cluster module, the
 * signals and the pid file in (test/unit/process-boundary.test.ts).
 */
import { existsSync } from 'node:fs'
import type { Config } from '../config.js'
import { generateDevCertificates } from '../listeners/certs.js'
import type { Logger } from '../log.js'

/** The environment variable that tells a worker its index (0 .. workers-1). */
export const WORKER_ENV = 'SWITCHYARD_WORKER'

/** The IPC message a worker sends once its broker listens. */
export const READY_MESSAGE = 'switchyard:worker-ready'

/** A worker's node id: stable across restarts, so its $SYS topics and logs keep their name. */
export function workerNodeId (nodeId: string, index: number): string {
  return `${nodeId}-w${index}`
}

/** What the primary needs of a forked worker (node:cluster's Worker). */
export interface WorkerProcess {
  readonly process: { readonly pid?: number | undefined, kill(signal?: NodeJS.Signals): boolean }
  on(event: 'message', listener: (message: unknown) => void): unknown
  on(event: 'exit', listener: (code: number | null, signal: string | null) => void): unknown
}

export type PrimarySignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP'

export interface PrimaryOptions {
  workers: number
  nodeId: string
  logger: Logger
  /** node:cluster's fork: a new worker with these variables added to its environment. */
  fork: (env: Record<string, string>) => WorkerProcess
  /** Registers a handler for a signal the primary receives. */
  onSignal: (signal: PrimarySignal, handler: () => void) => void
  /** Called once, when every worker has reported ready the first time (the CLI writes the pid file). Throwing shuts down with exit 1. */
  onReady?: () => void
  /** Backoff before restarting a worker: the first delay, doubled per consecutive failure up to the maximum. */
  restartDelayMs?: number
  maxRestartDelayMs?: number
  /** A worker that ran this long before it died starts again at the first delay. */
  stableMs?: number
  /** The grace period after a shutdown before the workers still running are killed. */
  shutdownTimeoutMs?: number
}

/** Signals this close together are one signal delivered twice (Ctrl-C reaches the workers and the primary). */
const SAME_SIGNAL_MS = 500

/**
 * Runs the primary. `exited` resolves with the exit code once every worker has exited
 * after a shutdown: 0 when they all closed cleanly, else 1. A worker that
 * dies before the first start completed (a config or listen error, printed by
 * the worker) ends the whole start with 1, rather than retrying for ever.
 * `stop` shuts down as SIGTERM does (cli.ts: when npm, the parent, is gone).
 */
export function runPrimary (options: PrimaryOptions): { exited: Promise<number>, stop: (why: string) => void } {
  const { workers, nodeId, logger, fork } = options
  const firstDelay = options.restartDelayMs ?? 200
  const maxDelay = options.maxRestartDelayMs ?? 10_000
  const stableMs = options.stableMs ?? 30_000
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 30_000

  interface Slot {
    index: number
    nodeId: string
    worker?: WorkerProcess | undefined
    startedAt: number
    ready: boolean
    failures: number
    restartTimer?: ReturnType<typeof setTimeout> | undefined
  }
  const slots: Slot[] = Array.from({ length: workers }, (_, index) => ({ index, nodeId: workerNodeId(nodeId, index), startedAt: 0, ready: false, failures: 0 }))
  let booted = false
  let stopping = false
  let stoppingSince = 0
  let failed = false
  let resolveExit!: (code: number) => void
  const exit = new Promise<number>(resolve => { resolveExit = resolve })
  let killTimer: ReturnType<typeof setTimeout> | undefined

  const running = () => slots.filter(s => s.worker !== undefined)
  const finishIfDone = () => {
    if (!stopping || running().length > 0) return
    if (killTimer) clearTimeout(killTimer)
    logger.info({ workers }, failed ? 'every worker has exited; some did not close cleanly' : 'every worker has exited')
    resolveExit(failed ? 1 : 0)
  }

  const signalAll = (signal: NodeJS.Signals) => {
    for (const s of running()) s.worker!.process.kill(signal)
  }

  const shutdown = (why: string, signal: NodeJS.Signals = 'SIGTERM') => {
    if (stopping) return
    stopping = true
    stoppingSince = Date.now()
    logger.info({ reason: why, workers: running().length }, 'shutting down the workers')
    for (const s of slots) if (s.restartTimer) clearTimeout(s.restartTimer)
    signalAll(signal)
    killTimer = setTimeout(() => {
      logger.warn({ workers: running().map(s => s.nodeId), timeoutMs: shutdownTimeoutMs }, 'workers still running after the grace period; killing them')
      failed = true
      signalAll('SIGKILL')
    }, shutdownTimeoutMs)
    killTimer.unref?.()
    finishIfDone()
  }

  const start = (slot: Slot) => {
    slot.restartTimer = undefined
    slot.ready = false
    slot.startedAt = Date.now()
    const worker = fork({ [WORKER_ENV]: String(slot.index) })
    slot.worker = worker
    logger.info({ worker: slot.index, nodeId: slot.nodeId, pid: worker.process.pid }, 'worker started')
    worker.on('message', message => {
      if ((message as { type?: unknown } | null)?.type !== READY_MESSAGE || slot.worker !== worker) return
      slot.ready = true
      logger.info({ worker: slot.index, nodeId: slot.nodeId, pid: worker.process.pid }, 'worker ready')
      if (!booted && slots.every(s => s.ready)) {
        booted = true
        if (stopping) return
        try {
          options.onReady?.()
        } catch (err) {
          logger.error({ err }, 'cannot complete the start')
          failed = true
          shutdown('start failed')
        }
      }
    })
    worker.on('exit', (code, signal) => {
      if (slot.worker !== worker) return
      slot.worker = undefined
      const clean = code === 0 && signal === null
      if (stopping) {
        if (!clean) failed = true
        logger.info({ worker: slot.index, nodeId: slot.nodeId, code, signal }, 'worker exited')
        finishIfDone()
        return
      }
      if (!booted) {
        // The worker printed why (a config, Redis or listen error): the same would happen again.
        logger.error({ worker: slot.index, nodeId: slot.nodeId, code, signal }, 'worker exited during the start; stopping')
        failed = true
        shutdown('a worker failed to start')
        return
      }
      const lived = Date.now() - slot.startedAt
      slot.failures = lived >= stableMs ? 1 : slot.failures + 1
      const delayMs = Math.min(maxDelay, firstDelay * 2 ** (slot.failures - 1))
      logger.warn({ worker: slot.index, nodeId: slot.nodeId, code, signal, livedMs: lived, restarts: slot.failures, delayMs }, 'worker died; restarting it')
      slot.restartTimer = setTimeout(() => start(slot), delayMs)
    })
  }

  const onStop = (signal: 'SIGTERM' | 'SIGINT') => () => {
    if (stopping) {
      // The same Ctrl-C also reached the workers (one process group); a later one means "now".
      if (Date.now() - stoppingSince < SAME_SIGNAL_MS) return
      logger.warn({ signal }, 'second signal; killing the workers')
      failed = true
      signalAll('SIGKILL')
      return
    }
    shutdown(signal, signal)
  }
  options.onSignal('SIGTERM', onStop('SIGTERM'))
  options.onSignal('SIGINT', onStop('SIGINT'))
  // Each worker re-reads the password file, the ACL file and the certificates.
  options.onSignal('SIGHUP', () => { if (!stopping) signalAll('SIGHUP') })

  logger.info({ workers, nodeIds: slots.map(s => s.nodeId) }, `starting ${workers} workers`)
  for (const slot of slots) start(slot)
  return { exited: exit, stop: why => shutdown(why) }
}

/**
 * A tls or wss listener with no cert and key uses a generated development
 * certificate, written by the first start. With several workers, the primary
 * writes it once before forking them: workers racing to write their own would
 * serve certificates signed by different CAs.
 */
export function prepareDevCertificates (config: Config, logger: Logger): void {
  const missing = config.listeners.some(l => (l.type === 'tls' || l.type === 'wss') && l.generated && !(existsSync(l.cert) && existsSync(l.key)))
  if (!missing) return
  const ca = generateDevCertificates(config.devCertDir)
  logger.warn({ ca }, `generated a development CA and server certificate for localhost; clients must trust ${ca}`)
}
