/*
 * Bridges in a cluster (issue 14, docs/bridges.md#clusters): a bridge runs
 * on the one node holding its Redis lease; its out queue is a Redis list
 * every node appends to before it acknowledges its own publishers. Against
 * a real Redis and a real Mosquitto: out messages published on either node
 * reach the remote broker in each publisher's order; in messages reach
 * subscribers on both nodes once; kill -9 of the lease holder moves the
 * bridge to the survivor, which delivers what was queued.
 */
import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { MqttClient } from 'mqtt'
import { describe, expect, onTestFinished, test } from 'vitest'
import type { ConfigInput } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { hasMosquitto, startMosquitto } from '../helpers/mosquitto.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()
const SCRIPT = fileURLToPath(new URL('../helpers/cluster-broker.mjs', import.meta.url))
const H = 300
const LEASE = 'switchyard:cluster:bridge:remote:lease'

type BridgeInput = NonNullable<ConfigInput['bridges']>[number]
const bridgeTo = (address: string): BridgeInput => ({
  name: 'remote',
  address,
  clientId: 'switchyard-cluster',
  topics: [
    { pattern: 'out/#', direction: 'out', qos: 1 },
    { pattern: 'in/#', direction: 'in', qos: 1, localPrefix: 'remote/' }
  ],
  reconnect: { minMs: 50, maxMs: 200 }
})

/** A cluster node in a child process (dist/), killed (-9) after the test if still running. */
async function childNode (nodeId: string, bridges: BridgeInput[]): Promise<{ url: string, kill(): Promise<void> }> {
  const config = {
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'redis' },
    log: { level: 'silent' },
    rules: { dir: tempDir('switchyard-rules-') },
    bridges,
    cluster: { redis: redis.url, nodeId, heartbeatMs: H }
  }
  const child = spawn(process.execPath, [SCRIPT, JSON.stringify(config)], { stdio: ['ignore', 'pipe', 'inherit'] })
  onTestFinished(() => { child.kill('SIGKILL') })
  const line = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${nodeId}: not ready within 20 s`)), 20_000)
    createInterface({ input: child.stdout! }).once('line', l => { clearTimeout(timer); resolve(JSON.parse(l) as Record<string, unknown>) })
  })
  if (line.event !== 'ready') throw new Error(`${nodeId}: ${String(line.code)}: ${String(line.message)}`)
  return {
    url: `mqtt://127.0.0.1:${line.port as number}`,
    async kill () {
      child.kill('SIGKILL')
      await new Promise(resolve => child.exitCode !== null || child.signalCode !== null ? resolve(null) : child.once('exit', resolve))
    }
  }
}

const holder = async (): Promise<string | undefined> => (await redis.server.admin.get(LEASE))?.split(' ')[0]

/** Each publisher's payloads, once each, in the order they first arrived (QoS 1 may repeat, never reorder). */
function firstArrivals (client: MqttClient, prefix: string): string[] {
  return [...new Set(inbox(client).messages.map(m => m.payload).filter(p => p.startsWith(prefix)))]
}
const sequence = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

async function publishAll (client: MqttClient, topic: string, prefix: string, n: number): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => client.publishAsync(topic, `${prefix}${i}`, { qos: 1 })))
}

describe.skipIf(!hasMosquitto)('bridges in a cluster', () => {
  test('one node runs the bridge: out from either node in each publisher\'s order; in once on both nodes; the others report where it runs', { timeout: 90_000 }, async () => {
    const mosquitto = await startMosquitto()
    const sink = await connect(mosquitto.url, { clientId: 'sink' })
    await sink.subscribeAsync('out/#', { qos: 1 })
    const a = await childNode('node-a', [bridgeTo(mosquitto.url)])
    await until(async () => await holder() === 'node-a', 'node-a to take the lease')
    const b = await startNode(redis.url, 'node-b', { bridges: [bridgeTo(mosquitto.url)] }, { heartbeatMs: H })
    await until(() => b.bridges()[0]!.runningOn === 'node-a', 'node-b to see where the bridge runs')
    expect(b.bridges()[0]).toMatchObject({ name: 'remote', connected: false, state: 'standby', runningOn: 'node-a' })

    const pubA = await connect(a.url, { clientId: 'pub-a' })
    const pubB = await connect(urlFor(b), { clientId: 'pub-b' })
    const N = 300
    await Promise.all([publishAll(pubA, 'out/a', 'a-', N), publishAll(pubB, 'out/b', 'b-', N)])
    await until(() => firstArrivals(sink, 'a-').length === N && firstArrivals(sink, 'b-').length === N, 'both publishers\' messages at the remote broker', 30_000)
    expect(firstArrivals(sink, 'a-')).toEqual(sequence('a-', N))
    expect(firstArrivals(sink, 'b-')).toEqual(sequence('b-', N))

    // in: the holder alone subscribes remotely; its messages cross nodes as any message.
    const onA = await connect(a.url, { clientId: 'sub-a' })
    const onB = await connect(urlFor(b), { clientId: 'sub-b' })
    await onA.subscribeAsync('remote/in/#', { qos: 1 })
    await onB.subscribeAsync('remote/in/#', { qos: 1 })
    const device = await connect(mosquitto.url, { clientId: 'device' })
    for (let i = 0; i < 20; i++) await device.publishAsync('in/d', `in-${i}`, { qos: 1 })
    await device.publishAsync('in/end', 'end', { qos: 1 })
    for (const sub of [onA, onB]) await until(() => inbox(sub).messages.some(m => m.payload === 'end'), 'the last in message on both nodes', 10_000)
    // Behind a local barrier on node-b (after 'end', nothing more may come): each message exactly once per subscriber.
    const seenOnB = await barrier(b, onB, 'remote/in/barrier')
    expect(seenOnB.filter(m => m.topic === 'remote/in/d').map(m => m.payload)).toEqual(sequence('in-', 20))
    expect(inbox(onA).messages.filter(m => m.topic === 'remote/in/d').map(m => m.payload)).toEqual(sequence('in-', 20))
    await a.kill()
  })

  test('kill -9 of the lease holder: the survivor takes the bridge over and delivers what both nodes queued', { timeout: 90_000 }, async () => {
    const mosquitto = await startMosquitto({ persistence: true })
    // A persistent session at the remote broker, so that nothing the bridge sends before the sink is back is lost.
    const offline = await connect(mosquitto.url, { clientId: 'sink', clean: false })
    await offline.subscribeAsync('out/#', { qos: 1 })
    await offline.endAsync()
    await mosquitto.stop()
    const a = await childNode('node-a', [bridgeTo(mosquitto.url)])
    await until(async () => await holder() === 'node-a', 'node-a to take the lease')
    const b = await startNode(redis.url, 'node-b', { bridges: [bridgeTo(mosquitto.url)] }, { heartbeatMs: H })
    const pubA = await connect(a.url, { clientId: 'pub-a' })
    const pubB = await connect(urlFor(b), { clientId: 'pub-b' })
    const N = 200
    // Acknowledged by both nodes while the remote broker is down: all in the Redis queue.
    await Promise.all([publishAll(pubA, 'out/a', 'a-', N), publishAll(pubB, 'out/b', 'b-', N)])
    expect(await redis.server.admin.llen('switchyard:cluster:bridge:remote:queue')).toBe(2 * N)
    // node-b, without the lease, reports the list's length (read each heartbeat).
    await until(() => b.bridges()[0]!.queued === 2 * N, 'node-b to report the queue in Redis')
    await a.kill()
    await until(() => b.bridges()[0]!.runningOn === 'node-b', 'node-b to take the bridge over', 10_000)
    await mosquitto.start()
    const sink = await connect(mosquitto.url, { clientId: 'sink', clean: false })
    await until(() => firstArrivals(sink, 'a-').length === N && firstArrivals(sink, 'b-').length === N, 'every queued message at the remote broker', 30_000)
    expect(firstArrivals(sink, 'a-')).toEqual(sequence('a-', N))
    expect(firstArrivals(sink, 'b-')).toEqual(sequence('b-', N))
    expect(b.bridges()[0]).toMatchObject({ connected: true, runningOn: 'node-b' })
    await until(async () => await redis.server.admin.llen('switchyard:cluster:bridge:remote:queue') === 0, 'the queue in Redis trimmed')
  })
})
