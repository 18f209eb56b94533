// src/cluster/wills.ts against a real redis-server: a node killed with
// kill -9 has its clients' wills published by the survivors within two
// heartbeats, each exactly once, with its MQTT 5 properties, and none whose
// client connected again elsewhere (issue 13's trap); more than 10,000 of them.
import type { Redis } from 'ioredis'
import { pino } from 'pino'
import { beforeEach, expect, onTestFinished, test } from 'vitest'
import { createWills, type OrphanWill, type Wills } from '../../src/cluster/wills.js'
import { childNode, deathOf, localNode, type ChildWill, type LocalNode } from '../helpers/cluster-nodes.js'
import { useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const HB = 300
const P = 'switchyard:cluster:'
// emptied before each test
const server = useRedis()
let admin: Redis
beforeEach(() => { admin = server.server.admin })

interface Published extends OrphanWill { readonly by: string, readonly at: number }

/** Every will any survivor of the test published, in order. */
let published: Published[] = []
beforeEach(() => { published = [] })

async function survivor (nodeId: string, publish?: (will: OrphanWill) => Promise<void>): Promise<LocalNode & { wills: Wills }> {
  const node = await localNode(server.url, nodeId, HB)
  const wills = createWills({
    redis: node.redis,
    membership: node.membership,
    logger: pino({ level: 'silent' }),
    publish: async will => {
      await publish?.(will)
      published.push({ ...will, by: nodeId, at: performance.now() })
    }
  })
  onTestFinished(() => wills.close())
  return { ...node, wills }
}

const willsOf = (clientId: string): Published[] => published.filter(p => p.clientId === clientId)

test('kill -9 of a node: each will is published once, by one survivor, within two heartbeats, with its MQTT 5 properties', async () => {
  const [s1, s2] = await Promise.all([survivor('s1'), survivor('s2')])
  const wills: ChildWill[] = [
    {
      clientId: 'sensor-5',
      will: {
        topic: 'devices/sensor-5/status',
        payload: 'offline',
        qos: 1,
        retain: true,
        properties: {
          contentType: 'text/plain',
          responseTopic: 'devices/sensor-5/ack',
          correlationData: { base64: Buffer.from([0, 1, 2, 255]).toString('base64') },
          messageExpiryInterval: 60,
          payloadFormatIndicator: true,
          userProperties: { site: 'north', tag: ['a', 'b'] },
          willDelayInterval: 0
        }
      }
    },
    { clientId: 'legacy-3', will: { topic: 'legacy/3/lwt', payload: 'gone', qos: 0, retain: false } },
    { clientId: 'binary-1', will: { topic: 'bin/1', payload: { base64: Buffer.from([0xde, 0xad, 0xbe, 0xef]).toString('base64') }, qos: 2, retain: false } }
  ]
  const victim = await childNode(server.url, 'victim', HB, { wills })
  const killedAt = await victim.kill()
  await until(() => published.length >= 3, 'three wills published', 10_000)
  for (const p of published) {
    expect(p.nodeId).toBe('victim')
    expect(p.at - killedAt).toBeLessThanOrEqual(2 * HB)
  }
  const [v5] = willsOf('sensor-5')
  expect({ topic: v5!.topic, payload: v5!.payload.toString(), qos: v5!.qos, retain: v5!.retain }).toEqual({ topic: 'devices/sensor-5/status', payload: 'offline', qos: 1, retain: true })
  // Will Delay Interval is a will property only, never a PUBLISH's (MQTT 5.0 §3.3.2.3)
  expect(v5!.properties).toEqual({
    contentType: 'text/plain',
    responseTopic: 'devices/sensor-5/ack',
    correlationData: Buffer.from([0, 1, 2, 255]),
    messageExpiryInterval: 60,
    payloadFormatIndicator: true,
    userProperties: { site: 'north', tag: ['a', 'b'] }
  })
  expect(willsOf('legacy-3')[0]!.properties).toBeUndefined()
  expect(willsOf('binary-1')[0]!.payload).toEqual(Buffer.from([0xde, 0xad, 0xbe, 0xef]))
  // Barrier for "once": a later node's will, published after every sweep of the first.
  const marker = await childNode(server.url, 'marker', HB, { wills: [{ clientId: 'm', will: { topic: 'm', payload: 'm', qos: 0, retain: false } }] })
  await marker.kill()
  await until(() => willsOf('m').length === 1, 'the marker will')
  expect(published.map(p => p.clientId).sort()).toEqual(['binary-1', 'legacy-3', 'm', 'sensor-5'])
  expect(await admin.keys(P + 'will*')).toEqual([])
  expect(s1.wills.stats().published + s2.wills.stats().published).toBe(4)
})

test('a client that connected again elsewhere before its node died: its old will is not published, and its new one is kept', async () => {
  const s1 = await survivor('s1')
  const victim = await childNode(server.url, 'victim', HB, {
    wills: [
      { clientId: 'moved', will: { topic: 'status/moved', payload: 'offline', qos: 1, retain: true } },
      { clientId: 'moved-bare', will: { topic: 'status/moved-bare', payload: 'offline', qos: 1, retain: true } },
      { clientId: 'stayed', will: { topic: 'status/stayed', payload: 'offline', qos: 1, retain: true } }
    ]
  })
  // Takeover on s1: one with a will of its own, one without a will.
  await s1.wills.connected('moved', { topic: 'status/moved', payload: Buffer.from('offline-2'), qos: 1, retain: true })
  await s1.wills.connected('moved-bare', null)
  await victim.kill()
  await until(() => willsOf('stayed').length === 1, 'the will of the client that stayed')
  // The sweep of the victim is over once its set of wills is gone.
  await until(async () => await admin.exists(P + 'wills:' + victim.incarnation) === 0, 'the sweep to finish')
  expect(published.map(p => p.clientId)).toEqual(['stayed'])
  expect(await admin.hget(P + 'will:moved', 'owner')).toBe(s1.membership.incarnation)
  expect(await admin.exists(P + 'will:moved-bare')).toBe(0)
  // A late forget from a node that no longer holds the session leaves the new owner's will.
  const s2 = await survivor('s2')
  await s2.wills.forget('moved')
  expect(await admin.hget(P + 'will:moved', 'owner')).toBe(s1.membership.incarnation)
  // A clean disconnect on the owner removes it.
  await s1.wills.forget('moved')
  expect(await admin.exists(P + 'will:moved')).toBe(0)
})

test('12,000 wills of a killed node are all published, each once, by two survivors (SCAN, no capped read)', async () => {
  const [s1] = await Promise.all([survivor('s1'), survivor('s2')])
  // Its own heartbeat is longer: recording 12,000 wills can stall a loaded
  // machine's event loop past 1.25 of 300 ms, and the survivors would then
  // (rightly) declare it dead and sweep before the count below.
  const victim = await childNode(server.url, 'victim', 2000, { bulkWills: 12_000 })
  expect(await admin.scard(P + 'wills:' + victim.incarnation)).toBe(12_000)
  await victim.kill()
  await deathOf(s1, 'victim')
  await until(async () => await admin.exists(P + 'wills:' + victim.incarnation) === 0, 'the sweep to finish', 60_000, 50)
  expect(published).toHaveLength(12_000)
  expect(new Set(published.map(p => p.clientId)).size).toBe(12_000)
  expect(new Set(published.map(p => p.by))).toEqual(new Set(['s1', 's2']))
  // membership.ts lets the dead entry go once its wills are gone (and 10 heartbeats passed)
  await until(async () => await admin.hlen(P + 'dead') === 0, 'the dead entry to be pruned', 10_000, 50)
}, 90_000)

test('a publish that fails is tried again, and the will still goes out once', async () => {
  let failures = 1
  const s1 = await survivor('s1', async () => { if (failures-- > 0) throw new Error('broker busy') })
  const victim = await childNode(server.url, 'victim', HB, { wills: [{ clientId: 'c1', will: { topic: 'c1/lwt', payload: 'x', qos: 1, retain: false } }] })
  await victim.kill()
  await deathOf(s1, 'victim')
  await until(async () => await admin.exists(P + 'wills:' + victim.incarnation) === 0, 'the sweep to finish')
  expect(willsOf('c1')).toHaveLength(1)
  expect(s1.wills.stats()).toEqual({ published: 1, failed: 1 })
})

test('MQTT 5 Will Delay Interval: a dead node\'s delayed will waits out its delay, capped by the session expiry, and a reconnect cancels it', async () => {
  const s1 = await survivor('s1')
  const victim = await childNode(server.url, 'victim', HB, {
    wills: [
      { clientId: 'delayed', will: { topic: 'd/lwt', payload: 'late', qos: 1, retain: false, properties: { willDelayInterval: 1 }, sessionExpiryInterval: 30 } },
      { clientId: 'cancelled', will: { topic: 'c/lwt', payload: 'never', qos: 1, retain: false, properties: { willDelayInterval: 60 }, sessionExpiryInterval: 300 } },
      { clientId: 'capped', will: { topic: 'x/lwt', payload: 'now', qos: 1, retain: false, properties: { willDelayInterval: 60 }, sessionExpiryInterval: 0 } }
    ]
  })
  const killedAt = await victim.kill()
  await until(() => willsOf('capped').length === 1, 'the will whose session ended with the connection')
  expect(willsOf('capped')[0]!.at - killedAt).toBeLessThanOrEqual(2 * HB)
  await until(async () => await admin.zcard(P + 'wills:due') === 2, 'two delayed wills due later')
  await s1.wills.connected('cancelled', null)
  expect(await admin.zscore(P + 'wills:due', 'cancelled')).toBeNull()
  await until(() => willsOf('delayed').length === 1, 'the delayed will', 10_000)
  // it waits the full delay from the node's death, which came after the kill
  expect(willsOf('delayed')[0]!.at - killedAt).toBeGreaterThanOrEqual(1000)
  expect(willsOf('delayed')[0]!.properties).toBeUndefined()
  expect(await admin.zcard(P + 'wills:due')).toBe(0)
  expect(published.map(p => p.clientId)).toEqual(['capped', 'delayed'])
})

test('close() removes this node\'s will records, and may be called twice', async () => {
  const s1 = await survivor('s1')
  await s1.wills.connected('a', { topic: 'a', payload: Buffer.from('x'), qos: 0, retain: false })
  await s1.wills.connected('b', { topic: 'b', payload: Buffer.from('x'), qos: 0, retain: false })
  await Promise.all([s1.wills.close(), s1.wills.close()])
  await s1.wills.close()
  expect(await admin.keys(P + 'will*')).toEqual([])
})
