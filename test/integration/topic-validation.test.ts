import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { startBroker, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const tcpPort = (broker: Broker) => broker.listeners[0]!.port

/** A client subscribed to '#': it would receive anything forwarded outside $SYS/. */
async function watchAll (broker: Broker): Promise<MqttClient> {
  const client = await connect(urlFor(broker))
  await client.subscribeAsync('#')
  return client
}

/**
 * Publishes a marker from `watcher` and waits for it: whatever the broker
 * forwarded before it, to the same subscriber, has then arrived. Returns the
 * topics received, the marker last.
 */
async function topicsUpToBarrier (watcher: MqttClient): Promise<string[]> {
  const box = inbox(watcher)
  await watcher.publishAsync('barrier', 'b', { qos: 1 })
  while (!box.messages.some(m => m.topic === 'barrier')) await box.waitFor(box.messages.length + 1)
  return box.messages.map(m => m.topic)
}

/** A string field as MQTT encodes it: two bytes of length, then the bytes, as they are. */
function field (bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b])
}

function packet (firstByte: number, body: Buffer): Buffer {
  if (body.length > 127) throw new Error('test packets stay under 128 bytes')
  return Buffer.concat([Buffer.from([firstByte, body.length]), body])
}

// CONNECT 3.1.1 with keepalive 60 and the given flags and payload fields.
const connectBytes = (flags: number, ...fields: Array<Buffer | string>) =>
  packet(0x10, Buffer.concat([field('MQTT'), Buffer.from([0x04, flags, 0x00, 0x3c]), ...fields.map(field)]))
const subscribeBytes = (filter: Buffer | string) => packet(0x82, Buffer.concat([Buffer.from([0x00, 0x01]), field(filter), Buffer.from([0x00])]))
const unsubscribeBytes = (filter: Buffer | string) => packet(0xa2, Buffer.concat([Buffer.from([0x00, 0x01]), field(filter)]))
const publishBytes = (topic: Buffer | string, payload = 'p') => packet(0x30, Buffer.concat([field(topic), Buffer.from(payload)]))

describe('forbidden topics from clients close the connection and reach nobody', () => {
  // The reproductions of issue 9: CONNECT, then a PUBLISH or a will on a forbidden topic.
  test.each([
    ['a PUBLISH on a/<U+0000>b [MQTT-1.5.3-2]', '100d00044d5154540402003c0001783007' + '0004612f0062' + '70'],
    ['a PUBLISH on a/ + C3 28, ill-formed UTF-8 [MQTT-1.5.3-1]', '100d00044d5154540402003c0001793007' + '0004612fc328' + '70'],
    ['a will on w/# [MQTT-3.1.4-1]', '101700044d5154540406003c00017a0003772f230003627965']
  ])('%s', async (_name, hex) => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    const raw = await rawConnect(tcpPort(broker))
    raw.send(Buffer.from(hex, 'hex'))
    await raw.closed()
    expect(await topicsUpToBarrier(watcher)).toEqual(['barrier'])
    expect(broker.stats().invalidTopics).toBe(1)
  })

  test.each([
    ['a/+'], ['a/#'], ['#']
  ])('a PUBLISH on %s, with a wildcard [MQTT-3.3.2-2]', async (topic) => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('w'))
    expect((await raw.next()).cmd).toBe('connack')
    raw.send(publishBytes(topic))
    await raw.closed()
    expect(await topicsUpToBarrier(watcher)).toEqual(['barrier'])
    expect(broker.stats().invalidTopics).toBe(1)
  })

  test.each([
    ['a#', 'a#'], ['a+', 'a+'], ['a/#/b', 'a/#/b'], ['empty', ''],
    ['U+0000', Buffer.from('a/\u0000')], ['C3 28', Buffer.from('612fc328', 'hex')], ['a UTF-16 surrogate, ED A0 80', Buffer.from('612feda080', 'hex')]
  ])('a SUBSCRIBE to an invalid filter (%s) gets no SUBACK [MQTT-4.7.1, MQTT-4.8.0-1]', async (_name, filter) => {
    const broker = await startBroker()
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('s'))
    expect((await raw.next()).cmd).toBe('connack')
    raw.send(subscribeBytes(filter))
    await expect(raw.next()).rejects.toThrow(/closed before a packet/)
    expect(broker.stats().invalidTopics).toBe(1)
  })

  test.each([
    ['a#', 'a#'], ['U+0000', Buffer.from('a/\u0000')], ['C3 28', Buffer.from('612fc328', 'hex')]
  ])('an UNSUBSCRIBE from an invalid filter (%s) gets no UNSUBACK', async (_name, filter) => {
    const broker = await startBroker()
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('u'))
    expect((await raw.next()).cmd).toBe('connack')
    raw.send(unsubscribeBytes(filter))
    await expect(raw.next()).rejects.toThrow(/closed before a packet/)
    expect(broker.stats().invalidTopics).toBe(1)
  })

  test.each([
    ['a client id with U+0000', connectBytes(0x02, Buffer.from('id\u0000'))],
    ['a client id with ill-formed UTF-8', connectBytes(0x02, Buffer.from('69c3', 'hex'))],
    ['a username with U+0000', connectBytes(0x82, 'id', Buffer.from('user\u0000'))],
    ['a username with ill-formed UTF-8 (an overlong NUL, C0 80)', connectBytes(0x82, 'id', Buffer.from('75c080', 'hex'))],
    ['a will topic with ill-formed UTF-8', connectBytes(0x06, 'id', Buffer.from('77ff', 'hex'), 'bye')],
    ['an empty will topic [MQTT-4.7.3-1]', connectBytes(0x06, 'id', '', 'bye')]
  ])('a CONNECT with %s gets no CONNACK [MQTT-3.1.4-1]', async (_name, bytes) => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    const raw = await rawConnect(tcpPort(broker))
    raw.send(bytes)
    await expect(raw.next()).rejects.toThrow(/closed before a packet/)
    expect(await topicsUpToBarrier(watcher)).toEqual(['barrier'])
    expect(broker.stats().invalidTopics).toBe(1)
  })

  test('well-formed topics pass: U+FFFD itself, accents, emoji', async () => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectBytes(0x02, 'ok'))
    expect((await raw.next()).cmd).toBe('connack')
    // The barrier comes from the same connection here: only that orders it after the others.
    for (const topic of ['r/\uFFFD', 'r/ü', 'r/😀', 'r/end']) raw.send(publishBytes(topic))
    const box = inbox(watcher)
    await box.waitFor(4)
    expect(box.messages.map(m => m.topic)).toEqual(['r/\uFFFD', 'r/ü', 'r/😀', 'r/end'])
    expect(broker.stats().invalidTopics).toBe(0)
  })

  test('one bad client costs only its own connection', async () => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    const bystander = await connect(urlFor(broker))
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('bad'))
    await raw.next()
    raw.send(publishBytes(Buffer.from('612f00', 'hex')))
    await raw.closed()
    await bystander.publishAsync('still/here', 'yes', { qos: 1 })
    expect(await topicsUpToBarrier(watcher)).toEqual(['still/here', 'barrier'])
    expect(bystander.connected).toBe(true)
  })
})

describe('broker.publish() refuses a topic no client could publish', () => {
  test.each([
    ['empty', ''], ['a/+/b', 'a/+/b'], ['a/#', 'a/#'], ['U+0000', 'a/\u0000b'], ['a lone surrogate', 'a/\uD800']
  ])('%s: ERR_INVALID_TOPIC, and nothing is delivered', async (_name, topic) => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    await expect(broker.publish({ topic, payload: 'x' })).rejects.toMatchObject({ name: 'SwitchyardError', code: 'ERR_INVALID_TOPIC' })
    expect(await topicsUpToBarrier(watcher)).toEqual(['barrier'])
  })

  test('a valid topic still publishes', async () => {
    const broker = await startBroker()
    const watcher = await watchAll(broker)
    await broker.publish({ topic: 'api/ü', payload: 'x' })
    expect(await topicsUpToBarrier(watcher)).toEqual(['api/ü', 'barrier'])
  })
})

describe('rule outputs', () => {
  test('an output on an invalid topic fails that conversion, counted and logged; the broker carries on', async () => {
    const { broker } = await startWithRules({
      // The input's payload names the output topic; a lone surrogate survives the trip from the isolate.
      'echo.js': `export const topics = ['in/+']; export function convert (m) { return { topic: m.payload === 'surrogate' ? 'out/\\uD800' : m.payload, payload: 'x' } }`
    })
    const watcher = await watchAll(broker)
    const dev = await connect(urlFor(broker))
    for (const payload of ['surrogate', 'out/#', 'out/ok']) await dev.publishAsync('in/1', payload, { qos: 1 })
    // Outputs keep the order of their inputs, so out/ok is the barrier here.
    const box = inbox(watcher)
    while (!box.messages.some(m => m.topic === 'out/ok')) await box.waitFor(box.messages.length + 1)
    expect(box.messages.map(m => m.topic).filter(t => !t.startsWith('in/'))).toEqual(['out/ok'])
    await until(() => rule(broker, 'echo').failed === 2, 'two failed conversions')
    expect(rule(broker, 'echo').lastErrors.map(e => e.error)).toEqual(expect.arrayContaining([expect.stringMatching(/lone surrogate/), expect.stringMatching(/wildcards/)]))
  })
})
