/*
 * Mosquitto's $SYS/broker/... topics, so that existing dashboards work. Names
 * and meanings follow mosquitto(8) of Mosquitto 2.0 ("BROKER STATUS"); the
 * differences are listed in docs/operations.md. Values are retained, sent
 * every sys.interval seconds when they changed, and reach only clients whose
 * ACL grants read.
 */
import { getHeapStatistics } from 'node:v8'
import type { StatsSource } from './metrics.js'

export interface SysSource extends StatsSource {
  offlineClients(): Promise<number>
  publish(topic: string, payload: string): Promise<void>
}

const PREFIX = '$SYS/broker/'
/** Per cluster node (docs/cluster.md): $SYS/switchyard/nodes/<nodeId>/... mirrors that node's $SYS/broker/... */
export const NODE_PREFIX = '$SYS/switchyard/nodes/'
const WINDOWS = [['1min', 60], ['5min', 300], ['15min', 900]] as const

export class SysPublisher {
  readonly #source: SysSource
  readonly #intervalMs: number
  readonly #version: string
  readonly #startedAt = Date.now()
  readonly #last = new Map<string, string>()
  readonly #loads = new Map<string, { value: number, averages: number[] }>()
  #lastTick = Date.now()
  #heapMax = 0
  #timer: NodeJS.Timeout | undefined

  /** A cluster node's copy of each value: $SYS/switchyard/nodes/<nodeId>/<topic>, which crosses nodes. */
  readonly #nodePrefix: string | undefined

  constructor (source: SysSource, intervalSeconds: number, version: string, nodeId?: string) {
    this.#nodePrefix = nodeId === undefined ? undefined : `${NODE_PREFIX}${nodeId}/`
    this.#source = source
    this.#intervalMs = intervalSeconds * 1000
    this.#version = version
  }

  start (): void {
    if (this.#intervalMs === 0) return
    void this.tick()
    this.#timer = setInterval(() => { void this.tick() }, this.#intervalMs)
    this.#timer.unref()
  }

  stop (): void {
    clearInterval(this.#timer)
  }

  /** Computes and publishes every topic whose value changed. */
  async tick (): Promise<void> {
    const s = this.#source
    const c = s.counters()
    const now = Date.now()
    const elapsed = Math.max(1, (now - this.#lastTick) / 1000)
    this.#lastTick = now
    // the figure process.memoryUsage().heapUsed reports (only cli.ts touches `process`)
    const heap = getHeapStatistics().used_heap_size
    this.#heapMax = Math.max(this.#heapMax, heap)
    const bytes = s.bytes()
    const connected = s.connectedClients()
    const offline = await s.offlineClients().catch(() => 0)
    const publishReceived = c.publishReceived[0] + c.publishReceived[1] + c.publishReceived[2]
    const publishSent = c.publishSent[0] + c.publishSent[1] + c.publishSent[2]

    const values: Record<string, string | number> = {
      version: `switchyard version ${this.#version}`,
      uptime: `${Math.floor((now - this.#startedAt) / 1000)} seconds`,
      'bytes/received': bytes.received,
      'bytes/sent': bytes.sent,
      'clients/connected': connected,
      'clients/disconnected': offline,
      'clients/total': connected + offline,
      'clients/maximum': c.maxConnected,
      'clients/expired': 0,
      // not in Mosquitto: connected clients by protocol level, 3 (MQTT 3.1), 4 (3.1.1), 5
      'clients/protocol/3': c.connectedByProtocol[3],
      'clients/protocol/4': c.connectedByProtocol[4],
      'clients/protocol/5': c.connectedByProtocol[5],
      'heap/current size': heap,
      'heap/maximum size': this.#heapMax,
      'messages/received': c.packetsReceived,
      'messages/sent': publishSent,
      'publish/messages/received': publishReceived,
      'publish/messages/sent': publishSent,
      'publish/messages/dropped': c.queueDropped,
      'retained messages/count': s.retained(),
      'subscriptions/count': s.subscriptions()
    }
    const totals: Record<string, number> = {
      'load/messages/received': c.packetsReceived,
      'load/messages/sent': publishSent,
      'load/publish/received': publishReceived,
      'load/publish/sent': publishSent,
      'load/publish/dropped': c.queueDropped,
      'load/bytes/received': bytes.received,
      'load/bytes/sent': bytes.sent,
      'load/connections': c.connects,
      'load/sockets': s.sockets().accepted
    }
    for (const [name, total] of Object.entries(totals)) {
      const averages = this.#average(name, total, elapsed)
      WINDOWS.forEach(([label], i) => { values[`${name}/${label}`] = averages[i]!.toFixed(2) })
    }

    const sends: Array<Promise<void>> = []
    for (const [topic, raw] of Object.entries(values)) {
      const payload = String(raw)
      if (this.#last.get(topic) === payload) continue
      this.#last.set(topic, payload)
      sends.push(s.publish(PREFIX + topic, payload).catch(() => {}))
      if (this.#nodePrefix !== undefined) sends.push(s.publish(this.#nodePrefix + topic, payload).catch(() => {}))
    }
    await Promise.all(sends)
  }

  // Mosquitto's moving average of a per-minute rate, decayed over 1, 5 and 15 minutes.
  #average (name: string, total: number, elapsedSeconds: number): number[] {
    const state = this.#loads.get(name)
    if (!state) {
      this.#loads.set(name, { value: total, averages: WINDOWS.map(() => 0) })
      return WINDOWS.map(() => 0)
    }
    const perMinute = (total - state.value) / elapsedSeconds * 60
    state.value = total
    state.averages = WINDOWS.map(([, seconds], i) => {
      const decay = Math.exp(-elapsedSeconds / seconds)
      return perMinute * (1 - decay) + state.averages[i]! * decay
    })
    return state.averages
  }
}
