import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'
import { until } from '../helpers/rules.js'

/*
 * issue 9, finding 5b: a persistent QoS 1 session with 500 messages queued on
 * LevelDB received 446 on reconnect and none on the next CONNECT; with 900
 * queued it received 450. Memory persistence delivered all of them.
 */
describe.each([500, 900])('a persistent session with %i QoS 1 messages queued', n => {
  test.each(['level', 'memory'] as const)('gets every one on reconnect, in order (%s)', async type => {
    const persistence = type === 'level' ? { type, path: path.join(tempDir(), 'data') } : { type }
    const broker = await startBroker({ persistence })
    const url = urlFor(broker)
    const sub = await connect(url, { clientId: 'replay', clean: false })
    await sub.subscribeAsync('q/#', { qos: 1 })
    await sub.endAsync()

    const pub = await connect(url)
    await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync('q/x', String(i), { qos: 1 })))

    const back = await connect(url, { clientId: 'replay', clean: false })
    // barrier: published after the reconnect, so it comes after the whole queue
    await pub.publishAsync('q/barrier', 'barrier', { qos: 1 })
    const got = await inbox(back).waitFor(n + 1, 15_000)
    const queued = got.filter(m => m.topic === 'q/x').map(m => Number(m.payload))
    expect(queued).toEqual(Array.from({ length: n }, (_, i) => i))
    await back.endAsync()

    // Nothing is left: the next CONNECT gets only what is new.
    const again = await connect(url, { clientId: 'replay', clean: false })
    await pub.publishAsync('q/next', 'next', { qos: 1 })
    const after = await inbox(again).waitFor(1)
    expect(after.map(m => m.payload)).toEqual(['next'])
    expect(broker.stats().queueDropped).toBe(0)
  })
})

describe.each(['level', 'memory'] as const)('limits.maxQueuedMessages on %s persistence', type => {
  const config = (max: number) => ({
    persistence: type === 'level' ? { type, path: path.join(tempDir(), 'data') } : { type },
    limits: { maxQueuedMessages: max }
  })

  test('the cap counts each queued message once, and frees a slot per acknowledgement', async () => {
    const broker = await startBroker(config(20))
    const url = urlFor(broker)
    const sub = await connect(url, { clientId: 'capped', clean: false })
    await sub.subscribeAsync('c/#', { qos: 1 })
    await sub.endAsync()
    const pub = await connect(url)
    for (let i = 0; i < 21; i++) await pub.publishAsync('c/x', String(i), { qos: 1 })
    // aedes-persistence-level's outgoingEnqueueCombi calls outgoingEnqueue:
    // each message was counted twice, so only 10 were kept
    await until(() => broker.stats().queueDropped === 1, 'the 21st message to be dropped')

    const back = await connect(url, { clientId: 'capped', clean: false })
    const got = await inbox(back).waitFor(20)
    expect(got.map(m => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)))
    await back.endAsync()

    // all acknowledged: the whole cap is free again
    for (let i = 0; i < 20; i++) await pub.publishAsync('c/y', String(i), { qos: 1 })
    const again = await connect(url, { clientId: 'capped', clean: false })
    expect((await inbox(again).waitFor(20)).map(m => m.payload)).toEqual(Array.from({ length: 20 }, (_, i) => String(i)))
    expect(broker.stats().queueDropped).toBe(1)
  })

  test('a message dropped for a full queue does not disconnect the online client', async () => {
    const broker = await startBroker(config(3))
    const raw = await rawConnect(broker.listeners[0]!.port)
    raw.send(connectPacket('unacking', { clean: false }))
    expect((await raw.next()).cmd).toBe('connack')
    raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'u/#', qos: 1 }] })
    expect((await raw.next()).cmd).toBe('suback')
    const pub = await connect(urlFor(broker))
    // never acknowledged: the three stay in flight and fill the queue
    for (let i = 0; i < 3; i++) {
      await pub.publishAsync('u/x', String(i), { qos: 1 })
      expect(await raw.next()).toMatchObject({ cmd: 'publish', payload: Buffer.from(String(i)) })
    }
    await pub.publishAsync('u/x', 'over', { qos: 1 })
    await until(() => broker.stats().queueDropped === 1, 'the fourth message to be dropped')
    // QoS 0 goes past the queue; it arrives after whatever happened to 'over'
    await pub.publishAsync('u/zero', 'barrier', { qos: 0 })
    // ('over' itself may come, unstored, before or after it)
    const seen: string[] = []
    for (let p = await raw.next(); !(p.cmd === 'publish' && p.topic === 'u/zero'); p = await raw.next()) seen.push(p.cmd)
    raw.send({ cmd: 'pingreq' })
    for (let p = await raw.next(); p.cmd !== 'pingresp'; p = await raw.next()) seen.push(p.cmd)
    expect(seen.every(cmd => cmd === 'publish')).toBe(true)
  })
})
