/*
 * The broker's handle on the rule host process (host-main.ts): forks it,
 * sends it rules and batches of conversions (conversions.ts: at most
 * HOST_WINDOW per rule in the host, the rest queued here), and survives its
 * death. When the host dies (V8 out of memory outside an isolate's limit, a
 * catastrophic error, a kill), what it had received is lost, it is
 * restarted with backoff, every rule is loaded again, and the queue goes to
 * the new host. A host that never
 * becomes ready within startTimeoutMs is given up: loads fail with
 * ERR_RULES_HOST. The broker never loads isolated-vm itself.
 */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { SwitchyardError } from '../errors.js'
import type { LoadOutcome, RuleRunner, RunDone } from './contracts.js'
import { Conversions } from './conversions.js'
import { HostLoads } from './host-loads.js'
import { decodeResults, encodeJobs } from './ipc-frames.js'
import type { FromHost, RuleMessage, ToHost } from './protocol.js'
import type { Limits } from './validate.js'

export interface RuleHostOptions {
  logger: Logger
  /** The child's entry point; the built host-main.js by default (tests point it elsewhere). */
  entry?: string
  /** How long the first start may take before it is given up. */
  startTimeoutMs?: number
}

export const START_TIMEOUT_MS = 10_000
const MAX_RESTART_DELAY_MS = 5000
const STABLE_AFTER_MS = 30_000

export class RuleHostProcess implements RuleRunner {
  readonly #logger: Logger
  readonly #entry: string
  readonly #startTimeoutMs: number
  readonly #conversions = new Conversions()
  readonly #loads = new HostLoads()
  #child: ChildProcess | undefined
  #ready = false
  #flushQueued = false
  #restarts = 0
  /** Crashes in a row, for the restart backoff; reset once a host stays up. */
  #consecutive = 0
  #startedAt = 0
  #restartTimer: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined
  /** Until a host has been ready once, its start has a deadline. */
  #everReady = false
  #deadline: NodeJS.Timeout | undefined
  /** Why the last host that never became ready died, for the start error. */
  #lastDeath: string | undefined
  /** Its last error line on stderr, which may be read after its exit. */
  #lastStderr: string | undefined
  #startError: SwitchyardError | undefined

  constructor (options: RuleHostOptions) {
    this.#logger = options.logger
    this.#entry = options.entry ?? defaultEntry()
    this.#startTimeoutMs = options.startTimeoutMs ?? START_TIMEOUT_MS
  }

  get pid (): number | undefined { return this.#child?.pid }
  get restarts (): number { return this.#restarts }
  get startError (): SwitchyardError | undefined { return this.#startError }

  inflight (rule: string): number { return this.#conversions.inflight(rule) }

  load (name: string, source: string, limits: Limits, state?: ReadonlyMap<string, string>): Promise<LoadOutcome> {
    if (this.#startError) return Promise.resolve({ ok: false, error: this.#startError.message })
    // Asked after close() (the engine reads the rule's ctx.state first): no host will answer it.
    if (this.#closing) return Promise.resolve({ ok: false, error: 'the broker is closing' })
    const { message, outcome } = this.#loads.ask(name, source, limits, state)
    if (this.#ready) this.#send(message)
    else this.#loads.hold(message)
    this.#ensureStarted()
    return outcome
  }

  unload (name: string): void {
    this.#loads.forget(name)
    // What the host holds for it, it answers 'rule was unloaded'; so is what waits here.
    this.#conversions.dropQueued(name, { kind: 'error', error: 'rule was unloaded', logs: [] })
    if (this.#ready) this.#send({ t: 'unload', name })
  }

  convert (rule: string, msg: RuleMessage, done: RunDone): void {
    this.#conversions.add(rule, msg, done)
    if (this.#startError) setImmediate(() => this.#conversions.abandon(this.#startError!.message))
    else if (!this.#flushQueued && this.#ready) {
      this.#flushQueued = true
      setImmediate(() => this.#flush())
    }
  }

  /** Ends the host. Its exit status is ignored: exiting soon after an isolate died of memory can segfault (docs/aedes-gaps.md#segfault-on-exit-after-a-memory-disposal). */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#restartTimer)
      clearTimeout(this.#deadline)
      // What still waits for a host (a rules.add() in flight, a load held
      // for the first start, queued conversions) is answered now: nothing
      // else will answer it once the host is gone.
      this.#loads.abandon('the broker is closing')
      this.#conversions.abandon('the broker is closing')
      const child = this.#child
      if (!child || child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise<void>(resolve => child.once('exit', () => resolve()))
      if (child.connected) child.disconnect()
      const timer = setTimeout(() => child.kill('SIGKILL'), 2000)
      await exited
      clearTimeout(timer)
    })()
    return this.#closing
  }

  #flush (): void {
    this.#flushQueued = false
    if (!this.#ready) return
    const batch = this.#conversions.takeBatch()
    if (batch) this.#send({ t: 'convert', seq: batch.seq, frame: encodeJobs(batch.jobs) })
  }

  #send (message: ToHost): void {
    this.#child?.send(message)
  }

  #ensureStarted (): void {
    if (this.#child || this.#closing || this.#restartTimer || this.#startError) return
    // Not unref'd: while the first start is pending, it is what settles it.
    if (!this.#everReady) this.#deadline ??= setTimeout(() => this.#giveUp(), this.#startTimeoutMs)
    this.#startedAt = Date.now()
    const child = fork(this.#entry, [], {
      execArgv: ['--no-node-snapshot'],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc']
    })
    this.#child = child
    // A dying host's stderr can come in several chunks, the error line in any
    // of them: read it from all of this child's output so far.
    let stderrSoFar = ''
    child.stderr!.on('data', (d: Buffer) => {
      const text = d.toString().trim()
      if (!this.#everReady) {
        stderrSoFar = (stderrSoFar + '\n' + text).slice(-8192)
        this.#lastStderr = firstErrorLine(stderrSoFar) ?? this.#lastStderr
      }
      this.#logger.error({ pid: child.pid }, `rule host: ${text}`)
    })
    child.on('message', (m: FromHost) => { if (this.#child === child) this.#onMessage(m) })
    child.on('error', err => this.#logger.error({ err }, 'rule host error'))
    // A dead host is handled once its IPC channel is closed too, so that
    // everything it wrote before dying (acknowledgements, results) is read first.
    child.on('exit', (code, signal) => {
      if (!child.connected) { this.#onExit(child, code, signal); return }
      const fallback = setTimeout(() => this.#onExit(child, code, signal), 1000).unref()
      child.once('disconnect', () => { clearTimeout(fallback); this.#onExit(child, code, signal) })
    })
  }

  #onMessage (m: FromHost): void {
    switch (m.t) {
      case 'ready': {
        this.#ready = true
        this.#everReady = true
        clearTimeout(this.#deadline)
        this.#deadline = undefined
        // After a restart, load every rule again, then what was asked
        // meanwhile, and only then the conversions held during the restart
        // (the host holds a rule's conversions until its load is done).
        const restoreFailed = (rule: string, error: string) => this.#logger.error({ rule, error }, 'rule failed to reload after a rule host restart')
        for (const message of this.#loads.replay(restoreFailed)) this.#send(message)
        this.#flush()
        break
      }
      case 'loaded':
        this.#loads.answered(m.id, m.ok ? { ok: true, meta: m.meta } : { ok: false, error: m.error })
        break
      case 'received':
        this.#conversions.acknowledged(m.seq)
        break
      case 'results':
        for (const r of decodeResults(m.frame)) this.#conversions.settle(r.id, r.result, r.ms)
        // Room in the window: send what waits now, so that the host does not idle.
        this.#flush()
        break
    }
  }

  #onExit (child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return
    this.#child = undefined
    this.#ready = false
    if (this.#closing) return
    const reason = `rule host process died (${signal ?? `exit code ${code}`})`
    this.#restarts++
    this.#consecutive = Date.now() - this.#startedAt > STABLE_AFTER_MS ? 1 : this.#consecutive + 1
    if (!this.#everReady) this.#lastDeath = signal ?? `exit code ${code}`
    const { lost, lostByRule, waiting } = this.#conversions.hostDied(reason)
    this.#logger.error({ code, signal, lost, lostByRule, waiting, restarts: this.#restarts },
      `${reason}; ${lost} conversion(s) in flight lost; restarting it, and ${waiting} waiting conversion(s) go to the new host`)
    this.#loads.hostDied(reason)
    const delay = Math.min(100 * 2 ** Math.min(this.#consecutive - 1, 6), MAX_RESTART_DELAY_MS)
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined
      this.#ensureStarted()
    }, delay)
    this.#restartTimer.unref()
  }

  // The first start missed its deadline: stop trying, and fail what waits for it.
  #giveUp (): void {
    this.#deadline = undefined
    const child = this.#child
    this.#child = undefined
    this.#ready = false
    clearTimeout(this.#restartTimer)
    this.#restartTimer = undefined
    child?.kill('SIGKILL')
    const stderr = this.#lastStderr === undefined ? '' : `: ${this.#lastStderr}`
    const last = this.#lastDeath === undefined ? `it never answered${stderr}` : `it died ${this.#restarts} time(s), last: ${this.#lastDeath}${stderr}`
    this.#startError = new SwitchyardError('ERR_RULES_HOST',
      `the rule host process did not start within ${this.#startTimeoutMs} ms (${last}). It is forked from ${this.#entry}: ` +
      'check that the package is built (npm run build) and that isolated-vm loads on this Node (npm ci)')
    this.#logger.error({ entry: this.#entry, restarts: this.#restarts }, this.#startError.message)
    this.#loads.abandon(this.#startError.message)
    this.#conversions.abandon(this.#startError.message)
  }
}

/** The line of a dying host's stderr that says why, e.g. "Error: Cannot find module '...'". */
function firstErrorLine (text: string): string | undefined {
  const lines = text.split('\n').map(l => l.trim()).filter(l => l.length > 0)
  return (lines.find(l => /^[\w.]*Error\b/.test(l)) ?? lines.at(-1))?.slice(0, 300)
}

function defaultEntry (): string {
  const here = fileURLToPath(import.meta.url)
  if (here.endsWith('.js')) return path.join(path.dirname(here), 'host-main.js')
  // Running from the TypeScript sources (the test runner): fork the build,
  // which `npm test` makes first.
  return fileURLToPath(new URL('../../dist/rules/host-main.js', import.meta.url))
}
