/*
 * Bridges (issue 14, docs/bridges.md): in, out and both, with Mosquitto's
 * prefix semantics, against a real Mosquitto and against a second
 * Switchyard; loop prevention; origin 'bridge'; $SYS state, GET /api/bridges
 * and the metrics.
 */
import { describe, expect, test } from 'vitest'
import type { Broker, ConfigInput, Message } from '../../src/index.js'
import { barrier } from '../helpers/barrier.js'
import { startBroker, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { hasMosquitto, startMosquitto } from '../helpers/mosquitto.js'
import { until } from '../helpers/wait.js'

type BridgeInput = NonNullable<ConfigInput['bridges']>[number]

const TOPICS: BridgeInput['topics'] = [
  { pattern: 'sensors/#', direction: 'in', qos: 1, localPrefix: 'plant/', remotePrefix: 'site1/' },
  { pattern: 'commands/#', direction: 'out', qos: 1, localPrefix: 'plant/', remotePrefix: 'site1/' },
  { pattern: 'shared/#', direction: 'both', qos: 1, localPrefix: 'local/', remotePrefix: 'remote/' }
]

async function bridged (address: string, bridge: Partial<BridgeInput> = {}, config: ConfigInput = {}): Promise<Broker> {
  const broker = await startBroker({ bridges: [{ name: 'plant', address, topics: TOPICS, reconnect: { minMs: 100, maxMs: 1000 }, ...bridge }], ...config })
  await until(() => broker.bridges()[0]?.subscribed === true, 'the bridge connected and subscribed', 10_000)
  return broker
}

/** Every direction, prefixes swapped, and nothing sent back where it came from. */
async function directions (remoteUrl: string, local: Broker): Promise<void> {
  const remote = await connect(remoteUrl, { clientId: 'remote-app' })
  await remote.subscribeAsync(['site1/commands/#', 'remote/shared/#'], { qos: 1 })
  const app = await connect(urlFor(local), { clientId: 'local-app' })
  await app.subscribeAsync(['plant/sensors/#', 'local/shared/#'], { qos: 1 })
  const origins: Message['origin'][] = []
  local.subscribe('plant/sensors/#', m => { origins.push(m.origin) })

  await remote.publishAsync('site1/sensors/t1', '21.5', { qos: 1 })
  await remote.publishAsync('remote/shared/x', 'from remote', { qos: 1 })
  await app.publishAsync('plant/commands/valve', 'open', { qos: 1 })
  await app.publishAsync('local/shared/y', 'from local', { qos: 1 })
  await app.publishAsync('plant/elsewhere', 'not bridged', { qos: 1 })

  const here = await inbox(app).waitFor(3)
  expect(here.map(m => [m.topic, m.payload])).toEqual(expect.arrayContaining([['plant/sensors/t1', '21.5'], ['local/shared/x', 'from remote'], ['local/shared/y', 'from local']]))
  expect(origins[0]).toMatchObject({ kind: 'bridge', bridge: 'plant', clientId: null })

  // The marker goes out through the bridge after anything the bridge would
  // have sent back: remote/shared/x came in through it and must not return.
  const there = await barrier(local, remote, 'plant/commands/marker', { arrivesOn: 'site1/commands/marker' })
  expect(there.map(m => [m.topic, m.payload])).toEqual([
    ['remote/shared/x', 'from remote'], // the remote app's own subscription, once
    ['site1/commands/valve', 'open'],
    ['remote/shared/y', 'from local']
  ])
  // And with MQTT 5's No Local on the remote subscription, local/shared/y is not echoed back in.
  const back = await barrier(remote, app, 'site1/sensors/marker', { arrivesOn: 'plant/sensors/marker' })
  expect(back.map(m => m.topic).sort()).toEqual(['local/shared/x', 'local/shared/y', 'plant/sensors/t1'])
  expect(local.bridges()[0]!.loopsPrevented).toBeGreaterThanOrEqual(1)
}

describe.skipIf(!hasMosquitto)('bridge to Mosquitto', () => {
  test('in, out and both, with prefixes; nothing goes back out the way it came', async () => {
    const mosquitto = await startMosquitto()
    const local = await bridged(mosquitto.url)
    await directions(mosquitto.url, local)
  })

  test('MQTT 3.1.1 (no No Local): a message from the remote broker is not sent back to it, even with "both"', async () => {
    const mosquitto = await startMosquitto()
    const local = await bridged(mosquitto.url, { protocolVersion: 4 })
    const remote = await connect(mosquitto.url, { clientId: 'remote-app' })
    await remote.subscribeAsync('remote/shared/#', { qos: 1 })
    await remote.publishAsync('remote/shared/x', 'once', { qos: 1 })
    // Sent back, it would come round again and again: Mosquitto echoes a 3.1.1 client's own messages.
    const there = await barrier(local, remote, 'local/shared/marker', { arrivesOn: 'remote/shared/marker' })
    expect(there.map(m => m.payload)).toEqual(['once'])
    expect(local.bridges()[0]!.loopsPrevented).toBeGreaterThanOrEqual(1)
  })
})

describe('bridge to a second Switchyard', () => {
  test('in, out and both, with prefixes; nothing goes back out the way it came', async () => {
    const remote = await startBroker()
    const local = await bridged(urlFor(remote))
    await directions(urlFor(remote), local)
  })

  test('over ws://, with QoS 2 kept both ways', async () => {
    const remote = await startBroker({ listeners: [{ type: 'ws', port: 0 }] })
    const url = urlFor(remote, 'ws')
    const local = await bridged(url, { topics: TOPICS.map(t => ({ ...t, qos: 2 as const })) })
    const there = await connect(url, { clientId: 'remote-app' })
    await there.subscribeAsync('site1/commands/#', { qos: 2 })
    const here = await connect(urlFor(local), { clientId: 'local-app' })
    await here.subscribeAsync('plant/sensors/#', { qos: 2 })
    await there.publishAsync('site1/sensors/t', 'in', { qos: 2 })
    await here.publishAsync('plant/commands/c', 'out', { qos: 2 })
    const [inbound] = await inbox(here).waitFor(1)
    const [outbound] = await inbox(there).waitFor(1)
    expect([inbound!.topic, inbound!.qos, outbound!.topic, outbound!.qos]).toEqual(['plant/sensors/t', 2, 'site1/commands/c', 2])
  })

  test('$SYS/broker/connection/<name>/state, GET /api/bridges and the metrics follow the connection', async () => {
    const remote = await startBroker()
    const local = await bridged(urlFor(remote), {}, { admin: { port: 0 } })
    const app = await connect(urlFor(local), { clientId: 'ops' })
    await app.subscribeAsync('$SYS/broker/connection/+/state')
    const [retained] = await inbox(app).waitFor(1)
    expect([retained!.topic, retained!.payload, retained!.retain]).toEqual(['$SYS/broker/connection/plant/state', '1', true])

    const base = `http://127.0.0.1:${local.admin!.port}`
    const api = await (await fetch(`${base}/api/bridges`)).json() as Array<Record<string, unknown>>
    expect(api).toEqual([expect.objectContaining({ name: 'plant', address: urlFor(remote), clientId: 'switchyard-plant', state: 'connected', connected: true, queued: 0 })])
    const sender = await connect(urlFor(local))
    await sender.publishAsync('plant/commands/a', '1', { qos: 1 })
    await until(() => local.bridges()[0]!.messagesOut === 1, 'the message acknowledged by the remote broker')
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toContain('switchyard_bridge_connected{bridge="plant"} 1')
    expect(metrics).toContain('switchyard_bridge_messages_out_total{bridge="plant"} 1')
    expect(metrics).toContain('switchyard_bridge_dropped_total{bridge="plant",reason="queue_full"} 0')

    await remote.close()
    const [down] = await inbox(app).waitFor(2)
    expect(inbox(app).messages[1]!.payload).toBe('0')
    expect(down).toBeDefined()
    await until(() => local.bridges()[0]!.state === 'waiting', 'the bridge waiting to reconnect')
    expect(local.bridges()[0]).toMatchObject({ connected: false, lastError: expect.any(String) })
  })
})
