/*
 * The rules engine, in the broker process. A message's path (docs/rules.md):
 *
 *   accepted PUBLISH ─► route ─► admit ─► host.convert ─► settle ─► publish outputs
 *                         ▲                                             │
 *                         └──────── outputs, with provenance ◄──────────┘
 *
 * Conversions run in the rule host process (host-client.ts), never on this
 * event loop, so a slow rule cannot stall a client.
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import type { HostResult } from './host-client.js'
import { RuleHost } from './host-client.js'
import { RuleFiles, type RuleFileChange } from './loader.js'
import type { RawOutput, RuleMessage } from './protocol.js'
import { Router } from './router.js'
import { RuleState, type RuleStateView } from './state.js'
import { outputsProblem, resolveOutput } from './outputs.js'
import { ruleNameProblem } from './validate.js'

/** A message entering the rules: a client's accepted publish, or a rule's output. */
export interface Inbound {
  topic: string
  payload: Buffer | Uint8Array | string
  qos: 0 | 1 | 2
  retain: boolean
  clientId: string | null
  username: string | null
}

export interface Publisher {
  publish(message: { topic: string, payload: string | Uint8Array, qos: 0 | 1 | 2, retain: boolean }): Promise<void>
}

export interface EngineOptions {
  config: Config['rules']
  maxPacketSize: number
  publisher: Publisher
  logger: Logger
  /** Called with each conversion's execution time, for metrics. */
  onDuration?: (rule: string, ms: number) => void
  /** Flow control: stop and restart reading from a publishing client. */
  flow?: { pause(clientId: string): void, resume(clientId: string): void }
}

/** Failures in a row that suspend a rule. */
const SUSPEND_AFTER = 5
const FIRST_BACKOFF_MS = 1000
const MAX_BACKOFF_MS = 60_000
/**
 * Flow control: when this many conversions wait for one rule, the clients
 * feeding it are paused (TCP slows them down) until the backlog is down to
 * RESUME_BELOW. Only sources that cannot be paused (broker.publish(), rule
 * outputs) can reach MAX_PENDING_PER_RULE, beyond which matches are skipped.
 */
const PAUSE_ABOVE = 2_000
const RESUME_BELOW = 500
const MAX_PENDING_PER_RULE = 10_000
const STATUS_INTERVAL_MS = 1000
const STATUS_PREFIX = '$SYS/switchyard/rules/'

export class RulesEngine {
  readonly #config: Config['rules']
  readonly #maxPacketSize: number
  readonly #publisher: Publisher
  readonly #logger: Logger
  readonly #onDuration: ((rule: string, ms: number) => void) | undefined
  readonly #flow: EngineOptions['flow']
  /** How many rules hold each paused client. */
  readonly #pausedBy = new Map<string, number>()
  readonly #router = new Router()
  readonly #rules = new Map<string, RuleState>()
  readonly #host: RuleHost
  readonly #files: RuleFiles
  readonly #dirty = new Set<string>()
  readonly #logBudget = new Map<string, { windowStart: number, used: number, suppressed: number }>()
  #statusTimer: NodeJS.Timeout | undefined
  #closed = false

  constructor (options: EngineOptions) {
    this.#config = options.config
    this.#maxPacketSize = options.maxPacketSize
    this.#publisher = options.publisher
    this.#logger = options.logger.child({ component: 'rules' })
    this.#onDuration = options.onDuration
    this.#flow = options.flow
    // A host crash settles each lost conversion as 'crash': counted per rule there.
    this.#host = new RuleHost({ logger: this.#logger })
    this.#files = new RuleFiles(options.config.dir, changes => this.#apply(changes), this.#logger)
  }

  /** Loads every rule file, then watches the directory. */
  async start (): Promise<void> {
    await this.#files.start()
    this.#statusTimer = setInterval(() => this.#publishStatus(), STATUS_INTERVAL_MS)
    this.#statusTimer.unref()
  }

  /** Every rule's state. */
  rules (): RuleStateView[] {
    return [...this.#rules.values()].map(r => r.view()).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** The rule host's process id, while it runs (for operators and tests). */
  get hostPid (): number | undefined { return this.#host.pid }

  /** Re-reads the rules directory now (the watcher does it on its own). */
  rescan (): Promise<void> {
    return this.#files.rescan()
  }

  /** Routes one message through every matching rule. `chain` is its provenance: the rules that produced it. */
  route (message: Inbound, chain: readonly string[] = []): void {
    if (this.#closed) return
    const names = this.#router.match(message.topic)
    if (names.size === 0) return
    let input: RuleMessage | undefined
    for (const name of names) {
      const rule = this.#rules.get(name)
      if (!rule || rule.meta === undefined) continue
      // A rule never sees a message it helped produce, and chains end at maxHops.
      if (chain.length >= this.#config.maxHops || chain.includes(name)) {
        rule.counters.loopDropped++
        this.#dirty.add(name)
        continue
      }
      rule.counters.matched++
      this.#dirty.add(name)
      if (rule.suspendedUntil > Date.now() || this.#host.inflight(name) >= MAX_PENDING_PER_RULE) {
        rule.counters.skipped++
        continue
      }
      input ??= toRuleMessage(message)
      this.#host.convert(name, input, (result, ms) => this.#settle(rule, message, chain, result, ms))
      if (message.clientId !== null && chain.length === 0 && this.#host.inflight(name) >= PAUSE_ABOVE) this.#hold(rule, message.clientId)
    }
  }

  #hold (rule: RuleState, clientId: string): void {
    if (!this.#flow || rule.holding.has(clientId)) return
    rule.holding.add(clientId)
    const n = (this.#pausedBy.get(clientId) ?? 0) + 1
    this.#pausedBy.set(clientId, n)
    if (n === 1) this.#flow.pause(clientId)
  }

  #release (rule: RuleState): void {
    for (const clientId of rule.holding) {
      const n = (this.#pausedBy.get(clientId) ?? 1) - 1
      if (n > 0) this.#pausedBy.set(clientId, n)
      else {
        this.#pausedBy.delete(clientId)
        this.#flow?.resume(clientId)
      }
    }
    rule.holding.clear()
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const rule of this.#rules.values()) this.#release(rule)
    clearInterval(this.#statusTimer)
    this.#files.close()
    await this.#host.close()
    await Promise.all([...this.#rules.values()].map(r => r.publishTail))
  }

  #settle (rule: RuleState, input: Inbound, chain: readonly string[], result: HostResult, ms: number): void {
    if (rule.holding.size > 0 && this.#host.inflight(rule.name) <= RESUME_BELOW) this.#release(rule)
    if (ms > 0) {
      rule.recordDuration(ms)
      this.#onDuration?.(rule.name, ms)
    }
    this.#consoleLines(rule, result.logs)
    this.#dirty.add(rule.name)
    if (result.kind === 'ok') {
      const problem = outputsProblem(result.outputs, this.#maxPacketSize)
      if (problem === undefined) {
        rule.streak = 0
        rule.backoffMs = 0
        if (result.outputs.length === 0) rule.counters.dropped++
        for (const output of result.outputs) this.#emit(rule, input, chain, output)
        return
      }
      this.#fail(rule, input, 'failed', problem)
      return
    }
    const counter = result.kind === 'error' ? 'failed' : result.kind === 'timeout' ? 'timeouts' : result.kind === 'memory' ? 'memoryErrors' : 'hostCrashes'
    this.#fail(rule, input, counter, result.error)
  }

  #emit (rule: RuleState, input: Inbound, chain: readonly string[], output: RawOutput): void {
    rule.counters.outputs++
    const message = resolveOutput(output, rule.meta?.qos, input.qos)
    // Outputs go through the rules again: chains, such as telemetry feeding an alert rule.
    const next = () => this.route({ ...message, clientId: input.clientId, username: input.username }, [...chain, rule.name])
    const published = (p: Promise<void>) => p.catch(err => {
      this.#logger.warn({ rule: rule.name, topic: message.topic, err: (err as Error).message }, 'rule output could not be published')
    })
    // Outputs keep the order of their inputs. A QoS 0, non-retained publish
    // is dispatched by Aedes in call order, so it goes at once; one that
    // waits on storage (retain, QoS 1/2) could be overtaken, so it and all
    // that follow it wait for the one before. (Waiting for every publish
    // held a rule to one output per event-loop turn: ~30k/s.)
    if (rule.waiting === 0 && message.qos === 0 && !message.retain) {
      rule.publishTail = published(this.#publisher.publish(message))
      next()
      return
    }
    rule.waiting++
    rule.publishTail = rule.publishTail
      .then(() => published(this.#publisher.publish(message)))
      .then(next)
      .finally(() => { rule.waiting-- })
  }

  #fail (rule: RuleState, input: Inbound, counter: 'failed' | 'timeouts' | 'memoryErrors' | 'hostCrashes', error: string): void {
    rule.counters[counter]++
    rule.recordError(input.topic, error)
    rule.streak++
    if (this.#shouldLog(rule.name)) {
      this.#logger.warn({ rule: rule.name, topic: input.topic, clientId: input.clientId, payload: preview(input.payload), kind: counter, error }, 'rule failed')
    }
    if (rule.streak >= SUSPEND_AFTER && rule.suspendedUntil <= Date.now()) this.#suspend(rule)
  }

  // Suspended with backoff, never forever: it resumes by itself, and a
  // success resets the backoff.
  #suspend (rule: RuleState): void {
    rule.backoffMs = Math.min(rule.backoffMs === 0 ? FIRST_BACKOFF_MS : rule.backoffMs * 2, MAX_BACKOFF_MS)
    rule.suspendedUntil = Date.now() + rule.backoffMs
    rule.streak = 0
    this.#logger.warn({ rule: rule.name, forMs: rule.backoffMs }, `rule suspended after ${SUSPEND_AFTER} failures in a row; it resumes by itself`)
    this.#publishOne(rule)
    setTimeout(() => {
      if (this.#closed || this.#rules.get(rule.name) !== rule) return
      this.#logger.info({ rule: rule.name }, 'rule resumed')
      this.#publishOne(rule)
    }, rule.backoffMs + 1).unref()
  }

  async #apply (changes: RuleFileChange[]): Promise<void> {
    await Promise.all(changes.map(change => this.#applyOne(change)))
  }

  async #applyOne (change: RuleFileChange): Promise<void> {
    const { name, file } = change
    if (change.kind === 'removed') {
      const rule = this.#rules.get(name)
      if (!rule) return
      this.#router.delete(name)
      this.#rules.delete(name)
      this.#release(rule)
      this.#host.unload(name)
      this.#logger.info({ rule: name }, 'rule removed')
      // Clear the retained status.
      await this.#publisher.publish({ topic: STATUS_PREFIX + name, payload: '', qos: 0, retain: true }).catch(() => {})
      return
    }
    let rule = this.#rules.get(name)
    if (!rule) {
      rule = new RuleState(name, file)
      this.#rules.set(name, rule)
    }
    rule.sourceHash = change.hash
    const nameProblem = ruleNameProblem(name)
    const outcome = nameProblem
      ? { ok: false as const, error: nameProblem }
      : await this.#host.load(name, change.source, { timeoutMs: this.#config.timeoutMs, memoryLimitMb: this.#config.memoryLimitMb })
    if (this.#rules.get(name) !== rule || rule.sourceHash !== change.hash) return // superseded meanwhile
    if (outcome.ok) {
      const reloaded = rule.meta !== undefined
      rule.meta = outcome.meta
      rule.loadedAt = new Date()
      rule.error = null
      // New code starts afresh.
      rule.streak = 0
      rule.backoffMs = 0
      rule.suspendedUntil = 0
      this.#router.set(name, outcome.meta.topics)
      this.#logger.info({ rule: name, topics: outcome.meta.topics }, reloaded ? 'rule reloaded' : 'rule loaded')
    } else {
      rule.error = rule.meta ? `reload failed; the previous version keeps running: ${outcome.error}` : outcome.error
      rule.recordError(file, outcome.error)
      this.#logger.error({ rule: name, file, error: outcome.error }, rule.meta ? 'rule file failed to load; keeping the previous version' : 'rule file failed to load')
    }
    this.#publishOne(rule)
  }

  #publishStatus (): void {
    for (const name of this.#dirty) {
      const rule = this.#rules.get(name)
      if (rule) this.#publishOne(rule)
    }
    this.#dirty.clear()
  }

  #publishOne (rule: RuleState): void {
    if (this.#closed) return
    this.#dirty.delete(rule.name)
    this.#publisher.publish({ topic: STATUS_PREFIX + rule.name, payload: JSON.stringify(rule.view()), qos: 0, retain: true })
      .catch(err => this.#logger.debug({ err: (err as Error).message }, 'rule status not published'))
  }

  // console.* from rules, at most 20 lines per rule per second.
  #consoleLines (rule: RuleState, lines: Array<[string, string]>): void {
    for (const [level, text] of lines) {
      if (!this.#shouldLog(rule.name)) continue
      const log = level === 'error' ? 'error' : level === 'warn' ? 'warn' : level === 'debug' ? 'debug' : 'info'
      this.#logger[log]({ rule: rule.name }, text)
    }
  }

  #shouldLog (rule: string): boolean {
    const now = Date.now()
    let budget = this.#logBudget.get(rule)
    if (!budget || now - budget.windowStart >= 1000) {
      if (budget && budget.suppressed > 0) this.#logger.warn({ rule, suppressed: budget.suppressed }, 'rule log lines suppressed (more than 20 a second)')
      budget = { windowStart: now, used: 0, suppressed: 0 }
      this.#logBudget.set(rule, budget)
    }
    if (budget.used < 20) { budget.used++; return true }
    budget.suppressed++
    return false
  }
}

function toRuleMessage (m: Inbound): RuleMessage {
  return {
    topic: m.topic,
    // Bytes only: the rule host decodes the text, off this event loop. A
    // copy, because a Buffer may view a larger pooled ArrayBuffer, which IPC
    // would send whole.
    bytes: typeof m.payload === 'string' ? new Uint8Array(Buffer.from(m.payload)) : Uint8Array.prototype.slice.call(m.payload),
    qos: m.qos,
    retain: m.retain,
    clientId: m.clientId,
    username: m.username,
    timestamp: Date.now()
  }
}

function preview (payload: Inbound['payload']): string {
  const bytes = typeof payload === 'string' ? Buffer.from(payload) : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  const text = bytes.subarray(0, 200).toString('utf8')
  return bytes.length > 200 ? `${text}… (${bytes.length} bytes)` : text
}
