/*
 * Issue 13, operations of a wired cluster node (src/cluster/node.ts):
 * GET /api/cluster lists the nodes with their sums, /api/clients lists every
 * node's clients with their node, /healthz reports every Redis connection, $SYS per node under
 * $SYS/switchyard/nodes/<nodeId>/... (the $SYS/broker/... values and the
 * rules' status), where no node overwrites another's.
 */
import { describe, expect, test } from 'vitest'
import { barrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { urlFor } from '../helpers/broker.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()
const H = 300

async function get (port: number, path: string): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, body: await res.json() }
}

describe('cluster: operations', () => {
  test('GET /api/cluster lists every node (id, address, last heartbeat, clients, messages per second) and their sums; /api/clients names the node', async () => {
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    const b = await startNode(redis.url, 'node-b', { admin: { port: 0 } }, { heartbeatMs: H })
    await connect(urlFor(a), { clientId: 'on-a' })
    await connect(urlFor(b), { clientId: 'on-b-1' })
    await connect(urlFor(b), { clientId: 'on-b-2' })
    // the counts reach Redis with the next heartbeat
    let view: any
    await until(async () => {
      view = (await get(a.admin!.port, '/api/cluster')).body
      return view.totals?.clients === 3
    }, 'both nodes\' clients in /api/cluster', 10_000)
    expect(view.nodeId).toBe('node-a')
    expect(view.nodes.map((n: { nodeId: string }) => n.nodeId)).toEqual(['node-a', 'node-b'])
    expect(view.nodes.map((n: { clients: number }) => n.clients)).toEqual([1, 2])
    for (const n of view.nodes) {
      expect(n).toMatchObject({ heartbeatMs: H, address: expect.stringMatching(/:\d+$/), messagesPerSecond: expect.any(Number) })
      expect(Date.parse(n.lastHeartbeat)).not.toBeNaN()
    }
    expect(view.totals).toMatchObject({ nodes: 2, clients: 3 })
    expect(view.self).toMatchObject({ readiness: { ready: true, outages: 0, refused: 0 }, wills: { published: 0, failed: 0 }, qos0Dropped: 0 })
    // the same from the library
    expect((await b.cluster!()).nodes).toHaveLength(2)

    // every node's clients, on any node (test/integration/cluster-admin.test.ts has more)
    const listed = async (): Promise<string[][]> => ((await get(b.admin!.port, '/api/clients')).body as Array<{ clientId: string, node: string }>).map(c => [c.clientId, c.node])
    await until(async () => (await listed()).length === 3, 'node-a\'s client on node-b\'s /api/clients')
    expect(await listed()).toEqual([['on-a', 'node-a'], ['on-b-1', 'node-b'], ['on-b-2', 'node-b']])

    const health = await get(a.admin!.port, '/healthz')
    expect(health.status).toBe(200)
    expect(health.body.cluster.redis.connections.map((c: { name: string }) => c.name).sort()).toEqual(expect.arrayContaining(['cluster', 'emitter-pub', 'emitter-sub', 'store']))

    const metrics = await (await fetch(`http://127.0.0.1:${a.admin!.port}/metrics`)).text()
    expect(metrics).toMatch(/^switchyard_cluster_ready\{node="node-a"\} 1$/m)
    expect(metrics).toMatch(/^switchyard_cluster_wills_published_total\{node="node-a"\} 0$/m)

    // a node that leaves is gone from the list
    await b.close()
    await until(async () => (await get(a.admin!.port, '/api/cluster')).body.nodes.length === 1, 'node-b gone from /api/cluster')
  }, 30_000)

  test('per-node $SYS: $SYS/switchyard/nodes/<nodeId>/... mirrors each node\'s $SYS/broker/..., and rule status per node is not overwritten by the other node', async () => {
    const rule = { name: 'same-rule', source: 'export const topics = [\'in/+\']\nexport function convert (msg) { return { topic: \'out\', payload: msg.payload } }' }
    const a = await startNode(redis.url, 'node-a', { sys: { interval: 1 } }, { heartbeatMs: H })
    const b = await startNode(redis.url, 'node-b', { sys: { interval: 1 } }, { heartbeatMs: H })
    await a.rules.add(rule)
    await b.rules.add(rule)
    // Subscribed before node-a's count changes: $SYS values are published
    // only when they change, and another node's retained copy is not replayed.
    const watcher = await connect(urlFor(b), { clientId: 'sys-watcher' })
    await watcher.subscribeAsync(['$SYS/switchyard/nodes/+/rules/same-rule', '$SYS/switchyard/nodes/+/clients/connected'], { qos: 0 })
    const box = inbox(watcher)
    // a message through node-a's rule only: its counters differ from node-b's
    const pub = await connect(urlFor(a), { clientId: 'pub' })
    await pub.publishAsync('in/1', 'x', { qos: 1 })
    const latest = (topic: string): any => {
      const m = box.messages.filter(x => x.topic === topic).at(-1)
      return m === undefined ? undefined : m.payload
    }
    await until(() => {
      const ra = latest('$SYS/switchyard/nodes/node-a/rules/same-rule')
      const rb = latest('$SYS/switchyard/nodes/node-b/rules/same-rule')
      return ra !== undefined && rb !== undefined && JSON.parse(ra).matched === 1
    }, 'both nodes\' rule status, node-a\'s having run once', 10_000)
    expect(JSON.parse(latest('$SYS/switchyard/nodes/node-b/rules/same-rule')).matched).toBe(0)
    await until(() => latest('$SYS/switchyard/nodes/node-a/clients/connected') === '1' && latest('$SYS/switchyard/nodes/node-b/clients/connected') === '1',
      'each node\'s connected count under its own node', 10_000)
    // Retained $SYS stays in each node's memory (broker/persistence/sys-retained.ts):
    // a new subscriber gets its own node's retained copy, live values from every node.
    for (const [node, id] of [[a, 'node-a'], [b, 'node-b']] as const) {
      const late = await connect(urlFor(node), { clientId: `late-${id}` })
      await late.subscribeAsync('$SYS/switchyard/nodes/+/rules/same-rule')
      await until(() => inbox(late).messages.some(m => m.retain && m.topic === `$SYS/switchyard/nodes/${id}/rules/same-rule`), `${id}'s retained status replayed`)
    }
  }, 30_000)

  test('Redis lost its data (FLUSHALL): the node registers again and records its connected clients\' wills again', async () => {
    const a = await startNode(redis.url, 'node-a', {}, { heartbeatMs: H })
    await connect(urlFor(a), { clientId: 'dev', will: { topic: 'status/dev', payload: Buffer.from('offline'), qos: 1, retain: false } })
    expect(await redis.server.admin.exists('switchyard:cluster:will:dev')).toBe(1)
    await redis.server.admin.flushall()
    await until(async () => await redis.server.admin.exists('switchyard:cluster:will:dev') === 1, 'the will recorded again', 10_000)
    expect((await a.cluster!()).nodes.map(n => n.nodeId)).toEqual(['node-a'])
  }, 30_000)

  test('an evicted node (its nodeId taken by another incarnation) closes itself: its listeners stop, and it leaves its clients\' wills to the others', async () => {
    const a = await startNode(redis.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
    const b = await startNode(redis.url, 'node-b', {}, { heartbeatMs: H })
    const watcher = await connect(urlFor(b), { clientId: 'watcher' })
    await watcher.subscribeAsync(['status/+', 'marker'], { qos: 1 })
    const client = await connect(urlFor(a), { clientId: 'dev', will: { topic: 'status/dev', payload: Buffer.from('offline'), qos: 1, retain: false } })
    const closed = new Promise(resolve => client.once('close', () => resolve(null)))
    // what a second process started as node-a after this one stopped beating leaves in the registry
    await redis.server.admin.hset('switchyard:cluster:members', 'node-a', 'node-a/another-incarnation')
    await closed
    await expect(connect(urlFor(a), { clientId: 'late' })).rejects.toThrow()
    await until(async () => await redis.server.admin.exists('switchyard:cluster:will:dev') === 0, 'its will record removed on close')
    // not published by the evicted node itself (here no survivor declared it dead, so nobody does)
    const all = await barrier(b, watcher, 'marker')
    expect(all.filter(m => m.topic === 'status/dev')).toEqual([])
  }, 30_000)
})
