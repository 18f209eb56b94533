/*
 * Issue 13, wired (src/cluster/node.ts): Redis stopped and started again
 * under QoS 1 load, with two real nodes and real clients. Nothing
 * acknowledged is lost (AOF on), new CONNECTs are refused meanwhile (CONNACK
 * Server unavailable), /healthz answers 503, and the nodes recover by
 * themselves, with no restart.
 *
 * In the adversarial suite (one file at a time) rather than npm test: under
 * npm test's parallel files on two cores it once hung past 120 s (1 of 6
 * full runs; alone it takes ~3 s). The waits that could hang are bounded
 * and named (within(), wait()), and a wait that does not end says how far
 * the run got (acknowledged, publishers connected, outages each node
 * counted), so a recurrence says where: open (issue 13). Since: 57 runs with
 * 1 to 5 copies at once, most pinned to one core (taskset -c 1), 56 passed;
 * one stopped at the 20 s bound then on 200 acknowledged before the outage
 * (no hang). Starving the event loop on purpose (a 400 ms busy loop every
 * 100 ms) gives the same stop: 199 acknowledged in 20 s, no Redis outage
 * counted by either node. So the two throughput waits allow 60 s.
 */
import type { MqttClient } from 'mqtt'
import { afterEach, expect, test } from 'vitest'
import { urlFor } from '../helpers/broker.js'
import { connect } from '../helpers/client.js'
import { startNode } from '../helpers/redis.js'
import { redisServer } from '../helpers/redis-server.js'
import { until } from '../helpers/wait.js'

const server = redisServer()
const H = 300

// a test that failed mid-outage leaves the next one a running Redis
afterEach(async () => { if (!server.running) await server.start() })

async function healthz (port: number): Promise<{ status: number, body: any }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`)
  return { status: res.status, body: await res.json() }
}

test('Redis stopped and started under QoS 1 load: nothing acknowledged is lost, CONNECT refused and /healthz 503 meanwhile, the nodes recover without a restart', async () => {
  const a = await startNode(server.url, 'node-a', { admin: { port: 0 } }, { heartbeatMs: H })
  const b = await startNode(server.url, 'node-b', { admin: { port: 0 } }, { heartbeatMs: H })
  // a persistent session, offline: every acknowledged message must be queued for it in Redis
  const sink = await connect(urlFor(b), { clientId: 'sink', clean: false })
  await sink.subscribeAsync('load/#', { qos: 1 })
  await sink.endAsync()

  const acked: string[] = []
  // A client of a cluster retries on CONNACK Server unavailable (MQTT.js does not by default).
  const publishers = await Promise.all([0, 1, 2].map(i => connect(urlFor(a), { clientId: `load-${i}`, reconnectPeriod: 100, reconnectOnConnackError: true })))
  for (const p of publishers) p.on('error', () => {})
  let stop = false
  const run = (pub: MqttClient, i: number) => (async () => {
    for (let n = 0; !stop; n++) {
      const payload = `${i}-${n}`
      try {
        await pub.publishAsync(`load/${i}`, payload, { qos: 1 })
        acked.push(payload)
      } catch {
        // not acknowledged: it does not count
      }
      // while the connection is down, MQTT.js would otherwise spin on offline failures
      if (!pub.connected) await new Promise(resolve => setTimeout(resolve, 20))
    }
  })()
  const loops = publishers.map(run)
  // what a wait that did not end says about the run
  const outages = async (node: typeof a): Promise<string> => /switchyard_cluster_redis_outages_total\{[^}]*\} (\d+)/.exec(await node.metrics())?.[1] ?? '?'
  const state = async (): Promise<string> => `${acked.length} acknowledged, ${publishers.filter(p => p.connected).length} of 3 publishers connected, Redis outages counted: node-a ${await outages(a)}, node-b ${await outages(b)}`
  const wait = (check: () => boolean | Promise<boolean>, what: string, ms: number): Promise<void> =>
    until(check, what, ms).catch(async (err: Error) => { throw new Error(`${err.message} (${await state()})`) })
  await wait(() => acked.length >= 200, '200 acknowledged before the outage', 60_000)
  // an MQTT 5 client on node-b, connected before the outage
  const v5 = await connect(urlFor(b), { clientId: 'v5', protocolVersion: 5 })
  v5.on('error', () => {})

  await server.stop()
  await until(async () => (await healthz(a.admin!.port)).status === 503, 'node-a /healthz 503', 10_000)
  const down = await healthz(b.admin!.port)
  expect(down.status).toBe(503)
  expect(down.body.cluster.ok).toBe(false)
  expect(down.body.cluster.errors.join()).toMatch(/Redis unreachable/)
  // a new client is refused: CONNACK 0x03 Server unavailable
  await expect(connect(urlFor(b), { clientId: 'newcomer' })).rejects.toThrow(/unavailable|closed/i)
  // MQTT 5: CONNACK 0x88 Server unavailable
  await expect(connect(urlFor(b), { clientId: 'newcomer-5', protocolVersion: 5 })).rejects.toMatchObject({ code: 0x88 })
  // QoS 0 while not ready: dropped and counted; QoS 1: held up to 2 s, then
  // DISCONNECT 0x89 Server busy without PUBACK (Redis stays away longer than
  // that here; 0x88 is a CONNACK code only, and MQTT.js refuses it in a DISCONNECT)
  v5.publish('load/v5', 'dropped', { qos: 0 })
  const disconnected = new Promise<number | undefined>(resolve => v5.once('disconnect', packet => resolve(packet.reasonCode)))
  let v5Acked = false
  v5.publishAsync('load/v5', 'refused', { qos: 1 }).then(() => { v5Acked = true }, () => {})
  // every QoS 1 publisher of node-a is in the same position: refused, it reconnects and sends again
  expect(await within(disconnected, 15_000, 'the v5 client\'s DISCONNECT 0x89')).toBe(0x89)
  expect(v5Acked).toBe(false)
  // counted in the metrics (GET /api/cluster is 503 meanwhile: it reads the registry in Redis)
  const metrics = await b.metrics()
  expect(metrics).toMatch(/^switchyard_cluster_publishes_refused_total\{node="node-b",qos="0"\} [1-9]/m)
  expect(metrics).toMatch(/^switchyard_cluster_publishes_refused_total\{node="node-b",qos="1\/2"\} [1-9]/m)
  expect(metrics).toMatch(/^switchyard_cluster_ready\{node="node-b"\} 0$/m)
  expect((await fetch(`http://127.0.0.1:${b.admin!.port}/api/cluster`)).status).toBe(503)
  const during = acked.length

  await server.start()
  await wait(async () => (await healthz(a.admin!.port)).status === 200 && (await healthz(b.admin!.port)).status === 200, 'both nodes ready again', 15_000)
  await wait(() => acked.length >= during + 200, '200 more acknowledged after the outage', 60_000)
  stop = true
  await within(Promise.all(loops), 30_000, 'every publisher\'s last QoS 1 publish to settle (one stuck without its PUBACK?)')
  expect(a.stats().connectedClients).toBeGreaterThan(0)
  expect((await a.cluster!()).self.readiness.outages).toBeGreaterThanOrEqual(1)
  // one outage each is the real one; more are PINGs late under load (pingTimeoutMs, from heartbeatMs)
  console.log(`cluster-outage: ${await state()}`)

  const back = await connect(urlFor(a), { clientId: 'sink', clean: false })
  const received = new Set<string>()
  back.on('message', (_t, p) => received.add(p.toString()))
  await until(() => acked.every(p => received.has(p)), `every acknowledged message queued for the sink (missing ${acked.filter(p => !received.has(p)).slice(0, 5).join(', ')})`, 30_000)
}, 200_000)

/** A wait that names itself when it does not end, instead of hanging until the test's timeout. */
async function within<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}
