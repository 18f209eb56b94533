import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'

/*
 * MQTT 3.1.1 section 4.6 (ordered topic): a connected persistent QoS 1
 * subscriber on LevelDB got 4,476 to 5,357 of one publisher's 20,000 QoS 1
 * messages after a higher-numbered one (memory: 0). Aedes emits a message
 * only once it is queued for the persistent sessions, and those enqueues
 * settled in any order: LevelDB's batches, and the queue cap's drops (no
 * write) at once. docs/aedes-gaps.md, "QoS 1 order on LevelDB: the enqueue
 * before the emit".
 */
const N = 5_000

describe.each([
  ['the default queue cap (most are dropped from the store, delivered live)', {}],
  ['no queue cap', { limits: { maxQueuedMessages: 0 } }]
] as const)('one publisher\'s QoS 1 messages to a connected persistent subscriber on LevelDB, %s', (_, limits) => {
  test(`arrive in the order published (${N})`, async () => {
    const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') }, ...limits })
    const url = urlFor(broker)
    const sub = await connect(url, { clientId: 'ordered', clean: false, protocolVersion: 4 })
    await sub.subscribeAsync('o/#', { qos: 1 })
    const pub = await connect(url, { clientId: 'publisher', protocolVersion: 4 })
    // not awaited one by one: many PUBLISHes in one socket read, as a real burst
    const acks = Array.from({ length: N }, (_, i) => pub.publishAsync('o/1', String(i), { qos: 1 }))
    const got = await inbox(sub).waitFor(N, 60_000)
    await Promise.all(acks)

    let outOfOrder = 0
    let highest = -1
    for (const m of got) {
      const i = Number(m.payload)
      if (i < highest) outOfOrder++
      highest = Math.max(highest, i)
    }
    expect(outOfOrder).toBe(0)
    expect(got.map(m => Number(m.payload))).toEqual(Array.from({ length: N }, (_, i) => i))
  }, 90_000)
})
