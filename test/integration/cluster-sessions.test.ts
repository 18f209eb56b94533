/*
 * Issue 13: sessions across nodes. A persistent session left on one node
 * resumes on another with every queued message; limits.maxQueuedMessages
 * holds across the cluster; the same client id on another node takes the
 * session over; a restarted node does not overwrite what its previous run
 * queued.
 */
import { describe, expect, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()

const range = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

async function publishAll (pub: Awaited<ReturnType<typeof connect>>, topic: string, payloads: string[], qos: 1 | 2): Promise<void> {
  await Promise.all(payloads.map(p => pub.publishAsync(topic, p, { qos })))
}

describe('cluster: persistent sessions', () => {
  test('left on node A, resumed on node B: every queued message (2,500, more than the 1,000 one CONNECT used to replay), in each publisher\'s order, once', async () => {
    const limits = { maxQueuedMessages: 5000 }
    const a = await startNode(redis.url, 'node-a', { limits })
    const b = await startNode(redis.url, 'node-b', { limits })
    const first = await connect(urlFor(a), { clientId: 'roamer', clean: false })
    await first.subscribeAsync(['q/#', 'q-barrier'], { qos: 1 })
    await first.endAsync()

    const pubA = await connect(urlFor(a), { clientId: 'q-pub-a' })
    const pubB = await connect(urlFor(b), { clientId: 'q-pub-b' })
    const fromA = range('a', 2000)
    const fromB = range('b', 500)
    await Promise.all([publishAll(pubA, 'q/a', fromA, 1), publishAll(pubB, 'q/b', fromB, 1)])
    expect(await redis.server.admin.llen('outgoing:roamer')).toBe(2500)

    const back = await connect(urlFor(b), { clientId: 'roamer', clean: false })
    const got = (await inbox(back).waitFor(2500, 20_000)).map(m => m.payload)
    expect(got.filter(p => p.startsWith('a'))).toEqual(fromA)
    expect(got.filter(p => p.startsWith('b'))).toEqual(fromB)
    // and nothing more: the barrier, published after the replay, is the next message (patch 014 holds live QoS 1/2 until the replay ends)
    expect(await barrier(pubA, back, 'q-barrier')).toHaveLength(2500)
    await until(async () => await redis.server.admin.llen('outgoing:roamer') === 0, 'the queue to be acknowledged')
  }, 60_000)

  test('QoS 2: queued on one node, delivered from the other, nothing left in the store once complete', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const first = await connect(urlFor(b), { clientId: 'q2', clean: false })
    await first.subscribeAsync(['q2/#', 'q2-barrier'], { qos: 2 })
    await first.endAsync()
    const pub = await connect(urlFor(a), { clientId: 'q2-pub' })
    const sent = range('m', 300)
    await publishAll(pub, 'q2/t', sent, 2)
    const back = await connect(urlFor(a), { clientId: 'q2', clean: false })
    expect((await inbox(back).waitFor(300)).map(m => m.payload)).toEqual(sent)
    expect(await barrier(pub, back, 'q2-barrier')).toHaveLength(300)
    // aedes-persistence-redis left an outgoing:<client>:<broker>:<n> entry per QoS 2 message
    await until(async () => (await redis.server.admin.keys('outgoing*')).length === 0, 'every QoS 2 entry to be removed')
    expect(await redis.server.admin.keys('packet:*')).toEqual([])
  })

  test('limits.maxQueuedMessages holds across the cluster: counted on the store\'s queue, not per node', async () => {
    const limits = { maxQueuedMessages: 10 }
    const a = await startNode(redis.url, 'node-a', { limits })
    const b = await startNode(redis.url, 'node-b', { limits })
    const first = await connect(urlFor(a), { clientId: 'capped', clean: false })
    await first.subscribeAsync(['cap/#', 'cap-barrier'], { qos: 1 })
    await first.endAsync()
    const pubA = await connect(urlFor(a), { clientId: 'cap-a' })
    const pubB = await connect(urlFor(b), { clientId: 'cap-b' })
    await publishAll(pubA, 'cap/a', range('a', 8), 1)
    await publishAll(pubB, 'cap/b', range('b', 8), 1)
    expect(b.stats().queueDropped).toBe(6)
    const back = await connect(urlFor(b), { clientId: 'capped', clean: false })
    expect((await inbox(back).waitFor(10)).map(m => m.payload)).toEqual([...range('a', 8), 'b0', 'b1'])
    expect(await barrier(pubA, back, 'cap-barrier')).toHaveLength(10)
  })

  test('a node restarted under the same nodeId keeps what its previous run queued, in order (a fresh Aedes id each start)', async () => {
    const a1 = await startNode(redis.url, 'node-a')
    const sub = await connect(urlFor(a1), { clientId: 'restart-sub', clean: false })
    await sub.subscribeAsync(['r/#', 'r-barrier'], { qos: 1 })
    await sub.endAsync()
    const pub1 = await connect(urlFor(a1), { clientId: 'r-pub' })
    await publishAll(pub1, 'r/t', range('m', 5), 1)
    await pub1.endAsync()
    await a1.close()

    const a2 = await startNode(redis.url, 'node-a')
    const pub2 = await connect(urlFor(a2), { clientId: 'r-pub' })
    await publishAll(pub2, 'r/t', range('m', 10).slice(5), 1)
    const back = await connect(urlFor(a2), { clientId: 'restart-sub', clean: false })
    expect((await inbox(back).waitFor(10)).map(m => m.payload)).toEqual(range('m', 10))
    expect(await barrier(pub2, back, 'r-barrier')).toHaveLength(10)
  })
})

describe('cluster: session takeover', () => {
  test('the same client id connecting to node B closes its connection on node A within one second [MQTT-3.1.4-2]', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const old = await connect(urlFor(a), { clientId: 'twin' })
    const closed = new Promise<number>(resolve => old.once('close', () => resolve(Date.now())))
    const fresh = await connect(urlFor(b), { clientId: 'twin' })
    const connectedAt = Date.now()
    const closedAt = await closed
    expect(closedAt - connectedAt).toBeLessThan(1000)
    expect(fresh.connected).toBe(true)
    await until(() => a.stats().connectedClients === 0, 'node A to let the client go')
    expect(b.clients().map(c => c.clientId)).toEqual(['twin'])
  })

  test('a persistent session taken over on another node keeps its subscriptions there', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const old = await connect(urlFor(a), { clientId: 'mover', clean: false })
    await old.subscribeAsync('mv/#', { qos: 1 })
    const fresh = await connect(urlFor(b), { clientId: 'mover', clean: false })
    const pub = await connect(urlFor(a), { clientId: 'mv-pub' })
    await pub.publishAsync('mv/1', 'moved', { qos: 1 })
    expect((await inbox(fresh).waitFor(1)).map(m => m.payload)).toEqual(['moved'])
  })
})
