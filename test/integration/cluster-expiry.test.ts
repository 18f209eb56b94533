/*
 * Issue 13: MQTT 5 Session Expiry and Will Delay survive a node's death
 * (src/cluster/expiry.ts, src/cluster/wills.ts). Whole nodes: one in this
 * process, the one that dies in a child process (test/helpers/cluster-broker.mjs)
 * killed with kill -9, on a real redis-server.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt'
import { describe, expect, onTestFinished, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { urlFor } from '../helpers/broker.js'
import { clusterNodeConfig, spawnChildBroker } from '../helpers/child-broker.js'
import { connect } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const H = 1000
const P = 'switchyard:cluster:'
const redis = useRedis()

interface ChildBroker { url: string, kill(): Promise<number> }

/** A cluster node in a child process, killed (-9) after the test if still running. */
async function childBroker (nodeId: string): Promise<ChildBroker> {
  const child = await spawnChildBroker(clusterNodeConfig(redis.url, nodeId, H), nodeId)
  return { url: `mqtt://127.0.0.1:${child.port}`, kill: child.kill }
}

/** A v5 session (Clean Start 0) subscribed to `topic` at QoS 1 on `url`, left with DISCONNECT or still connected. */
async function session (url: string, clientId: string, topic: string, expiry: number): Promise<MqttClient> {
  const c = await connect(url, { clientId, protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: expiry } })
  await c.subscribeAsync(topic, { qos: 1 })
  return c
}

/** Connects again with Clean Start 0; what came with it: sessionPresent and the messages replayed. */
async function rejoin (url: string, clientId: string, expiry = 60): Promise<{ client: MqttClient, sessionPresent: boolean, messages: string[] }> {
  const options: IClientOptions = { clientId, protocolVersion: 5, clean: false, reconnectPeriod: 0, properties: { sessionExpiryInterval: expiry } }
  const client = mqtt.connect(url, options)
  onTestFinished(() => client.endAsync(true))
  const messages: string[] = []
  client.on('message', (topic, payload) => { messages.push(`${topic} ${payload.toString()}`) })
  const sessionPresent = await new Promise<boolean>((resolve, reject) => {
    client.once('connect', connack => resolve(connack.sessionPresent))
    client.once('error', reject)
  })
  return { client, sessionPresent, messages }
}

const due = (clientId: string): Promise<string | null> => redis.server.admin.zscore(P + 'expiry', clientId)
/** Its expiry is no longer due nor being ended by any node. */
async function ended (clientId: string): Promise<boolean> {
  return await due(clientId) === null && await redis.server.admin.exists(P + 'expiry-claim:' + clientId) === 0
}
const queued = (clientId: string): Promise<number> => redis.server.admin.llen(`outgoing:${encodeURIComponent(clientId)}`)

async function expired (port: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}/api/cluster`)
  const view = await res.json() as { self: { expiry: { expired: number } } }
  return view.self.expiry.expired
}

describe('cluster: MQTT 5 Session Expiry outlives the node', () => {
  test('kill -9 of the node a session left, or was connected to: a survivor ends it when its interval has passed; nothing is queued for it after', { timeout: 60_000 }, async () => {
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    const b = await childBroker('node-b')
    const left = await session(b.url, 'left', 'exp/left', 8)
    await left.endAsync()
    await session(b.url, 'held', 'exp/held', 2)
    // the session that left is due in Redis; the one still connected is node-b's
    await until(async () => await due('left') !== null, 'left\'s expiry recorded')
    expect(await due('held')).toBeNull()

    await b.kill()
    // killed before left's interval was over: node-b has not ended it
    expect(await due('left')).not.toBeNull()
    // held: its connection died with node-b, so its interval starts when node-b is declared dead
    await until(async () => await expired(a.admin!.port) === 2, 'both sessions ended by node-a', 30_000, 50)
    expect(await ended('left') && await ended('held')).toBe(true)

    const pub = await connect(urlFor(a), { clientId: 'pub' })
    await pub.publishAsync('exp/left', 'after', { qos: 1 })
    await pub.publishAsync('exp/held', 'after', { qos: 1 })
    expect(await queued('left')).toBe(0)
    expect(await queued('held')).toBe(0)
    for (const id of ['left', 'held']) {
      const back = await rejoin(urlFor(a), id)
      expect(back.sessionPresent).toBe(false)
    }
  })

  test('no node dies: the session is ended once, by one of the two nodes, after mqtt.maxSessionExpiryInterval', { timeout: 60_000 }, async () => {
    const mqttCap = { mqtt: { maxSessionExpiryInterval: 2 } }
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 }, ...mqttCap }, { heartbeatMs: H })
    const b = await startNode(redis.url, 'node-b', { admin: { port: 0 }, ...mqttCap }, { heartbeatMs: H })
    // asks for an hour, granted 2 s
    const c = await session(urlFor(b), 'quiet', 'exp/quiet', 3600)
    await c.endAsync()
    const total = async (): Promise<number> => await expired(a.admin!.port) + await expired(b.admin!.port)
    await until(async () => await total() >= 1, 'quiet ended', 30_000, 50)
    expect(await ended('quiet')).toBe(true)
    const back = await rejoin(urlFor(a), 'quiet')
    expect(back.sessionPresent).toBe(false)
    // once: claimed by one node, and gone from the set for the other
    expect(await total()).toBe(1)
  })

  test('a CONNECT while a node is ending that session waits for the end, then gets a new session', { timeout: 60_000 }, async () => {
    const a = await startNode(redis.url, 'node-a', {}, { heartbeatMs: H })
    const c = await session(urlFor(a), 'racing', 'exp/racing', 60)
    await c.endAsync()
    // as CLAIM leaves it: out of the set, leased to a node that is wiping it
    await redis.server.admin.zrem(P + 'expiry', 'racing')
    await redis.server.admin.set(P + 'expiry-claim:racing', 'node-x/1', 'PX', 60_000)
    let acked = false
    const back = rejoin(urlFor(a), 'racing').then(r => { acked = true; return r })
    // the CONNECT has reached Redis (the session is node-a's again) and waits
    await until(async () => (await redis.server.admin.hget(P + 'session:racing', 'owner'))?.startsWith('node-a/') === true, 'the CONNECT recorded')
    expect(acked).toBe(false)
    // the other node's end, then its release
    await redis.server.admin.del(`client:${encodeURIComponent('racing')}`)
    await redis.server.admin.srem('clients', 'racing')
    await redis.server.admin.del(P + 'expiry-claim:racing')
    expect((await back).sessionPresent).toBe(false)
  })

  test('the client comes back, to another node, within its interval after its node died: its session and queued messages are there, and it does not expire', { timeout: 60_000 }, async () => {
    const a = await startNode(redis.url, 'node-a', {}, { heartbeatMs: H })
    const b = await childBroker('node-b')
    const c = await session(b.url, 'back', 'exp/back', 30)
    await c.endAsync()
    await until(async () => await due('back') !== null, 'back\'s expiry recorded')
    await b.kill()
    const pub = await connect(urlFor(a), { clientId: 'pub' })
    for (const n of [1, 2, 3]) await pub.publishAsync('exp/back', `m${n}`, { qos: 1 })
    expect(await queued('back')).toBe(3)

    const back = await rejoin(urlFor(a), 'back', 30)
    expect(back.sessionPresent).toBe(true)
    await until(() => back.messages.length >= 3, 'the queued messages')
    expect(back.messages).toEqual(['exp/back m1', 'exp/back m2', 'exp/back m3'])
    // cancelled: no node will end it; it is node-a's connection's now
    expect(await due('back')).toBeNull()
    expect(await redis.server.admin.hget(P + 'session:back', 'owner')).toMatch(/^node-a\//)
  })
})

describe('cluster: MQTT 5 Will Delay outlives the node', () => {
  test('kill -9: a survivor publishes a delayed will once, not before its delay; a client back in time has none published', { timeout: 60_000 }, async () => {
    const a = await startNode(redis.url, 'node-a', {}, { heartbeatMs: H })
    const c = await startNode(redis.url, 'node-c', {}, { heartbeatMs: H })
    const b = await childBroker('node-b')
    const watcher = await connect(urlFor(a), { clientId: 'watcher' })
    await watcher.subscribeAsync(['lwt/+', 'marker'], { qos: 1 })
    const will = (id: string): IClientOptions => ({
      clientId: id,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 60 },
      will: { topic: `lwt/${id}`, payload: Buffer.from('gone'), qos: 1, retain: false, properties: { willDelayInterval: 2 } }
    })
    await connect(b.url, will('late'))
    await connect(b.url, will('returning'))
    await until(async () => await redis.server.admin.exists(P + 'will:late', P + 'will:returning') === 2, 'both wills recorded')

    const killedAt = await b.kill()
    // back at once, to another node: its session, and its will record, are node-c's now
    await connect(urlFor(c), { clientId: 'returning', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 60 } })

    let arrivedAt = 0
    watcher.on('message', topic => { if (topic === 'lwt/late' && arrivedAt === 0) arrivedAt = performance.now() })
    await until(() => arrivedAt > 0, 'late\'s will', 20_000, 5)
    // not before its delay [MQTT-3.1.3-9]: counted from node-b's death, which came after the kill
    expect(arrivedAt - killedAt).toBeGreaterThanOrEqual(2000)
    // every delayed will of node-b is settled; then a barrier: nothing else is on its way
    await until(async () => await redis.server.admin.zcard(P + 'wills:due') === 0 && await redis.server.admin.exists(P + 'will:late') === 0, 'no will left due')
    const pub = await connect(urlFor(c), { clientId: 'pub' })
    const all = await barrier(pub, watcher, 'marker')
    expect(all.filter(m => m.topic.startsWith('lwt/')).map(m => m.topic)).toEqual(['lwt/late'])
  })
})
