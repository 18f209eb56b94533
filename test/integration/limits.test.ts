import { describe, expect, test } from 'vitest'
import { startBroker, urlFor } from '../helpers/broker.js'
import { barrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'
import { until } from '../helpers/wait.js'

const tcpPort = (broker: Awaited<ReturnType<typeof startBroker>>) => broker.listeners[0]!.port

describe('limits.maxPacketSize', () => {
  test('an oversized PUBLISH closes only that connection', async () => {
    const broker = await startBroker({ limits: { maxPacketSize: 1024 } })
    const bystander = await connect(urlFor(broker))
    await bystander.subscribeAsync('t')

    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('big'))
    expect((await raw.next()).cmd).toBe('connack')
    raw.send({ cmd: 'publish', topic: 't', payload: Buffer.alloc(2000), qos: 0, retain: false, dup: false })
    await raw.closed()

    expect(broker.stats().oversizedPackets).toBe(1)
    await bystander.publishAsync('t', 'small', { qos: 1 })
    expect((await inbox(bystander).waitFor(1))[0]!.payload).toBe('small')
  })

  test('a 50 MB PUBLISH is refused from its header, before the payload is buffered', async () => {
    const broker = await startBroker()
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket('huge'))
    await raw.next()
    // Fixed header announcing 50 MB, then only a few bytes: Aedes 1.2 alone
    // would wait for (and buffer) all 50 MB.
    const remaining = 50 * 1024 * 1024
    const header = [0x30]
    for (let n = remaining; ; ) { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; header.push(b); if (n === 0) break }
    raw.send(Buffer.concat([Buffer.from(header), Buffer.from([0x00, 0x01, 0x74])]))
    await raw.closed()
    expect(broker.stats().oversizedPackets).toBe(1)
  })

  test('a packet exactly at the limit is accepted', async () => {
    const broker = await startBroker({ limits: { maxPacketSize: 1024 } })
    const client = await connect(urlFor(broker))
    await client.subscribeAsync('t')
    // 1024 = 1 fixed header byte + 2 remaining-length bytes + 2 + 1 topic + payload
    await client.publishAsync('t', Buffer.alloc(1024 - 6))
    expect((await inbox(client).waitFor(1))[0]!.packet.payload.length).toBe(1018)
    expect(broker.stats().oversizedPackets).toBe(0)
  })
})

describe('limits.maxConnections', () => {
  test('connections beyond the limit are refused, and a slot frees when one leaves', async () => {
    const broker = await startBroker({ limits: { maxConnections: 2 } })
    const url = urlFor(broker)
    const a = await connect(url)
    await connect(url)
    await expect(connect(url)).rejects.toThrow()
    expect(broker.stats().refusedConnections).toBe(1)
    await a.endAsync()
    await until(() => broker.stats().openConnections === 1, 'the broker to see the client leave')
    await expect(connect(url)).resolves.toBeDefined()
  })
})

describe('malformed input', () => {
  test('garbage bytes cost that one connection, never the broker', async () => {
    const broker = await startBroker()
    const raw = await rawConnect(tcpPort(broker))
    raw.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
    await raw.closed()
    const raw2 = await rawConnect(tcpPort(broker))
    raw2.send(connectPacket('ok'))
    expect((await raw2.next()).cmd).toBe('connack')
    raw2.send(Buffer.from([0xf0, 0x00])) // reserved packet type 15
    await raw2.closed()
    expect(broker.stats().protocolErrors).toBeGreaterThanOrEqual(1)
    const healthy = await connect(urlFor(broker))
    await healthy.subscribeAsync('x')
    await healthy.publishAsync('x', 'still serving', { qos: 1 })
    expect((await inbox(healthy).waitFor(1))[0]!.payload).toBe('still serving')
  })

  test('a zero-length client id with clean=0 gets CONNACK 0x02 and is closed [MQTT-3.1.3-8]', async () => {
    const broker = await startBroker()
    const raw = await rawConnect(tcpPort(broker))
    // CONNECT, MQTT 3.1.1, flags 0x00 (clean session 0), keepalive 60, empty client id;
    // hand-made because client libraries refuse to encode it
    raw.send(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x00, 0x00, 0x3c, 0x00, 0x00]))
    // Rejecting in preConnect with callback(null, false) would leave this
    // socket open forever in Aedes 1.2; we reject with an Error.
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 2 })
    await raw.closed()
  })
})

describe('limits.maxQueuedMessages', () => {
  test('an offline client queues at most the limit, and the rest are counted as dropped', async () => {
    const broker = await startBroker({ limits: { maxQueuedMessages: 5 } })
    const url = urlFor(broker)
    const sub = await connect(url, { clientId: 'slow', clean: false })
    await sub.subscribeAsync('q/#', { qos: 1 })
    await sub.endAsync()
    const pub = await connect(url)
    for (let i = 0; i < 12; i++) await pub.publishAsync(`q/${i}`, String(i), { qos: 1 })
    expect(broker.stats().queueDropped).toBe(7)

    const back = await connect(url, { clientId: 'slow', clean: false })
    await inbox(back).waitFor(5)
    const got = await barrier(pub, back, 'q/barrier') // published after the reconnect, so after the whole queue
    expect(got.map(m => m.payload)).toEqual(['0', '1', '2', '3', '4'])
    expect(inbox(back).messages).toHaveLength(5)
    // delivered and acknowledged: the queue has room again
    await pub.publishAsync('q/after', 'after', { qos: 1 })
    expect((await inbox(back).waitFor(6)).at(-1)!.payload).toBe('after')
  })
})

describe('limits.maxClientIdLength', () => {
  const idOf = (bytes: number) => 'c'.repeat(bytes)

  test('a client id over the limit gets CONNACK 0x02 and is closed [MQTT-3.1.3-9]; one at the limit connects', async () => {
    const broker = await startBroker()
    const long = await rawConnect(tcpPort(broker))
    long.send(connectPacket(idOf(65_535)))
    expect(await long.next()).toMatchObject({ cmd: 'connack', returnCode: 2 })
    await long.closed()

    // counted in bytes of UTF-8: 128 two-byte characters are 256 bytes, 129 are 258
    const wide = await rawConnect(tcpPort(broker))
    wide.send(connectPacket('é'.repeat(129)))
    expect(await wide.next()).toMatchObject({ cmd: 'connack', returnCode: 2 })
    await wide.closed()

    for (const id of [idOf(256), 'é'.repeat(128)]) {
      const ok = await rawConnect(tcpPort(broker))
      ok.send(connectPacket(id))
      expect(await ok.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    }
    expect(broker.clients()).toHaveLength(2)
  })

  test('0 accepts any client id the protocol can carry', async () => {
    const broker = await startBroker({ limits: { maxClientIdLength: 0 } })
    const raw = await rawConnect(tcpPort(broker))
    raw.send(connectPacket(idOf(65_535)))
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 0 })
    expect(broker.clients().map(c => c.clientId.length)).toEqual([65_535])
  })
})
