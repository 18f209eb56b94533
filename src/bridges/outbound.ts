/*
 * A bridge's `out` direction: a message accepted here that matches an `out`
 * route joins the out queue (queue.ts), renamed for the remote broker, before
 * its publisher is acknowledged (bus.hold(): the PUBACK waits for the queue's
 * write, so a crash cannot lose an acknowledged message for the bridge), and
 * is sent in order as the connection's window allows; the remote broker's
 * acknowledgement (PUBACK, or PUBCOMP for QoS 2) takes it off the queue.
 * Loops: a message that came in through this bridge never goes out through
 * it, even with `both` and overlapping patterns. MQTT 3.1.1 has no No Local,
 * so the origin is checked here.
 */
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import type { Message } from '../message.js'
import type { BridgeQueue } from './queue.js'
import { crossingQos, mapTopic, type TopicMap } from './topics.js'

export class Outbound {
  readonly counts = { out: 0, queueFull: 0, offline: 0, refused: 0, loops: 0 }
  readonly #queue: BridgeQueue
  readonly #map: TopicMap
  readonly #name: string
  readonly #log: Logger

  constructor (options: { queue: BridgeQueue, map: TopicMap, name: string, log: Logger }) {
    this.#queue = options.queue
    this.#map = options.map
    this.#name = options.name
    this.#log = options.log
    options.queue.onFull = () => this.#full()
  }

  /**
   * A message from the bus hold of out route `routeIndex`. False: not
   * queued. True or a promise: queued, pump now; the promise resolves once
   * the entry is written, and the publisher's acknowledgement waits for it.
   */
  offer (routeIndex: number, message: Message, connected: boolean): boolean | Promise<void> {
    const route = this.#map.outbound(message.topic)
    if (route === undefined || route !== this.#map.out[routeIndex]) return false // an earlier route maps it: it goes once
    if (message.origin.kind === 'bridge' && message.origin.bridge === this.#name) {
      this.counts.loops++
      return false
    }
    const qos = crossingQos(message.qos, route)
    if (qos === 0 && !connected) {
      this.counts.offline++
      return false
    }
    const out = { topic: mapTopic(route, message.topic), payload: message.payload, qos, retain: message.retain, ...(message.properties === undefined ? {} : { properties: message.properties }) }
    const queued = this.#queue.push(out)
    if (queued === false) this.#full()
    return queued
  }

  #full (): void {
    if (this.counts.queueFull++ % 1000 === 0) {
      this.#log.warn({ dropped: this.counts.queueFull, max: this.#queue.max }, `bridge ${this.#name}: out queue full (queue.maxMessages); message dropped`)
    }
  }

  /**
   * Sends queued messages on `client` while fewer than `window` are
   * unacknowledged. `current()`: false once that connection is gone (then
   * requeue() has put its messages back, and their callbacks are ignored).
   */
  pump (client: MqttClient, v5: boolean, window: number, current: () => boolean): void {
    while (this.#queue.inflight < window) {
      const entry = this.#queue.take()
      if (entry === undefined) return
      const { topic, payload, qos, retain, properties } = entry.message
      client.publish(topic, payload, { qos, retain, ...(v5 && properties !== undefined ? { properties: { ...properties } } : {}) }, err => {
        if (!current()) return
        if (err !== undefined && err !== null) {
          // The connection closing: requeue() sends it again. Otherwise refused for good: a reason
          // code >= 0x80 (MQTT 5 PUBACK/PUBREC), or MQTT.js's own refusal (over the remote's Maximum Packet Size).
          const code = (err as { code?: unknown }).code
          const closing = !client.connected || (client.stream as { destroyed?: boolean } | undefined)?.destroyed === true
          if (qos > 0 && typeof code !== 'number' && closing) return
          this.counts[qos > 0 ? 'refused' : 'offline']++
          if (qos > 0) this.#log.warn({ topic, reasonCode: code }, `bridge ${this.#name}: the remote broker refused a message: ${err.message}; dropped`)
        } else {
          this.counts.out++
        }
        this.#queue.done(entry.seq)
        this.pump(client, v5, window, current)
      })
    }
  }
}
