/*
 * Barriers, for tests that check that something did NOT arrive. Waiting a
 * while and then looking passes trivially on a slow machine (the message was
 * merely late). Instead, send a marker on a path ordered after the message
 * that must not arrive, wait for the marker, and then look: whatever was
 * going to arrive before it has.
 *
 * Orders relied on:
 * - one publisher's messages reach one subscriber in the order published
 *   [MQTT-4.6.0-6], and a QoS 1 marker published after the PUBACK (or an
 *   awaited broker.publish()) of a message comes after it too: the broker
 *   emits a message before it acknowledges it (docs/architecture.md, steps 6-8);
 * - a persistent session's queue is replayed before what is published after
 *   it reconnects (test/integration/queued-replay.test.ts);
 * - a rule's outputs are published in the order of its inputs (src/rules/publish.ts);
 * - retained messages are replayed filter by filter, in the SUBSCRIBE's order
 *   (createRetainedStreamCombi in src/broker/persistence/sys-retained.ts).
 */
import type { MqttClient } from 'mqtt'
import type { Broker, Message } from '../../src/index.js'
import { topicMatches } from '../../src/topics.js'
import { inbox, type Received } from './client.js'

let markers = 0

async function publish (pub: MqttClient | Broker, topic: string, payload: string, retain: boolean): Promise<void> {
  if ('publishAsync' in pub) await pub.publishAsync(topic, payload, { qos: 1, retain })
  else await pub.publish({ topic, payload, qos: 1, retain })
}

/**
 * Publishes a marker (QoS 1, a payload of its own) from `pub` on `topic`,
 * after everything `pub` has published so far, and waits until `sub`
 * receives it, on `arrivesOn` (default `topic`: a rule may carry it to
 * another topic, payload unchanged). `sub` must already receive that topic.
 * Resolves with everything in `sub`'s inbox; the marker is kept out of it.
 */
export async function barrier (pub: MqttClient | Broker, sub: MqttClient, topic: string, options: { arrivesOn?: string, timeoutMs?: number } = {}): Promise<Received[]> {
  const payload = `barrier ${++markers}`
  const arrived = inbox(sub).marker(options.arrivesOn ?? topic, payload, options.timeoutMs)
  await publish(pub, topic, payload, false)
  await arrived
  return inbox(sub).messages.slice()
}

/**
 * For "no other retained message is replayed": publishes a retained marker on
 * `markerTopic` from `pub`, then subscribes `sub` to `filters` and, last in
 * the same SUBSCRIBE, to `markerTopic`, and waits for the marker. The replay
 * for `filters` is over then. The marker is unsubscribed and cleared after.
 * Resolves with everything in `sub`'s inbox; the marker is kept out of it.
 */
export async function retainedBarrier (pub: MqttClient | Broker, sub: MqttClient, filters: string | string[], markerTopic: string, options: { qos?: 0 | 1 | 2, timeoutMs?: number } = {}): Promise<Received[]> {
  const list = Array.isArray(filters) ? filters : [filters]
  const overlap = list.find(f => topicMatches(f, markerTopic))
  if (overlap !== undefined) throw new Error(`the marker topic ${markerTopic} matches ${overlap}: it would be replayed with it, not after it`)
  const payload = `retained barrier ${++markers}`
  const arrived = inbox(sub).marker(markerTopic, payload, options.timeoutMs)
  await publish(pub, markerTopic, payload, true)
  await sub.subscribeAsync([...list, markerTopic], { qos: options.qos ?? 0 })
  await arrived
  await sub.unsubscribeAsync(markerTopic)
  await publish(pub, markerTopic, '', true)
  return inbox(sub).messages.slice()
}

/**
 * Resolves with the next `n` messages the broker routes on `filter`, from the
 * call on. By then each one is stored (retained, queued for each offline
 * persistent session) and handed to the subscribers: the bus sees a message
 * after Aedes's store steps (docs/architecture.md, steps 7 to 10). Call it
 * before the publish that causes them.
 */
export function routed (broker: Broker, filter: string, n = 1, timeoutMs = 5000): Promise<Message[]> {
  return new Promise((resolve, reject) => {
    const seen: Message[] = []
    const timer = setTimeout(() => { stop(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${n} message(s) on ${filter} to be routed; saw ${seen.length}`)) }, timeoutMs)
    const stop = broker.subscribe(filter, m => {
      seen.push(m)
      if (seen.length === n) { clearTimeout(timer); stop(); resolve(seen) }
    })
  })
}
