/*
 * MQTT 5 on the delivery path, broker -> client (issue 12; docs/aedes-gaps.md,
 * "MQTT 5 on the vendored Aedes: delivery"): Receive Maximum, the client's
 * Maximum Packet Size, broker-assigned Topic Aliases, several Subscription
 * Identifiers on one delivery, and the subscription options through
 * Switchyard's delivery wrappers. Wire-level behaviour is read with a raw
 * client (helpers/raw5.ts); "nothing (else) arrived" with a barrier.
 */
import net from 'node:net'
import { describe, expect, onTestFinished, test } from 'vitest'
import type { IPublishPacket } from 'mqtt-packet'
import type { Broker } from '../../src/index.js'
import { Aedes } from '../../vendor/aedes/aedes.js'
import { patchDeliveries } from '../../src/broker/internals.js'
import { startBroker, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { barrier } from '../helpers/barrier.js'
import { raw5, type Raw5 } from '../helpers/raw5.js'

const portOf = (broker: Broker) => broker.listeners[0]!.port
const payloads = (ps: IPublishPacket[]) => ps.map(p => String(p.payload))
const range = (n: number, prefix: string) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)
const v5 = { protocolVersion: 5 as const }

/**
 * A barrier for "no further QoS 1 PUBLISH arrived": publishes `payload` at
 * QoS 0 after the messages before it (their PUBACKs awaited, so already
 * routed) and waits until `sub` has it. A QoS 0 PUBLISH is not held by a full
 * Receive Maximum (MQTT 5 section 4.9), so by then every QoS 1 PUBLISH that
 * was not held has arrived. Resolves with the PUBLISHes so far, barriers left out.
 */
async function qos0Barrier (pub: { publishAsync: (t: string, p: string, o: { qos: 0 }) => Promise<unknown> }, sub: Raw5, topic: string, payload: string): Promise<IPublishPacket[]> {
  await pub.publishAsync(topic, payload, { qos: 0 })
  await sub.until(() => sub.publishes().some(p => String(p.payload) === payload), `the barrier ${payload}`)
  return sub.publishes().filter(p => !String(p.payload).startsWith('barrier'))
}

describe('Receive Maximum, broker -> client [MQTT-3.3.4-7] [MQTT-3.3.4-8] [MQTT-4.9.0-2]', () => {
  test('under a flood, never more unacknowledged QoS 1 PUBLISHes than the client\'s Receive Maximum; all arrive, in order', async () => {
    const broker = await startBroker()
    const sub = await raw5(portOf(broker), 'rm-flood', { properties: { receiveMaximum: 2 } })
    await sub.subscribe('rm/flood', 1)
    let inflight = 0
    let most = 0
    // A slow consumer: each PUBLISH is acknowledged a little later.
    sub.onPacket(p => {
      if (p.cmd !== 'publish') return
      most = Math.max(most, ++inflight)
      setTimeout(() => { inflight--; sub.puback(p.messageId!) }, 2)
    })
    const pub = await connect(urlFor(broker), v5)
    const n = 300
    await Promise.all(range(n, 'm').map(m => pub.publishAsync('rm/flood', m, { qos: 1 })))
    await sub.until(() => sub.publishes().length >= n, `${n} messages`, 15_000)
    expect(most).toBe(2)
    expect(payloads(sub.publishes())).toEqual(range(n, 'm'))
  })

  test('the rest wait, in order, until a PUBACK frees a slot', async () => {
    const broker = await startBroker()
    const sub = await raw5(portOf(broker), 'rm-wait', { properties: { receiveMaximum: 2 } })
    await sub.subscribe('rm/wait', 1)
    const pub = await connect(urlFor(broker), v5)
    for (const m of ['a', 'b', 'c', 'd']) await pub.publishAsync('rm/wait', m, { qos: 1 })
    expect(payloads(await qos0Barrier(pub, sub, 'rm/wait', 'barrier 1'))).toEqual(['a', 'b'])
    const [a, b] = sub.publishes()
    sub.puback(a!.messageId!)
    await sub.until(() => sub.publishes().some(p => String(p.payload) === 'c'), 'c')
    // one slot freed, one message sent
    expect(payloads(await qos0Barrier(pub, sub, 'rm/wait', 'barrier 2'))).toEqual(['a', 'b', 'c'])
    // a PUBACK for a packet id not in flight frees nothing
    sub.puback(a!.messageId!)
    expect(payloads(await qos0Barrier(pub, sub, 'rm/wait', 'barrier 3'))).toEqual(['a', 'b', 'c'])
    sub.puback(b!.messageId!)
    await sub.until(() => sub.publishes().some(p => String(p.payload) === 'd'), 'd')
    expect(payloads(sub.publishes().filter(p => p.qos === 1))).toEqual(['a', 'b', 'c', 'd'])
  })

  test('a QoS 2 PUBLISH holds its slot until PUBCOMP, not PUBREC', async () => {
    const broker = await startBroker()
    const sub = await raw5(portOf(broker), 'rm-qos2', { properties: { receiveMaximum: 1 } })
    await sub.subscribe('rm/q2', 2)
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('rm/q2', 'first', { qos: 2 })
    await pub.publishAsync('rm/q2', 'second', { qos: 2 })
    await sub.until(() => sub.publishes().length === 1, 'first')
    const first = sub.publishes()[0]!
    sub.send({ cmd: 'pubrec', messageId: first.messageId! })
    await sub.until(() => sub.received.some(p => p.cmd === 'pubrel'), 'PUBREL')
    expect(payloads(await qos0Barrier(pub, sub, 'rm/q2', 'barrier'))).toEqual(['first'])
    sub.send({ cmd: 'pubcomp', messageId: first.messageId! })
    await sub.until(() => sub.publishes().some(p => String(p.payload) === 'second'), 'second')
  })

  test('the offline queue replayed at reconnect keeps to the Receive Maximum too', async () => {
    const broker = await startBroker()
    const session = { clean: false, properties: { sessionExpiryInterval: 300, receiveMaximum: 2 } }
    const first = await raw5(portOf(broker), 'rm-replay', session)
    await first.subscribe('rm/replay', 1)
    first.send({ cmd: 'disconnect' })
    await first.closed()
    const pub = await connect(urlFor(broker), v5)
    const n = 40
    for (const m of range(n, 'q')) await pub.publishAsync('rm/replay', m, { qos: 1 })
    let inflight = 0
    let most = 0
    const second = await raw5(portOf(broker), 'rm-replay', session)
    const count = (p: { cmd: string, messageId?: number }) => {
      if (p.cmd !== 'publish') return
      most = Math.max(most, ++inflight)
      setTimeout(() => { inflight--; second.puback(p.messageId!) }, 2)
    }
    // PUBLISHes that came in the same read as the CONNACK
    second.received.forEach(count)
    second.onPacket(count)
    await second.until(() => second.publishes().length >= n, `${n} queued messages`)
    expect(most).toBe(2)
    expect(payloads(second.publishes())).toEqual(range(n, 'q'))
  })

  test('QoS 1 deliveries beyond limits.maxQueuedMessages, waiting or in flight, are dropped for that client and counted', async () => {
    const broker = await startBroker({ limits: { maxQueuedMessages: 5 } })
    const sub = await raw5(portOf(broker), 'rm-cap', { properties: { receiveMaximum: 1 } })
    await sub.subscribe('rm/cap', 1)
    const pub = await connect(urlFor(broker), v5)
    await Promise.all(range(20, 'c').map(m => pub.publishAsync('rm/cap', m, { qos: 1 })))
    const before = broker.stats().queueDropped
    // From now on, acknowledge at once: what waits comes out, then the marker.
    sub.onPacket(p => { if (p.cmd === 'publish' && p.qos === 1) sub.puback(p.messageId!) })
    for (const p of sub.publishes()) sub.puback(p.messageId!)
    await pub.publishAsync('rm/cap', 'marker', { qos: 1 })
    await sub.until(() => sub.publishes().some(p => String(p.payload) === 'marker'), 'the marker')
    expect(payloads(sub.publishes())).toEqual([...range(5, 'c'), 'marker'])
    expect(before).toBe(15)
  })

  test('a 3.1.1 subscriber is not windowed', async () => {
    const broker = await startBroker()
    const sub = await connect(urlFor(broker), { protocolVersion: 4, clientId: 'rm-v4' })
    await sub.subscribeAsync('rm/v4', { qos: 1 })
    const pub = await connect(urlFor(broker), v5)
    await Promise.all(range(50, 'v').map(m => pub.publishAsync('rm/v4', m, { qos: 1 })))
    const got = await inbox(sub).waitFor(50)
    expect(got.map(m => m.payload)).toEqual(range(50, 'v'))
  })
})

describe('the client\'s Maximum Packet Size on delivery [MQTT-3.1.2-24] [MQTT-3.1.2-25]', () => {
  test('a PUBLISH larger than the client accepts is dropped for that client only; one of exactly that size is sent', async () => {
    const broker = await startBroker()
    // 'mps/t', QoS 1, no properties: 1 + 1 (remaining length) + 2 + 5 + 2 + 1 (properties length) + payload
    const overhead = 12
    const small = await raw5(portOf(broker), 'mps-small', { properties: { maximumPacketSize: 100 } })
    await small.subscribe('mps/t', 1)
    small.onPacket(p => { if (p.cmd === 'publish' && p.qos === 1) small.puback(p.messageId!) })
    const other = await connect(urlFor(broker), { ...v5, clientId: 'mps-other' })
    await other.subscribeAsync('mps/t', { qos: 1 })
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('mps/t', 'x'.repeat(100 - overhead), { qos: 1 })
    await pub.publishAsync('mps/t', 'y'.repeat(101 - overhead), { qos: 1 })
    await pub.publishAsync('mps/t', 'z'.repeat(5000), { qos: 0 })
    await pub.publishAsync('mps/t', 'marker', { qos: 1 })
    await small.until(() => small.publishes().some(p => String(p.payload) === 'marker'), 'the marker')
    const got = small.publishes()
    expect(got.map(p => String(p.payload).charAt(0) + String(p.payload).length)).toEqual([`x${100 - overhead}`, 'm6'])
    // mqtt-packet's length is the Remaining Length: 2 bytes of fixed header more
    expect(got[0]!.length! + 2).toBe(100)
    // the other subscriber gets them all
    const all = await inbox(other).waitFor(4)
    expect(all.map(m => m.payload[0])).toEqual(['x', 'y', 'z', 'm'])
  })

  test('a dropped QoS 1 message counts as delivered: a persistent session does not get it at reconnect', async () => {
    const broker = await startBroker()
    const session = { clean: false, properties: { sessionExpiryInterval: 300, maximumPacketSize: 64 } }
    const first = await raw5(portOf(broker), 'mps-session', session)
    await first.subscribe('mps/s', 1)
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('mps/s', 'big'.repeat(40), { qos: 1 })
    await pub.publishAsync('mps/s', 'small', { qos: 0 })
    await first.until(() => first.publishes().length === 1, 'the small one')
    first.send({ cmd: 'disconnect' })
    await first.closed()
    await pub.publishAsync('mps/s', 'queued', { qos: 1 })
    const second = await raw5(portOf(broker), 'mps-session', session)
    expect(second.connack.sessionPresent).toBe(true)
    second.onPacket(p => { if (p.cmd === 'publish' && p.qos === 1) second.puback(p.messageId!) })
    await pub.publishAsync('mps/s', 'marker', { qos: 1 })
    await second.until(() => second.publishes().some(p => String(p.payload) === 'marker'), 'the marker')
    expect(payloads(second.publishes())).toEqual(['queued', 'marker'])
  })
})

describe('broker-assigned Topic Aliases [MQTT-3.1.2-26] [MQTT-3.1.2-27] [MQTT-3.3.2-11]', () => {
  test('up to the client\'s Topic Alias Maximum, a topic is sent once in full with an alias, then as the alias alone', async () => {
    const broker = await startBroker()
    const sub = await raw5(portOf(broker), 'ta-raw', { properties: { topicAliasMaximum: 2 } })
    await sub.subscribe('ta/#', 1)
    sub.onPacket(p => { if (p.cmd === 'publish' && p.qos === 1) sub.puback(p.messageId!) })
    const plain = await raw5(portOf(broker), 'ta-none')
    await plain.subscribe('ta/#', 0)
    const pub = await connect(urlFor(broker), v5)
    const sends: Array<[string, 0 | 1]> = [['ta/a', 0], ['ta/a', 1], ['ta/b', 1], ['ta/c', 0], ['ta/a', 0], ['ta/c', 1], ['ta/b', 0]]
    for (const [i, [topic, qos]] of sends.entries()) await pub.publishAsync(topic, `p${i}`, { qos })
    await sub.until(() => sub.publishes().length === sends.length, 'every message')
    const wire = sub.publishes().map(p => [p.topic, p.properties?.topicAlias ?? null, String(p.payload)])
    expect(wire).toEqual([
      ['ta/a', 1, 'p0'],
      ['', 1, 'p1'],
      ['ta/b', 2, 'p2'],
      ['ta/c', null, 'p3'],
      ['', 1, 'p4'],
      ['ta/c', null, 'p5'],
      ['', 2, 'p6']
    ])
    // a client without a Topic Alias Maximum gets none
    await plain.until(() => plain.publishes().length === sends.length, 'every message')
    expect(plain.publishes().map(p => [p.topic, p.properties?.topicAlias ?? null])).toEqual(sends.map(([t]) => [t, null]))
  })

  test('MQTT.js resolves them; aliases are per connection, and a replayed message carries its topic', async () => {
    const broker = await startBroker()
    const session = { clean: false, properties: { sessionExpiryInterval: 300, topicAliasMaximum: 5 } }
    const first = await raw5(portOf(broker), 'ta-session', session)
    await first.subscribe('ta/s/#', 1)
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('ta/s/x', 'one', { qos: 1 })
    await pub.publishAsync('ta/s/x', 'two', { qos: 1 })
    await first.until(() => first.publishes().length === 2, 'two messages')
    expect(first.publishes().map(p => p.topic)).toEqual(['ta/s/x', ''])
    // not acknowledged: both are replayed to the next connection, whose aliases start afresh
    first.socket.destroy()
    await first.closed()
    const sub = await connect(urlFor(broker), { ...v5, clientId: 'ta-session', clean: false, properties: session.properties })
    await inbox(sub).waitFor(2)
    await pub.publishAsync('ta/s/x', 'three', { qos: 1 })
    await pub.publishAsync('ta/s/y', 'four', { qos: 0 })
    const got = await inbox(sub).waitFor(4)
    expect(got.map(m => [m.topic, m.payload])).toEqual([['ta/s/x', 'one'], ['ta/s/x', 'two'], ['ta/s/x', 'three'], ['ta/s/y', 'four']])
    expect(got[0]!.packet.properties?.topicAlias).toBe(1)
  })
})

describe('Subscription Identifiers [MQTT-3.3.4-3] [MQTT-3.3.4-4]', () => {
  test.each([0, 1] as const)('one message matching several subscriptions arrives once, with every identifier (QoS %i)', async qos => {
    const broker = await startBroker()
    const sub = await connect(urlFor(broker), { ...v5, clientId: 'si-sub' })
    await sub.subscribeAsync('si/a', { qos: 1, properties: { subscriptionIdentifier: 2 } })
    await sub.subscribeAsync('si/#', { qos: 1, properties: { subscriptionIdentifier: 3 } })
    await sub.subscribeAsync('si/+', { qos: 1 })
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('si/a', 'both', { qos })
    await pub.publishAsync('si/b', 'one', { qos })
    const got = await barrier(pub, sub, 'si/marker')
    expect(got.map(m => [m.payload, m.packet.properties?.subscriptionIdentifier])).toEqual([['both', [2, 3]], ['one', 3]])
  })

  test('other subscribers get only their own identifiers', async () => {
    const broker = await startBroker()
    const a = await connect(urlFor(broker), { ...v5, clientId: 'si-a' })
    await a.subscribeAsync('si2/t', { qos: 1, properties: { subscriptionIdentifier: 456789 } })
    const b = await connect(urlFor(broker), { ...v5, clientId: 'si-b' })
    await b.subscribeAsync('si2/t', { qos: 1, properties: { subscriptionIdentifier: 2 } })
    await b.subscribeAsync('si2/t/#', { qos: 1, properties: { subscriptionIdentifier: 3 } })
    await b.publishAsync('si2/t', 'x', { qos: 1 })
    expect((await inbox(a).waitFor(1))[0]!.packet.properties?.subscriptionIdentifier).toBe(456789)
    const gotB = await inbox(b).waitFor(1)
    expect(gotB[0]!.packet.properties?.subscriptionIdentifier).toEqual([2, 3])
  })
})

describe('subscription options through Switchyard\'s delivery wrappers [MQTT-3.8.3-3] [MQTT-3.3.1-12]', () => {
  test('No Local on one of two overlapping subscriptions: the client\'s own message still arrives once, through the other', async () => {
    const broker = await startBroker()
    const c = await connect(urlFor(broker), { ...v5, clientId: 'nl-self' })
    await c.subscribeAsync('nl/#', { qos: 1, nl: true })
    await c.subscribeAsync('nl/t', { qos: 1 })
    await c.publishAsync('nl/t', 'own', { qos: 1 })
    const other = await connect(urlFor(broker), v5)
    const got = await barrier(other, c, 'nl/marker')
    expect(got.map(m => m.payload)).toEqual(['own'])
  })

  test('No Local alone: the client\'s own message does not come back; others\' do', async () => {
    const broker = await startBroker()
    const c = await connect(urlFor(broker), { ...v5, clientId: 'nl-only' })
    await c.subscribeAsync('nlo/t', { qos: 1, nl: true })
    await c.publishAsync('nlo/t', 'own', { qos: 1 })
    const other = await connect(urlFor(broker), v5)
    await other.publishAsync('nlo/t', 'theirs', { qos: 1 })
    const got = await barrier(other, c, 'nlo/t')
    expect(got.map(m => m.payload)).toEqual(['theirs'])
  })

  test('Retain As Published keeps the retain flag on a live delivery; without it, it is cleared', async () => {
    const broker = await startBroker()
    const rap = await connect(urlFor(broker), { ...v5, clientId: 'rap-1' })
    await rap.subscribeAsync('rap/t', { qos: 1, rap: true })
    const plain = await connect(urlFor(broker), { ...v5, clientId: 'rap-0' })
    await plain.subscribeAsync('rap/t', { qos: 1 })
    const v4 = await connect(urlFor(broker), { clientId: 'rap-v4' })
    await v4.subscribeAsync('rap/t', { qos: 1 })
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('rap/t', 'not retained', { qos: 1 })
    await pub.publishAsync('rap/t', 'retained', { qos: 1, retain: true })
    for (const [client, expected] of [[rap, [false, true]], [plain, [false, false]], [v4, [false, false]]] as const) {
      const got = await inbox(client).waitFor(2)
      expect(got.map(m => m.retain)).toEqual(expected)
    }
    await pub.publishAsync('rap/t', '', { qos: 1, retain: true })
  })

  test('Retain As Published on a persistent session\'s queued message; a 3.1.1 session\'s queued message is not retained', async () => {
    const broker = await startBroker()
    const props = { sessionExpiryInterval: 300 }
    const rap = await connect(urlFor(broker), { ...v5, clientId: 'rapq-1', clean: false, properties: props })
    await rap.subscribeAsync('rapq/t', { qos: 1, rap: true })
    await rap.endAsync()
    const v4 = await connect(urlFor(broker), { clientId: 'rapq-v4', clean: false })
    await v4.subscribeAsync('rapq/t', { qos: 1 })
    await v4.endAsync()
    const pub = await connect(urlFor(broker), v5)
    await pub.publishAsync('rapq/t', 'retained', { qos: 1, retain: true })
    const rap2 = await connect(urlFor(broker), { ...v5, clientId: 'rapq-1', clean: false, properties: props })
    const v42 = await connect(urlFor(broker), { clientId: 'rapq-v4', clean: false })
    expect((await inbox(rap2).waitFor(1)).map(m => m.retain)).toEqual([true])
    expect((await inbox(v42).waitFor(1)).map(m => m.retain)).toEqual([false])
    await pub.publishAsync('rapq/t', '', { qos: 1, retain: true })
  })
})

/*
 * matchV5 (src/broker/internals.ts) on bare Aedes, as aedes-internals.test.ts
 * does for the other runtime patches: unpatched, the gap (aedes #1090); if a
 * vendor patch ever closes it, the unpatched case fails and matchV5 can go.
 */
describe('matchV5 on bare Aedes', () => {
  test.each([false, true])('several identifiers and No Local on overlapping subscriptions (patched: %s)', async patched => {
    const aedes = await Aedes.createBroker({})
    const server = net.createServer(socket => {
      const client = aedes.handle(socket)
      if (patched) patchDeliveries(client, socket)
    })
    await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
    onTestFinished(async () => {
      server.close()
      await new Promise<void>(resolve => aedes.close(() => resolve()))
    })
    const port = (server.address() as net.AddressInfo).port
    const c = await raw5(port, 'bare-si')
    await c.subscribe('b/#', 1, { nl: true, subscriptionIdentifier: 3 })
    await c.subscribe('b/t', 1, { subscriptionIdentifier: 2 })
    c.onPacket(p => { if (p.cmd === 'publish' && p.qos === 1) c.puback(p.messageId!) })
    // its own message: only b/t (identifier 2) delivers it
    c.send({ cmd: 'publish', topic: 'b/t', payload: Buffer.from('own'), qos: 0, retain: false, dup: false })
    const other = await raw5(port, 'bare-pub')
    other.send({ cmd: 'publish', topic: 'b/t', payload: Buffer.from('theirs'), qos: 1, messageId: 1, retain: false, dup: false })
    other.send({ cmd: 'publish', topic: 'b/end', payload: Buffer.from('end'), qos: 1, messageId: 2, retain: false, dup: false })
    await c.until(() => c.publishes().some(p => String(p.payload) === 'end'), 'the last message')
    const ids = (v: number | number[] | undefined) => Array.isArray(v) ? [...v].sort() : v
    const got = c.publishes().map(p => [String(p.payload), ids(p.properties?.subscriptionIdentifier)])
    // Unpatched, one copy per subscription and Aedes's dedupe keep the first
    // one's identifier. (Its own No Local check runs before its dedupe; with
    // dedupeByHistory, before Aedes's checks, matchV5 has to take it over.)
    expect(got).toEqual([['own', 2], ['theirs', patched ? [2, 3] : 3], ['end', 3]])
  })
})
