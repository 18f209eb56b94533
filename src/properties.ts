/*
 * The MQTT 5 PUBLISH properties an application message carries end to end
 * [MQTT-3.3.2.3]: what the bus and rules see of a v5 publisher's message,
 * and what broker.publish() and rule outputs may set. Named as mqtt-packet
 * and MQTT.js name them. Transport properties (Topic Alias, Subscription
 * Identifier) belong to one connection and are not here.
 */
import { closest } from './suggest.js'
import { topicNameProblem } from './topics.js'

/** [MQTT-1.5.4], [MQTT-1.5.6]: a UTF-8 string or binary data field holds at most 65,535 bytes. */
const MAX_FIELD_BYTES = 65535
/** [MQTT-3.3.2.3.3] the Message Expiry Interval is a Four Byte Integer. */
const MAX_EXPIRY = 0xFFFFFFFF

/** A User Property's value; a key sent more than once has all its values, in order (as MQTT.js gives them). */
export type UserProperties = Record<string, string | string[]>

export interface MessageProperties {
  /** User Properties [MQTT-3.3.2.3.7]. */
  readonly userProperties?: Readonly<UserProperties>
  /** Content Type [MQTT-3.3.2.3.9], e.g. `application/json`. */
  readonly contentType?: string
  /** Response Topic [MQTT-3.3.2.3.5]: where the requester wants the reply. A topic name. */
  readonly responseTopic?: string
  /** Correlation Data [MQTT-3.3.2.3.6]: bytes the requester matches the reply with. */
  readonly correlationData?: Buffer
  /** Message Expiry Interval [MQTT-3.3.2.3.3], in seconds. On a routed message: what is left of it. */
  readonly messageExpiryInterval?: number
  /** Payload Format Indicator [MQTT-3.3.2.3.2]: true when the payload is UTF-8 text. */
  readonly payloadFormatIndicator?: boolean
}

/** What broker.publish() and rule outputs may set: correlation data as bytes, or a string sent as UTF-8. */
export interface PropertiesInput extends Omit<MessageProperties, 'correlationData'> {
  readonly correlationData?: Buffer | Uint8Array | string
}

export const PROPERTY_NAMES = ['userProperties', 'contentType', 'responseTopic', 'correlationData', 'messageExpiryInterval', 'payloadFormatIndicator'] as const

/**
 * The properties of a packet as mqtt-packet parsed them, the six above only,
 * or undefined when it has none (an MQTT 3.1.1 publisher's message).
 */
export function propertiesOf (packet: { properties?: Record<string, unknown> }): MessageProperties | undefined {
  const p = packet.properties
  if (p === undefined || p === null) return undefined
  let found: Record<string, unknown> | undefined
  for (const name of PROPERTY_NAMES) {
    if (p[name] !== undefined) (found ??= {})[name] = p[name]
  }
  return found as MessageProperties | undefined
}

/**
 * What is left of a Message Expiry Interval of `seconds`, given when the
 * message was routed, at `now`: rounded up, as Aedes sends on a queued
 * message [MQTT-3.3.2-6]; 0 once it has run out.
 */
export function expiryLeft (seconds: number, routedAt: number, now: number): number {
  return Math.max(0, Math.ceil((routedAt + seconds * 1000 - now) / 1000))
}

/**
 * Checks properties given by an application or a rule, and returns them
 * with correlation data as a Buffer, or what is wrong (`properties.<name>
 * ...`). Every name must be one of the six: a misspelt one is an error,
 * never silently dropped. An undefined value counts as absent.
 */
export function checkProperties (value: unknown): { properties: MessageProperties | undefined } | { problem: string } {
  if (value === undefined) return { properties: undefined }
  if (!isPlainObject(value)) return { problem: `properties must be an object { ${PROPERTY_NAMES.join(', ')} } (any of them); got ${describe(value)}` }
  const out: Record<string, unknown> = {}
  for (const [name, v] of Object.entries(value)) {
    if (v === undefined) continue
    const problem = propertyProblem(name, v)
    if (problem !== undefined) return { problem: `properties.${name}: ${problem}` }
    out[name] = name === 'correlationData' ? toBuffer(v as Uint8Array | string) : name === 'userProperties' ? copyUserProperties(v as UserProperties) : v
  }
  return { properties: Object.keys(out).length > 0 ? out as MessageProperties : undefined }
}

function propertyProblem (name: string, v: unknown): string | undefined {
  switch (name) {
    case 'userProperties': return userPropertiesProblem(v)
    case 'contentType': return stringProblem(v)
    case 'responseTopic': {
      // [MQTT-3.3.2-13] a UTF-8 string, [MQTT-3.3.2-14] a topic name: no wildcards
      const problem = topicNameProblem(v)
      return problem === undefined ? undefined : `${problem}; got ${describe(v)}`
    }
    case 'correlationData': {
      if (typeof v !== 'string' && !(v instanceof Uint8Array)) return `must be bytes (a Uint8Array or Buffer) or a string (sent as UTF-8); got ${describe(v)}`
      if (typeof v === 'string') return stringProblem(v)
      return v.byteLength > MAX_FIELD_BYTES ? `is ${v.byteLength} bytes; binary data holds at most ${MAX_FIELD_BYTES} [MQTT-1.5.6]` : undefined
    }
    case 'messageExpiryInterval':
      return Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_EXPIRY ? undefined : `must be a whole number of seconds from 0 to ${MAX_EXPIRY}; got ${describe(v)}`
    case 'payloadFormatIndicator':
      return typeof v === 'boolean' ? undefined : `must be true (the payload is UTF-8 text) or false; got ${describe(v)}`
    default: {
      const guess = closest(name, PROPERTY_NAMES)
      return `not a property that can be set${guess ? `; did you mean \`${guess}\`?` : ''} (the properties are ${PROPERTY_NAMES.join(', ')})`
    }
  }
}

function userPropertiesProblem (v: unknown): string | undefined {
  if (!isPlainObject(v)) return `must be an object of names to strings (or arrays of strings, for a name sent more than once); got ${describe(v)}`
  for (const [key, value] of Object.entries(v)) {
    const keyProblem = stringProblem(key)
    if (keyProblem !== undefined) return `the name ${JSON.stringify(key.slice(0, 40))} ${keyProblem}`
    const values = Array.isArray(value) ? value : [value]
    if (Array.isArray(value) && value.length === 0) return `${JSON.stringify(key)}: an empty array sends nothing; leave the name out`
    for (const item of values) {
      const problem = stringProblem(item)
      if (problem !== undefined) return `${JSON.stringify(key)}: ${problem}`
    }
  }
  return undefined
}

/** [MQTT-1.5.4]: a UTF-8 string, without U+0000 [MQTT-1.5.4-2], well-formed [MQTT-1.5.4-1], of at most 65,535 bytes. */
function stringProblem (v: unknown): string | undefined {
  if (typeof v !== 'string') return `must be a string; got ${describe(v)}`
  if (v.includes('\u0000')) return 'must not contain U+0000 [MQTT-1.5.4-2]'
  if (/\p{Surrogate}/u.test(v)) return 'must be well-formed Unicode: it has a lone surrogate [MQTT-1.5.4-1]'
  const bytes = Buffer.byteLength(v)
  return bytes > MAX_FIELD_BYTES ? `is ${bytes} bytes as UTF-8; a string holds at most ${MAX_FIELD_BYTES} [MQTT-1.5.4]` : undefined
}

function copyUserProperties (v: UserProperties): UserProperties {
  const copy: UserProperties = {}
  for (const [key, value] of Object.entries(v)) copy[key] = Array.isArray(value) ? [...value] : value
  return copy
}

function toBuffer (v: Uint8Array | string): Buffer {
  if (typeof v === 'string') return Buffer.from(v)
  // A copy: the caller's bytes may change after publish() returns.
  return Buffer.from(v)
}

/** A `{}` or Object.create(null) object: what JSON and the property checks accept as an object. */
export function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false
  const proto = Object.getPrototypeOf(value)
  return proto === Object.prototype || proto === null
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `a ${(Object.getPrototypeOf(value) as object | null)?.constructor?.name ?? 'object'}`
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}...` : value)
  return `${typeof value} ${String(value)}`
}
