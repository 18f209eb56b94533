import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { createBroker } from '../../src/index.js'
import { tempDir } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startCli } from '../helpers/cli.js'

/**
 * What must survive a restart with LevelDB persistence: retained messages,
 * a persistent session's subscriptions, and the QoS 1/2 messages queued for
 * it. Everything that was acknowledged to the publisher.
 */
async function leaveState (url: string): Promise<void> {
  const sub = await connect(url, { clientId: 'durable-sub', clean: false })
  await sub.subscribeAsync('plant/#', { qos: 2 })
  await sub.endAsync()
  const pub = await connect(url)
  await pub.publishAsync('config/site', 'retained-v1', { qos: 1, retain: true })
  for (let i = 0; i < 20; i++) await pub.publishAsync(`plant/line/${i}`, `m${i}`, { qos: (1 + (i % 2)) as 1 | 2 })
  await pub.endAsync()
}

async function expectState (url: string): Promise<void> {
  const sub = await connect(url, { clientId: 'durable-sub', clean: false })
  const queued = await inbox(sub).waitFor(20)
  const sent = Array.from({ length: 20 }, (_, i) => ({ payload: `m${i}`, qos: 1 + (i % 2) }))
  // Nothing lost, nothing duplicated...
  expect(queued.map(m => m.payload).sort()).toEqual(sent.map(m => m.payload).sort())
  // ...and in order per QoS. (MQTT.js hands a QoS 2 message to the app only
  // at PUBREL, a round trip later, so a QoS 1 message may overtake it.)
  for (const qos of [1, 2]) {
    expect(queued.filter(m => m.qos === qos).map(m => m.payload)).toEqual(sent.filter(m => m.qos === qos).map(m => m.payload))
  }
  // The subscription itself survived: a new message is routed to it.
  const pub = await connect(url)
  await pub.publishAsync('plant/after', 'new', { qos: 1 })
  expect((await inbox(sub).waitFor(21))[20]!.payload).toBe('new')

  const late = await connect(url)
  await late.subscribeAsync('config/#', { qos: 1 })
  expect((await inbox(late).waitFor(1))[0]).toMatchObject({ topic: 'config/site', payload: 'retained-v1', retain: true })
}

describe('durability with LevelDB persistence', () => {
  test('state survives a graceful close and restart of the embedded broker', async () => {
    const dataDir = path.join(tempDir(), 'data')
    const config = { listeners: [{ type: 'tcp' as const, port: 0 }], persistence: { type: 'level' as const, path: dataDir }, log: { level: 'silent' as const }, rules: { dir: tempDir() } }
    const first = await createBroker(config)
    await leaveState(`mqtt://127.0.0.1:${first.listeners[0]!.port}`)
    await first.close()
    await first.close() // idempotent

    const second = await createBroker(config)
    try {
      await expectState(`mqtt://127.0.0.1:${second.listeners[0]!.port}`)
    } finally {
      await second.close()
    }
  })

  test('state survives kill -9 of the broker process', async () => {
    const dir = tempDir()
    const config = { listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'level', path: 'data' } }
    const first = await startCli(dir, config)
    await leaveState(`mqtt://127.0.0.1:${first.ports.tcp}`)
    first.proc.kill('SIGKILL')
    expect(await first.exited).toBe('SIGKILL')

    const second = await startCli(dir, config)
    await expectState(`mqtt://127.0.0.1:${second.ports.tcp}`)
    second.proc.kill('SIGTERM')
    expect(await second.exited).toBe(0)
  })

  test('a second broker on the same data directory fails with ERR_PERSISTENCE, naming the key', async () => {
    const dataDir = path.join(tempDir(), 'data')
    const config = { listeners: [{ type: 'tcp' as const, port: 0 }], persistence: { type: 'level' as const, path: dataDir }, log: { level: 'silent' as const }, rules: { dir: tempDir() } }
    const first = await createBroker(config)
    try {
      await expect(createBroker(config)).rejects.toMatchObject({ code: 'ERR_PERSISTENCE', message: expect.stringMatching(/^persistence\.path: cannot open LevelDB/) })
    } finally {
      await first.close()
    }
  })
})

describe('order with LevelDB [MQTT-4.6]', () => {
  test('pipelined QoS 2 messages from one client arrive in the order sent', async () => {
    const { startBroker, urlFor } = await import('../helpers/broker.js')
    const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') } })
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('ordered/#', { qos: 2 })
    const pub = await connect(urlFor(broker))
    const n = 1000
    // not awaited one by one: many QoS 2 PUBLISHes in flight, as a busy device sends them
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('ordered/t', String(i), { qos: 2 })))
    const got = await inbox(sub).waitFor(n, 20_000)
    expect(got.map(m => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i))
  })
})

describe('concurrent QoS 2 lookups with LevelDB', () => {
  // 200 QoS 2 PUBLISHes in one write: Aedes looks them all up at once, and
  // most lookups answer "not found" while an earlier one is still pending.
  // An unhandled rejection there once killed the broker process.
  test('a burst of QoS 2 PUBLISHes in one read is acknowledged in full, and delivered in order', async () => {
    const { startBroker, urlFor } = await import('../helpers/broker.js')
    const { rawConnect, connectPacket } = await import('../helpers/raw.js')
    const mqttPacket = (await import('mqtt-packet')).default
    const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') } })
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('burst/#', { qos: 2 })
    const raw = await rawConnect(broker.listeners[0]!.port)
    raw.send(connectPacket('burster'))
    expect((await raw.next()).cmd).toBe('connack')
    const n = 200
    raw.send(Buffer.concat(Array.from({ length: n }, (_, i) =>
      mqttPacket.generate({ cmd: 'publish', topic: 'burst/t', payload: Buffer.from(String(i)), qos: 2, messageId: i + 1, retain: false, dup: false }))))
    const recs: number[] = []
    while (recs.length < n) {
      const p = await raw.next()
      if (p.cmd === 'pubrec') recs.push(p.messageId!)
    }
    expect(recs).toEqual(Array.from({ length: n }, (_, i) => i + 1))
    const got = await inbox(sub).waitFor(n, 10_000)
    expect(got.map(m => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i))
  })
})
