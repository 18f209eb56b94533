/*
 * The bus: every message the broker routes, whatever its origin, passes here
 * once as a Message (src/message.ts). The broker core calls dispatch() from
 * its one tap, Aedes's `published` hook (src/broker/tap.ts). Behind it sit
 * broker.subscribe() handlers, the 'publish' event and the rules engine; later
 * the cluster, the bridges and the console.
 *
 * Cheap when nobody listens: the core checks `idle` before it builds a
 * Message, so a broker without subscribers, listeners or rules allocates
 * nothing here per message.
 */
import type { Logger } from 'pino'
import { SwitchyardError } from './errors.js'
import type { Message } from './message.js'
import { Router } from './router.js'
import { filterProblem } from './topics.js'

/** A broker.subscribe() handler. What it returns is ignored; a throw, or a rejected promise, is logged. */
export type MessageHandler = (message: Message) => void | Promise<void>

interface Subscription { readonly filter: string, readonly handler: MessageHandler, active: boolean }

/**
 * A bus.hold() handler: called as a message is accepted, before it is
 * stored; it returns what the publisher's acknowledgement must also wait for
 * (a bridge's out-queue write), or nothing. A rejected promise closes the
 * publisher's connection unacknowledged, as a failed store does.
 */
export type HoldHandler = (message: Message) => Promise<void> | undefined
interface Hold { readonly handler: HoldHandler, active: boolean }

export class Bus {
  readonly #router = new Router<Subscription>()
  readonly #taps = new Set<Subscription>()
  readonly #holds = new Router<Hold>()
  readonly #logger: Logger

  constructor (logger: Logger) {
    this.#logger = logger
  }

  /** True when nothing listens: the core then skips building a Message. */
  get idle (): boolean {
    return this.#taps.size === 0 && this.#router.size === 0
  }

  /**
   * Calls `handler` with every message whose topic matches `filter`, with
   * MQTT's matching rules: `#` and `+` do not match topics starting with `$`
   * [MQTT-4.7.2-1]. Each call is its own subscription. Returns the function
   * that ends it; after it returns, the handler is not called again.
   */
  subscribe (filter: string, handler: MessageHandler): () => void {
    const problem = filterProblem(filter)
    if (problem !== undefined) throw new SwitchyardError('ERR_INVALID_FILTER', `cannot subscribe to ${JSON.stringify(filter)}: the filter ${problem}`)
    if (typeof handler !== 'function') throw new TypeError('subscribe(filter, handler): handler must be a function')
    const sub: Subscription = { filter, handler, active: true }
    this.#router.set(sub, [filter])
    return () => {
      sub.active = false
      this.#router.delete(sub)
    }
  }

  /** Every message, on every topic ($SYS/ included): for the rules engine and the 'publish' event. */
  tap (handler: MessageHandler): () => void {
    const sub: Subscription = { filter: '', handler, active: true }
    this.#taps.add(sub)
    return () => {
      sub.active = false
      this.#taps.delete(sub)
    }
  }

  /**
   * Calls `handler` with every message on `filter` that this broker accepts
   * (a client's PUBLISH or will, core.publish()), as it enters the broker,
   * before it is stored and routed; the acknowledgement (PUBACK, PUBREC,
   * core.publish()'s promise) waits for the promise it returns. For what
   * must be durable with the message: a bridge's out queue (docs/bridges.md).
   * Not for slow work: the publisher waits for it.
   */
  hold (filter: string, handler: HoldHandler): () => void {
    const problem = filterProblem(filter)
    if (problem !== undefined) throw new SwitchyardError('ERR_INVALID_FILTER', `cannot hold ${JSON.stringify(filter)}: the filter ${problem}`)
    const hold: Hold = { handler, active: true }
    this.#holds.set(hold, [filter])
    return () => {
      hold.active = false
      this.#holds.delete(hold)
    }
  }

  /** Whether a hold() matches `topic`: false at once without holds, so the core builds no Message. */
  holds (topic: string): boolean {
    return this.#holds.size > 0 && this.#holds.match(topic).size > 0
  }

  /** The core, as it accepts a message that holds() matched: what its acknowledgement waits for. */
  accept (message: Message): Promise<void> | undefined {
    let wait: Promise<void> | undefined
    let more: Array<Promise<void>> | undefined
    for (const hold of this.#holds.match(message.topic)) {
      if (!hold.active) continue
      let result: Promise<void> | undefined
      try {
        result = hold.handler(message)
      } catch (err) {
        result = Promise.reject(err instanceof Error ? err : new Error(String(err)))
      }
      if (result === undefined) continue
      if (wait === undefined) wait = result
      else (more ??= [wait]).push(result)
    }
    return more === undefined ? wait : Promise.all(more).then(() => {})
  }

  dispatch (message: Message): void {
    if (this.#taps.size > 0) for (const sub of this.#taps) this.#call(sub, message)
    if (this.#router.size > 0) for (const sub of this.#router.match(message.topic)) this.#call(sub, message)
  }

  // A failing handler costs only itself (STYLE.md habit 5): the broker, the
  // other handlers and the publisher carry on.
  #call (sub: Subscription, message: Message): void {
    if (!sub.active) return // ended by an earlier handler of this message
    try {
      const result = sub.handler(message)
      if (result != null && typeof (result as Promise<void>).then === 'function') {
        (result as Promise<void>).then(undefined, err => this.#failed(sub, message, err))
      }
    } catch (err) {
      this.#failed(sub, message, err)
    }
  }

  #failed (sub: Subscription, message: Message, err: unknown): void {
    this.#logger.error({ filter: sub.filter || undefined, topic: message.topic, err: err instanceof Error ? err.message : String(err) }, 'message handler failed')
  }
}
