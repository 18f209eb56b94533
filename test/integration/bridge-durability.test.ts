/*
 * Bridges (issue 14): nothing acknowledged is lost. The remote broker stops
 * and comes back in the middle of a QoS 1 stream, in each direction; we
 * restart with messages still in the out queue (LevelDB); the queue bound
 * refuses the newest and counts it.
 */
import { describe, expect, test } from 'vitest'
import type { MqttClient } from 'mqtt'
import { createBroker, type Broker, type ConfigInput } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { freePort, hasMosquitto, holdingProxy, startMosquitto } from '../helpers/mosquitto.js'
import { until } from '../helpers/wait.js'

type BridgeInput = NonNullable<ConfigInput['bridges']>[number]

const bridge = (address: string, topics: BridgeInput['topics'], extra: Partial<BridgeInput> = {}): BridgeInput =>
  ({ name: 'plant', address, topics, reconnect: { minMs: 50, maxMs: 300 }, ...extra })
const OUT: BridgeInput['topics'] = [{ pattern: 'readings/#', direction: 'out', qos: 1, localPrefix: '', remotePrefix: 'plant/' }]
const IN: BridgeInput['topics'] = [{ pattern: 'readings/#', direction: 'in', qos: 1, localPrefix: 'plant/', remotePrefix: '' }]

/** The payloads, each once, in the order they first arrived: QoS 1 may repeat a message, never lose or reorder one. */
function firstArrivals (client: MqttClient): string[] {
  return [...new Set(inbox(client).messages.map(m => m.payload))]
}
const sequence = (n: number) => Array.from({ length: n }, (_, i) => String(i))

describe.skipIf(!hasMosquitto)('bridge durability, against Mosquitto', () => {
  test('out: the remote broker stops and restarts mid QoS 1 stream; every message acknowledged here arrives, in order', async () => {
    const mosquitto = await startMosquitto({ persistence: true })
    const sink = await connect(mosquitto.url, { clientId: 'sink', clean: false, reconnectPeriod: 50 })
    await sink.subscribeAsync('plant/readings/#', { qos: 1 })
    // The bridge reaches Mosquitto through a proxy that can break the link with messages in flight.
    const proxy = await holdingProxy(mosquitto.port)
    const local = await startBroker({ bridges: [bridge(`mqtt://127.0.0.1:${proxy.port}`, OUT)] })
    await until(() => local.bridges()[0]!.connected, 'bridge connected')
    const app = await connect(urlFor(local))
    const N = 1000
    // Each acknowledged here before the next is sent; the bridge streams them on meanwhile.
    const stream = (async () => { for (let i = 0; i < N; i++) await app.publishAsync('readings/r', String(i), { qos: 1 }) })()
    await until(() => inbox(sink).messages.length >= 100, 'the stream flowing', 10_000)
    // Held back, nothing the bridge sends is acknowledged: its window fills with messages in flight.
    proxy.hold()
    await until(() => local.bridges()[0]!.inflight >= 10, 'messages in flight on the bridge', 10_000)
    await mosquitto.stop('SIGTERM')
    proxy.cut() // those never reached Mosquitto
    await until(() => !local.bridges()[0]!.connected, 'the bridge disconnected')
    await mosquitto.start()
    await stream
    await until(() => firstArrivals(sink).length === N, `all ${N} messages at the remote subscriber`, 30_000)
    expect(firstArrivals(sink)).toEqual(sequence(N))
    expect(local.bridges()[0]!.reconnects).toBeGreaterThanOrEqual(1)
    await until(() => local.bridges()[0]!.queued === 0, 'the out queue empty')
  })

  test('in: the remote broker stops and restarts mid QoS 1 stream; every message it acknowledged arrives here, in order', async () => {
    const mosquitto = await startMosquitto({ persistence: true })
    const local = await startBroker({ bridges: [bridge(mosquitto.url, IN)] })
    await until(() => local.bridges()[0]!.subscribed, 'bridge subscribed')
    const app = await connect(urlFor(local), { clientId: 'app' })
    await app.subscribeAsync('plant/readings/#', { qos: 1 })
    const device = await connect(mosquitto.url, { clientId: 'device', clean: false, reconnectPeriod: 50 })
    const N = 300
    const acknowledged: string[] = []
    for (let i = 0; i < N; i++) {
      if (i === 100) {
        await mosquitto.stop('SIGTERM')
        await mosquitto.start()
        await until(() => device.connected, 'the device reconnected', 10_000)
      }
      await device.publishAsync('readings/r', String(i), { qos: 1 })
      acknowledged.push(String(i))
    }
    await until(() => firstArrivals(app).length === N, `all ${N} messages here`, 30_000)
    expect(firstArrivals(app)).toEqual(acknowledged)
    expect(local.bridges()[0]!.reconnects).toBeGreaterThanOrEqual(1)
  })
})

describe('bridge out queue, against a second Switchyard', () => {
  test('survives our restart: queued while the remote broker is down, sent after we start again', async () => {
    const port = await freePort()
    const dir = tempDir()
    const config: ConfigInput = {
      listeners: [{ type: 'tcp', port: 0 }],
      persistence: { type: 'level', path: dir },
      rules: { dir: null },
      log: { level: 'silent' },
      bridges: [bridge(`mqtt://127.0.0.1:${port}`, OUT)]
    }
    let local: Broker = await createBroker(config)
    try {
      const app = await connect(urlFor(local))
      for (let i = 0; i < 20; i++) await app.publishAsync('readings/r', String(i), { qos: 1 })
      await app.publishAsync('readings/r', 'qos0 is not kept', { qos: 0 })
      await until(() => local.bridges()[0]!.queued === 20, '20 messages queued')
      await app.endAsync()
    } finally {
      await local.close()
    }
    const remote = await startBroker({ listeners: [{ type: 'tcp', port }] })
    const sink = await connect(urlFor(remote), { clientId: 'sink' })
    await sink.subscribeAsync('plant/readings/#', { qos: 1 })
    local = await createBroker(config)
    try {
      await until(() => firstArrivals(sink).length === 20, 'the 20 queued messages at the remote broker', 10_000)
      expect(firstArrivals(sink)).toEqual(sequence(20))
      await until(() => local.bridges()[0]!.queued === 0, 'the out queue empty')
    } finally {
      await local.close()
    }
    // Sent and acknowledged: not sent again on the next start.
    local = await createBroker(config)
    try {
      const before = inbox(sink).messages.length
      await until(() => local.bridges()[0]!.connected, 'connected again')
      const after = await barrier(local, sink, 'readings/marker', { arrivesOn: 'plant/readings/marker' })
      expect(after.slice(before)).toEqual([])
    } finally {
      await local.close()
    }
  })

  test('the bound: queue.maxMessages messages wait, newer ones are refused and counted', async () => {
    const port = await freePort()
    const local = await startBroker({ bridges: [bridge(`mqtt://127.0.0.1:${port}`, OUT, { queue: { maxMessages: 5 } })] })
    const app = await connect(urlFor(local))
    for (let i = 0; i < 8; i++) await app.publishAsync('readings/r', String(i), { qos: 1 })
    await until(() => local.bridges()[0]!.dropped.queueFull === 3, 'three refused')
    expect(local.bridges()[0]!.queued).toBe(5)

    const remote = await startBroker({ listeners: [{ type: 'tcp', port }] })
    const sink = await connect(urlFor(remote), { clientId: 'sink' })
    await sink.subscribeAsync('plant/readings/#', { qos: 1 })
    // Sent and acknowledged: room again in the queue, for the marker.
    await until(() => local.bridges()[0]!.queued === 0, 'the queue sent')
    const received = await barrier(local, sink, 'readings/marker', { arrivesOn: 'plant/readings/marker' })
    expect(received.map(m => m.payload)).toEqual(['0', '1', '2', '3', '4'])
  })
})
