/*
 * In-memory fakes of the rules engine's own interfaces (src/rules/contracts.ts),
 * for unit tests of its policy: no process, no isolate, no files. A rule's
 * "source" here is JSON of its metadata, e.g. {"topics":["a/#"],"qos":1}.
 * The end-to-end tests (test/integration/rules-*) use the real ones.
 */
import { pino } from 'pino'
import { Bus } from '../../src/bus.js'
import { NO_CHAIN, type Message, type Origin } from '../../src/message.js'
import { RulesEngine, type EngineOptions } from '../../src/rules/engine.js'
import type { FlowTarget, LoadOutcome, Publisher, RuleFileChange, RuleRunner, RuleSource, RunDone, RunResult } from '../../src/rules/contracts.js'
import type { RuleMessage } from '../../src/rules/protocol.js'

export class FakeRunner implements RuleRunner {
  pid: number | undefined = 4242
  startError: Error | undefined
  /** Conversions asked for and not answered, in order. */
  readonly pending: Array<{ rule: string, msg: RuleMessage, done: RunDone }> = []
  /** Names whose load fails, with the error. */
  readonly failLoads = new Map<string, string>()
  readonly unloaded: string[] = []

  inflight (rule: string): number {
    return this.pending.filter(p => p.rule === rule).length
  }

  async load (name: string, source: string): Promise<LoadOutcome> {
    const error = this.startError?.message ?? this.failLoads.get(name)
    if (error !== undefined) return { ok: false, error }
    const meta = JSON.parse(source) as { topics: string[], qos?: 0 | 1 | 2 }
    return { ok: true, meta: { topics: meta.topics, qos: meta.qos, limits: { timeoutMs: 100, memoryLimitMb: 32 } } }
  }

  unload (name: string): void { this.unloaded.push(name) }

  convert (rule: string, msg: RuleMessage, done: RunDone): void {
    this.pending.push({ rule, msg, done })
  }

  /** Answers the oldest `n` conversions (all by default) with what `result` returns for each. */
  answer (result: (msg: RuleMessage, rule: string) => RunResult, n = this.pending.length, ms = 0.5): void {
    for (const p of this.pending.splice(0, n)) p.done(result(p.msg, p.rule), ms)
  }

  async close (): Promise<void> {}
}

export class FakeSource implements RuleSource {
  #onChanges: ((changes: RuleFileChange[]) => Promise<void>) | undefined
  readonly #initial: RuleFileChange[]

  constructor (rules: Record<string, object> = {}) {
    this.#initial = Object.entries(rules).map(([name, meta]) => changed(name, meta))
  }

  async start (onChanges: (changes: RuleFileChange[]) => Promise<void>): Promise<void> {
    this.#onChanges = onChanges
    if (this.#initial.length > 0) await onChanges(this.#initial)
  }

  /** A rule file appears or changes (`meta`), or is removed (null). */
  async set (name: string, meta: object | null): Promise<void> {
    await this.#onChanges!([meta === null ? { kind: 'removed', name, file: `${name}.js` } : changed(name, meta)])
  }

  async rescan (): Promise<void> {}
  close (): void {}
}

function changed (name: string, meta: object): RuleFileChange {
  const source = JSON.stringify(meta)
  return { kind: 'changed', name, file: `${name}.js`, source, hash: source }
}

/** Records what is published (payload as text) and hands it to the bus, which brings it back to the engine, as the broker does. */
export class FakePublisher implements Publisher {
  readonly published: Array<{ topic: string, payload: string, qos: 0 | 1 | 2, retain: boolean }> = []
  readonly #bus: Bus

  constructor (bus: Bus) {
    this.#bus = bus
  }

  async publish (message: Message): Promise<void> {
    this.published.push({ topic: message.topic, payload: message.payload.toString(), qos: message.qos, retain: message.retain })
    this.#bus.dispatch(message)
  }

  /** Published messages, without the rules' $SYS status. */
  get outputs (): FakePublisher['published'] {
    return this.published.filter(m => !m.topic.startsWith('$SYS/'))
  }
}

export class FakeFlow implements FlowTarget {
  readonly events: string[] = []
  pause (clientId: string): void { this.events.push(`pause ${clientId}`) }
  resume (clientId: string): void { this.events.push(`resume ${clientId}`) }
}

/** An engine over fakes, started, with its rules loaded from `rules` (name -> metadata). */
export async function fakeEngine (rules: Record<string, object>, options: Partial<EngineOptions> = {}) {
  const runner = new FakeRunner()
  const source = new FakeSource(rules)
  const logger = pino({ level: 'silent' })
  const bus = new Bus(logger)
  const publisher = new FakePublisher(bus)
  const flow = new FakeFlow()
  const engine = new RulesEngine({
    config: { dir: '/nowhere', timeoutMs: 100, memoryLimitMb: 32, maxHops: 4, isolateIdleMs: null },
    maxPacketSize: 1024,
    runner,
    source,
    publisher,
    feed: bus,
    logger,
    flow,
    ...options
  })
  await engine.start()
  return { engine, runner, source, publisher, flow, rule: (name: string) => engine.rules().find(r => r.name === name)! }
}

/** A client's message (the application's when clientId is null; a rule's output when `chain` names rules). */
export function from (clientId: string | null, topic: string, payload = 'x', qos: 0 | 1 | 2 = 0, chain: readonly string[] = NO_CHAIN): Message {
  const origin: Origin = chain.length > 0
    ? { kind: 'rule', clientId, username: null, rule: chain.at(-1), chain }
    : { kind: clientId === null ? 'api' : 'client', clientId, username: null, chain }
  return { topic, payload: Buffer.from(payload), qos, retain: false, origin }
}

export const ok = (outputs: Array<{ topic: string, payload: string, qos?: 0 | 1 | 2 }>): RunResult => ({ kind: 'ok', outputs, logs: [] })
export const crash: RunResult = { kind: 'crash', error: 'rule host process died (SIGKILL)', logs: [] }
export const thrown: RunResult = { kind: 'error', error: 'Error: boom', logs: [] }
