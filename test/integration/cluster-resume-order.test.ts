/*
 * Issue 13 and MQTT 3.1.1 section 4.6 [MQTT-4.6.0-2..6]: a persistent QoS 1
 * subscriber that comes back while a publisher streams gets every message,
 * in the order published. On a resume Aedes restores the subscriptions
 * (connect.js restoreSubs) before it replays the stored queue (emptyQueue):
 * a message published in between was delivered live first, ahead of older
 * ones still in the queue (cluster-workers.test.ts once saw gap-29 first).
 * vendor/aedes-patches/014-resume-replay-before-live.patch holds those until
 * the replay ends. The same shape runs on one node (memory, LevelDB) and on
 * two nodes on a real Redis, the subscriber resuming on the publisher's node
 * and on the other by turns.
 */
import path from 'node:path'
import type { MqttClient } from 'mqtt'
import { describe, expect, test } from 'vitest'
import type { Broker } from '../../src/index.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'
import { until } from '../helpers/wait.js'

const redis = useRedis()

/** Messages published; the subscriber resumes once every STEP of them. */
const N = 1_200
const STEP = 100
const WINDOW = 20
/** No cap: a message over it is not stored, and is lost if its session ends first. */
const NO_CAP = { limits: { maxQueuedMessages: 0 } }

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve))

/**
 * A publisher on `pubNode` streams N QoS 1 messages (WINDOW in flight). The
 * subscriber leaves and resumes alternately on each of `subNodes`: in round
 * r it is away until r * STEP + STEP / 2 are published (they are queued),
 * comes back while the publisher goes on to (r + 1) * STEP, takes at least
 * ten messages, and leaves again. Returns what each connection received.
 */
async function resumeWhileStreaming (pubNode: Broker, subNodes: Broker[]): Promise<string[][]> {
  const id = 'resumer'
  const first = await connect(urlFor(subNodes[0]!), { clientId: id, clean: false, protocolVersion: 4 })
  await first.subscribeAsync('r/#', { qos: 1 })
  await first.endAsync()
  const pub = await connect(urlFor(pubNode), { clientId: 'streamer', protocolVersion: 4 })

  let round = 0
  let published = 0
  const stream = (async () => {
    const inFlight = new Set<Promise<unknown>>()
    for (; published < N; published++) {
      // the publisher keeps within the subscriber's round, so that each resume is mid-stream
      while (published >= (round + 1) * STEP) await tick()
      const p = pub.publishAsync('r/t', `m${published}`, { qos: 1 })
      inFlight.add(p)
      void p.finally(() => inFlight.delete(p))
      if (inFlight.size >= WINDOW) await Promise.race(inFlight)
    }
    await Promise.all(inFlight)
  })()

  const sessions: MqttClient[] = []
  for (; round * STEP < N; round++) {
    while (published < round * STEP + STEP / 2) await tick()
    const sub = await connect(urlFor(subNodes[round % subNodes.length]!), { clientId: id, clean: false, protocolVersion: 4 })
    sessions.push(sub)
    await inbox(sub).waitFor(10, 20_000)
    while (published < Math.min(N, (round + 1) * STEP)) await tick()
    if ((round + 1) * STEP < N) await sub.endAsync()
  }
  await stream
  // the last session gets what the others left
  const seen = (): number => new Set(sessions.flatMap(s => inbox(s).messages.map(m => m.payload))).size
  // the assertions say what is missing
  await until(() => seen() >= N, `all ${N} messages`, 30_000, 50).catch(() => {})
  return sessions.map(s => inbox(s).messages.map(m => m.payload))
}

/** The received payloads of each connection that came after a higher-numbered one. */
function overtaken (sessions: string[][]): string[] {
  const late: string[] = []
  for (const got of sessions) {
    let highest = -1
    for (const p of got) {
      const i = Number(p.slice(1))
      if (i <= highest) late.push(`${p} after m${highest}`)
      highest = Math.max(highest, i)
    }
  }
  return late
}

function expectAllInOrder (sessions: string[][]): void {
  expect(overtaken(sessions)).toEqual([])
  const all = new Set(sessions.flat())
  expect(Array.from({ length: N }, (_, i) => `m${i}`).filter(p => !all.has(p))).toEqual([])
}

describe('a persistent QoS 1 subscriber resuming while a publisher streams gets every message, in order', () => {
  test('two cluster nodes on Redis: published on A, resumed on B and A by turns', async () => {
    const a = await startNode(redis.url, 'node-a', NO_CAP)
    const b = await startNode(redis.url, 'node-b', NO_CAP)
    expectAllInOrder(await resumeWhileStreaming(a, [b, a]))
  }, 90_000)

  test('one node, memory', async () => {
    const broker = await startBroker(NO_CAP)
    expectAllInOrder(await resumeWhileStreaming(broker, [broker]))
  }, 90_000)

  test('one node, LevelDB', async () => {
    const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') }, ...NO_CAP })
    expectAllInOrder(await resumeWhileStreaming(broker, [broker]))
  }, 90_000)
})
