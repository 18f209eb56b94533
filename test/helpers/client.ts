import { readFileSync } from 'node:fs'
import mqtt, { type IClientOptions, type MqttClient, type IPublishPacket } from 'mqtt'
import { onTestFinished } from 'vitest'
import { testCerts } from './broker.js'

export interface Received { topic: string, payload: string, qos: number, retain: boolean, packet: IPublishPacket }

export interface Inbox {
  readonly messages: Received[]
  /** Resolves once at least `n` messages have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Received[]>
  /**
   * Resolves when a message with exactly this topic and payload arrives. Such
   * messages (a barrier's marker, helpers/barrier.ts) are never put in
   * `messages`, nor counted by waitFor, copies included.
   */
  marker(topic: string, payload: string, timeoutMs?: number): Promise<void>
}

const inboxes = new WeakMap<MqttClient, Inbox>()

/**
 * Connects a real MQTT.js client, force-closed after the current test. It
 * records messages from before CONNACK on: queued messages can arrive in the
 * same read as the CONNACK.
 */
export async function connect (url: string, options: IClientOptions = {}): Promise<MqttClient> {
  const secure = url.startsWith('mqtts:') || url.startsWith('wss:')
  const client = mqtt.connect(url, {
    reconnectPeriod: 0,
    connectTimeout: 5000,
    ...(secure ? { ca: readFileSync(testCerts().ca), rejectUnauthorized: true } : {}),
    ...options
  })
  inboxes.set(client, record(client))
  onTestFinished(() => client.endAsync(true))
  await new Promise<void>((resolve, reject) => {
    client.once('connect', () => resolve())
    client.once('error', reject)
    client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)))
  })
  return client
}

export function inbox (client: MqttClient): Inbox {
  const box = inboxes.get(client)
  if (!box) throw new Error('client was not created by connect()')
  return box
}

function record (client: MqttClient): Inbox {
  const messages: Received[] = []
  const waiters: Array<() => void> = []
  // marker key -> its waiter, until it arrives (then a no-op: later copies are dropped too)
  const markers = new Map<string, () => void>()
  const keyOf = (topic: string, payload: string) => `${topic}\u0000${payload}`
  client.on('message', (topic, payload, packet) => {
    const marked = markers.get(keyOf(topic, payload.toString()))
    if (marked) { marked(); return }
    messages.push({ topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain, packet })
    for (const w of waiters.splice(0)) w()
  })
  return {
    messages,
    waitFor: (n, timeoutMs = 5000) => new Promise<Received[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${n} messages; got ${messages.length}: ${JSON.stringify(messages.map(m => m.topic))}`)), timeoutMs)
      const check = () => {
        if (messages.length >= n) { clearTimeout(timer); resolve(messages.slice()) } else waiters.push(check)
      }
      check()
    }),
    marker: (topic, payload, timeoutMs = 5000) => new Promise<void>((resolve, reject) => {
      const key = keyOf(topic, payload)
      if (markers.has(key)) throw new Error(`marker ${JSON.stringify(payload)} on ${topic} is already in use`)
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for the marker ${JSON.stringify(payload)} on ${topic}; got ${JSON.stringify(messages.map(m => m.topic))}`)), timeoutMs)
      markers.set(key, () => { clearTimeout(timer); markers.set(key, () => {}); resolve() })
    })
  }
}

/** The SUBACK return codes for a subscription, 0x80 (128) included: MQTT.js rejects on any 128, with the SUBACK attached. */
export async function granted (client: MqttClient, topics: string | string[]): Promise<number[]> {
  try {
    return (await client.subscribeAsync(topics)).map(g => g.qos)
  } catch (err) {
    const packet = (err as { packet?: { granted?: number[] } }).packet
    if (!packet?.granted) throw err
    return packet.granted
  }
}
