/*
 * The one shape of a message inside Switchyard. Every message the broker
 * routes, whatever its origin (a client's PUBLISH, broker.publish(), a rule's
 * output, later a bridge), is a Message when it reaches the bus
 * (broker.subscribe), the rules and the events. MQTT 5 properties are its
 * optional `properties` field (src/properties.ts), not a second type.
 */
import type { MessageProperties, PropertiesInput } from './properties.js'

export type { MessageProperties, PropertiesInput, UserProperties } from './properties.js'

export type QoS = 0 | 1 | 2

/**
 * Where a message entered the broker: a client's PUBLISH (or its will),
 * broker.publish() from the embedding application, a rule's output, a bridge
 * (later), or the broker itself (its $SYS/ topics: statistics, rule status).
 */
export interface Origin {
  readonly kind: 'client' | 'api' | 'rule' | 'bridge' | 'broker'
  /**
   * The publishing client, for kind 'client'. For kind 'rule', the client
   * whose message started the chain (rules see the original publisher, as
   * docs/rules.md says), or null. Null otherwise.
   */
  readonly clientId: string | null
  /** That client's username, when it logged in with one. */
  readonly username: string | null
  /** The rule that produced it, for kind 'rule'. */
  readonly rule?: string
  /** The bridge it came in through, for kind 'bridge' (its config "name"; docs/bridges.md). */
  readonly bridge?: string
  /** The rules it has already passed through, oldest first (loop prevention, rules.maxHops). */
  readonly chain: readonly string[]
}

/** The provenance chain of every message that no rule produced. */
export const NO_CHAIN: readonly string[] = Object.freeze([])
/** The broker's own messages: $SYS/ statistics and rule status. */
export const BROKER_ORIGIN: Origin = Object.freeze({ kind: 'broker', clientId: null, username: null, chain: NO_CHAIN })
/** broker.publish() from the embedding application. */
export const API_ORIGIN: Origin = Object.freeze({ kind: 'api', clientId: null, username: null, chain: NO_CHAIN })

export interface Message {
  readonly topic: string
  readonly payload: Buffer
  readonly qos: QoS
  readonly retain: boolean
  readonly origin: Origin
  /**
   * The MQTT 5 properties it was published with (user properties, content
   * type, response topic, correlation data, message expiry, payload format),
   * absent when it has none: an MQTT 3.1.1 publisher's message, or one
   * published without them.
   */
  readonly properties?: MessageProperties
}

/** What broker.publish() accepts: a plain object payload is serialized to JSON, as rule outputs are. */
export interface PublishInput {
  topic: string
  payload: string | Buffer | Uint8Array | Record<string, unknown> | unknown[]
  qos?: QoS
  retain?: boolean
  /** MQTT 5 properties, checked (ERR_INVALID_PROPERTIES); v5 subscribers receive them, 3.1.1 ones the message without them. */
  properties?: PropertiesInput
}
