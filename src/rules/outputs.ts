/* How a rule's outputs become messages: the same for the broker and for `switchyard rule test`. */
import type { RawOutput } from './protocol.js'
import { outputTopicProblem } from './validate.js'

export interface OutputMessage { topic: string, payload: string | Uint8Array, qos: 0 | 1 | 2, retain: boolean }

/** QoS: the output's own, else the rule's `qos` export, else the input's. Retain: the output's, else false. */
export function resolveOutput (o: RawOutput, ruleQos: 0 | 1 | 2 | undefined, inputQos: 0 | 1 | 2): OutputMessage {
  return { topic: o.topic, payload: o.payload, qos: o.qos ?? ruleQos ?? inputQos, retain: o.retain ?? false }
}

/** What is wrong with a conversion's outputs, or undefined. One bad output fails the whole conversion. */
export function outputsProblem (outputs: readonly RawOutput[], maxPacketSize: number): string | undefined {
  for (let i = 0; i < outputs.length; i++) {
    const o = outputs[i]!
    const topicProblem = outputTopicProblem(o.topic)
    if (topicProblem) return `output ${i}: topic ${JSON.stringify(o.topic)} ${topicProblem}`
    const size = typeof o.payload === 'string' ? Buffer.byteLength(o.payload) : o.payload.byteLength
    if (size > maxPacketSize) return `output ${i}: payload of ${size} bytes exceeds limits.maxPacketSize ${maxPacketSize}`
  }
  return undefined
}
