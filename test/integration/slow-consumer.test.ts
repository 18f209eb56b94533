import type net from 'node:net'
import { expect, test } from 'vitest'
import { startBroker, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'
import { until } from '../helpers/wait.js'

/** A subscriber that, once subscribed, never reads again: its socket buffers fill. */
async function frozenSubscriber (port: number, clientId: string, clean: boolean, topic: string, qos: 0 | 1): Promise<net.Socket> {
  const raw = await rawConnect(port)
  raw.send(connectPacket(clientId, { clean, keepalive: 0 }))
  expect((await raw.next()).cmd).toBe('connack')
  raw.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic, qos }] })
  expect((await raw.next()).cmd).toBe('suback')
  raw.socket.pause()
  return raw.socket
}

// Aedes finishes a publish only when every delivery has called back, and a
// delivery to a full socket waits for 'drain': one subscriber that stops
// reading held up every publisher on its topics (and so everyone) until it
// was disconnected.
test('a subscriber that stops reading does not hold up publishers or other subscribers', async () => {
  const broker = await startBroker()
  const port = broker.listeners[0]!.port
  const frozen = await frozenSubscriber(port, 'frozen', true, 'load/#', 0)

  const healthy = await connect(urlFor(broker))
  await healthy.subscribeAsync('load/#')
  const pub = await connect(urlFor(broker))
  const big = Buffer.alloc(16 * 1024, 1)
  for (let i = 0; i < 3000; i++) pub.publish('load/x', big)
  await pub.publishAsync('load/last', 'done', { qos: 1 })
  // Order, not time: the publisher got its PUBACK while the broker still had
  // the frozen client connected (before, only dropping it freed the publisher).
  expect(broker.clients().map(c => c.clientId)).toContain('frozen')
  const got = await inbox(healthy).waitFor(3001, 15_000)
  expect(got.at(-1)!.payload).toBe('done')
  expect(broker.stats().slowConsumerDropped).toBeGreaterThan(0)
  frozen.destroy()
})

test('a persistent session that stops reading loses no QoS 1 message: what was shed is delivered when it is back', async () => {
  const broker = await startBroker()
  const port = broker.listeners[0]!.port
  const frozen = await frozenSubscriber(port, 'sleepy', false, 'work/#', 1)

  const pub = await connect(urlFor(broker))
  const payload = Buffer.alloc(32 * 1024, 7)
  const n = 900 // under limits.maxQueuedMessages (1,000)
  for (let i = 0; i < n; i++) {
    payload.writeUInt32BE(i, 0)
    await pub.publishAsync('work/item', Buffer.from(payload), { qos: 1 })
    // 22 MB in: more than loopback's socket buffers absorb. Wait until the
    // broker has seen the subscriber stall (a second without progress,
    // stall.ts), then publish more (those are shed). Seen by its effect: QoS 0
    // probes to it start being shed and counted. A QoS 0 message is never
    // queued for the session, so no probe comes back below.
    if (i === 700) {
      await until(async () => {
        await pub.publishAsync('work/probe', 'probe', { qos: 0 })
        return broker.stats().slowConsumerDropped > 0
      }, 'the stalled subscriber to be noticed', 15_000, 50)
    }
  }
  // it did stall, and what came after was shed
  await until(() => broker.stats().slowConsumerDropped > 0, 'the stalled subscriber to be noticed')
  frozen.destroy()

  const back = await connect(urlFor(broker), { clientId: 'sleepy', clean: false })
  const got = await inbox(back).waitFor(n, 15_000)
  expect(got.filter(m => m.topic !== 'work/item').map(m => m.topic)).toEqual([])
  const seqs = new Set(got.map(m => (m.packet.payload as Buffer).readUInt32BE(0)))
  expect(seqs.size).toBe(n)
})
