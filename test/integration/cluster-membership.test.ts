// src/cluster/membership.ts against a real redis-server: the registry behind
// GET /api/cluster, refusing a live nodeId, and 'nodeDead' within two
// heartbeats of a kill -9, on every survivor, once.
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest'
import { join } from '../../src/cluster/membership.js'
import { connectRedis } from '../../src/cluster/redis.js'
import { SwitchyardError } from '../../src/errors.js'
import { childNode, deathOf, localNode } from '../helpers/cluster-nodes.js'
import { redisServer } from '../helpers/redis-server.js'
import { until } from '../helpers/wait.js'

const HB = 300
const silent = pino({ level: 'silent' })
const server = redisServer()
let admin: Redis
beforeAll(() => {
  admin = new Redis(server.url)
  admin.on('error', () => {}) // reconnecting through the outages below
})
afterAll(() => { admin.disconnect() })
beforeEach(async () => { await admin.flushall() })

test('nodes() lists every node with its address, last heartbeat, clients and msg/s; leave() removes it, and may be called twice', async () => {
  const a = await localNode(server.url, 'node-a', HB, { stats: () => ({ clients: 3, messagesPerSecond: 41.5 }) })
  const b = await childNode(server.url, 'node-b', HB)
  await until(async () => (await a.membership.nodes()).reduce((sum, n) => sum + n.messagesPerSecond, 0) === 54, 'both nodes to beat their stats')
  const nodes = await a.membership.nodes()
  expect(nodes.map(n => [n.nodeId, n.address, n.clients, n.messagesPerSecond, n.heartbeatMs])).toEqual([
    ['node-a', 'node-a.test:1883', 3, 41.5, HB],
    ['node-b', 'node-b.test:1883', 0, 12.5, HB]
  ])
  for (const n of nodes) {
    expect(Date.parse(n.lastHeartbeat)).toBeGreaterThan(0)
    expect(n.ageMs).toBeLessThan(5 * HB)
  }
  await a.membership.leave()
  await a.membership.leave()
  expect((await a.redis.hkeys('switchyard:cluster:members'))).toEqual(['node-b'])
  expect(await a.redis.exists('switchyard:cluster:node:node-a')).toBe(0)
  expect(a.membership.state).toBe('left')
  await b.kill()
})

test('a second node with a live nodeId is refused; a killed one\'s id is taken over once its beats stop, and its old incarnation is dead', async () => {
  const watcher = await localNode(server.url, 'watcher', HB)
  const first = await childNode(server.url, 'node-x', HB)
  const redis = await connectRedis(server.url, { heartbeatMs: HB })
  try {
    const refused = await join({ redis, nodeId: 'node-x', address: 'elsewhere:1883', heartbeatMs: HB, logger: silent }).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(SwitchyardError)
    expect((refused as SwitchyardError).code).toBe('ERR_CLUSTER_NODE_ID_TAKEN')
    expect((refused as SwitchyardError).message).toMatch(/node-x\.test:1883/)
    await first.kill()
    let second: Awaited<ReturnType<typeof join>> | undefined
    await until(async () => {
      second = await join({ redis, nodeId: 'node-x', address: 'elsewhere:1883', heartbeatMs: HB, logger: silent }).catch(() => undefined)
      return second !== undefined
    }, 'node-x to be taken over', 10_000, HB / 4)
    const death = await deathOf(watcher, 'node-x')
    expect(death.incarnation).toBe(first.incarnation)
    expect(second!.incarnation).not.toBe(first.incarnation)
    expect((await watcher.membership.nodes()).find(n => n.nodeId === 'node-x')?.address).toBe('elsewhere:1883')
    await second!.leave()
  } finally {
    redis.disconnect()
  }
})

test('a node killed with kill -9 is declared dead on every survivor within two heartbeats, once each', async () => {
  const a = await localNode(server.url, 'node-a', HB)
  const b = await localNode(server.url, 'node-b', HB)
  const victim = await childNode(server.url, 'node-v', HB)
  const marker = await childNode(server.url, 'node-m', HB)
  const killedAt = await victim.kill()
  const [onA, onB] = await Promise.all([deathOf(a, 'node-v'), deathOf(b, 'node-v')])
  expect(onA.at - killedAt).toBeLessThanOrEqual(2 * HB)
  expect(onB.at - killedAt).toBeLessThanOrEqual(2 * HB)
  expect(onA.incarnation).toBe(victim.incarnation)
  // Barrier: a later death, seen by both; by then a second 'nodeDead' for the victim would have come.
  await marker.kill()
  await Promise.all([deathOf(a, 'node-m'), deathOf(b, 'node-m')])
  for (const n of [a, b]) expect(n.dead.filter(d => d.nodeId === 'node-v')).toHaveLength(1)
  expect((await a.membership.nodes()).map(n => n.nodeId)).toEqual(['node-a', 'node-b'])
})

test('a Redis outage longer than the dead threshold (kill -9 of Redis) declares no live node dead after it', async () => {
  const a = await localNode(server.url, 'node-a', HB)
  const b = await localNode(server.url, 'node-b', HB)
  await server.kill('SIGKILL')
  // The outage: three heartbeats, more than the 1.25 after which a silent node is dead.
  await new Promise(resolve => setTimeout(resolve, 3 * HB))
  await server.start()
  await until(async () => (await a.membership.nodes().catch(() => [])).every(n => n.ageMs < HB), 'both nodes to beat again', 10_000)
  // Barrier: a node started and killed after the outage is declared by both,
  // so both have judged the others since; a and b must not have been.
  const marker = await childNode(server.url, 'node-m', HB)
  await marker.kill()
  await Promise.all([deathOf(a, 'node-m'), deathOf(b, 'node-m')])
  expect([...a.dead, ...b.dead].map(d => d.nodeId)).toEqual(['node-m', 'node-m'])
  expect((await a.membership.nodes()).map(n => n.nodeId)).toEqual(['node-a', 'node-b'])
  expect(a.membership.state).toBe('joined')
  expect(b.membership.state).toBe('joined')
})

test('a node whose heartbeats stop (SIGSTOP) is declared dead, and is told it was evicted when it runs again', async () => {
  const a = await localNode(server.url, 'node-a', HB)
  const frozen = await childNode(server.url, 'node-f', HB)
  await frozen.kill('SIGSTOP')
  const death = await deathOf(a, 'node-f')
  expect(death.incarnation).toBe(frozen.incarnation)
  await frozen.kill('SIGCONT')
  expect(await frozen.next('evicted')).toEqual({ event: 'evicted', code: 'ERR_CLUSTER_EVICTED' })
  expect((await a.membership.nodes()).map(n => n.nodeId)).toEqual(['node-a'])
})

test('Redis restarted without its data: every node registers again, and none is declared dead', async () => {
  const a = await localNode(server.url, 'node-a', HB)
  const b = await localNode(server.url, 'node-b', HB)
  const restored = Promise.all([a, b].map(n => new Promise<void>(resolve => n.membership.once('restored', resolve))))
  await admin.flushall()
  await restored
  expect((await a.membership.nodes()).map(n => n.nodeId)).toEqual(['node-a', 'node-b'])
  const marker = await childNode(server.url, 'node-m', HB)
  await marker.kill()
  await Promise.all([deathOf(a, 'node-m'), deathOf(b, 'node-m')])
  expect([...a.dead, ...b.dead].map(d => d.nodeId)).toEqual(['node-m', 'node-m'])
})
