/*
 * broker.publish() checks its input as the broker checks a client's PUBLISH:
 * a topic name, not a filter [MQTT-3.3.2-2]; a QoS of 0, 1 or 2
 * [MQTT-3.3.1-4]; a payload of bytes within limits.maxPacketSize. A plain
 * object or array payload is sent as JSON, as a rule's output is. MQTT 5
 * properties are checked as a client's would be (src/properties.ts).
 */
import { SwitchyardError } from './errors.js'
import type { Message, Origin, PublishInput, QoS } from './message.js'
import { checkProperties, isPlainObject } from './properties.js'
import { topicNameProblem } from './topics.js'

/** The Message that `input` publishes, or a SwitchyardError saying what is wrong with it. */
export function messageFrom (input: PublishInput, origin: Origin, maxPacketSize: number): Message {
  if (input === null || typeof input !== 'object') throw new SwitchyardError('ERR_INVALID_PAYLOAD', 'publish() takes a message object { topic, payload, qos?, retain?, properties? }')
  const { topic, qos = 0, retain = false } = input
  const topicProblem = topicNameProblem(topic)
  if (topicProblem !== undefined) throw new SwitchyardError('ERR_INVALID_TOPIC', `cannot publish to ${JSON.stringify(topic)}: the topic ${topicProblem}`)
  if (qos !== 0 && qos !== 1 && qos !== 2) throw new SwitchyardError('ERR_INVALID_QOS', `cannot publish to ${topic}: qos must be 0, 1 or 2; got ${describe(qos)}`)
  if (typeof retain !== 'boolean') throw new SwitchyardError('ERR_INVALID_PAYLOAD', `cannot publish to ${topic}: retain must be a boolean; got ${describe(retain)}`)
  const payload = payloadBytes(input.payload, topic)
  if (payload.length > maxPacketSize) throw new SwitchyardError('ERR_INVALID_PAYLOAD', `cannot publish to ${topic}: the payload of ${payload.length} bytes exceeds limits.maxPacketSize ${maxPacketSize}`)
  const checked = checkProperties(input.properties)
  if ('problem' in checked) throw new SwitchyardError('ERR_INVALID_PROPERTIES', `cannot publish to ${topic}: ${checked.problem}`)
  return checked.properties === undefined ? { topic, payload, qos: qos as QoS, retain, origin } : { topic, payload, qos: qos as QoS, retain, origin, properties: checked.properties }
}

/** A payload as bytes: a Buffer as is, a Uint8Array viewed (not copied), a string as UTF-8, a plain object or array as JSON. */
function payloadBytes (payload: unknown, topic: string): Buffer {
  if (Buffer.isBuffer(payload)) return payload
  if (payload instanceof Uint8Array) return Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  if (typeof payload === 'string') return Buffer.from(payload)
  if (Array.isArray(payload) || isPlainObject(payload)) {
    let json: string
    try {
      json = JSON.stringify(payload)
    } catch (err) {
      throw new SwitchyardError('ERR_INVALID_PAYLOAD', `cannot publish to ${topic}: the payload cannot be serialized to JSON: ${(err as Error).message}`, { cause: err })
    }
    return Buffer.from(json)
  }
  throw new SwitchyardError('ERR_INVALID_PAYLOAD', `cannot publish to ${topic}: the payload must be a string, a Buffer, a Uint8Array, a plain object or an array; got ${describe(payload)}`)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'object') return `a ${(Object.getPrototypeOf(value) as object | null)?.constructor?.name ?? 'object'}`
  if (typeof value === 'string') return JSON.stringify(value)
  return `${typeof value} ${String(value)}`
}
