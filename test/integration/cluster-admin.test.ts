/*
 * Issue 13, operations across the cluster: GET /api/clients on any node lists
 * every node's clients with their node (src/cluster/clients.ts), and GET
 * /api/cluster shows each node's counters and their sums, rules summed by
 * name (src/cluster/node-counters.ts, carried by the heartbeat). One node
 * runs in this process, the other in a child process (kill -9).
 */
import { writeFileSync } from 'node:fs'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { tempDir, urlFor } from '../helpers/broker.js'
import { clusterNodeConfig, spawnChildBroker } from '../helpers/child-broker.js'
import { connect } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { redisServer } from '../helpers/redis-server.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()
// A Redis of its own for the outage test: stopped and started again.
const outage = redisServer()
const H = 1000

interface ChildBroker { port: number, admin: number, kill(): Promise<number> }

/** A whole cluster node (createBroker from dist/) in a child process, killed after the test. */
async function childBroker (nodeId: string, rulesDir: string): Promise<ChildBroker> {
  const config = clusterNodeConfig(redis.url, nodeId, H, { admin: { port: 0 }, rules: { dir: rulesDir } })
  const child = await spawnChildBroker(config, nodeId, { nodeArgs: ['--no-node-snapshot'] })
  return { port: child.port, admin: child.admin!, kill: child.kill }
}

async function get (port: number, p: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${p}`)
  return { status: res.status, body: await res.json() }
}

const pairs = (list: Array<{ clientId: string, node: string }>): string[][] => list.map(c => [c.clientId, c.node])

describe('cluster: admin API across nodes', () => {
  test('GET /api/clients on any node lists every node\'s clients with their node; a disconnect and a node killed with kill -9 take theirs out', async () => {
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    const b = await childBroker('node-b', tempDir('switchyard-rules-'))
    const sub = await connect(urlFor(a), { clientId: 'a-1' })
    await sub.subscribeAsync('t/#')
    await connect(urlFor(a), { clientId: 'a-2' })
    await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'b-1', username: 'bob' })
    const leaving = await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'b-2', protocolVersion: 5 })

    const all = [['a-1', 'node-a'], ['a-2', 'node-a'], ['b-1', 'node-b'], ['b-2', 'node-b']]
    let list: any[] = []
    await until(async () => {
      list = (await get(a.admin!.port, '/api/clients')).body
      return JSON.stringify(pairs(list)) === JSON.stringify(all)
    }, 'both nodes\' clients on node-a\'s /api/clients', 10_000)
    // this node's own from memory, with their subscriptions; the other's without
    expect(list[0]).toMatchObject({ clientId: 'a-1', node: 'node-a', subscriptions: ['t/#'], clean: true, protocolVersion: 4 })
    expect(list[2]).toMatchObject({ clientId: 'b-1', node: 'node-b', username: 'bob', clean: true, protocolVersion: 4, remote: expect.stringMatching(/:\d+$/) })
    expect(Date.parse(list[2].connectedAt)).not.toBeNaN()
    expect(list[2].subscriptions).toBeUndefined()
    expect(list[3]).toMatchObject({ clientId: 'b-2', protocolVersion: 5 })
    // the same list from node-b, and the filters
    await until(async () => JSON.stringify(pairs((await get(b.admin, '/api/clients')).body)) === JSON.stringify(all), 'the same on node-b', 10_000)
    expect(pairs((await get(a.admin!.port, '/api/clients?node=node-b')).body)).toEqual(all.slice(2))
    expect(pairs((await get(a.admin!.port, '/api/clients?local=1')).body)).toEqual(all.slice(0, 2))
    expect(pairs(await a.clusterClients!('node-a'))).toEqual(all.slice(0, 2))

    // a takeover on node-b keeps b-1 listed (its old connection's end comes with the new one's start)
    await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'b-1', username: 'bob' })
    await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'b-3' })
    await until(async () => pairs((await get(a.admin!.port, '/api/clients')).body).some(([id]) => id === 'b-3'), 'b-3 listed (node-b\'s writes are in order)', 10_000)
    expect(pairs((await get(a.admin!.port, '/api/clients')).body)).toEqual([...all, ['b-3', 'node-b']])
    // b-3 moves to node-a: listed there only
    await connect(urlFor(a), { clientId: 'b-3' })
    await until(async () => JSON.stringify(pairs((await get(a.admin!.port, '/api/clients')).body)) === JSON.stringify([...all.slice(0, 2), ['b-3', 'node-a'], ...all.slice(2)]), 'b-3 on node-a only', 10_000)

    await leaving.endAsync()
    const rest = [...all.slice(0, 2), ['b-3', 'node-a'], ['b-1', 'node-b']]
    await until(async () => !pairs((await get(a.admin!.port, '/api/clients')).body).some(([id]) => id === 'b-2'), 'b-2 gone after its disconnect', 10_000)
    expect(pairs((await get(a.admin!.port, '/api/clients')).body)).toEqual(rest)

    await b.kill()
    await until(async () => (await get(a.admin!.port, '/api/clients')).body.length === 3, 'node-b\'s clients gone once it is declared dead', 10_000)
    expect(pairs((await get(a.admin!.port, '/api/clients')).body)).toEqual(rest.slice(0, 3))
    // and its list removed from Redis by the survivor (or its TTL)
    await until(async () => (await redis.server.admin.keys('switchyard:cluster:clients:*')).length === 1, 'node-b\'s list deleted', 10_000)
    expect(await redis.server.admin.keys('switchyard:cluster:clients:*')).toEqual([`switchyard:cluster:clients:${await redis.server.admin.hget('switchyard:cluster:members', 'node-a')}`])
  }, 60_000)

  test('Redis lost its data: the node writes its client list again', async () => {
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    await connect(urlFor(a), { clientId: 'dev' })
    const key = async (): Promise<string> => `switchyard:cluster:clients:${await redis.server.admin.hget('switchyard:cluster:members', 'node-a')}`
    await until(async () => await redis.server.admin.hexists(await key(), 'dev') === 1, 'dev in Redis')
    await redis.server.admin.flushall()
    await until(async () => await redis.server.admin.hexists(await key(), 'dev') === 1, 'dev in Redis again', 10_000)
    expect(JSON.parse((await redis.server.admin.hget(await key(), 'dev'))!)).toMatchObject({ clean: true, protocolVersion: 4 })
  }, 30_000)

  test('Redis away: GET /api/clients answers 503 with this node\'s own clients, marked partial; ?local=1 still 200; whole again once Redis is back', async () => {
    const a = await startNode(outage.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    await connect(urlFor(a), { clientId: 'dev' })
    await until(async () => (await get(a.admin!.port, '/api/clients')).status === 200, 'the list answers')
    await outage.kill()
    const away = await get(a.admin!.port, '/api/clients')
    expect(away.status).toBe(503)
    expect(away.body).toMatchObject({ partial: true, clients: [{ clientId: 'dev', node: 'node-a' }], error: expect.stringMatching(/Redis/) })
    expect(pairs((await get(a.admin!.port, '/api/clients?local=1')).body)).toEqual([['dev', 'node-a']])
    await outage.start()
    await until(async () => (await get(a.admin!.port, '/api/clients')).status === 200, 'the list answers again', 15_000)
    expect(pairs((await get(a.admin!.port, '/api/clients')).body)).toEqual([['dev', 'node-a']])
  }, 60_000)

  test('GET /api/cluster: each node\'s counters (messages by QoS, rules) as published through it, and their sums, rules summed by name', async () => {
    const rules = tempDir('switchyard-rules-')
    writeFileSync(path.join(rules, 'relay.js'), 'export const topics = [\'in/+\']\nexport function convert (msg) { return { topic: \'out/\' + msg.topic.slice(3), payload: msg.payload } }\n')
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 }, rules: { dir: rules } }, { heartbeatMs: H })
    const b = await childBroker('node-b', rules)
    const sub = await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'sub' })
    await sub.subscribeAsync('in/#', { qos: 2 })
    const pubA = await connect(urlFor(a), { clientId: 'pub-a' })
    const pubB = await connect(`mqtt://127.0.0.1:${b.port}`, { clientId: 'pub-b' })
    for (let i = 0; i < 5; i++) await pubA.publishAsync('in/a', `a${i}`, { qos: 1 })
    for (let i = 0; i < 3; i++) await pubB.publishAsync('in/b', `b${i}`, { qos: 0 })
    for (let i = 0; i < 2; i++) await pubB.publishAsync('in/b', `c${i}`, { qos: 2 })
    // Each barrier is one more QoS 1 message through its node and its rule.
    await barrier(pubA, sub, 'in/x')
    await barrier(pubB, sub, 'in/y')

    const expected = {
      a: { messagesReceived: [0, 6, 0], messagesSent: [0, 0, 0], relay: { matched: 6, outputs: 6 } },
      b: { messagesReceived: [3, 1, 2], messagesSent: [3, 7, 2], relay: { matched: 6, outputs: 6 } }
    }
    let view: any
    await until(async () => {
      view = (await get(a.admin!.port, '/api/cluster')).body
      const t = view.totals?.counters
      return t !== undefined && JSON.stringify(t.messagesSent) === '[3,7,2]' && t.rules.relay?.outputs === 12 && JSON.stringify(t.messagesReceived) === '[3,7,2]'
    }, 'both nodes\' counters summed in /api/cluster', 15_000)
    const [na, nb] = view.nodes
    for (const [n, e] of [[na, expected.a], [nb, expected.b]] as const) {
      expect(n.counters.messagesReceived).toEqual(e.messagesReceived)
      expect(n.counters.messagesSent).toEqual(e.messagesSent)
      expect(n.counters.rules.relay).toMatchObject({ ...e.relay, failed: 0, skipped: 0 })
      expect(n.counters).toMatchObject({ refusedWhileRedisAway: { qos0: 0, qos12: 0 }, willsPublished: 0, rulesOmitted: 0 })
    }
    expect(view.totals.counters.rules).toEqual({ relay: { matched: 12, outputs: 12, dropped: 0, failed: 0, timeouts: 0, memoryErrors: 0, loopDropped: 0, skipped: 0, lostToHostCrash: 0 } })
  }, 60_000)
})
