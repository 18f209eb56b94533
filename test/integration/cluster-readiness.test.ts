// src/cluster/readiness.ts against a real redis-server that is killed
// (kill -9), stopped (SIGSTOP) and started again: readiness follows it, the
// outage is counted and logged once, /healthz has what it needs for a 503,
// the gate acknowledges nothing that was not stored and buffers nothing past
// its bounds, and everything recovers with no restart.
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, expect, onTestFinished, test } from 'vitest'
import { connectRedis } from '../../src/cluster/redis.js'
import { createReadiness, type Readiness, type ReadinessOptions } from '../../src/cluster/readiness.js'
import { SwitchyardError } from '../../src/errors.js'
import { captureLog } from '../helpers/log.js'
import { redisServer } from '../helpers/redis-server.js'
import { until } from '../helpers/wait.js'

const HB = 200
const server = redisServer()
// a test that failed mid-outage leaves the next one a running Redis
afterEach(async () => { if (!server.running) await server.start() })

// ioredis with retries=1 killed nodes through unhandled rejections (issue 13).
const unhandled: unknown[] = []
const onUnhandled = (reason: unknown): void => { unhandled.push(reason) }
beforeAll(() => { process.on('unhandledRejection', onUnhandled) })
afterAll(() => {
  process.off('unhandledRejection', onUnhandled)
  expect(unhandled).toEqual([])
})

async function connection (name: string): Promise<Redis> {
  const redis = await connectRedis(server.url, { heartbeatMs: HB, name })
  onTestFinished(() => { redis.disconnect() })
  return redis
}

function readiness (options: Partial<ReadinessOptions> = {}): Readiness & { log: ReturnType<typeof captureLog> } {
  const log = captureLog('debug')
  const r = createReadiness({ logger: log.logger, pingMs: 50, pingTimeoutMs: 200, ...options })
  onTestFinished(() => r.close())
  return Object.assign(r, { log })
}

const next = (r: Readiness, ready: boolean): Promise<void> => new Promise(resolve => {
  const on = (value: boolean): void => { if (value === ready) { r.off('change', on); resolve() } }
  r.on('change', on)
})

test('kill -9 of Redis: not ready at once (event, health for a 503, probe fails), commands fail instead of queueing; back by itself, subscriptions too, one outage logged', async () => {
  const store = await connection('store')
  const sub = await connection('emitter-sub')
  const received: string[] = []
  sub.on('message', (_channel: string, message: string) => received.push(message))
  await sub.subscribe('switchyard-test')
  const r = readiness()
  r.watch(store, 'store')
  r.watch(sub, 'emitter-sub')
  expect(r.ready).toBe(true)
  expect(r.health()).toEqual({ ok: true, outages: 0, connections: [{ name: 'store', status: 'ready', ok: true }, { name: 'emitter-sub', status: 'ready', ok: true }] })

  const down = next(r, false)
  await server.kill('SIGKILL')
  await down
  expect(r.ready).toBe(false)
  const health = r.health()
  expect(health.ok).toBe(false)
  expect(health.outages).toBe(1)
  expect(health.downSince).toBeDefined()
  await until(() => r.health().connections.every(c => !c.ok), 'both connections to be down')
  const probe = await r.probe().catch((e: unknown) => e)
  expect(probe).toBeInstanceOf(SwitchyardError)
  expect((probe as SwitchyardError).code).toBe('ERR_CLUSTER_UNAVAILABLE')
  // enableOfflineQueue false: a command fails now, nothing waits in memory
  await expect(store.rpush('queue', 'x')).rejects.toThrow(/enableOfflineQueue|Connection is closed/)
  expect((store as unknown as { offlineQueue: { length: number } }).offlineQueue.length).toBe(0)

  const up = next(r, true)
  await server.start()
  await up
  expect(r.health()).toMatchObject({ ok: true, outages: 1 })
  expect(r.stats().lastOutageMs).toBeGreaterThan(0)
  await until(async () => (await store.publish('switchyard-test', 'after')) === 1, 'the subscriber to be subscribed again')
  await until(() => received.includes('after'), 'the message on the resubscribed connection')

  const warns = r.log.lines.filter(l => l.level === 40 && String(l.msg).includes('Redis unreachable'))
  const infos = r.log.lines.filter(l => l.level === 30 && String(l.msg).includes('Redis reachable again'))
  expect(warns).toHaveLength(1)
  expect(infos).toHaveLength(1)
  expect(infos[0]!.outageMs).toBe(r.stats().lastOutageMs)
})

test('the gate: a QoS 1 publish is acknowledged only once stored; through a kill -9 of Redis nothing acknowledged is lost (AOF) and nothing beyond the budget is held', async () => {
  const store = await connection('store')
  await store.del('stored')
  const r = readiness({ holdMs: 300, holdBytes: 4096 })
  r.watch(store, 'store')
  const N = 600
  const acked = new Set<number>()
  let refused = 0
  let failed = 0
  let maxHeld = 0
  // What the broker does for one QoS 1 PUBLISH: gate, store, then PUBACK.
  async function publish (id: number): Promise<boolean> {
    const admitted = r.admit(100)
    maxHeld = Math.max(maxHeld, r.stats().heldBytes)
    if (!(admitted === true || await admitted)) { refused++; return false }
    try {
      await store.rpush('stored', String(id))
    } catch {
      r.reportFailure(new Error('store failed'), 'store')
      failed++
      return false
    }
    acked.add(id)
    return true
  }
  // 20 clients, each sending its messages one after another, again after a refusal
  // (as a client resends unacknowledged messages on reconnect [MQTT-4.4.0-1]).
  let outage: Promise<void> | undefined
  const clients = Array.from({ length: 20 }, async (_, c) => {
    for (let id = c; id < N; id += 20) {
      while (!(await publish(id))) await new Promise(resolve => setTimeout(resolve, 10))
      if (acked.size >= N / 3 && outage === undefined) {
        outage = (async () => {
          await server.kill('SIGKILL')
          await until(() => refused > 20, 'publishes refused during the outage')
          await server.start()
        })()
      }
    }
  })
  await Promise.all(clients)
  await outage
  expect(acked.size).toBe(N)
  expect(refused + failed).toBeGreaterThan(20)
  expect(maxHeld).toBeLessThanOrEqual(4096)
  const stored = new Set((await store.lrange('stored', 0, -1)).map(Number))
  const lost = [...acked].filter(id => !stored.has(id))
  expect(lost).toEqual([])
  expect(r.stats()).toMatchObject({ ready: true, outages: 1, held: 0, heldBytes: 0 })
}, 30_000)

test('admit() holds within holdBytes, releases when Redis is back, refuses after holdMs, and close() refuses what it holds', async () => {
  const store = await connection('store')
  const long = readiness({ holdMs: 30_000, holdBytes: 1000 })
  const short = readiness({ holdMs: 50 })
  const closing = readiness({ holdMs: 30_000 })
  for (const r of [long, short, closing]) r.watch(store, 'store')
  expect(long.admit(10)).toBe(true)
  const down = Promise.all([next(long, false), next(short, false), next(closing, false)])
  await server.kill('SIGKILL')
  await down
  const held = long.admit(600)
  expect(held).toBeInstanceOf(Promise)
  expect(long.admit(600)).toBe(false)
  expect(long.stats()).toMatchObject({ held: 1, heldBytes: 600, refused: 1 })
  expect(await short.admit(10)).toBe(false)
  const cut = closing.admit(10)
  await closing.close()
  await closing.close()
  expect(await cut).toBe(false)
  expect(closing.admit(10)).toBe(false)
  await server.start()
  expect(await held).toBe(true)
  expect(long.stats()).toMatchObject({ held: 0, heldBytes: 0, refused: 1 })
})

test('a Redis that stops answering but keeps its sockets (SIGSTOP) is caught by PING; SIGCONT recovers it', async () => {
  const store = await connection('store')
  const r = readiness()
  r.watch(store, 'store')
  const down = next(r, false)
  await server.kill('SIGSTOP')
  try {
    await down
    expect(r.health().connections[0]).toMatchObject({ name: 'store', status: 'ready', ok: false, error: expect.stringMatching(/PING not answered/) })
  } finally {
    await server.kill('SIGCONT')
  }
  await next(r, true)
  expect(r.stats()).toMatchObject({ ready: true, outages: 1 })
})
