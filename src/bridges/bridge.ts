/*
 * One bridge's connection: an MQTT.js client to the remote broker, a fresh
 * one for each attempt (reconnectPeriod 0: the backoff is ours, with the
 * reason logged), the remote subscriptions, and the two directions over the
 * internal message API (architecture.md): inbound.ts publishes what comes in
 * with core.publish(), outbound.ts sends what a bus hold (bus.hold(): before
 * the publisher's acknowledgement) puts in the out queue. With MQTT 5 the remote subscriptions set No Local, so the
 * remote broker does not echo our own messages back in.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import type { HoldHandler } from '../bus.js'
import { NO_CHAIN, type Message } from '../message.js'
import type { BridgeConfig } from './config.js'
import { Inbound } from './inbound.js'
import { Outbound } from './outbound.js'
import type { BridgeQueue } from './queue.js'
import { shownAddress, type BridgeSettings } from './settings.js'
import { TopicMap } from './topics.js'

export interface BridgeDeps {
  /** core.publish(): stored, routed, seen by rules and subscribers. */
  publish(message: Message): Promise<void>
  /** bus.hold(): every message accepted here on `filter`, before its publisher is acknowledged. */
  hold(filter: string, handler: HoldHandler): () => void
  /** The out queue is the cluster's (redis-queue.ts): QoS 0 joins it too, whether this node is connected or not. */
  shared?: boolean
  /** $SYS/broker/connection/<name>/state. */
  state(name: string, connected: boolean): void
  logger: Logger
  maxPacketSize: number
}

export interface BridgeView {
  name: string
  address: string
  clientId: string
  /** `standby`: a cluster node where another node holds the bridge's lease (runningOn). */
  state: 'connecting' | 'connected' | 'waiting' | 'standby' | 'closed'
  connected: boolean
  /** The remote broker granted the `in` subscriptions on this connection (true when there are none). */
  subscribed: boolean
  /** Why the last connection ended or was refused. */
  lastError: string | null
  /** Set while waiting to reconnect. */
  nextAttemptAt: string | null
  reconnects: number
  messagesIn: number
  messagesOut: number
  queued: number
  inflight: number
  dropped: { queueFull: number, offline: number, refused: number, invalid: number }
  loopsPrevented: number
  /** In a cluster: the node id of the node the bridge runs on (null: none holds it yet). */
  runningOn?: string | null
}

// Most unacknowledged messages sent at once; less when the remote's MQTT 5 Receive Maximum says so [MQTT-4.9.0-2].
const MAX_WINDOW = 256
const CONNECT_TIMEOUT_MS = 10_000
const END_TIMEOUT_MS = 2000
// v5 subscription options: No Local, Retain As Published, retained messages only for a new subscription [MQTT-3.8.3.1].
const V5_SUBSCRIBE = { nl: true, rap: true, rh: 1 } as const

export class Bridge {
  readonly name: string
  readonly settings: BridgeSettings
  readonly #config: BridgeConfig
  readonly #queue: BridgeQueue
  readonly #deps: BridgeDeps
  readonly #log: Logger
  readonly #map: TopicMap
  readonly #inbound: Inbound
  readonly #outbound: Outbound
  readonly #unsubscribe: Array<() => void> = []
  #client: MqttClient | undefined
  /** Bumped per connection: callbacks of an older client are ignored. */
  #gen = 0
  #connected = false
  #subscribedOnce = false
  #subscribed = false
  #window = MAX_WINDOW
  #closed = false
  /** Connected or connecting to the remote broker: always on a single broker; on the lease holder in a cluster. */
  #linked = false
  #failures = 0
  #timer: NodeJS.Timeout | undefined
  #nextAttemptAt: number | undefined
  #lastError: string | null = null
  #reconnects = 0

  constructor (config: BridgeConfig, settings: BridgeSettings, queue: BridgeQueue, deps: BridgeDeps) {
    this.name = config.name
    this.settings = settings
    this.#config = config
    this.#queue = queue
    this.#deps = deps
    this.#log = deps.logger.child({ bridge: config.name })
    this.#map = new TopicMap(config.topics)
    const origin = Object.freeze({ kind: 'bridge' as const, clientId: null, username: null, bridge: config.name, chain: NO_CHAIN })
    this.#inbound = new Inbound({ map: this.#map, origin, publish: deps.publish, maxPacketSize: deps.maxPacketSize, log: this.#log, name: config.name })
    this.#outbound = new Outbound({ queue, map: this.#map, name: config.name, log: this.#log })
  }

  /** Holds the `out` topics and, unless `link` is false (a cluster node without the lease), connects. */
  start (link = true): void {
    this.#queue.onAvailable = () => this.#pump()
    this.#map.out.forEach((route, i) => {
      this.#unsubscribe.push(this.#deps.hold(route.filter, message => {
        const queued = this.#outbound.offer(i, message, this.#deps.shared === true || this.#connected)
        if (queued === false) return undefined
        this.#pump()
        return queued === true ? undefined : queued
      }))
    })
    this.#deps.state(this.name, false)
    if (link) this.activate()
  }

  /** Connects to the remote broker (a cluster node that took the lease). */
  activate (): void {
    if (this.#closed || this.#linked) return
    this.#linked = true
    this.#failures = 0
    this.#connect()
  }

  /**
   * Disconnects at once, keeping the holds (a cluster node that lost the
   * lease: another node runs the bridge now); what was in flight stays in
   * the queue for the new holder.
   */
  standby (): void {
    if (!this.#linked) return
    this.#linked = false
    clearTimeout(this.#timer)
    this.#timer = undefined
    const client = this.#client
    this.#gen++
    this.#client = undefined
    client?.end(true)
    if (this.#connected) this.#deps.state(this.name, false)
    this.#connected = false
    this.#queue.requeue()
  }

  view (): BridgeView {
    const i = this.#inbound.counts
    const o = this.#outbound.counts
    const state = this.#closed ? 'closed' : !this.#linked ? 'standby' : this.#connected ? 'connected' : this.#timer !== undefined ? 'waiting' : 'connecting'
    return {
      name: this.name,
      address: shownAddress(this.#config.address),
      clientId: this.#config.clientId!,
      state,
      connected: this.#connected,
      subscribed: this.#connected && (this.#subscribed || this.#map.in.length === 0),
      lastError: this.#lastError,
      nextAttemptAt: state === 'waiting' && this.#nextAttemptAt !== undefined ? new Date(this.#nextAttemptAt).toISOString() : null,
      reconnects: this.#reconnects,
      messagesIn: i.in,
      messagesOut: o.out,
      queued: this.#queue.size,
      inflight: this.#queue.inflight,
      dropped: { queueFull: o.queueFull, offline: o.offline, refused: o.refused, invalid: i.invalid },
      loopsPrevented: o.loops
    }
  }

  #connect (): void {
    this.#timer = undefined
    if (this.#closed || !this.#linked) return
    const gen = ++this.#gen
    let reason: string | undefined
    const client = mqtt.connect(this.settings.url, {
      ...this.settings.options,
      reconnectPeriod: 0,
      connectTimeout: CONNECT_TIMEOUT_MS,
      resubscribe: false,
      queueQoSZero: false
    } satisfies IClientOptions)
    // MQTT.js leaves Nagle's algorithm on: with delayed ACKs, each window of QoS 1 messages would wait ~40 ms (the same reason Switchyard's own listeners set noDelay: docs/benchmarks.md).
    ;(client.stream as { setNoDelay?: (noDelay: boolean) => void } | undefined)?.setNoDelay?.(true)
    this.#client = client
    client.handleMessage = (packet, callback) => this.#inbound.handle(packet, callback, () => gen === this.#gen)
    client.on('connect', connack => {
      if (gen !== this.#gen) return
      this.#onConnect(client, connack.sessionPresent, connack.properties?.receiveMaximum)
    })
    client.on('error', err => { reason = describe(err) })
    client.on('disconnect', packet => { reason = `the remote broker sent DISCONNECT (reason code 0x${(packet.reasonCode ?? 0).toString(16).padStart(2, '0')})` })
    client.on('close', () => {
      if (gen !== this.#gen) return
      this.#onClose(client, reason ?? (this.#connected ? 'the connection was closed' : 'the connection was closed before CONNACK'))
    })
  }

  #onConnect (client: MqttClient, sessionPresent: boolean, receiveMaximum: number | undefined): void {
    this.#connected = true
    this.#failures = 0
    this.#lastError = null
    this.#window = Math.min(MAX_WINDOW, receiveMaximum ?? MAX_WINDOW)
    this.#log.info({ address: shownAddress(this.#config.address), sessionPresent, queued: this.#queue.size }, `bridge ${this.name} connected`)
    this.#deps.state(this.name, true)
    // MQTT 3.1.1: a present session keeps our subscriptions, and subscribing again would replay retained messages.
    const v5 = this.#config.protocolVersion === 5
    this.#subscribed = false
    if (this.#map.in.length > 0 && (v5 || !sessionPresent || !this.#subscribedOnce)) {
      const filters = Object.fromEntries(this.#map.in.map(r => [r.filter, v5 ? { qos: r.qos, ...V5_SUBSCRIBE } : { qos: r.qos }]))
      client.subscribe(filters, (err, granted) => {
        if (err) return this.#log.warn({ err: err.message }, `bridge ${this.name}: SUBSCRIBE failed: ${err.message}`)
        this.#subscribedOnce = true
        this.#subscribed = true
        for (const g of granted ?? []) {
          if (g.qos >= 0x80) this.#log.error({ filter: g.topic, reasonCode: g.qos }, `bridge ${this.name}: the remote broker refused the subscription to ${g.topic}; nothing comes in on it (check its ACL)`)
        }
      })
    } else {
      this.#subscribed = true
    }
    this.#pump()
  }

  #onClose (client: MqttClient, reason: string): void {
    const wasConnected = this.#connected
    this.#connected = false
    this.#client = undefined
    this.#gen++
    client.end(true)
    this.#outbound.counts.offline += this.#queue.requeue() + this.#queue.dropVolatile()
    if (wasConnected) this.#deps.state(this.name, false)
    this.#lastError = reason
    if (this.#closed || !this.#linked) return
    const delay = Math.min(this.#config.reconnect.maxMs, this.#config.reconnect.minMs * 2 ** Math.min(this.#failures, 30))
    this.#failures++
    this.#reconnects++
    this.#nextAttemptAt = Date.now() + delay
    this.#log.warn({ reason, retryInMs: delay, queued: this.#queue.size }, `bridge ${this.name}: ${wasConnected ? 'connection lost' : 'cannot connect'}: ${reason}; retrying in ${delay} ms`)
    this.#timer = setTimeout(() => this.#connect(), delay)
  }

  #pump (): void {
    const client = this.#client
    if (!this.#connected || client === undefined) return
    const gen = this.#gen
    this.#outbound.pump(client, this.#config.protocolVersion === 5, this.#window, () => gen === this.#gen)
  }

  /** Graceful and idempotent: stops both directions, lets in-flight acknowledgements arrive (briefly), and keeps the rest queued. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    for (const off of this.#unsubscribe.splice(0)) off()
    clearTimeout(this.#timer)
    this.#timer = undefined
    const client = this.#client
    if (client !== undefined) {
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        client.endAsync(false).catch(() => {}),
        new Promise(resolve => { timer = setTimeout(resolve, END_TIMEOUT_MS) })
      ])
      clearTimeout(timer)
      client.end(true)
    }
    this.#gen++
    this.#client = undefined
    if (this.#connected) this.#deps.state(this.name, false)
    this.#connected = false
    this.#queue.requeue()
    await this.#queue.flush()
  }
}

function describe (err: Error): string {
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' && !err.message.includes(code) ? `${err.message} (${code})` : err.message
}
