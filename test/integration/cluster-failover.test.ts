/*
 * Issue 13, wired (src/cluster/node.ts): whole nodes fail. A node killed
 * with kill -9 (a child process, test/helpers/cluster-broker.mjs): its
 * clients' wills go out from a survivor within two heartbeats, exactly once,
 * through the survivor's rules; its clients reconnect to another node and
 * resume, with nothing acknowledged lost. A live nodeId cannot start twice.
 */
import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { clusterNodeConfig, spawnChildBroker, type ChildBroker } from '../helpers/child-broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()

/** A cluster node in a child process, killed (-9) after the test if still running. */
async function childBroker (nodeId: string, heartbeatMs: number): Promise<ChildBroker> {
  return await spawnChildBroker(clusterNodeConfig(redis.url, nodeId, heartbeatMs), nodeId)
}

/** The messages in `box` matching `pred`, once there are `n`. */
async function where (box: ReturnType<typeof inbox>, pred: (m: ReturnType<typeof inbox>['messages'][number]) => boolean, n: number, timeoutMs = 10_000): Promise<ReturnType<typeof inbox>['messages']> {
  await until(() => box.messages.filter(pred).length >= n, `${n} matching messages (got ${JSON.stringify(box.messages.map(m => m.topic))})`, timeoutMs, 2)
  return box.messages.filter(pred)
}

const RULE = `
export const topics = ['status/+']
export function convert (msg) {
  return { topic: 'seen/' + msg.topic.split('/')[1], payload: { payload: msg.payload, clientId: msg.clientId } }
}`

describe('cluster: a node dies', () => {
  test('kill -9: its clients\' wills are published by a survivor within two heartbeats, exactly once, and its rules see them as the clients\' wills', async () => {
    const h = 500
    const survivor = await startNode(redis.url, 'node-b', {}, { heartbeatMs: h })
    const view = await survivor.rules.add({ name: 'will-watch', source: RULE })
    expect(view.status).toBe('running')
    const doomed = await childBroker('node-a', h)
    const watcher = await connect(urlFor(survivor), { clientId: 'watcher' })
    await watcher.subscribeAsync(['status/+', 'seen/+', 'marker'], { qos: 1 })
    const devices = ['dev-1', 'dev-2', 'dev-3']
    for (const id of devices) {
      await connect(`mqtt://127.0.0.1:${doomed.port}`, { clientId: id, will: { topic: `status/${id}`, payload: Buffer.from('offline'), qos: 1, retain: false } })
    }
    // Recorded in Redis before each CONNACK (wills.ts), by node-a.
    expect((await redis.server.admin.keys('switchyard:cluster:will:*')).sort()).toEqual(devices.map(d => `switchyard:cluster:will:${d}`))

    const box = inbox(watcher)
    const killedAt = await doomed.kill()
    const wills = await where(box, m => m.topic.startsWith('status/'), devices.length)
    const lastAt = performance.now()
    // The contract's bound: two heartbeats from the kill.
    expect(lastAt - killedAt).toBeLessThan(2 * h)
    expect(wills.map(m => m.topic).sort()).toEqual(devices.map(d => `status/${d}`))
    expect(wills.every(m => m.payload === 'offline')).toBe(true)
    const seen = await where(box, m => m.topic.startsWith('seen/'), devices.length)
    expect(seen.map(m => JSON.parse(m.payload) as { clientId: string }).map(s => s.clientId).sort()).toEqual(devices)
    // Exactly once: nothing more behind a barrier; nothing left in Redis to publish.
    const all = await barrier(survivor, watcher, 'marker')
    expect(all.filter(m => m.topic.startsWith('status/'))).toHaveLength(devices.length)
    expect(all.filter(m => m.topic.startsWith('seen/'))).toHaveLength(devices.length)
    expect(await redis.server.admin.keys('switchyard:cluster:will:*')).toEqual([])
  }, 60_000)

  test('a clean DISCONNECT forgets the will; a client that reconnects on another node is not mourned when its first node dies', async () => {
    const h = 300
    const survivor = await startNode(redis.url, 'node-b', {}, { heartbeatMs: h })
    const doomed = await childBroker('node-a', h)
    const watcher = await connect(urlFor(survivor), { clientId: 'watcher' })
    await watcher.subscribeAsync(['status/+', 'marker'], { qos: 1 })
    const will = (id: string) => ({ topic: `status/${id}`, payload: Buffer.from('offline'), qos: 1 as const, retain: false })
    const polite = await connect(`mqtt://127.0.0.1:${doomed.port}`, { clientId: 'polite', will: will('polite') })
    await polite.endAsync()
    await until(async () => await redis.server.admin.exists('switchyard:cluster:will:polite') === 0, 'the clean disconnect to forget the will')
    // mover: on node-a first, then on node-b (its record is node-b's now)
    await connect(`mqtt://127.0.0.1:${doomed.port}`, { clientId: 'mover', will: will('mover') })
    await connect(urlFor(survivor), { clientId: 'mover', will: will('mover') })
    await connect(`mqtt://127.0.0.1:${doomed.port}`, { clientId: 'stays', will: will('stays') })
    // The takeover itself ends mover's first connection without DISCONNECT,
    // so node-a published that will then [MQTT-3.1.4-3]; what counts is after the kill.
    const before = (await barrier(survivor, watcher, 'marker')).length
    await doomed.kill()
    const box = inbox(watcher)
    await where(box, m => m.topic === 'status/stays', 1)
    const all = (await barrier(survivor, watcher, 'marker')).slice(before)
    expect(all.filter(m => m.topic.startsWith('status/')).map(m => m.topic)).toEqual(['status/stays'])
    expect(box.messages.filter(m => m.topic === 'status/polite')).toEqual([])
  }, 60_000)

  test('a duplicate live nodeId is refused: ERR_CLUSTER_NODE_ID_TAKEN', async () => {
    await startNode(redis.url, 'twin', {}, { heartbeatMs: 300 })
    await expect(startNode(redis.url, 'twin', {}, { heartbeatMs: 300 })).rejects.toMatchObject({ code: 'ERR_CLUSTER_NODE_ID_TAKEN' })
  })

  test('kill -9 of a node under QoS 1 load: its publisher and its persistent subscriber reconnect to the other node and resume; nothing acknowledged is lost', async () => {
    const h = 300
    const b = await startNode(redis.url, 'node-b', {}, { heartbeatMs: h })
    const a = await childBroker('node-a', h)
    const servers = [{ host: '127.0.0.1', port: a.port }, { host: '127.0.0.1', port: b.listeners[0]!.port }]
    const failover = { servers, reconnectPeriod: 100 }
    const sink = await connect(`mqtt://127.0.0.1:${a.port}`, { clientId: 'sink', clean: false, ...failover })
    await sink.subscribeAsync('load/#', { qos: 1 })
    const received = new Set<string>()
    sink.on('message', (_topic, payload) => received.add(payload.toString()))
    const acked: string[] = []
    const publishers = await Promise.all([0, 1].map(i => connect(`mqtt://127.0.0.1:${a.port}`, { clientId: `load-${i}`, ...failover })))
    let stop = false
    let killed = false
    const run = (pub: MqttClient, i: number) => (async () => {
      for (let n = 0; !stop; n++) {
        const payload = `${i}-${n}`
        try {
          await pub.publishAsync(`load/${i}`, payload, { qos: 1 })
          acked.push(payload)
        } catch {
          // not acknowledged: the client sends it again, or it does not count
        }
      }
    })()
    const loops = publishers.map(run)
    await until(() => acked.length >= 200, '200 acknowledged before the kill', 20_000)
    await a.kill()
    killed = true
    const before = acked.length
    await until(() => acked.length >= before + 200, '200 more acknowledged after the kill (through node-b)', 30_000)
    stop = true
    await Promise.all(loops)
    expect(killed).toBe(true)
    // The subscriber is on node-b now, its session resumed: every acknowledged message arrives.
    await until(() => acked.every(p => received.has(p)), `every acknowledged message at the subscriber (missing ${acked.filter(p => !received.has(p)).slice(0, 5).join(', ')})`, 20_000)
    expect(publishers.every(p => p.connected)).toBe(true)
  }, 90_000)
})
