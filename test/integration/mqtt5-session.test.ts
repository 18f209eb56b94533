/*
 * MQTT 5 sessions and wills on the vendored Aedes (issue 12): the will
 * PUBLISH, Clean Start 0 with Session Expiry 0, a violation during the
 * offline replay, inbound Receive Maximum, session expiry and will delay
 * across a restart, and MQTT 5 properties on queued messages. Real brokers,
 * MQTT.js in v5 mode (raw packets where MQTT.js would not misbehave), real
 * LevelDB where persistence matters.
 * docs/aedes-gaps.md, "MQTT 5 on the vendored Aedes: session and will".
 */
import net from 'node:net'
import path from 'node:path'
import type { IClientOptions, IPublishPacket, MqttClient } from 'mqtt'
import mqttPacket, { type IDisconnectPacket, type Packet } from 'mqtt-packet'
import { describe, expect, onTestFinished, test } from 'vitest'
import { createBroker, type Broker, type ConfigInput } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { raw5 } from '../helpers/raw5.js'
import { rawConnect, connectPacket } from '../helpers/raw.js'
import { until } from '../helpers/wait.js'

const V5: IClientOptions = { protocolVersion: 5 }
type Store = 'memory' | 'level'

/** A broker on `store`; with LevelDB, on `dataDir` (a new one unless given), so that it can be restarted there. */
async function brokerOn (store: Store, dataDir = path.join(tempDir(), 'data'), config: ConfigInput = {}): Promise<Broker> {
  if (store === 'memory') return await startBroker(config)
  const broker = await createBroker({
    listeners: [{ type: 'tcp', port: 0 }],
    persistence: { type: 'level', path: dataDir },
    log: { level: 'silent' },
    rules: { dir: tempDir('switchyard-rules-') },
    ...config
  })
  onTestFinished(() => broker.close())
  return broker
}

/** Closes the connection without a DISCONNECT, as a device losing power. */
function cut (client: MqttClient): void {
  client.stream.destroy()
}

/** The CONNACK's Session Present flag (MQTT.js keeps the CONNACK; helpers/client.ts's connect() has awaited it). */
const sessionPresent = (client: MqttClient): boolean =>
  (client as unknown as { connackPacket: { sessionPresent: boolean } }).connackPacket.sessionPresent

/** Waits until `ms` have passed since `from`: time passing is what these tests test, not a synchronization. */
async function after (from: number, ms: number): Promise<void> {
  await until(() => Date.now() - from >= ms, `${ms} ms to pass`, ms + 5000, 25)
}

const PROPERTIES = {
  payloadFormatIndicator: true,
  contentType: 'application/json',
  responseTopic: 'reply/here',
  correlationData: Buffer.from([0x00, 0xff, 0x10]),
  userProperties: { a: '1', b: ['x', 'y'] }
}

describe('the will PUBLISH', () => {
  test('carries the Will Properties a PUBLISH may carry, and no Will Delay Interval (aedes #1098)', async () => {
    const broker = await startBroker()
    const url = urlFor(broker)
    const sub = await connect(url, { ...V5, clientId: 'will-sub' })
    await sub.subscribeAsync('will/#', { qos: 1 })
    const device = await connect(url, {
      ...V5,
      clientId: 'will-device',
      will: { topic: 'will/device', payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 0, messageExpiryInterval: 300, ...PROPERTIES } }
    })
    cut(device)
    const [will] = await inbox(sub).waitFor(1)
    expect(will).toMatchObject({ topic: 'will/device', payload: 'gone' })
    const props = will!.packet.properties!
    // Paho discards a PUBLISH with a Will Delay Interval: Property WillDelayInterval does not apply to packet type Publish
    expect(props).not.toHaveProperty('willDelayInterval')
    expect(props).toMatchObject({ ...PROPERTIES, correlationData: PROPERTIES.correlationData })
    expect(props.messageExpiryInterval).toBeGreaterThan(0)
    expect(props.messageExpiryInterval).toBeLessThanOrEqual(300)
  })
})

describe.each<Store>(['memory', 'level'])('Clean Start 0 with Session Expiry 0 (%s)', store => {
  test('resumes the session: its queue is delivered, and the session then ends with the connection [MQTT-3.1.2-5]', async () => {
    const broker = await brokerOn(store)
    const url = urlFor(broker)
    const first = await connect(url, { ...V5, clientId: 'resume-0', clean: false, properties: { sessionExpiryInterval: 300 } })
    await first.subscribeAsync('q0/#', { qos: 1 })
    await first.endAsync()
    const pub = await connect(url, V5)
    for (let i = 0; i < 3; i++) await pub.publishAsync(`q0/${i}`, `m${i}`, { qos: (1 + (i % 2)) as 1 | 2 })

    // Clean Start 0, and no Session Expiry Interval: 0
    const resumed = await connect(url, { ...V5, clientId: 'resume-0', clean: false })
    expect(sessionPresent(resumed)).toBe(true)
    const got = await inbox(resumed).waitFor(3)
    expect(got.map(m => m.payload).sort()).toEqual(['m0', 'm1', 'm2'])
    await resumed.endAsync()

    // It ended with that connection: no session, and nothing queued since.
    await pub.publishAsync('q0/late', 'late', { qos: 1 })
    const again = await connect(url, { ...V5, clientId: 'resume-0', clean: false })
    expect(sessionPresent(again)).toBe(false)
    await again.subscribeAsync('q0-marker', { qos: 1 })
    expect(await barrier(pub, again, 'q0-marker')).toEqual([])
  })
})

describe('a protocol violation during the offline replay', () => {
  test('is answered with the server DISCONNECT and its reason code (0x94), not a bare close', async () => {
    const broker = await startBroker()
    const port = broker.listeners[0]!.port
    const url = urlFor(broker)
    const N = 2000
    const first = await connect(url, { ...V5, clientId: 'replayer', clean: false, properties: { sessionExpiryInterval: 300 } })
    await first.subscribeAsync('replay/#', { qos: 1 })
    await first.endAsync()
    const pub = await connect(url, V5)
    await Promise.all(Array.from({ length: N }, (_, i) => pub.publishAsync('replay/t', `m${i}`, { qos: 1 })))

    const c = await raw5(port, 'replayer', { clean: false, properties: { sessionExpiryInterval: 300 } })
    expect(c.connack.sessionPresent).toBe(true)
    // At once, while the queue is being replayed: Topic Alias 0 is never valid [MQTT-3.3.2-8].
    c.send({ cmd: 'publish', topic: 'replay/x', payload: Buffer.from('bad'), qos: 0, retain: false, dup: false, properties: { topicAlias: 0 } })
    await c.closed()
    const disconnect = c.received.find((p): p is IDisconnectPacket => p.cmd === 'disconnect')
    // the violation arrived during the replay, else this tests nothing
    expect(c.publishes().length).toBeLessThan(N)
    expect(disconnect?.reasonCode).toBe(0x94)
  })
})

describe('inbound Receive Maximum', () => {
  const publish = (messageId: number, qos: 1 | 2): Packet =>
    ({ cmd: 'publish', topic: 'rm/t', payload: Buffer.from(`m${messageId}`), qos, retain: false, dup: false, messageId })

  test('is advertised, and a v5 client exceeding it with QoS 2 gets DISCONNECT 0x93 [MQTT-3.3.4-7]', async () => {
    const broker = await startBroker({ mqtt: { receiveMaximum: 5 } })
    const c = await raw5(broker.listeners[0]!.port, 'rm-q2')
    expect(c.connack.properties?.receiveMaximum).toBe(5)
    for (let id = 1; id <= 5; id++) c.send(publish(id, 2))
    await c.until(() => c.received.filter(p => p.cmd === 'pubrec').length === 5, '5 PUBRECs')
    // five await their PUBREL: the sixth is one too many
    c.send(publish(6, 2))
    await c.closed()
    expect(c.received.filter(p => p.cmd === 'pubrec').length).toBe(5)
    expect(c.received.at(-1)).toMatchObject({ cmd: 'disconnect', reasonCode: 0x93 })
  })

  test('a v5 client exceeding it with QoS 1 in one write gets DISCONNECT 0x93', async () => {
    const broker = await startBroker({ mqtt: { receiveMaximum: 5 } })
    const c = await raw5(broker.listeners[0]!.port, 'rm-q1')
    c.socket.write(Buffer.concat(Array.from({ length: 8 }, (_, i) => mqttBytes(publish(i + 1, 1)))))
    await c.closed()
    expect(c.received.find(p => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x93 })
  })

  test('the DISCONNECT 0x93 reaches a client that still sends: the broker half-closes, no reset (Paho test_flow_control2)', async () => {
    const broker = await startBroker({ mqtt: { receiveMaximum: 5 } })
    const socket = net.connect(broker.listeners[0]!.port, '127.0.0.1')
    onTestFinished(() => { socket.destroy() })
    const errors: Error[] = []
    socket.on('error', err => errors.push(err))
    let ended = false
    socket.once('end', () => { ended = true })
    const closed = new Promise<void>(resolve => socket.once('close', () => resolve()))
    await new Promise(resolve => socket.once('connect', resolve))
    const parser = mqttPacket.parser({ protocolVersion: 5 })
    const received: Packet[] = []
    parser.on('packet', p => received.push(p))
    socket.write(mqttBytes({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId: 'rm-linger', keepalive: 60 }))
    // as Paho: all the PUBLISHes first, reading nothing
    socket.pause()
    socket.write(Buffer.concat(Array.from({ length: 6 }, (_, i) => mqttBytes(publish(i + 1, 2)))))
    await until(() => broker.clients().length === 0, 'the broker to drop the client')
    // then each PUBREC answered with its PUBREL, as Paho does while it reads towards the DISCONNECT
    // (one at a time: a reset, if the broker answers one with it, is back
    // within microseconds here, and fails the next write as it failed Paho's)
    for (let id = 1; id <= 5; id++) {
      socket.write(mqttBytes({ cmd: 'pubrel', messageId: id }))
      await new Promise(resolve => setTimeout(resolve, 20).unref())
    }
    socket.on('data', d => parser.parse(d))
    socket.resume()
    socket.end()
    await closed
    expect(errors).toEqual([])
    expect(ended).toBe(true)
    expect(received.find(p => p.cmd === 'disconnect')).toMatchObject({ reasonCode: 0x93 })
  })

  test('a v5 client within it is never disconnected: QoS 2 slots free at PUBCOMP, QoS 1 at PUBACK', async () => {
    const broker = await startBroker({ mqtt: { receiveMaximum: 5 } })
    const c = await raw5(broker.listeners[0]!.port, 'rm-ok')
    let next = 1
    for (let round = 0; round < 4; round++) {
      const ids = Array.from({ length: 5 }, () => next++)
      for (const id of ids) c.send(publish(id, 2))
      await c.until(() => ids.every(id => c.received.some(p => p.cmd === 'pubrec' && p.messageId === id)), 'the PUBRECs')
      for (const id of ids) c.send({ cmd: 'pubrel', messageId: id })
      await c.until(() => ids.every(id => c.received.some(p => p.cmd === 'pubcomp' && p.messageId === id)), 'the PUBCOMPs')
      const ones = Array.from({ length: 5 }, () => next++)
      c.socket.write(Buffer.concat(ones.map(id => mqttBytes(publish(id, 1)))))
      await c.until(() => ones.every(id => c.received.some(p => p.cmd === 'puback' && p.messageId === id)), 'the PUBACKs')
    }
    expect(c.received.some(p => p.cmd === 'disconnect')).toBe(false)
  })

  test('a 3.1.1 client is not held to it (maxInflightInbound still bounds it)', async () => {
    const broker = await startBroker({ mqtt: { receiveMaximum: 5 } })
    const c = await rawConnect(broker.listeners[0]!.port)
    c.send(connectPacket('rm-v4'))
    expect((await c.next()).cmd).toBe('connack')
    for (let id = 1; id <= 8; id++) c.send({ ...publish(id, 2) } as Packet)
    for (let id = 1; id <= 8; id++) expect(await c.next()).toMatchObject({ cmd: 'pubrec', messageId: id })
  })
})

/** helpers/raw5.ts sends one packet per write; these go out in one. */
const mqttBytes = (packet: Packet): Buffer => mqttPacket.generate(packet, { protocolVersion: 5 })

describe('session expiry across a restart (LevelDB)', () => {
  test('a session with expiry N is still there within N after a restart, with its queue', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    let url = urlFor(broker)
    const sub = await connect(url, { ...V5, clientId: 'se-kept', clean: false, properties: { sessionExpiryInterval: 60 } })
    await sub.subscribeAsync('se-kept/#', { qos: 1 })
    await sub.endAsync()
    const pub = await connect(url, V5)
    await pub.publishAsync('se-kept/a', 'queued', { qos: 1 })
    await pub.endAsync()
    await broker.close()

    broker = await brokerOn('level', dataDir)
    url = urlFor(broker)
    const back = await connect(url, { ...V5, clientId: 'se-kept', clean: false, properties: { sessionExpiryInterval: 60 } })
    expect(sessionPresent(back)).toBe(true)
    expect((await inbox(back).waitFor(1)).map(m => m.payload)).toEqual(['queued'])
  })

  test('a session with expiry N is gone after N across a restart: subscriptions and queue wiped', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    let url = urlFor(broker)
    const sub = await connect(url, { ...V5, clientId: 'se-gone', clean: false, properties: { sessionExpiryInterval: 2 } })
    await sub.subscribeAsync('se-gone/#', { qos: 1 })
    await sub.endAsync()
    const closedAt = Date.now()
    const pub = await connect(url, V5)
    await pub.publishAsync('se-gone/a', 'queued', { qos: 1 })
    await pub.endAsync()
    await broker.close()

    broker = await brokerOn('level', dataDir)
    url = urlFor(broker)
    await after(closedAt, 2500)
    const back = await connect(url, { ...V5, clientId: 'se-gone', clean: false, properties: { sessionExpiryInterval: 2 } })
    expect(sessionPresent(back)).toBe(false)
    // neither the queued message nor the subscription is left
    await back.subscribeAsync('se-gone-marker', { qos: 1 })
    const pub2 = await connect(url, V5)
    await pub2.publishAsync('se-gone/b', 'after', { qos: 1 })
    expect(await barrier(pub2, back, 'se-gone-marker')).toEqual([])
  })

  test('a session still connected when the broker stopped is gone N after the restart', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    const sub = await connect(urlFor(broker), { ...V5, clientId: 'se-conn', clean: false, properties: { sessionExpiryInterval: 2 } })
    await sub.subscribeAsync('se-conn/#', { qos: 1 })
    // the session's connection ends with the broker
    await broker.close()

    broker = await brokerOn('level', dataDir)
    const restartedAt = Date.now()
    const url = urlFor(broker)
    await after(restartedAt, 2500)
    const late = await connect(url, { ...V5, clientId: 'se-conn', clean: false, properties: { sessionExpiryInterval: 2 } })
    expect(sessionPresent(late)).toBe(false)
  })
})

describe('will delay across a restart (LevelDB)', () => {
  const willOf = (delay: number, expiry = 60): IClientOptions => ({
    ...V5,
    clean: false,
    properties: { sessionExpiryInterval: expiry },
    will: { topic: 'wd/device', payload: Buffer.from('offline'), qos: 1, retain: false, properties: { willDelayInterval: delay, userProperties: { k: 'v' } } }
  })

  test('a delayed will is published after its delay when the broker restarted meanwhile', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    await connect(urlFor(broker), { ...willOf(2), clientId: 'wd-restart' })
    // the device's connection ends with the broker
    await broker.close()

    broker = await brokerOn('level', dataDir)
    const restartedAt = Date.now()
    const sub = await connect(urlFor(broker), { ...V5, clientId: 'wd-sub' })
    await sub.subscribeAsync('wd/#', { qos: 1 })
    const [will] = await inbox(sub).waitFor(1, 10_000)
    expect(Date.now() - restartedAt).toBeGreaterThanOrEqual(1900)
    expect(will).toMatchObject({ topic: 'wd/device', payload: 'offline' })
    expect(will!.packet.properties).toMatchObject({ userProperties: { k: 'v' } })
    expect(will!.packet.properties).not.toHaveProperty('willDelayInterval')
  })

  test('an overdue delayed will is published when the broker starts', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    let url = urlFor(broker)
    // a persistent subscriber, offline while the will is published
    const sub = await connect(url, { ...V5, clientId: 'wd-late-sub', clean: false, properties: { sessionExpiryInterval: 300 } })
    await sub.subscribeAsync('wd/#', { qos: 1 })
    await sub.endAsync()
    const device = await connect(url, { ...willOf(1), clientId: 'wd-overdue' })
    cut(device)
    const cutAt = Date.now()
    await until(() => broker.clients().every(c => c.clientId !== 'wd-overdue'), 'the device to be gone')
    await broker.close()
    await after(cutAt, 1500)

    broker = await brokerOn('level', dataDir)
    url = urlFor(broker)
    const back = await connect(url, { ...V5, clientId: 'wd-late-sub', clean: false, properties: { sessionExpiryInterval: 300 } })
    const [will] = await inbox(back).waitFor(1)
    expect(will).toMatchObject({ topic: 'wd/device', payload: 'offline' })
  })

  test('no will when the client returns within its delay after a restart', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn('level', dataDir)
    await connect(urlFor(broker), { ...willOf(2), clientId: 'wd-return' })
    await broker.close()

    broker = await brokerOn('level', dataDir)
    const restartedAt = Date.now()
    const url = urlFor(broker)
    const sub = await connect(url, { ...V5, clientId: 'wd-return-sub' })
    await sub.subscribeAsync('wd/#', { qos: 1 })
    const device = await connect(url, { ...willOf(2), clientId: 'wd-return' })
    // past the delay, the will did not come before a marker
    await after(restartedAt, 3000)
    expect(await barrier(device, sub, 'wd/marker')).toEqual([])
  })
})

describe.each<Store>(['memory', 'level'])('MQTT 5 properties on queued messages (%s)', store => {
  test('survive the offline queue and a restart, and message expiry is kept [MQTT-3.3.2-5] [MQTT-3.3.2-6]', async () => {
    const dataDir = path.join(tempDir(), 'data')
    let broker = await brokerOn(store, dataDir)
    let url = urlFor(broker)
    const sub = await connect(url, { ...V5, clientId: 'props-sub', clean: false, properties: { sessionExpiryInterval: 300 } })
    await sub.subscribeAsync('props/#', { qos: 2 })
    await sub.endAsync()
    const pub = await connect(url, V5)
    await pub.publishAsync('props/q1', 'one', { qos: 1, properties: { ...PROPERTIES, messageExpiryInterval: 120 } })
    await pub.publishAsync('props/q2', 'two', { qos: 2, properties: { ...PROPERTIES, messageExpiryInterval: 120 } })
    await pub.publishAsync('props/expiring', 'gone', { qos: 1, properties: { messageExpiryInterval: 1 } })
    const publishedAt = Date.now()
    await pub.endAsync()
    if (store === 'level') {
      await broker.close()
      broker = await brokerOn(store, dataDir)
      url = urlFor(broker)
    }
    await after(publishedAt, 1500)

    const back = await connect(url, { ...V5, clientId: 'props-sub', clean: false, properties: { sessionExpiryInterval: 300 } })
    const got = await inbox(back).waitFor(2)
    for (const m of got) {
      const props = (m.packet as IPublishPacket).properties!
      expect(props).toMatchObject(PROPERTIES)
      expect(Buffer.isBuffer(props.correlationData)).toBe(true)
      // the remaining lifetime, not the original [MQTT-3.3.2-6]
      expect(props.messageExpiryInterval).toBeGreaterThan(0)
      expect(props.messageExpiryInterval).toBeLessThan(120)
    }
    expect(got.map(m => m.payload).sort()).toEqual(['one', 'two'])
    // the expired one is not delivered [MQTT-3.3.2-5]
    await back.subscribeAsync('props-marker', { qos: 1 })
    const pub2 = await connect(url, V5)
    expect((await barrier(pub2, back, 'props-marker')).map(m => m.payload).sort()).toEqual(['one', 'two'])
  })
})
