/*
 * Issue 13: a shared subscription group spans the cluster (src/cluster/shared.ts,
 * vendor patch 012). Each message goes to exactly one member of the group,
 * whichever nodes the members and the publisher are on [MQTT-4.8.2]. Nodes
 * in this process on one real Redis (helpers/redis.ts), and one in a child
 * process for kill -9 (helpers/cluster-broker.mjs, from dist/: build first).
 */
import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { clusterNodeConfig, spawnChildBroker } from '../helpers/child-broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()
const N = 200

/** Waits until every node's view of the cluster's shared groups has `members` members (GET /api/cluster, self.shared). */
async function converged (nodes: Broker[], members: number, timeoutMs = 10_000): Promise<void> {
  await until(async () => {
    for (const node of nodes) if ((await node.cluster!()).self.shared.members !== members) return false
    return true
  }, `every node to see ${members} shared members`, timeoutMs, 20)
}

interface Member { id: string, client: MqttClient, node: 'a' | 'b' }

/** A member of `$share/g/<filter>` (QoS 1) that also subscribes to bar/<id>, for barriers. */
async function member (node: Broker, side: 'a' | 'b', id: string, filter: string, options: { protocolVersion?: 4 | 5, clean?: boolean } = {}): Promise<Member> {
  const client = await connect(urlFor(node), { clientId: id, protocolVersion: options.protocolVersion ?? 4, clean: options.clean ?? true })
  await client.subscribeAsync([`$share/g/${filter}`, `bar/${id}`], { qos: 1 })
  return { id, client, node: side }
}

/** After everything `pubs` published: each member has all it will get (one barrier per publisher and member). */
async function settle (pubs: MqttClient[], members: Member[]): Promise<void> {
  for (const m of members) for (const pub of pubs) await barrier(pub, m.client, `bar/${m.id}`, { timeoutMs: 20_000 })
}

describe('cluster: shared subscriptions', () => {
  test.each([1, 0] as const)('QoS %i: with members on both nodes (v3.1.1 and v5, clean and persistent) and publishers on both, each message reaches exactly one member', async qos => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const members = [
      await member(a, 'a', 'a-v5', 'work/#', { protocolVersion: 5 }),
      await member(a, 'a', 'a-v4', 'work/#', { clean: false }),
      await member(b, 'b', 'b-v5', 'work/#', { protocolVersion: 5 }),
      await member(b, 'b', 'b-v4', 'work/#', { clean: false })
    ]
    await converged([a, b], 4)
    const pubA = await connect(urlFor(a), { clientId: 'pub-a' })
    const pubB = await connect(urlFor(b), { clientId: 'pub-b', protocolVersion: 5 })
    const sent: string[] = []
    for (let i = 0; i < N / 2; i++) {
      for (const [side, pub] of [['a', pubA], ['b', pubB]] as const) {
        sent.push(`${side}-${i}`)
        void pub.publish(`work/${side}/${i}`, `${side}-${i}`, { qos })
      }
    }
    await settle([pubA, pubB], members)
    const got = members.flatMap(m => inbox(m.client).messages.map(msg => ({ payload: msg.payload, qos: msg.qos, node: m.node, id: m.id })))
    // exactly once each: no duplicates, nothing missing
    expect(got.map(g => g.payload).sort()).toEqual(sent.slice().sort())
    expect(new Set(got.map(g => g.qos))).toEqual(new Set([qos]))
    // every member took a share, and the choice crossed nodes both ways
    for (const m of members) expect(got.filter(g => g.id === m.id).length, m.id).toBeGreaterThan(0)
    expect(got.some(g => g.node === 'b' && g.payload.startsWith('a-'))).toBe(true)
    expect(got.some(g => g.node === 'a' && g.payload.startsWith('b-'))).toBe(true)
    // a persistent member's QoS 1 copy, stored by the publishing node, was
    // settled by the delivering node's PUBACK: no queue entry is left behind
    await until(async () => (await redis.server.admin.keys('outgoing:*')).length === 0, 'every queue entry to be acknowledged')
  })

  test('a member that disconnects stops being chosen: the others, on both nodes, get every message', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const m1 = await member(a, 'a', 'm1', 'jobs/+', { protocolVersion: 5 })
    const m2 = await member(b, 'b', 'm2', 'jobs/+')
    const m3 = await member(b, 'b', 'm3', 'jobs/+')
    await converged([a, b], 3)
    await m2.client.endAsync()
    await converged([a, b], 2)
    const pub = await connect(urlFor(a), { clientId: 'jobs-pub' })
    for (let i = 0; i < N; i++) void pub.publish('jobs/x', `j-${i}`, { qos: 1 })
    await settle([pub], [m1, m3])
    const got = [m1, m3].flatMap(m => inbox(m.client).messages.map(msg => msg.payload))
    expect(got.sort()).toEqual(Array.from({ length: N }, (_, i) => `j-${i}`).sort())
    expect(inbox(m1.client).messages.length).toBeGreaterThan(0)
    expect(inbox(m3.client).messages.length).toBeGreaterThan(0)
    expect(inbox(m2.client).messages.length).toBe(0)
  })

  test('a persistent member offline since it left node B, no member connected: QoS 1 messages are queued and delivered when it reconnects to node A', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const away = await member(b, 'b', 'sleeper', 'q/#', { clean: false })
    await away.client.endAsync()
    // still a member, offline, as both nodes see it
    await converged([a, b], 1)
    const pub = await connect(urlFor(a), { clientId: 'q-pub' })
    const n = 50
    for (let i = 0; i < n; i++) await pub.publishAsync('q/1', `q-${i}`, { qos: 1 })
    await pub.publishAsync('q/0', 'dropped', { qos: 0 })
    const back = await connect(urlFor(a), { clientId: 'sleeper', clean: false })
    // all of them, once each, in order; the QoS 0 one had no member to go to [MQTT-4.8.2]
    expect((await inbox(back).waitFor(n, 20_000)).map(m => m.payload)).toEqual(Array.from({ length: n }, (_, i) => `q-${i}`))
    // and nothing more (a live message may overtake the end of a replay, so the barrier comes after)
    expect(await barrier(pub, back, 'bar/sleeper')).toHaveLength(n)
  })

  test('takeover: a persistent member that reconnects to the other node keeps one record, naming its new node, and each message still reaches exactly one member', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const first = await member(a, 'a', 'roamer', 'r/#', { clean: false })
    const stay = await member(b, 'b', 'stay', 'r/#')
    await converged([a, b], 2)
    const closed = new Promise<void>(resolve => first.client.once('close', () => resolve()))
    const roamer = await connect(urlFor(b), { clientId: 'roamer', clean: false })
    await closed
    // node-a's leave of the old connection did not mark it offline: the record names node-b (compare-and-set)
    const record = await redis.server.admin.hget('switchyard:cluster:share:$share/g/r/#', 'roamer')
    expect(record?.startsWith('node-b/')).toBe(true)
    const pubA = await connect(urlFor(a), { clientId: 'r-pub-a' })
    const pubB = await connect(urlFor(b), { clientId: 'r-pub-b' })
    const sent: string[] = []
    for (let i = 0; i < N / 2; i++) {
      for (const [side, pub] of [['a', pubA], ['b', pubB]] as const) {
        sent.push(`${side}-${i}`)
        void pub.publish('r/1', `${side}-${i}`, { qos: 1 })
      }
    }
    const members = [{ id: 'roamer', client: roamer, node: 'b' as const }, stay]
    await settle([pubA, pubB], members)
    const got = members.flatMap(m => inbox(m.client).messages.map(msg => msg.payload))
    expect(got.sort()).toEqual(sent.slice().sort())
    expect(inbox(roamer).messages.length).toBeGreaterThan(0)
  })

  test('a node that closes: its clean members leave the directory, its persistent ones turn offline, and the other node\'s member gets every message', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const m = await member(a, 'a', 'keeper', 'c/#')
    await member(b, 'b', 'clean-one', 'c/#')
    await member(b, 'b', 'durable', 'c/#', { clean: false })
    await converged([a, b], 3)
    await b.close()
    await converged([a], 2)
    const records = await redis.server.admin.hgetall('switchyard:cluster:share:$share/g/c/#')
    expect(Object.keys(records).sort()).toEqual(['durable', 'keeper'])
    expect(records.durable).toBe('|1|0')
    const pub = await connect(urlFor(a), { clientId: 'c-pub' })
    for (let i = 0; i < N; i++) void pub.publish('c/1', `c-${i}`, { qos: 1 })
    await settle([pub], [m])
    expect(inbox(m.client).messages.map(msg => msg.payload)).toEqual(Array.from({ length: N }, (_, i) => `c-${i}`))
  })

  test('kill -9: once the node is declared dead its clean members are no longer chosen; QoS 1 messages all reach the survivors\' members', async () => {
    const h = 500
    const a = await startNode(redis.url, 'node-a', {}, { heartbeatMs: h })
    const doomed = await spawnChildBroker(clusterNodeConfig(redis.url, 'node-c', h), 'node-c')
    const m1 = await member(a, 'a', 'k1', 'k/#')
    const mc = await connect(`mqtt://127.0.0.1:${doomed.port}`, { clientId: 'kc' })
    mc.on('error', () => {})
    await mc.subscribeAsync('$share/g/k/#', { qos: 1 })
    await converged([a], 2)
    await doomed.kill()
    // declared dead (membership.ts, within 1.5 heartbeats) and swept (shared.ts)
    await converged([a], 1)
    const pub = await connect(urlFor(a), { clientId: 'k-pub' })
    for (let i = 0; i < N; i++) void pub.publish('k/1', `k-${i}`, { qos: 1 })
    await settle([pub], [m1])
    expect(inbox(m1.client).messages.map(m => m.payload)).toEqual(Array.from({ length: N }, (_, i) => `k-${i}`))
    expect(await redis.server.admin.hkeys('switchyard:cluster:share:$share/g/k/#')).toEqual(['k1'])
  })
})
