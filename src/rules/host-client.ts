/*
 * The broker's side of the rule host (host.ts): forks it, batches
 * conversions per event-loop turn into one IPC message, and survives its
 * death. When the host dies (V8 out of memory outside the isolate limit, a
 * catastrophic error, a kill), work in flight fails as 'crash', the host is
 * restarted with backoff, and every rule is loaded again. The broker never
 * loads isolated-vm itself.
 */
import { fork, type ChildProcess } from 'node:child_process'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import type { ConvertResult, FromHost, LoadedMeta, RuleMessage, ToHost } from './protocol.js'
import type { Limits } from './validate.js'

export type HostResult = ConvertResult | { kind: 'crash', error: string, logs: [] }
export type LoadOutcome = { ok: true, meta: LoadedMeta } | { ok: false, error: string }
type Done = (result: HostResult, ms: number) => void

const MAX_RESTART_DELAY_MS = 5000
const STABLE_AFTER_MS = 30_000

export class RuleHost {
  readonly #logger: Logger
  /** What to load again after a restart. */
  readonly #registry = new Map<string, { source: string, limits: Limits }>()
  readonly #inflight = new Map<number, { rule: string, done: Done }>()
  readonly #inflightPerRule = new Map<string, number>()
  /** Loads awaiting the host's answer; `restore` marks a rule loaded again after a restart. */
  readonly #loads = new Map<number, { name: string, restore: boolean, resolve: (o: LoadOutcome) => void }>()
  #child: ChildProcess | undefined
  #ready = false
  #batch: Array<{ id: number, rule: string, msg: RuleMessage }> = []
  #flushQueued = false
  /** Loads asked for while the host was (re)starting. */
  #unsent: ToHost[] = []
  #nextId = 1
  #restarts = 0
  /** Crashes in a row, for the restart backoff; reset once a host stays up. */
  #consecutive = 0
  #startedAt = 0
  #restartTimer: NodeJS.Timeout | undefined
  #closing: Promise<void> | undefined

  constructor (options: { logger: Logger }) {
    this.#logger = options.logger
  }

  /** The host's process id, while it runs. */
  get pid (): number | undefined { return this.#child?.pid }
  get restarts (): number { return this.#restarts }

  inflight (rule: string): number { return this.#inflightPerRule.get(rule) ?? 0 }

  load (name: string, source: string, limits: Limits): Promise<LoadOutcome> {
    return new Promise(resolve => {
      const id = this.#nextId++
      this.#loads.set(id, {
        name,
        restore: false,
        resolve: outcome => {
          if (outcome.ok) this.#registry.set(name, { source, limits })
          resolve(outcome)
        }
      })
      const message: ToHost = { t: 'load', id, name, source, limits }
      if (this.#ready) this.#send(message)
      else this.#unsent.push(message)
      this.#ensureStarted()
    })
  }

  unload (name: string): void {
    this.#registry.delete(name)
    if (this.#ready) this.#send({ t: 'unload', name })
  }

  convert (rule: string, msg: RuleMessage, done: Done): void {
    const id = this.#nextId++
    this.#inflight.set(id, { rule, done })
    this.#inflightPerRule.set(rule, this.inflight(rule) + 1)
    this.#batch.push({ id, rule, msg })
    if (!this.#flushQueued && this.#ready) {
      this.#flushQueued = true
      setImmediate(() => this.#flush())
    }
  }

  /** Ends the host. Its exit status is ignored: exiting soon after an isolate died of memory can segfault (PITFALLS.md). */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#restartTimer)
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
    if (!this.#ready || this.#batch.length === 0) return
    const jobs = this.#batch
    this.#batch = []
    this.#send({ t: 'convert', jobs })
  }

  #send (message: ToHost): void {
    this.#child?.send(message)
  }

  #ensureStarted (): void {
    if (this.#child || this.#closing || this.#restartTimer) return
    this.#startedAt = Date.now()
    const child = fork(hostEntry(), [], {
      execArgv: ['--no-node-snapshot'],
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc']
    })
    this.#child = child
    child.stderr!.on('data', (d: Buffer) => this.#logger.error({ pid: child.pid }, `rule host: ${d.toString().trim()}`))
    child.on('message', (m: FromHost) => this.#onMessage(m))
    child.on('error', err => this.#logger.error({ err }, 'rule host error'))
    child.on('exit', (code, signal) => this.#onExit(child, code, signal))
  }

  #onMessage (m: FromHost): void {
    switch (m.t) {
      case 'ready': {
        this.#ready = true
        // After a restart, load every rule again, then what was asked
        // meanwhile, and only then conversions (the host handles its IPC in order).
        const asked = new Set(this.#unsent.map(m => m.t === 'load' ? m.name : ''))
        for (const [name, { source, limits }] of this.#registry) {
          if (asked.has(name)) continue
          const id = this.#nextId++
          this.#loads.set(id, { name, restore: true, resolve: o => { if (!o.ok) this.#logger.error({ rule: name, error: o.error }, 'rule failed to reload after a rule host restart') } })
          this.#send({ t: 'load', id, name, source, limits })
        }
        for (const message of this.#unsent.splice(0)) this.#send(message)
        this.#flush()
        break
      }
      case 'loaded': {
        const load = this.#loads.get(m.id)
        this.#loads.delete(m.id)
        load?.resolve(m.ok ? { ok: true, meta: m.meta } : { ok: false, error: m.error })
        break
      }
      case 'results':
        for (const r of m.results) this.#settle(r.id, r.result, r.ms)
        break
    }
  }

  #settle (id: number, result: HostResult, ms: number): void {
    const job = this.#inflight.get(id)
    if (!job) return
    this.#inflight.delete(id)
    const n = this.inflight(job.rule) - 1
    if (n > 0) this.#inflightPerRule.set(job.rule, n)
    else this.#inflightPerRule.delete(job.rule)
    job.done(result, ms)
  }

  #onExit (child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return
    this.#child = undefined
    this.#ready = false
    if (this.#closing) return
    const reason = `rule host process died (${signal ?? `exit code ${code}`})`
    this.#restarts++
    this.#consecutive = Date.now() - this.#startedAt > STABLE_AFTER_MS ? 1 : this.#consecutive + 1
    // Work in flight is lost with the process: fail it, never retry it (it
    // may be what killed the host). Batched work not yet sent waits for the new host.
    const unsent = new Set(this.#batch.map(j => j.id))
    const inFlight = new Map<string, number>()
    for (const [id, { rule }] of [...this.#inflight]) {
      if (unsent.has(id)) continue
      inFlight.set(rule, (inFlight.get(rule) ?? 0) + 1)
      this.#settle(id, { kind: 'crash', error: reason, logs: [] }, 0)
    }
    this.#logger.error({ code, signal, inFlight: Object.fromEntries(inFlight), restarts: this.#restarts }, `${reason}; restarting it`)
    // A new rule file being loaded may be what killed the host: fail it (the
    // previous version, if any, is restored). Rules being restored had loaded
    // before and are loaded again on the next start; unsent loads wait.
    const unsentLoads = new Set(this.#unsent.map(m => m.t === 'load' ? m.id : -1))
    for (const [id, { restore, resolve }] of this.#loads) {
      if (unsentLoads.has(id)) continue
      this.#loads.delete(id)
      if (!restore) resolve({ ok: false, error: `${reason} while loading this rule` })
    }
    const delay = Math.min(100 * 2 ** Math.min(this.#consecutive - 1, 6), MAX_RESTART_DELAY_MS)
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined
      this.#ensureStarted()
    }, delay)
    this.#restartTimer.unref()
  }
}

function hostEntry (): string {
  const here = fileURLToPath(import.meta.url)
  if (here.endsWith('.js')) return path.join(path.dirname(here), 'host.js')
  // Running from the TypeScript sources (the test runner): fork the build,
  // which `npm test` makes first.
  return fileURLToPath(new URL('../../dist/rules/host.js', import.meta.url))
}
