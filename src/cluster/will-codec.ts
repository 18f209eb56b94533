/*
 * A will as stored in Redis: JSON, with every binary value (the payload,
 * MQTT 5 Correlation Data) as {"\u0000b": base64}, so that it comes back as
 * the same bytes and the same properties. The tag's key cannot collide with a
 * User Property's name: MQTT strings may not hold U+0000 [MQTT-1.5.4-2].
 */

const TAG = '\u0000b'

export interface WillMessage {
  readonly topic: string
  readonly payload: Buffer
  readonly qos: 0 | 1 | 2
  readonly retain: boolean
  /** MQTT 5 Will Properties, as Aedes keeps them on client.will (willDelayInterval included). */
  readonly properties?: Readonly<Record<string, unknown>>
}

export function encodeWill (will: { topic: string, payload: Buffer | Uint8Array | string, qos?: number, retain?: boolean, properties?: Readonly<Record<string, unknown>> | null }): string {
  return JSON.stringify({
    topic: will.topic,
    payload: binary(typeof will.payload === 'string' ? Buffer.from(will.payload) : will.payload),
    qos: will.qos ?? 0,
    retain: will.retain === true,
    ...(will.properties ? { properties: toJson(will.properties) } : {})
  })
}

export function decodeWill (text: string): WillMessage {
  const raw = JSON.parse(text) as { topic: string, payload: unknown, qos: 0 | 1 | 2, retain: boolean, properties?: unknown }
  const properties = raw.properties === undefined ? undefined : fromJson(raw.properties) as Record<string, unknown>
  return {
    topic: raw.topic,
    payload: fromJson(raw.payload) as Buffer,
    qos: raw.qos,
    retain: raw.retain,
    ...(properties ? { properties } : {})
  }
}

const binary = (b: Uint8Array): Record<string, string> => ({ [TAG]: Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64') })

function toJson (value: unknown): unknown {
  if (value instanceof Uint8Array) return binary(value)
  if (Array.isArray(value)) return value.map(toJson)
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    // null and undefined are absent properties (Aedes may hold either)
    for (const [k, v] of Object.entries(value)) if (v != null) out[k] = toJson(v)
    return out
  }
  return value
}

function fromJson (value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromJson)
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>
    if (typeof o[TAG] === 'string') return Buffer.from(o[TAG], 'base64')
    const out: Record<string, unknown> = {}
    for (const [k, v] of Object.entries(o)) out[k] = fromJson(v)
    return out
  }
  return value
}
