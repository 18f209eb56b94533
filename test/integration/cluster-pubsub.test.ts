/*
 * Issue 13: whichever node a client reaches, it sees one broker. Two nodes
 * in this process on one Redis (helpers/redis.ts), real MQTT.js clients.
 */
import { describe, expect, test } from 'vitest'
import { barrier, retainedBarrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()

async function twoNodes () {
  const a = await startNode(redis.url, 'node-a')
  const b = await startNode(redis.url, 'node-b')
  return { a, b }
}

const N = 200

describe('cluster: publish and subscribe across nodes', () => {
  test.each([0, 1, 2] as const)('QoS %i: every message of two publishers (one per node) reaches subscribers on both nodes once, in each publisher\'s order', async qos => {
    const { a, b } = await twoNodes()
    // a persistent session on each node: QoS 1/2 deliveries go through its stored queue
    const subA = await connect(urlFor(a), { clientId: `sub-a-${qos}`, clean: false })
    const subB = await connect(urlFor(b), { clientId: `sub-b-${qos}`, clean: false })
    await subA.subscribeAsync(['t/#', 'bar/a'], { qos })
    await subB.subscribeAsync(['t/#', 'bar/b'], { qos })
    const pubA = await connect(urlFor(a), { clientId: `pub-a-${qos}` })
    const pubB = await connect(urlFor(b), { clientId: `pub-b-${qos}` })
    const sent = { a: [] as string[], b: [] as string[] }
    await Promise.all((['a', 'b'] as const).map(async side => {
      const pub = side === 'a' ? pubA : pubB
      for (let i = 0; i < N; i++) {
        const payload = `${side}-${i}`
        sent[side].push(payload)
        void pub.publish(`t/${side}`, payload, { qos })
      }
      await pub.publishAsync(`t/${side}/last`, `${side}-last`, { qos })
    }))
    for (const [sub, side] of [[subA, 'a'], [subB, 'b']] as const) {
      const got = (await inbox(sub).waitFor(2 * N + 2)).map(m => m.payload)
      expect(got.filter(p => p.startsWith('a-'))).toEqual([...sent.a, 'a-last'])
      expect(got.filter(p => p.startsWith('b-'))).toEqual([...sent.b, 'b-last'])
      // nothing beyond them
      expect(await barrier(pubA, sub, `bar/${side}`)).toHaveLength(2 * N + 2)
    }
    // the QoS 1/2 queues empty as the subscribers' acknowledgements arrive: no entry is left behind (QoS 2 left one per message)
    await until(async () => (await redis.server.admin.keys('outgoing:*')).length === 0, 'every queue entry to be acknowledged')
  })

  test('a subscriber receives at the lesser of the message\'s and its granted QoS, across nodes', async () => {
    const { a, b } = await twoNodes()
    const sub = await connect(urlFor(b), { clientId: 'granted' })
    await sub.subscribeAsync('g/#', { qos: 1 })
    const pub = await connect(urlFor(a), { clientId: 'g-pub' })
    await pub.publishAsync('g/2', 'two', { qos: 2 })
    await pub.publishAsync('g/0', 'zero', { qos: 0 })
    expect((await inbox(sub).waitFor(2)).map(m => [m.payload, m.qos])).toEqual([['two', 1], ['zero', 0]])
  })
})

describe('cluster: filters', () => {
  test('a filter with Redis glob characters (? * [ ] \\) in a level matches as MQTT says, across nodes and on its own node', async () => {
    const { a, b } = await twoNodes()
    const filters = ['a[1]/#', 'b?/+', 'c*/+', 'd\\x/#']
    const topics = ['a[1]/x', 'b?/y', 'c*/z', 'd\\x/w']
    const subA = await connect(urlFor(a), { clientId: 'glob-a' })
    const subB = await connect(urlFor(b), { clientId: 'glob-b' })
    await subA.subscribeAsync([...filters, 'glob/a'], { qos: 1 })
    await subB.subscribeAsync([...filters, 'glob/b'], { qos: 1 })
    const pub = await connect(urlFor(a), { clientId: 'glob-pub' })
    // and topics the globs alone would match
    for (const t of [...topics, 'a1/x', 'bb/y', 'cc/z']) await pub.publishAsync(t, t, { qos: 1 })
    for (const [sub, side] of [[subA, 'a'], [subB, 'b']] as const) {
      expect((await barrier(pub, sub, `glob/${side}`)).map(m => m.topic)).toEqual(topics)
    }
  })
})

describe('cluster: retained messages', () => {
  test('set on one node, read on the other; cleared on the first, gone on the other', async () => {
    const { a, b } = await twoNodes()
    const pubA = await connect(urlFor(a), { clientId: 'r-pub' })
    await pubA.publishAsync('state/dev1', 'online', { qos: 1, retain: true })
    const first = await connect(urlFor(b), { clientId: 'r-sub-1' })
    await first.subscribeAsync('state/#', { qos: 1 })
    const [got] = await inbox(first).waitFor(1)
    expect([got!.topic, got!.payload, got!.retain]).toEqual(['state/dev1', 'online', true])

    await pubA.publishAsync('state/dev1', '', { qos: 1, retain: true })
    const second = await connect(urlFor(b), { clientId: 'r-sub-2' })
    expect(await retainedBarrier(pubA, second, 'state/#', 'marker/state')).toEqual([])
    // the first subscriber saw the clear live, as an empty message
    expect(await barrier(pubA, first, 'state/barrier')).toHaveLength(2)
  })

  test('the retained count is the store\'s, whichever node stored them', async () => {
    const { a, b } = await twoNodes()
    const pubA = await connect(urlFor(a), { clientId: 'rc-a' })
    const pubB = await connect(urlFor(b), { clientId: 'rc-b' })
    await pubA.publishAsync('rc/1', 'x', { qos: 1, retain: true })
    await pubB.publishAsync('rc/2', 'y', { qos: 1, retain: true })
    // each node reads it again after its own stores, and every heartbeat
    await pubA.publishAsync('rc/3', 'z', { qos: 1, retain: true })
    expect(await a.metrics()).toMatch(/^switchyard_retained_messages 3$/m)
  })
})

describe('cluster: $SYS/broker/ is each node\'s own', () => {
  test('a $SYS/broker/ subscriber on one node never receives the other node\'s values', async () => {
    const a = await startNode(redis.url, 'sys-a', { sys: { interval: 1 } })
    const b = await startNode(redis.url, 'sys-b', { sys: { interval: 1 } })
    const onB = await connect(urlFor(b), { clientId: 'sys-sub-b' })
    await onB.subscribeAsync(['$SYS/broker/clients/connected', 'sys/barrier'])
    // five clients on A: A publishes "5" at its next tick
    const onA = await connect(urlFor(a), { clientId: 'sys-sub-a' })
    for (let i = 0; i < 3; i++) await connect(urlFor(a), { clientId: `sys-extra-${i}` })
    const pubA = await connect(urlFor(a), { clientId: 'sys-pub' })
    await onA.subscribeAsync('$SYS/broker/clients/connected')
    await inbox(onA).marker('$SYS/broker/clients/connected', '5', 10_000)
    // A's value would have crossed through Redis before A's next message does
    const seenOnB = await barrier(pubA, onB, 'sys/barrier')
    expect(seenOnB.filter(m => m.payload === '5')).toEqual([])
  })
})
