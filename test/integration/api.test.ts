import { describe, expect, test } from 'vitest'
import { createBroker, SwitchyardError } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'

describe('embeddable API', () => {
  test('listeners report the ports actually bound', async () => {
    const broker = await startBroker({ listeners: [{ type: 'tcp', port: 0 }, { type: 'ws', port: 0, path: '/mqtt' }] })
    expect(broker.listeners).toEqual([
      { type: 'tcp', host: '127.0.0.1', port: expect.any(Number) },
      { type: 'ws', host: '127.0.0.1', port: expect.any(Number), path: '/mqtt' }
    ])
    expect(broker.listeners[0]!.port).not.toBe(0)
  })

  test('publish() delivers with QoS and retain, like a client publish', async () => {
    const broker = await startBroker()
    await broker.publish({ topic: 'a/b', payload: 'x', qos: 1, retain: true })
    const client = await connect(urlFor(broker))
    await client.subscribeAsync('a/#', { qos: 1 })
    expect((await inbox(client).waitFor(1))[0]).toMatchObject({ topic: 'a/b', payload: 'x', qos: 1, retain: true })
    await broker.publish({ topic: 'a/c', payload: new Uint8Array([1, 2, 3]) })
    expect((await inbox(client).waitFor(2))[1]!.packet.payload).toEqual(Buffer.from([1, 2, 3]))
  })

  test('close() is graceful and idempotent; publish after close is ERR_CLOSED', async () => {
    const broker = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, log: { level: 'silent' }, rules: { dir: tempDir() } })
    const client = await connect(urlFor(broker))
    const closedByBroker = new Promise<void>(resolve => client.once('close', () => resolve()))
    await Promise.all([broker.close(), broker.close()])
    await broker.close()
    await closedByBroker
    await expect(broker.publish({ topic: 't', payload: 'x' })).rejects.toMatchObject({ code: 'ERR_CLOSED' })
    await expect(broker.publish({ topic: 't', payload: 'x' })).rejects.toBeInstanceOf(SwitchyardError)
  })

  test('an invalid object config throws the same ConfigError as a file', async () => {
    await expect(createBroker({ listeners: [{ type: 'tcp', port: 70000 }] })).rejects.toMatchObject({
      code: 'ERR_CONFIG_INVALID',
      problems: ['listeners[0].port: must be <= 65535; got 70000']
    })
  })
})

describe('keepalive', () => {
  test('a client silent for 1.5 x its keepalive is disconnected [MQTT-3.1.2-24]', async () => {
    const broker = await startBroker()
    const raw = await rawConnect(broker.listeners[0]!.port)
    raw.send(connectPacket('sleepy', { keepalive: 1 }))
    expect((await raw.next()).cmd).toBe('connack')
    await raw.closed(5000)
  })
})
