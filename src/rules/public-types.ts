/*
 * The types of a rule file, published as `switchyard-mqtt/rules` (the
 * "./rules" entry of package.json's exports), so that an editor checks a
 * TypeScript rule:
 *
 *   import type { Message, Output, Context } from 'switchyard-mqtt/rules'
 *   export const topics = ['sensors/+/temperature']
 *   export function convert (msg: Message, ctx: Context): Output | null { ... }
 *
 * Types only: `import type` is removed when the rule loads (a rule imports
 * nothing at run time). docs/rules.md describes each field; this file says
 * the same, and the sandbox (sandbox.ts) is what gives it.
 */

/** Bytes: a rule's binary payloads and correlation data. */
export type Bytes = Uint8Array

/** A value a rule's state can hold: what JSON can carry. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

/** MQTT 5 properties of a message, as `msg.properties` has them (`{}` for none) [MQTT-3.3.2.3]. */
export interface MessageProperties {
  /** name → value; a name sent more than once → its values, in order. */
  userProperties?: Record<string, string | string[]>
  contentType?: string
  /** Where the publisher wants a reply (request/response, MQTT 5.0 section 4.10). */
  responseTopic?: string
  correlationData?: Bytes
  /** What is left of the message's lifetime, in seconds, when the rule converts it. */
  messageExpiryInterval?: number
  /** true when the publisher says the payload is UTF-8 text. */
  payloadFormatIndicator?: boolean
}

/** The properties an output may set: as a message's, with correlation data also as a string (sent as UTF-8). */
export type OutputProperties = Omit<MessageProperties, 'correlationData'> & { correlationData?: Bytes | string }

/** The message `convert` receives. */
export interface Message {
  topic: string
  /** The payload decoded as UTF-8. */
  payload: string
  /** The raw payload, for binary devices. */
  bytes: Bytes
  qos: 0 | 1 | 2
  retain: boolean
  /** The publishing client; null for broker.publish() from the embedding application. */
  clientId: string | null
  /** null when anonymous. */
  username: string | null
  /** ms since the epoch, when the broker routed it. */
  timestamp: number
  properties: MessageProperties
}

/** One message for the broker to publish. */
export interface Output {
  /** A topic name: no wildcards, not under $SYS/. */
  topic: string
  /** A string as it is; bytes as bytes; anything else as JSON. */
  payload: string | Bytes | ArrayBuffer | JsonValue
  /** Defaults to the rule's `qos` export, else the input's QoS. */
  qos?: 0 | 1 | 2
  /** Defaults to false. */
  retain?: boolean
  properties?: OutputProperties
}

/** What `convert` returns: one output, several, or nothing (null, undefined or []). */
export type Outputs = Output | Output[] | null | undefined

/**
 * A rule's own small key-value store, kept in the broker's persistence: it
 * survives a message, a reload, a rule host crash and a broker restart.
 * Values are JSON; at most 100 keys and 64 KiB (as JSON) per rule; a key is
 * a non-empty string of at most 256 characters. A `set` beyond a limit
 * throws, and the conversion fails (counted as `failed`).
 */
export interface RuleStateStore {
  /** The value stored under `key`, or undefined. A copy: change it and `set` it back. */
  get<T extends JsonValue = JsonValue>(key: string): T | undefined
  /** Stores a copy of `value` (JSON: no functions, no undefined, no cycles). */
  set(key: string, value: JsonValue): void
  /** Removes `key`; true if it was there. */
  delete(key: string): boolean
  has(key: string): boolean
  /** Every key, in insertion order. */
  keys(): string[]
}

/** The second argument of `convert`. */
export interface Context {
  /** The rule's name (its file name without the extension). */
  rule: string
  state: RuleStateStore
}

/** A rule's `convert`: synchronous, called once per matching message. */
export type Convert = (msg: Message, ctx: Context) => Outputs

/** The optional `limits` export: lower the broker's limits for this rule. */
export interface Limits {
  timeoutMs?: number
  memoryLimitMb?: number
}
