import { describe, expect, test } from 'vitest'
import { listenerFor, startBroker, TRANSPORTS, urlFor, type Transport } from '../helpers/broker.js'
import { barrier, retainedBarrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'

// One behaviour suite, run over every transport (STYLE.md habit 7).
describe.each(TRANSPORTS)('MQTT behaviour over %s', (transport: Transport) => {
  const start = () => startBroker({ listeners: [listenerFor(transport)] })

  test.each([0, 1, 2] as const)('QoS %i in both directions', async (qos) => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const sub = await connect(url)
    const box = inbox(sub)
    await sub.subscribeAsync('sensors/+/temp', { qos })
    const pub = await connect(url)
    await pub.publishAsync('sensors/a/temp', '21.5', { qos })
    const [msg] = await box.waitFor(1)
    expect(msg).toMatchObject({ topic: 'sensors/a/temp', payload: '21.5', qos, retain: false })
  })

  test('MQTT 3.1 (MQIsdp) and 3.1.1 clients talk to each other', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const legacy = await connect(url, { protocolId: 'MQIsdp', protocolVersion: 3 })
    await legacy.subscribeAsync('legacy/#', { qos: 1 })
    const modern = await connect(url, { protocolVersion: 4 })
    await modern.publishAsync('legacy/a', 'from 3.1.1', { qos: 1 })
    expect((await inbox(legacy).waitFor(1))[0]).toMatchObject({ topic: 'legacy/a', payload: 'from 3.1.1', qos: 1 })
  })

  test('retained messages are set, replaced, cleared, and reach late subscribers with retain=1', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const pub = await connect(url)
    await pub.publishAsync('config/a', 'v1', { qos: 1, retain: true })
    await pub.publishAsync('config/a', 'v2', { qos: 1, retain: true })
    await pub.publishAsync('config/b', 'gone', { qos: 1, retain: true })
    await pub.publishAsync('config/b', '', { qos: 1, retain: true }) // [MQTT-3.3.1-10] clears

    const late = await connect(url)
    // subscribes to config/# and waits until its whole retained replay is in
    const msgs = await retainedBarrier(pub, late, 'config/#', 'barrier/retained', { qos: 1 })
    expect(msgs).toHaveLength(1)
    expect(msgs[0]).toMatchObject({ topic: 'config/a', payload: 'v2', retain: true })
  })

  test('a will is published when a client disappears without DISCONNECT', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const watcher = await connect(url)
    const box = inbox(watcher)
    await watcher.subscribeAsync('status/#', { qos: 1 })
    const device = await connect(url, { will: { topic: 'status/dev1', payload: Buffer.from('offline'), qos: 1, retain: false } })
    device.stream.destroy()
    const [msg] = await box.waitFor(1)
    expect(msg).toMatchObject({ topic: 'status/dev1', payload: 'offline', qos: 1 })
  })

  test('a persistent session keeps subscriptions and queues QoS 1 and 2 while offline, with retain=0', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const first = await connect(url, { clientId: `app-${transport}`, clean: false })
    await first.subscribeAsync('orders/#', { qos: 2 })
    await first.endAsync()

    const pub = await connect(url)
    await pub.publishAsync('orders/1', 'q1', { qos: 1 })
    await pub.publishAsync('orders/2', 'q2', { qos: 2 })
    // Retained and queued: must arrive with retain=0 [MQTT-3.3.1-9] (Aedes 1.2 sends 1).
    await pub.publishAsync('orders/3', 'q2r', { qos: 2, retain: true })

    const back = await connect(url, { clientId: `app-${transport}`, clean: false })
    const msgs = await inbox(back).waitFor(3)
    expect(msgs.map(m => [m.topic, m.payload, m.qos, m.retain])).toEqual([
      ['orders/1', 'q1', 1, false],
      ['orders/2', 'q2', 2, false],
      ['orders/3', 'q2r', 2, false]
    ])
  })

  test('retained $ topics are not replayed to wildcard-first subscriptions [MQTT-4.7.2-1]', async () => {
    const broker = await start()
    await broker.publish({ topic: '$SYS/test/retained', payload: 'sys', qos: 1, retain: true })
    await broker.publish({ topic: 'plain/retained', payload: 'plain', qos: 1, retain: true })
    const all = await connect(urlFor(broker, transport))
    // subscribes to both and waits until their whole retained replay is in; the marker is on a $ topic, which neither matches
    const replayed = await retainedBarrier(broker, all, ['#', '+/retained'], '$barrier/retained')
    const sys = await connect(urlFor(broker, transport))
    await sys.subscribeAsync('$SYS/test/#')
    expect((await inbox(sys).waitFor(1))[0]).toMatchObject({ topic: '$SYS/test/retained', retain: true })
    expect(replayed.length).toBeGreaterThanOrEqual(1)
    expect(inbox(all).messages.every(m => m.topic === 'plain/retained')).toBe(true)
  })

  test('clients cannot publish into $SYS/: acknowledged, dropped, connection kept', async () => {
    const broker = await start()
    const url = urlFor(broker, transport)
    const spy = await connect(url)
    const box = inbox(spy)
    // a $SYS namespace the broker itself never publishes, so anything there is forged
    await spy.subscribeAsync('$SYS/forged/#')
    await spy.subscribeAsync('#')
    const rogue = await connect(url)
    await rogue.publishAsync('$SYS/forged/uptime', 'forged', { qos: 1 })
    await rogue.publishAsync('$SYS/forged/version', 'forged', { qos: 2, retain: true })
    await rogue.publishAsync('still/alive', 'yes', { qos: 1 })
    const msgs = await box.waitFor(1)
    await barrier(rogue, spy, 'barrier/after') // published after the forged ones: they would be in by now
    expect(box.messages.map(m => m.topic)).toEqual(['still/alive'])
    expect(msgs[0]!.payload).toBe('yes')
    expect(broker.stats().deniedPublishes).toBe(2)
  })
})
