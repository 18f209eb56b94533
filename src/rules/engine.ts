/*
 * The rules engine, in the broker process. A message's path (docs/rules.md):
 *
 *   1. match    router.ts    one trie walk finds every rule whose filters match
 *   2. admit    admit.ts     provenance and maxHops (loopDropped); suspended or
 *                            too far behind (skipped); flow.ts pauses a publisher
 *                            that feeds a long backlog
 *   3. convert  the RuleRunner (host-process.ts: the rule host process), batched
 *   4. settle   settle.ts    counts the result; suspend.ts after failures in a row
 *   5. publish  publish.ts   outputs in input order, with the rule added to
 *                            the message's provenance chain (origin.chain)
 *
 * Every message enters at route(), from the bus (src/bus.ts): a client's, the
 * application's and a rule's output alike, so a chain (telemetry feeding an
 * alert rule) comes back to 1 through the bus like any other message. The
 * runner, the rule source and the feed are handed in (contracts.ts), so this
 * file is policy only; conversions never run on this event loop.
 */
import type { Logger } from 'pino'
import type { Config } from '../config.js'
import { SwitchyardError } from '../errors.js'
import { admit } from './admit.js'
import type { Message, Origin } from '../message.js'
import type { Feed, FlowTarget, Publisher, RuleFileChange, RuleRunner, RuleSource, RunResult } from './contracts.js'
import { FlowControl } from './flow.js'
import type { LoadLimits } from './host-loads.js'
import { messageProperties, resolveOutput } from './outputs.js'
import type { RawOutput, RuleMessage, RuleProperties } from './protocol.js'
import { publishInOrder } from './publish.js'
import { Router } from '../router.js'
import { RuleLog } from './rule-log.js'
import { settle, type Settled } from './settle.js'
import { RuleState, type RuleStateView } from './state.js'
import { shadowOf, Shadows } from './shadow.js'
import { memoryRuleStateStore, RuleStates, type RuleStateStore } from './rule-state-store.js'
import { StatusBoard } from './status.js'
import { resetSuspension, SUSPEND_AFTER } from './suspend.js'
import { ruleNameProblem } from './validate.js'

export type { Feed, Publisher } from './contracts.js'

export interface EngineOptions {
  config: Config['rules']
  maxPacketSize: number
  /** Runs the rules: the rule host process (host-process.ts) in production. */
  runner: RuleRunner
  /** Reports rule files and their changes: the rules directory (loader.ts) in production. */
  source: RuleSource
  publisher: Publisher
  logger: Logger
  /** A cluster node's id: rule status also on $SYS/switchyard/nodes/<nodeId>/rules/<name> (status.ts). */
  nodeId?: string
  /** Called with each conversion's execution time, for metrics. */
  onDuration?: (rule: string, ms: number) => void
  /** Flow control: stop and restart reading from a publishing client. */
  flow?: FlowTarget
  /**
   * Where messages come from: the bus. The engine taps it only while it has
   * rules, so a broker without rules builds no message for them. Without a
   * feed, messages enter through route() alone (unit tests).
   */
  feed?: Feed
  /** Where ctx.state is kept (rule-state-store.ts): the LevelDB in production; in memory without it. */
  ruleState?: RuleStateStore
}

export class RulesEngine {
  readonly #config: Config['rules']
  readonly #maxPacketSize: number
  readonly #runner: RuleRunner
  readonly #source: RuleSource
  readonly #publisher: Publisher
  readonly #logger: Logger
  readonly #onDuration: ((rule: string, ms: number) => void) | undefined
  readonly #flow: FlowControl
  readonly #router = new Router()
  readonly #rules = new Map<string, RuleState>()
  readonly #status: StatusBoard
  readonly #log: RuleLog
  readonly #states: RuleStates
  /** `<name>.next.js` files: shadow versions of the live rules (shadow.ts). */
  readonly #shadows: Shadows
  readonly #feed: Feed | undefined
  /** Each rule's last output origin, and the input origin it was made for (#outputOrigin). */
  readonly #outputOrigins = new WeakMap<RuleState, { from: Origin, to: Origin }>()
  #untap: (() => void) | undefined
  #closed = false
  #closing: Promise<void> | undefined

  constructor (options: EngineOptions) {
    this.#config = options.config
    this.#maxPacketSize = options.maxPacketSize
    this.#runner = options.runner
    this.#source = options.source
    this.#publisher = options.publisher
    this.#logger = options.logger.child({ component: 'rules' })
    this.#onDuration = options.onDuration
    this.#flow = new FlowControl(options.flow)
    this.#status = new StatusBoard(options.publisher, this.#logger, name => { const rule = this.#rules.get(name); return rule && this.#view(rule) }, options.nodeId)
    this.#log = new RuleLog(this.#logger)
    this.#feed = options.feed
    this.#states = new RuleStates(options.ruleState ?? memoryRuleStateStore())
    this.#shadows = new Shadows({ runner: this.#runner, limits: () => loadLimits(this.#config), state: live => this.#states.of(live), logger: this.#logger, touch: name => this.#status.touch(name) })
  }

  /** Loads every rule, then watches for changes. Fails with ERR_RULES_HOST if the runner cannot start. */
  async start (): Promise<void> {
    await this.#source.start(changes => this.#apply(changes))
    const failed = this.#runner.startError
    if (failed) throw failed instanceof SwitchyardError ? failed : new SwitchyardError('ERR_RULES_HOST', failed.message, { cause: failed })
    this.#status.start()
  }

  /** Every rule's state. */
  rules (): RuleStateView[] {
    return [...this.#rules.values()].map(r => this.#view(r)).sort((a, b) => a.name.localeCompare(b.name))
  }

  /** One rule's state with its source and its last errors, each with its input (GET /api/rules/<name>). */
  rule (name: string): (RuleStateView & { source: string, lastErrors: ReturnType<RuleState['errorsWithInput']> }) | undefined {
    const rule = this.#rules.get(name)
    return rule && { ...this.#view(rule), source: rule.source, lastErrors: rule.errorsWithInput() }
  }

  /** The rule host's process id, while it runs (for operators and tests). */
  get hostPid (): number | undefined { return this.#runner.pid }

  /** Re-reads the rules now (the watcher does it on its own). */
  rescan (): Promise<void> {
    return this.#source.rescan()
  }

  /**
   * Routes one message through every matching rule. Its provenance, the
   * rules that produced it, is `origin.chain`. The broker's own $SYS/
   * messages (origin 'broker') are not for rules.
   */
  route (message: Message): void {
    if (this.#closed || message.origin.kind === 'broker') return
    let input: RuleInput | undefined
    for (const name of this.#router.match(message.topic)) { // 1. match
      const rule = this.#rules.get(name)
      if (rule?.meta === undefined || !this.#admit(rule, message.origin.chain)) continue
      input ??= toRuleMessage(message)
      this.#convert(rule, input, message.origin) // 4. settle and 5. publish follow when the result is back
    }
  }

  /** Graceful and idempotent: a second call joins the first. */
  close (): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true
      this.#untap?.()
      this.#flow.releaseAll()
      this.#status.stop()
      this.#source.close()
      await this.#runner.close()
      await Promise.all([...this.#rules.values()].map(r => r.lane.tail))
      await this.#states.flush()
    })()
    return this.#closing
  }

  // A rule's status, with its shadow version's comparison when it has one.
  #view (rule: RuleState): RuleStateView {
    const shadow = this.#shadows.view(rule.name)
    return shadow === undefined ? rule.view() : { ...rule.view(), shadow }
  }

  // 2. admit
  #admit (rule: RuleState, chain: readonly string[]): boolean {
    const admission = admit(rule.name, rule, { chain, maxHops: this.#config.maxHops, backlog: this.#runner.inflight(rule.name), now: Date.now() })
    this.#status.touch(rule.name)
    if (admission === 'loopDropped') {
      rule.counters.loopDropped++
      return false
    }
    rule.counters.matched++
    if (admission === 'skipped') rule.counters.skipped++
    return admission === 'convert'
  }

  // 3. convert; only a client's own message can be paused at its source.
  // What waits for the result is the rule message and the origin (one per
  // client, tap.ts), not the Message: under a flood thousands wait, and each
  // waiting object is copied by every scavenge (docs/benchmarks.md).
  #convert (rule: RuleState, input: RuleInput, origin: Origin): void {
    // A shadow version, if any, converts it too, for comparison only (shadow.ts).
    const compare = rule.meta && this.#shadows.mirror(rule.name, input, rule.meta)
    this.#runner.convert(rule.name, input, (result, ms) => {
      compare?.(result)
      this.#settle(rule, input, origin, result, ms)
    })
    if (origin.kind === 'client' && origin.clientId !== null) this.#flow.queued(rule.name, origin.clientId, this.#runner.inflight(rule.name))
  }

  // 4. settle
  #settle (rule: RuleState, input: RuleInput, origin: Origin, result: RunResult, ms: number): void {
    rule.lastConverted = Date.now()
    this.#flow.settled(rule.name, this.#runner.inflight(rule.name))
    if (ms > 0) {
      rule.recordDuration(ms)
      this.#onDuration?.(rule.name, ms)
    }
    this.#log.console(rule.name, result.logs)
    this.#status.touch(rule.name)
    // ctx.state changes, kept by the rule host already (whatever the broker then thinks of the outputs); not a removed rule's
    if (result.kind === 'ok' && result.state !== undefined && this.#rules.get(rule.name) === rule) this.#states.apply(rule.name, result.state)
    const settled = settle(rule, input.topic, result, this.#maxPacketSize, Date.now())
    if (settled.kind === 'ok') for (const output of settled.outputs) this.#publish(rule, input, origin, output)
    else if (settled.kind === 'failed') this.#failed(rule, { topic: input.topic, payload: input.bytes, qos: input.qos, retain: input.retain, origin }, settled)
  }

  // 5. publish; the bus brings it back to route() (chains, such as telemetry feeding an alert rule)
  #publish (rule: RuleState, input: RuleInput, origin: Origin, output: RawOutput): void {
    rule.counters.outputs++
    const resolved = resolveOutput(output, rule.meta?.qos, input.qos)
    const { payload } = resolved
    const message: { -readonly [K in keyof Message]: Message[K] } = {
      topic: resolved.topic,
      // The frame's decoder gives each output Buffer its own bytes (ipc-frames.ts): published as it is
      payload: typeof payload === 'string' ? Buffer.from(payload) : Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      qos: resolved.qos,
      retain: resolved.retain,
      origin: this.#outputOrigin(rule, origin)
    }
    if (resolved.properties !== undefined) message.properties = messageProperties(resolved.properties)
    publishInOrder(rule.lane, message, this.#publishOutput)
  }

  // The origin of `rule`'s outputs of a message from `from`: the same object
  // while the same client (tap.ts) feeds the rule, not two objects per output.
  #outputOrigin (rule: RuleState, from: Origin): Origin {
    let last = this.#outputOrigins.get(rule)
    if (last?.from === from) return last.to
    const { clientId, username, chain } = from
    const to: Origin = Object.freeze({ kind: 'rule', clientId, username, rule: rule.name, chain: Object.freeze([...chain, rule.name]) })
    if (last === undefined) this.#outputOrigins.set(rule, last = { from, to })
    else { last.from = from; last.to = to }
    return to
  }

  // One function for every output, not a closure each
  readonly #publishOutput = (m: Message): Promise<void> => this.#publisher.publish(m).catch(err => {
    this.#logger.warn({ rule: m.origin.rule, topic: m.topic, err: (err as Error).message }, 'rule output could not be published')
  })

  #failed (rule: RuleState, input: Message, failure: Extract<Settled, { kind: 'failed' }>): void {
    rule.noteInput({ topic: input.topic, payload: input.payload, qos: input.qos, retain: input.retain, clientId: input.origin.clientId })
    this.#log.failure(rule.name, input, failure.counter, failure.error)
    const forMs = failure.suspendedForMs
    if (forMs === undefined) return
    this.#logger.warn({ rule: rule.name, forMs }, `rule suspended after ${SUSPEND_AFTER} failures in a row; it resumes by itself`)
    this.#status.publish(rule.name)
    setTimeout(() => {
      if (this.#closed || this.#rules.get(rule.name) !== rule) return
      this.#logger.info({ rule: rule.name }, 'rule resumed')
      this.#status.publish(rule.name)
    }, forMs + 1).unref()
  }

  async #apply (changes: RuleFileChange[]): Promise<void> {
    await Promise.all(changes.map(change => shadowOf(change.name) !== undefined
      ? this.#shadows.apply(change)
      : change.kind === 'removed' ? this.#remove(change.name) : this.#load(change)))
    this.#tapWhileRules()
  }

  // The feed costs a Message per routed message: taken only while some rule can match.
  #tapWhileRules (): void {
    if (this.#feed === undefined || this.#closed) return
    if (this.#router.size > 0) this.#untap ??= this.#feed.tap(message => this.route(message))
    else if (this.#untap) {
      this.#untap()
      this.#untap = undefined
    }
  }

  async #remove (name: string): Promise<void> {
    if (!this.#rules.has(name)) return
    this.#router.delete(name)
    this.#rules.delete(name)
    this.#flow.release(name)
    this.#runner.unload(name)
    this.#states.drop(name)
    this.#log.forget(name)
    this.#logger.info({ rule: name }, 'rule removed')
    await this.#status.clear(name)
  }

  async #load ({ name, file, source, hash, error }: Extract<RuleFileChange, { kind: 'changed' }>): Promise<void> {
    let rule = this.#rules.get(name)
    if (!rule) this.#rules.set(name, rule = new RuleState(name, file))
    rule.file = file
    rule.sourceHash = hash
    rule.source = source
    // A bad name, or a file that is no module (a .ts file whose types cannot be stripped)
    const problem = ruleNameProblem(name) ?? error
    const outcome = problem
      ? { ok: false as const, error: problem }
      : await this.#runner.load(name, source, loadLimits(this.#config), await this.#states.of(name))
    if (this.#rules.get(name) !== rule || rule.sourceHash !== hash) return // superseded meanwhile
    if (outcome.ok) {
      const reloaded = rule.meta !== undefined
      rule.meta = outcome.meta
      rule.loadedAt = new Date()
      rule.error = null
      resetSuspension(rule) // new code starts afresh
      rule.isolateIdleMs = this.#config.isolateIdleMs
      rule.lastConverted = 0 // the host released the isolate it loaded it in
      this.#router.set(name, outcome.meta.topics)
      this.#logger.info({ rule: name, topics: outcome.meta.topics }, reloaded ? 'rule reloaded' : 'rule loaded')
    } else {
      rule.error = rule.meta ? `reload failed; the previous version keeps running: ${outcome.error}` : outcome.error
      rule.recordLoadError(file, outcome.error)
      this.#logger.error({ rule: name, file, error: outcome.error }, rule.meta ? 'rule file failed to load; keeping the previous version' : 'rule file failed to load')
    }
    this.#status.publish(name)
  }
}

/** The limits a rule loads with, and the rule host's isolate policy beside them (host-loads.ts). */
function loadLimits (config: Config['rules']): LoadLimits {
  return { timeoutMs: config.timeoutMs, memoryLimitMb: config.memoryLimitMb, isolateIdleMs: config.isolateIdleMs }
}

/** A rule message as the engine makes it: its bytes are the Message's payload. */
interface RuleInput extends RuleMessage { bytes: Buffer }

function toRuleMessage (m: Message): RuleInput {
  const msg: RuleInput = {
    topic: m.topic,
    // Bytes only: the rule host decodes the text, off this event loop. No
    // copy: the IPC frame (ipc-frames.ts) copies just the view's bytes.
    bytes: m.payload,
    qos: m.qos,
    retain: m.retain,
    clientId: m.origin.clientId,
    username: m.origin.username,
    timestamp: Date.now()
  }
  if (m.properties !== undefined) msg.properties = toRuleProperties(m.properties)
  return msg
}

// Plain data for IPC and the isolate; correlation data copied out of its
// Buffer, as the payload is.
function toRuleProperties (p: NonNullable<Message['properties']>): RuleProperties {
  const { correlationData, userProperties, ...rest } = p
  const out: RuleProperties = rest
  if (userProperties !== undefined) out.userProperties = userProperties as Record<string, string | string[]>
  if (correlationData !== undefined) out.correlationData = Uint8Array.prototype.slice.call(correlationData)
  return out
}
