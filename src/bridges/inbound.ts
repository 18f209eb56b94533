/*
 * A bridge's `in` direction: the remote broker's PUBLISH, renamed by its
 * route and published here with origin kind 'bridge' (core.publish(): stored,
 * routed, seen by the rules and subscribers). MQTT.js sends the PUBACK (for
 * QoS 2, the PUBCOMP) when handleMessage calls back, and reads the next
 * packet only then: the remote broker's message is acknowledged once stored
 * here, and its messages stay in order.
 */
import type { IPublishPacket } from 'mqtt'
import type { Logger } from 'pino'
import type { Message, Origin } from '../message.js'
import { messageFrom } from '../publish-input.js'
import { mapTopic, type TopicMap } from './topics.js'

export class Inbound {
  readonly counts = { in: 0, invalid: 0 }
  readonly #map: TopicMap
  readonly #origin: Origin
  readonly #publish: (message: Message) => Promise<void>
  readonly #maxPacketSize: number
  readonly #log: Logger
  readonly #name: string

  constructor (options: { map: TopicMap, origin: Origin, publish: (message: Message) => Promise<void>, maxPacketSize: number, log: Logger, name: string }) {
    this.#map = options.map
    this.#origin = options.origin
    this.#publish = options.publish
    this.#maxPacketSize = options.maxPacketSize
    this.#log = options.log
    this.#name = options.name
  }

  /** MQTT.js's handleMessage. `current()`: false once this packet's connection is gone (closing: no acknowledgement). */
  handle (packet: IPublishPacket, callback: (err?: Error) => void, current: () => boolean): void {
    const route = this.#map.inbound(packet.topic)
    if (route === undefined) return callback() // a subscription of an earlier config, still in a persistent session
    let message: Message
    try {
      message = messageFrom({
        topic: mapTopic(route, packet.topic),
        payload: packet.payload as Buffer,
        qos: packet.qos,
        retain: packet.retain,
        ...(packet.properties === undefined ? {} : { properties: applicationProperties(packet.properties) })
      }, this.#origin, this.#maxPacketSize)
    } catch (err) {
      this.counts.invalid++
      this.#log.warn({ topic: packet.topic, err: (err as Error).message }, `bridge ${this.#name}: incoming message dropped`)
      return callback()
    }
    // One at a time, even for QoS 0: the next packet is read once this one is
    // routed. Publishing ahead reordered QoS 0 messages here (the bench saw it).
    this.#publish(message).then(() => {
      this.counts.in++
      callback()
    }, (err: Error & { code?: string }) => {
      // Closing: leave it unacknowledged, the remote broker sends it again.
      if (err.code === 'ERR_CLOSED' || !current()) return
      this.counts.invalid++
      this.#log.warn({ topic: message.topic, err: err.message }, `bridge ${this.#name}: incoming message refused here; acknowledged and dropped`)
      callback()
    })
  }
}

/** The application message's MQTT 5 properties; Topic Alias and Subscription Identifier belong to the connection. */
function applicationProperties (p: NonNullable<IPublishPacket['properties']>): Record<string, unknown> | undefined {
  const out: Record<string, unknown> = {}
  for (const name of ['userProperties', 'contentType', 'responseTopic', 'correlationData', 'messageExpiryInterval', 'payloadFormatIndicator'] as const) {
    if (p[name] !== undefined) out[name] = p[name]
  }
  return Object.keys(out).length === 0 ? undefined : out
}
