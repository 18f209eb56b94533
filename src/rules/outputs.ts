/* How a rule's outputs become messages: the same for the broker and for `switchyard rule test`. */
import { checkProperties, type MessageProperties } from '../properties.js'
import type { RawOutput, RawProperties } from './protocol.js'
import { outputTopicProblem } from './validate.js'

export interface OutputMessage { topic: string, payload: string | Uint8Array, qos: 0 | 1 | 2, retain: boolean, properties?: RawProperties }

/** QoS: the output's own, else the rule's `qos` export, else the input's. Retain: the output's, else false. Properties: the output's. */
export function resolveOutput (o: RawOutput, ruleQos: 0 | 1 | 2 | undefined, inputQos: 0 | 1 | 2): OutputMessage {
  const resolved: OutputMessage = { topic: o.topic, payload: o.payload, qos: o.qos ?? ruleQos ?? inputQos, retain: o.retain ?? false }
  if (o.properties !== undefined && Object.keys(o.properties).length > 0) resolved.properties = o.properties
  return resolved
}

/** What is wrong with a conversion's outputs, or undefined. One bad output fails the whole conversion. */
export function outputsProblem (outputs: readonly RawOutput[], maxPacketSize: number): string | undefined {
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!
    const topicProblem = outputTopicProblem(o.topic)
    if (topicProblem) return `output ${i}: topic ${JSON.stringify(o.topic)} ${topicProblem}`
    const size = typeof o.payload === 'string' ? Buffer.byteLength(o.payload) : o.payload.byteLength
    if (size > maxPacketSize) return `output ${i}: payload of ${size} bytes exceeds limits.maxPacketSize ${maxPacketSize}`
    if (o.properties !== undefined) {
      // The isolate checked the types (only plain data crosses); here what MQTT can carry.
      const checked = checkProperties(o.properties)
      if ('problem' in checked) return `output ${i}: ${checked.problem}`
    }
  }
  return undefined
}

/** An output's properties as a Message carries them (correlation data as a Buffer); already checked by outputsProblem. */
export function messageProperties (p: RawProperties | undefined): MessageProperties | undefined {
  if (p === undefined) return undefined
  const { correlationData, ...rest } = p
  if (correlationData === undefined) return rest
  return { ...rest, correlationData: typeof correlationData === 'string' ? Buffer.from(correlationData) : Buffer.from(correlationData.buffer, correlationData.byteOffset, correlationData.byteLength) }
}
