/*
 * Switchyard's own layer speaking MQTT 5 (issue 12): what our hooks, raw
 * CONNACKs, config and observability do for v5 clients, and that 3.1.1
 * clients see no change. Real broker, MQTT.js in v5 mode, raw packets where
 * a client library would hide the bytes.
 */
import net from 'node:net'
import path from 'node:path'
import { writeFileSync } from 'node:fs'
import mqttPacket, { type IConnackPacket, type Packet } from 'mqtt-packet'
import type { ErrorWithReasonCode, IClientOptions } from 'mqtt'
import { describe, expect, onTestFinished, test } from 'vitest'
import { createBroker, type Broker, type ConfigInput } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { barrier } from '../helpers/barrier.js'
import { connect, granted, inbox } from '../helpers/client.js'
import { captureLog } from '../helpers/log.js'

const V5: IClientOptions = { protocolVersion: 5 }

/** A raw TCP connection that parses what the broker sends as `protocolVersion` (helpers/raw.ts parses 3.1.1 only). */
async function raw (broker: Broker, protocolVersion: 4 | 5) {
  const socket = net.connect(broker.listeners[0]!.port, '127.0.0.1')
  socket.on('error', () => {})
  onTestFinished(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const parser = mqttPacket.parser({ protocolVersion })
  const packets: Packet[] = []
  const waiters: Array<() => void> = []
  let closed = false
  parser.on('packet', p => { packets.push(p); for (const w of waiters.splice(0)) w() })
  parser.on('error', err => { packets.push({ cmd: 'error', message: err.message } as unknown as Packet); for (const w of waiters.splice(0)) w() })
  socket.on('data', d => parser.parse(d))
  socket.on('close', () => { closed = true; for (const w of waiters.splice(0)) w() })
  const wait = (ready: () => boolean, what: string) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5000)
    const check = () => { if (ready()) { clearTimeout(timer); resolve() } else waiters.push(check) }
    check()
  })
  return {
    send (p: Packet | Buffer) { socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p, { protocolVersion })) },
    async next (): Promise<Packet> {
      await wait(() => packets.length > 0 || closed, 'a packet')
      const p = packets.shift()
      if (!p) throw new Error('connection closed before a packet arrived')
      return p
    },
    closed: () => wait(() => closed, 'the broker to close the connection')
  }
}

const connectPacket = (protocolVersion: 4 | 5, clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): mqttPacket.IConnectPacket =>
  ({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean: true, clientId, keepalive: 60, ...extra })

async function connack (broker: Broker, protocolVersion: 4 | 5, clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): Promise<IConnackPacket> {
  const c = await raw(broker, protocolVersion)
  c.send(connectPacket(protocolVersion, clientId, extra))
  const p = await c.next()
  expect(p.cmd).toBe('connack')
  return p as IConnackPacket
}

/** A broker whose ACL lets anyone write and read open/#, and only read ro/#. */
async function aclBroker (config: ConfigInput = {}, options: { logger?: ReturnType<typeof captureLog>['logger'] } = {}): Promise<Broker> {
  const dir = tempDir()
  const aclFile = path.join(dir, 'acl')
  writeFileSync(aclFile, 'topic readwrite open/#\ntopic read ro/#\n')
  return startBroker({ auth: { aclFile, allowAnonymous: true }, ...config }, options)
}

describe('a denied PUBLISH', () => {
  test('v5: PUBACK and PUBREC 0x87 (not authorized), nothing delivered, the connection stays; 3.1.1: acknowledged and dropped', async () => {
    const log = captureLog('debug')
    const broker = await aclBroker({}, { logger: log.logger })
    const sub = await connect(urlFor(broker), { ...V5, clientId: 'sub' })
    await sub.subscribeAsync(['ro/#', 'open/#'], { qos: 2 })
    const v5 = await connect(urlFor(broker), { ...V5, clientId: 'v5' })
    for (const qos of [1, 2] as const) {
      const refused = await v5.publishAsync('ro/x', `v5 qos ${qos}`, { qos }).then(() => undefined, (err: ErrorWithReasonCode) => err)
      expect(refused?.code, `QoS ${qos}`).toBe(0x87)
    }
    await v5.publishAsync('ro/x', 'v5 qos 0', { qos: 0 })
    const v4 = await connect(urlFor(broker), { clientId: 'v4' })
    await v4.publishAsync('ro/x', 'v4 qos 1', { qos: 1 }) // 3.1.1: a plain PUBACK
    await v4.publishAsync('ro/x', 'v4 qos 2', { qos: 2 })
    await barrier(v5, sub, 'open/barrier')
    expect(await barrier(v4, sub, 'open/barrier')).toEqual([])
    expect(v5.connected && v4.connected).toBe(true)
    expect(broker.stats().deniedPublishes).toBe(5)
    const denied = log.lines.filter(l => l.msg === 'publish denied')
    expect(denied.map(l => [l.clientId, l.reason])).toEqual([
      ['v5', 'NOT_AUTHORIZED (0x87)'], ['v5', 'NOT_AUTHORIZED (0x87)'], ['v5', 'dropped (QoS 0)'],
      ['v4', 'acknowledged and dropped (MQTT 3.1.1)'], ['v4', 'acknowledged and dropped (MQTT 3.1.1)']
    ])
  })

  test('v5: PUBACKs keep the order of the PUBLISHes, refused ones included [MQTT-4.6.0-2]', async () => {
    const broker = await aclBroker()
    const c = await raw(broker, 5)
    c.send(connectPacket(5, 'order'))
    expect(await c.next()).toMatchObject({ cmd: 'connack', reasonCode: 0 })
    const publish = (messageId: number, topic: string): Packet => ({ cmd: 'publish', qos: 1, messageId, topic, payload: Buffer.from('x'), retain: false, dup: false })
    c.send(Buffer.concat([publish(1, 'open/a'), publish(2, 'ro/a'), publish(3, 'open/b'), publish(4, 'ro/b'), publish(5, 'open/c')].map(p => mqttPacket.generate(p, { protocolVersion: 5 }))))
    const acks: Array<[number | undefined, number | undefined]> = []
    for (let i = 0; i < 5; i++) {
      const p = await c.next() as mqttPacket.IPubackPacket
      expect(p.cmd).toBe('puback')
      // no Reason String, as Mosquitto (Paho's test client refuses an acknowledgement with properties)
      expect(p.properties).toBeUndefined()
      acks.push([p.messageId, p.reasonCode ?? 0])
    }
    expect(acks).toEqual([[1, 0], [2, 0x87], [3, 0], [4, 0x87], [5, 0]])
  })

  test('an authorizePublish hook that refuses gets 0x87 for v5 too; the denial is not the disconnect reason', async () => {
    const broker = await createBroker({
      listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, log: { level: 'silent' }, rules: { dir: null }
    }, { hooks: { authorizePublish: (_c, m) => m.topic !== 'no' } })
    onTestFinished(() => broker.close())
    const gone = new Promise<string>(resolve => broker.on('clientDisconnect', c => resolve(c.reason)))
    const client = await connect(urlFor(broker), V5)
    await expect(client.publishAsync('no', 'x', { qos: 1 })).rejects.toMatchObject({ code: 0x87 })
    await client.publishAsync('yes', 'x', { qos: 1 })
    expect(broker.stats().deniedPublishes).toBe(1)
    client.stream.destroy()
    expect(await gone).toBe('connection closed')
  })
})

describe('a denied SUBSCRIBE', () => {
  test('SUBACK 0x87 for v5, 0x80 for 3.1.1; logged by name; the subscribe event lists only what was granted', async () => {
    const log = captureLog('debug')
    const broker = await aclBroker({}, { logger: log.logger })
    const events: string[][] = []
    broker.on('subscribe', (_c, subs) => { events.push(subs.map(s => `${s.filter}@${s.qos}`)) })
    const v5 = await connect(urlFor(broker), { ...V5, clientId: 'v5' })
    expect(await granted(v5, ['secret/#', 'ro/#'])).toEqual([0x87, 0])
    const v4 = await connect(urlFor(broker), { clientId: 'v4' })
    expect(await granted(v4, ['secret/#', 'ro/#'])).toEqual([0x80, 0])
    expect(events).toEqual([['ro/#@0'], ['ro/#@0']])
    expect(log.lines.filter(l => l.msg === 'subscription denied').map(l => [l.clientId, l.reason])).toEqual([
      ['v5', 'NOT_AUTHORIZED (0x87)'], ['v4', 'FAILURE (0x80)']
    ])
  })
})

describe('raw CONNACKs', () => {
  test('v5: a zero-length client id with Clean Start 0 is accepted and assigned an id; 3.1.1 still gets 0x02 [MQTT-3.1.3-8]', async () => {
    const broker = await startBroker()
    // mqtt-packet refuses to encode it: encode with Clean Start 1, then clear the flag
    const unclean = (protocolVersion: 4 | 5) => {
      const bytes = mqttPacket.generate(connectPacket(protocolVersion, ''), { protocolVersion })
      bytes[9]! &= ~0x02 // 0x10, remaining length, "MQTT" (6 bytes), level, then the connect flags
      return bytes
    }
    const answer = async (protocolVersion: 4 | 5) => {
      const c = await raw(broker, protocolVersion)
      c.send(unclean(protocolVersion))
      return await c.next() as IConnackPacket
    }
    const v5 = await answer(5)
    expect(v5.reasonCode).toBe(0)
    expect(v5.properties?.assignedClientIdentifier).toMatch(/.+/)
    expect(await answer(4)).toMatchObject({ cmd: 'connack', returnCode: 0x02 })
  })

  test('a client id over limits.maxClientIdLength: v5 CONNACK 0x85 with properties, 3.1.1 CONNACK 0x02', async () => {
    const broker = await startBroker({ limits: { maxClientIdLength: 8 } })
    const v5 = await connack(broker, 5, 'much-too-long')
    expect(v5).toMatchObject({ reasonCode: 0x85, sessionPresent: false })
    expect(await connack(broker, 4, 'much-too-long')).toMatchObject({ returnCode: 0x02 })
  })
})

describe('what a v5 CONNACK advertises', () => {
  test('defaults: Maximum Packet Size is limits.maxPacketSize; topic aliases, Receive Maximum, shared subscriptions', async () => {
    const broker = await startBroker()
    const p = await connack(broker, 5, 'caps', { keepalive: 30 })
    expect(p.properties).toMatchObject({ maximumPacketSize: 1048576, topicAliasMaximum: 10, receiveMaximum: 1000 })
    expect(p.properties?.serverKeepAlive).toBeUndefined()
  })

  test('configured: limits.maxPacketSize and the mqtt section', async () => {
    const broker = await startBroker({ limits: { maxPacketSize: 4096 }, mqtt: { topicAliasMaximum: 3, receiveMaximum: 50, maxKeepalive: 60, maxSessionExpiryInterval: 100 } })
    const p = await connack(broker, 5, 'caps', { keepalive: 120, properties: { sessionExpiryInterval: 3600 } })
    expect(p.properties).toMatchObject({ maximumPacketSize: 4096, topicAliasMaximum: 3, receiveMaximum: 50, serverKeepAlive: 60, sessionExpiryInterval: 100 })
    // Keepalive 0 asks for none: the broker imposes its maximum (Mosquitto's max_keepalive).
    expect((await connack(broker, 5, 'zero', { keepalive: 0 })).properties?.serverKeepAlive).toBe(60)
    expect((await connack(broker, 5, 'within', { keepalive: 20 })).properties?.serverKeepAlive).toBeUndefined()
  })

  test('a v5 client may publish through Topic Aliases up to mqtt.topicAliasMaximum; beyond it, DISCONNECT 0x94', async () => {
    const broker = await startBroker({ mqtt: { topicAliasMaximum: 2 } })
    const sub = await connect(urlFor(broker), V5)
    await sub.subscribeAsync('alias/#', { qos: 1 })
    const pub = await connect(urlFor(broker), V5)
    await pub.publishAsync('alias/a', 'set', { qos: 1, properties: { topicAlias: 2 } })
    await pub.publishAsync('', 'used', { qos: 1, properties: { topicAlias: 2 } })
    expect((await barrier(pub, sub, 'alias/barrier')).map(m => [m.topic, m.payload])).toEqual([['alias/a', 'set'], ['alias/a', 'used']])
    const c = await raw(broker, 5)
    c.send(connectPacket(5, 'over'))
    expect(await c.next()).toMatchObject({ cmd: 'connack', reasonCode: 0 })
    c.send({ cmd: 'publish', qos: 0, topic: 'alias/b', payload: Buffer.from('x'), retain: false, dup: false, properties: { topicAlias: 3 } })
    expect(await c.next()).toMatchObject({ cmd: 'disconnect', reasonCode: 0x94 })
  })

  test('mqtt.maxKeepalive does not touch 3.1.1: keepalive 0 and keepalive 120 connect (return code 6 does not exist there)', async () => {
    const broker = await startBroker({ mqtt: { maxKeepalive: 60 } })
    expect(await connack(broker, 4, 'zero', { keepalive: 0 })).toMatchObject({ returnCode: 0 })
    expect(await connack(broker, 4, 'long', { keepalive: 120 })).toMatchObject({ returnCode: 0 })
    const c = await connect(urlFor(broker), { keepalive: 0 })
    expect(c.connected).toBe(true)
  })

  test('a v5 client that sends more than the advertised Maximum Packet Size is disconnected and counted', async () => {
    const broker = await startBroker({ limits: { maxPacketSize: 256 } })
    const c = await raw(broker, 5)
    c.send(connectPacket(5, 'big'))
    expect(await c.next()).toMatchObject({ cmd: 'connack', reasonCode: 0 })
    c.send({ cmd: 'publish', qos: 0, topic: 'a', payload: Buffer.alloc(1000), retain: false, dup: false })
    await c.closed()
    expect(broker.stats().oversizedPackets).toBe(1)
  })
})

describe('Retain As Published', () => {
  test('live: a v5 subscription with rap keeps retain=1; without it, and for 3.1.1, retain=0 [MQTT-3.3.1-12]; a topic it may not read never arrives', async () => {
    const dir = tempDir()
    const aclFile = path.join(dir, 'acl')
    writeFileSync(aclFile, 'topic readwrite open/#\ntopic deny open/hidden\n')
    const broker = await startBroker({ auth: { aclFile, allowAnonymous: true } })
    const rap = await connect(urlFor(broker), V5)
    await rap.subscribeAsync('open/#', { qos: 1, rap: true })
    const plain = await connect(urlFor(broker), V5)
    await plain.subscribeAsync('open/#', { qos: 1 })
    const v4 = await connect(urlFor(broker))
    await v4.subscribeAsync('open/#', { qos: 1 })
    const pub = await connect(urlFor(broker), V5)
    await broker.publish({ topic: 'open/hidden', payload: 'no', qos: 1, retain: true })
    await pub.publishAsync('open/r', 'retained', { qos: 1, retain: true })
    await pub.publishAsync('open/n', 'not retained', { qos: 1 })
    // each barrier's marker also reaches the other subscribers, as an ordinary message
    const flags = async (c: typeof rap) => (await barrier(pub, c, 'open/barrier')).filter(m => m.topic !== 'open/barrier').map(m => [m.topic, m.retain])
    expect(await flags(rap)).toEqual([['open/r', true], ['open/n', false]])
    expect(await flags(plain)).toEqual([['open/r', false], ['open/n', false]])
    expect(await flags(v4)).toEqual([['open/r', false], ['open/n', false]])
  })

  test('from a persistent session\'s queue: retain as published with rap, cleared without', async () => {
    const broker = await startBroker()
    const session = { ...V5, clean: false, properties: { sessionExpiryInterval: 300 } }
    const rap = await connect(urlFor(broker), { ...session, clientId: 'rap' })
    await rap.subscribeAsync('q/#', { qos: 1, rap: true })
    const plain = await connect(urlFor(broker), { ...session, clientId: 'plain' })
    await plain.subscribeAsync('q/#', { qos: 1 })
    await rap.endAsync()
    await plain.endAsync()
    await broker.publish({ topic: 'q/r', payload: 'retained', qos: 1, retain: true })
    await broker.publish({ topic: 'q/n', payload: 'not retained', qos: 1, retain: false })
    const back = async (clientId: string) => {
      const c = await connect(urlFor(broker), { ...session, clientId })
      return (await barrier(broker, c, 'q/barrier')).map(m => [m.topic, m.retain])
    }
    expect(await back('rap')).toEqual([['q/r', true], ['q/n', false]])
    // rap's barrier (QoS 1 on q/barrier) was queued for plain while it was offline, and the
    // queue is replayed before plain's own barrier (patch 014): it comes third
    expect(await back('plain')).toEqual([['q/r', false], ['q/n', false], ['q/barrier', false]])
  })
})

describe('each client\'s protocol version, and v5 reason codes by name', () => {
  test('clients(), /api/clients, connect and disconnect events and logs, metrics and $SYS', async () => {
    const log = captureLog('info')
    const broker = await startBroker({ admin: { port: 0 }, sys: { interval: 0 } }, { logger: log.logger })
    const events: unknown[] = []
    broker.on('clientConnect', c => { events.push(['connect', c.clientId, c.protocolVersion]) })
    broker.on('clientDisconnect', c => { events.push(['disconnect', c.clientId, c.protocolVersion, c.reason, c.reasonCode]) })
    const v5 = await connect(urlFor(broker), { ...V5, clientId: 'five' })
    const v4 = await connect(urlFor(broker), { clientId: 'four' })
    const v3 = await connect(urlFor(broker), { clientId: 'three', protocolId: 'MQIsdp', protocolVersion: 3 })
    const byId = (list: Array<{ clientId: string, protocolVersion: number }>) => Object.fromEntries(list.map(c => [c.clientId, c.protocolVersion]))
    expect(byId(broker.clients())).toEqual({ five: 5, four: 4, three: 3 })
    const api = await (await fetch(`http://127.0.0.1:${broker.admin!.port}/api/clients`)).json() as Array<{ clientId: string, protocolVersion: number }>
    expect(byId(api)).toEqual({ five: 5, four: 4, three: 3 })
    const metrics = await broker.metrics()
    for (const v of ['3', '4', '5']) expect(metrics).toContain(`switchyard_clients_connected_by_protocol{protocol="${v}"} 1`)
    expect(metrics).toMatch(/^switchyard_clients_connected 3$/m)
    expect(broker.stats().connectedByProtocol).toEqual({ 3: 1, 4: 1, 5: 1 })

    const gone = (id: string) => new Promise<void>(resolve => { const off = broker.on('clientDisconnect', c => { if (c.clientId === id) { off(); resolve() } }) })
    let g = gone('five')
    await v5.endAsync(false, { reasonCode: 0x04 })
    await g
    g = gone('four')
    await v4.endAsync()
    await g
    g = gone('three')
    v3.stream.destroy()
    await g
    expect(events).toEqual([
      ['connect', 'five', 5], ['connect', 'four', 4], ['connect', 'three', 3],
      ['disconnect', 'five', 5, 'DISCONNECT', 'DISCONNECT_WITH_WILL_MESSAGE (0x04)'],
      ['disconnect', 'four', 4, 'DISCONNECT', undefined],
      ['disconnect', 'three', 3, 'connection closed', undefined]
    ])
    const connected = log.lines.filter(l => l.msg === 'client connected').map(l => [l.clientId, l.protocolVersion])
    expect(connected).toEqual([['five', 5], ['four', 4], ['three', 3]])
    const disconnected = log.lines.filter(l => l.msg === 'client disconnected').map(l => [l.clientId, l.protocolVersion, l.reason, l.reasonCode])
    expect(disconnected).toEqual([
      ['five', 5, 'DISCONNECT', 'DISCONNECT_WITH_WILL_MESSAGE (0x04)'],
      ['four', 4, 'DISCONNECT', undefined],
      ['three', 3, 'connection closed', undefined]
    ])
    expect(broker.stats().connectedByProtocol).toEqual({ 3: 0, 4: 0, 5: 0 })
  })

  test('a v5 client the broker disconnects: the reason code it was sent, by name', async () => {
    const broker = await startBroker()
    const reasons = new Promise<unknown>(resolve => broker.on('clientDisconnect', c => resolve([c.clientId, c.reasonCode])))
    await connect(urlFor(broker), { ...V5, clientId: 'twin' })
    await connect(urlFor(broker), { ...V5, clientId: 'twin' }) // takes the session over [MQTT-3.1.4-2]
    expect(await reasons).toEqual(['twin', 'SESSION_TAKEN_OVER (0x8E)'])
  })

  test('$SYS/broker/clients/protocol/<level>: connected clients by protocol level', async () => {
    const broker = await startBroker({ sys: { interval: 1 } })
    const v5 = await connect(urlFor(broker), V5)
    await v5.subscribeAsync('$SYS/broker/clients/protocol/#')
    const values = new Map<string, string>()
    await new Promise<void>(resolve => {
      v5.on('message', (topic, payload) => {
        values.set(topic, payload.toString())
        if (values.get('$SYS/broker/clients/protocol/5') === '1' && values.has('$SYS/broker/clients/protocol/4') && values.has('$SYS/broker/clients/protocol/3')) resolve()
      })
    })
    expect(Object.fromEntries(values)).toEqual({ '$SYS/broker/clients/protocol/3': '0', '$SYS/broker/clients/protocol/4': '0', '$SYS/broker/clients/protocol/5': '1' })
    expect(inbox(v5).messages.length).toBeGreaterThan(0)
  })
})
