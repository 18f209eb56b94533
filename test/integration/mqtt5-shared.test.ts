/*
 * MQTT 5 shared subscriptions, $share/<group>/<filter> [MQTT-4.8.2]
 * (vendor/aedes/lib/shared.js), with real MQTT.js clients, v5 and v3.1.1.
 * "Nothing (else) arrived" is proven with a barrier: each member also holds a
 * plain subscription to bar/<its id>, and a marker published there after the
 * messages reaches it after every message routed to it (helpers/barrier.ts).
 */
import net from 'node:net'
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { describe, expect, onTestFinished, test } from 'vitest'
import { Aedes } from '../../vendor/aedes/aedes.js'
import { listenerFor, startBroker, tempDir, TRANSPORTS, urlFor, type Transport } from '../helpers/broker.js'
import { barrier, retainedBarrier } from '../helpers/barrier.js'
import { connect, granted, inbox, type Received } from '../helpers/client.js'
import { until } from '../helpers/wait.js'
import type { Broker } from '../../src/index.js'

const V5: IClientOptions = { protocolVersion: 5 }
const V4: IClientOptions = { protocolVersion: 4 }

/** Connects `id`, subscribes it to `filter` (a shared one) at `qos` and to its barrier topic bar/<id>. */
async function member (url: string, id: string, filter: string, qos: 0 | 1 | 2 = 1, options: IClientOptions = V5): Promise<MqttClient> {
  const client = await connect(url, { clientId: id, ...options })
  await client.subscribeAsync(`bar/${id}`, { qos: 1 })
  await client.subscribeAsync(filter, { qos })
  return client
}

/** What `client` has received once everything `pub` published before has reached it. */
function settled (pub: MqttClient, client: MqttClient): Promise<Received[]> {
  return barrier(pub, client, `bar/${client.options.clientId}`)
}

async function publishMany (pub: MqttClient, n: number, topic = (i: number) => `work/${i}`, qos: 0 | 1 | 2 = 1, from = 0): Promise<void> {
  await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(topic(from + i), `m${from + i}`, { qos })))
}

const payloads = (msgs: Received[]) => msgs.map(m => m.payload)

function gone (broker: Broker, clientId: string): Promise<void> {
  return until(() => !broker.clients().some(c => c.clientId === clientId), `${clientId} to be disconnected`)
}

describe.each(TRANSPORTS)('shared subscriptions over %s', (transport: Transport) => {
  const start = () => startBroker({ listeners: [listenerFor(transport)] })

  test('100 messages over 3 members: each gets its turn, 100 in all, no duplicates; a plain subscriber gets all 100', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const members = [
      await member(url, 'm1', '$share/g/work/#'),
      await member(url, 'm2', '$share/g/work/#'),
      await member(url, 'm3', '$share/g/work/#')
    ]
    const plain = await member(url, 'plain', 'work/#')
    const pub = await connect(url, V5)
    await publishMany(pub, 100)

    const got = await Promise.all(members.map(m => settled(pub, m)))
    const all = got.flatMap(payloads)
    expect(all).toHaveLength(100)
    expect(new Set(all).size).toBe(100)
    // round robin, as Mosquitto: 34, 33, 33
    for (const msgs of got) expect(msgs.length).toBeGreaterThanOrEqual(33)
    expect(await settled(pub, plain)).toHaveLength(100)
  })

  test('fail over: a member that disconnects stops receiving, the others get every message', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const a = await member(url, 'a', '$share/g/work/#')
    const b = await member(url, 'b', '$share/g/work/#')
    const pub = await connect(url, V5)
    await publishMany(pub, 10)
    expect((await settled(pub, a)).length).toBe(5)
    expect((await settled(pub, b)).length).toBe(5)

    await a.endAsync()
    await gone(broker, 'a')
    await publishMany(pub, 10, undefined, 1, 10)
    const atB = await settled(pub, b)
    expect(atB).toHaveLength(15)
    expect(payloads(atB.slice(5)).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${10 + i}`).sort())
  })
})

describe('shared subscriptions', () => {
  test('a member whose connection drops (no DISCONNECT) stops receiving; the other gets every message', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const a = await member(url, 'a', '$share/g/work/#')
    const b = await member(url, 'b', '$share/g/work/#')
    const pub = await connect(url, V5)
    a.stream.destroy()
    await gone(broker, 'a')
    await publishMany(pub, 10)
    expect(await settled(pub, b)).toHaveLength(10)
  })

  test('two groups on one filter each get every message once, and a plain subscription its own copy', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const g1 = [await member(url, 'g1a', '$share/one/work/+'), await member(url, 'g1b', '$share/one/work/+')]
    const g2 = [await member(url, 'g2a', '$share/two/work/+'), await member(url, 'g2b', '$share/two/work/+')]
    const plain = await member(url, 'plain', 'work/+')
    const pub = await connect(url, V5)
    await publishMany(pub, 20)
    for (const group of [g1, g2]) {
      const all = (await Promise.all(group.map(m => settled(pub, m)))).flatMap(payloads)
      expect(all.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort())
    }
    expect(await settled(pub, plain)).toHaveLength(20)
  })

  test('each delivery is at the lesser of the message QoS and the member\'s granted QoS', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const members = [
      { client: await member(url, 'q0', '$share/g/q', 0), qos: 0 },
      { client: await member(url, 'q1', '$share/g/q', 1), qos: 1 },
      { client: await member(url, 'q2', '$share/g/q', 2), qos: 2 }
    ]
    const pub = await connect(url, V5)
    for (const qos of [0, 1, 2] as const) {
      for (let i = 0; i < 3; i++) await pub.publishAsync('q', String(qos), { qos })
    }
    let total = 0
    for (const { client, qos } of members) {
      const msgs = await settled(pub, client)
      total += msgs.length
      expect(msgs.length).toBeGreaterThan(0)
      for (const m of msgs) expect(m.qos).toBe(Math.min(Number(m.payload), qos))
    }
    expect(total).toBe(9)
  })

  test('a v3.1.1 client is a member like a v5 one', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const v4 = await member(url, 'v4', '$share/g/work/#', 1, V4)
    const v5 = await member(url, 'v5', '$share/g/work/#', 1, V5)
    const pub = await connect(url, V4)
    await publishMany(pub, 10)
    const [at4, at5] = [await settled(pub, v4), await settled(pub, v5)]
    expect(at4).toHaveLength(5)
    expect(at5).toHaveLength(5)
    expect([...payloads(at4), ...payloads(at5)].sort()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort())
  })

  test('invalid share names: SUBACK 0x8F for v5 and 0x80 for v3.1.1, and the connection stays', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const invalid = ['$share//work', '$share/+/work', '$share/g', '$share/g/']
    const v5 = await connect(url, V5)
    const v4 = await connect(url, V4)
    for (const filter of invalid) {
      expect(await granted(v5, filter), filter).toEqual([0x8F])
      expect(await granted(v4, filter), filter).toEqual([0x80])
    }
    // a valid one in the same SUBSCRIBE is granted
    expect(await granted(v5, ['$share//work', '$share/g/work'])).toEqual([0x8F, 0])
    expect(v5.connected && v4.connected).toBe(true)
  })

  test('No Local on a shared subscription is a Protocol Error: DISCONNECT 0x82 [MQTT-3.8.3-4]', async () => {
    const broker = await startBroker()
    const client = await connect(urlFor(broker), V5)
    const disconnect = new Promise<number | undefined>(resolve => client.once('disconnect', packet => resolve(packet.reasonCode)))
    client.subscribe('$share/g/work', { qos: 1, nl: true })
    expect(await disconnect).toBe(0x82)
  })

  test('retained messages are not sent on a shared subscription [MQTT-4.8.2]', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const pub = await connect(url, V5)
    await pub.publishAsync('work/r', 'kept', { qos: 1, retain: true })
    const shared = await connect(url, V5)
    expect(await retainedBarrier(pub, shared, '$share/g/work/#', 'bar/retained', { qos: 1 })).toEqual([])
    const plain = await connect(url, V5)
    expect(payloads(await retainedBarrier(pub, plain, 'work/#', 'bar/retained', { qos: 1 }))).toEqual(['kept'])
    // live, a retained publish reaches the group like any other
    await pub.publishAsync('work/r', 'live', { qos: 1, retain: true })
    expect((await inbox(shared).waitFor(1))[0]).toMatchObject({ topic: 'work/r', payload: 'live' })
  })

  test('UNSUBSCRIBE ends the membership: the other member gets every message', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const a = await member(url, 'a', '$share/g/work/#')
    const b = await member(url, 'b', '$share/g/work/#')
    const unsubscribe = async () => ((await a.unsubscribeAsync('$share/g/work/#')) as { granted?: number[] } | undefined)?.granted
    expect(await unsubscribe()).toEqual([0x00])
    expect(await unsubscribe()).toEqual([0x11]) // No subscription existed
    const pub = await connect(url, V5)
    await publishMany(pub, 6)
    expect(await settled(pub, a)).toEqual([])
    expect(await settled(pub, b)).toHaveLength(6)
  })

  const store = (type: 'memory' | 'level') => ({ persistence: type === 'level' ? { type, path: path.join(tempDir(), 'data') } : { type } })

  test.each(['memory', 'level'] as const)('a persistent member keeps its membership across reconnect; QoS 1 with no member connected is queued for it, QoS 0 dropped (%s)', async (type) => {
    const broker = await startBroker(store(type))
    const url = urlFor(broker)
    const persistent: IClientOptions = { ...V5, clean: false, properties: { sessionExpiryInterval: 300 } }
    const p = await member(url, 'p', '$share/g/job/#', 1, persistent)
    const c = await member(url, 'c', '$share/g/job/#', 1, V5)
    const pub = await connect(url, V5)

    // p offline, c connected: c gets everything, nothing is queued for p
    await p.endAsync()
    await gone(broker, 'p')
    await publishMany(pub, 4, i => `job/${i}`)
    expect(await settled(pub, c)).toHaveLength(4)

    // no member connected: QoS 1 is queued for the offline persistent member, QoS 0 is dropped
    await c.endAsync()
    await gone(broker, 'c')
    await pub.publishAsync('job/q0', 'qos0', { qos: 0 })
    await publishMany(pub, 3, i => `job/${i}`, 1, 4)

    const back = await connect(url, { ...persistent, clientId: 'p' })
    // the queue is replayed in publish order, so qos0 would come before m4
    // (a barrier is no use here: live, it may overtake the replay)
    expect(payloads(await inbox(back).waitFor(3))).toEqual(['m4', 'm5', 'm6'])
    // the restored membership: p is the group's only member now
    await publishMany(pub, 2, i => `job/${i}`, 1, 7)
    expect(payloads(await settled(pub, back))).toEqual(['m4', 'm5', 'm6', 'm7', 'm8'])
  })

  test('a Clean Start ends an offline member\'s membership: nothing is queued for it afterwards', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const persistent: IClientOptions = { ...V5, clientId: 'p', clean: false, properties: { sessionExpiryInterval: 300 } }
    const p = await member(url, 'p', '$share/g/job/#', 1, persistent)
    await p.endAsync()
    await gone(broker, 'p')
    // a new persistent session, without the shared subscription
    const fresh = await connect(url, { ...persistent, clean: true })
    await fresh.subscribeAsync('bar/p', { qos: 1 })
    await fresh.endAsync()
    await gone(broker, 'p')

    const pub = await connect(url, V5)
    await publishMany(pub, 3, i => `job/${i}`)
    await pub.publishAsync('bar/p', 'marker', { qos: 1 })
    // the queue is replayed in publish order: a job queued for p would come first
    const back = await connect(url, persistent)
    expect(payloads(await inbox(back).waitFor(1))).toEqual(['marker'])
  })

  test('a persistent member is a member again when it reconnects after a broker restart (LevelDB)', async () => {
    const config = store('level')
    const persistent: IClientOptions = { ...V5, clientId: 'p', clean: false, properties: { sessionExpiryInterval: 300 } }
    const first = await startBroker(config)
    const p = await member(urlFor(first), 'p', '$share/g/job/#', 1, persistent)
    await p.endAsync()
    await first.close()

    const broker = await startBroker(config)
    const url = urlFor(broker)
    const back = await connect(url, persistent)
    const pub = await connect(url, V5)
    await publishMany(pub, 3, i => `job/${i}`)
    expect(payloads(await settled(pub, back)).sort()).toEqual(['m0', 'm1', 'm2'])
  })

  test('UNSUBSCRIBE of a persistent member is kept: after a reconnect it is not a member', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const persistent: IClientOptions = { ...V5, clientId: 'p', clean: false, properties: { sessionExpiryInterval: 300 } }
    const p = await member(url, 'p', '$share/g/job/#', 1, persistent)
    const c = await member(url, 'c', '$share/g/job/#', 1, V5)
    await p.unsubscribeAsync('$share/g/job/#')
    await p.endAsync()
    await gone(broker, 'p')
    const back = await connect(url, persistent)
    const pub = await connect(url, V5)
    await publishMany(pub, 4, i => `job/${i}`)
    expect(await settled(pub, back)).toEqual([])
    expect(await settled(pub, c)).toHaveLength(4)
  })

  test('the ACL authorizes a shared subscription on its filter', async () => {
    const dir = tempDir()
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, 'topic readwrite work/#\ntopic readwrite bar/#\n')
    const broker = await startBroker({ auth: { aclFile, allowAnonymous: true } })
    const url = urlFor(broker)
    const a = await connect(url, { ...V5, clientId: 'a' })
    expect(await granted(a, ['$share/g/work/#', '$share/g/secret/#', '$share/g/#'])).toEqual([0, 0x87, 0x87])
    await a.subscribeAsync('bar/a', { qos: 1 })
    const pub = await connect(url, V5)
    await pub.publishAsync('work/1', 'ok', { qos: 1 })
    expect(payloads(await settled(pub, a))).toEqual(['ok'])
  })
})

describe('shared subscriptions turned off (Aedes option sharedSubscriptions: false, config mqtt.sharedSubscriptions)', () => {
  async function bareBroker (sharedSubscriptions: boolean): Promise<string> {
    const aedes = await Aedes.createBroker({ sharedSubscriptions })
    const server = net.createServer(socket => aedes.handle(socket))
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    onTestFinished(async () => {
      server.close()
      await new Promise<void>(resolve => aedes.close(() => resolve()))
    })
    return `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  }

  async function connack (url: string): Promise<Record<string, unknown> | undefined> {
    const client = mqtt.connect(url, { ...V5, reconnectPeriod: 0 })
    onTestFinished(() => client.endAsync(true))
    return await new Promise((resolve, reject) => {
      client.once('connect', packet => resolve(packet.properties as Record<string, unknown> | undefined))
      client.once('error', reject)
    })
  }

  test('CONNACK says Shared Subscription Available 0, and SUBACK is 0x9E (v5) or 0x80 (v3.1.1)', async () => {
    const url = await bareBroker(false)
    expect((await connack(url))?.sharedSubscriptionAvailable).toBe(false)
    expect(await granted(await connect(url, V5), '$share/g/work')).toEqual([0x9E])
    expect(await granted(await connect(url, V4), '$share/g/work')).toEqual([0x80])
  })

  test('mqtt.sharedSubscriptions: false in Switchyard\'s config turns them off', async () => {
    const url = urlFor(await startBroker({ mqtt: { sharedSubscriptions: false } }))
    expect((await connack(url))?.sharedSubscriptionAvailable).toBe(false)
    expect(await granted(await connect(url, V5), '$share/g/work')).toEqual([0x9E])
    expect(await granted(await connect(url, V4), '$share/g/work')).toEqual([0x80])
  })

  test('on (the default), CONNACK does not say they are unavailable', async () => {
    const url = await bareBroker(true)
    expect((await connack(url))?.sharedSubscriptionAvailable).not.toBe(false)
  })
})
