/*
 * broker.on(event, listener) → off. Typed, and a listener that throws is
 * logged and costs only itself (an EventEmitter would throw into the broker).
 * 'publish' is a tap on the bus (src/bus.ts), attached while it has listeners.
 */
import type { Logger } from 'pino'
import type { Bus } from './bus.js'
import type { Message, QoS } from './message.js'

export interface ClientEvent {
  readonly clientId: string
  readonly username: string | null
  /** The peer address, host:port. */
  readonly remote: string
}

export interface BrokerEvents {
  /**
   * A client was authenticated and registered (its CONNACK follows).
   * `protocolVersion`: 3 (MQTT 3.1), 4 (3.1.1) or 5.
   */
  clientConnect: (client: ClientEvent & { readonly clean: boolean, readonly protocolVersion: 3 | 4 | 5 }) => void
  /**
   * A client's connection ended. `reason`: 'DISCONNECT', 'keepalive timeout',
   * 'connection closed' or the error. `reasonCode`, MQTT 5 only, when a
   * DISCONNECT carried one (the client's, or the broker's): its name, e.g.
   * 'NORMAL_DISCONNECTION (0x00)', 'SESSION_TAKEN_OVER (0x8E)'.
   */
  clientDisconnect: (client: ClientEvent & { readonly reason: string, readonly protocolVersion: 3 | 4 | 5, readonly reasonCode?: string }) => void
  /** A SUBSCRIBE was answered; only the subscriptions granted (denied ones are in stats().deniedSubscriptions). */
  subscribe: (client: ClientEvent, subscriptions: ReadonlyArray<{ readonly filter: string, readonly qos: QoS }>) => void
  /** An UNSUBSCRIBE, or the end of a clean session's subscriptions when its client disconnects. */
  unsubscribe: (client: ClientEvent, filters: readonly string[]) => void
  /** Every message the broker routes, as broker.subscribe() handlers see it, on every topic ($SYS/ included). */
  publish: (message: Message) => void
}

export type BrokerEventName = keyof BrokerEvents

export class EventHub {
  readonly #listeners = new Map<BrokerEventName, Set<(args: unknown[]) => void>>()
  readonly #bus: Bus
  readonly #logger: Logger
  #untap: (() => void) | undefined

  constructor (bus: Bus, logger: Logger) {
    this.#bus = bus
    this.#logger = logger
  }

  on<E extends BrokerEventName> (event: E, listener: BrokerEvents[E]): () => void {
    if (!EVENTS.has(event)) throw new TypeError(`unknown event ${JSON.stringify(event)}; one of ${[...EVENTS].join(', ')}`)
    if (typeof listener !== 'function') throw new TypeError(`on(${JSON.stringify(event)}, listener): listener must be a function`)
    let set = this.#listeners.get(event)
    if (!set) this.#listeners.set(event, set = new Set())
    // A wrapper per call: the same function registered twice is called twice, and each off() ends its own.
    const entry = (args: unknown[]) => Reflect.apply(listener, undefined, args) as unknown
    set.add(entry)
    if (event === 'publish') this.#untap ??= this.#bus.tap(message => this.emit('publish', message))
    return () => {
      set.delete(entry)
      if (event === 'publish' && set.size === 0 && this.#untap) {
        this.#untap()
        this.#untap = undefined
      }
    }
  }

  /** Whether anyone listens: the core skips building an event nobody receives. */
  has (event: BrokerEventName): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0
  }

  emit<E extends BrokerEventName> (event: E, ...args: Parameters<BrokerEvents[E]>): void {
    const set = this.#listeners.get(event)
    if (!set) return
    const failed = (err: unknown) => this.#logger.error({ event, err: err instanceof Error ? err.message : String(err) }, 'event listener failed')
    for (const listener of set) {
      try {
        // An async listener that rejects costs only itself, as one that throws.
        const result = listener(args)
        if (result != null && typeof (result as Promise<void>).then === 'function') (result as Promise<void>).then(undefined, failed)
      } catch (err) {
        failed(err)
      }
    }
  }
}

const EVENTS = new Set<BrokerEventName>(['clientConnect', 'clientDisconnect', 'subscribe', 'unsubscribe', 'publish'])
