/*
 * What aedes-persistence-redis 12 gets wrong, on the bare package (each test
 * fails once an upgrade fixes it, and src/cluster/store.ts's replacement can
 * go), and that Switchyard's store does not (docs/aedes-gaps.md#redis-persistence-and-emitter).
 * The persistence contract runs on the Redis store too
 * (persistence-contract.test.ts); the brokers' behaviour is in cluster-*.test.ts.
 */
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { describe, expect, onTestFinished, test } from 'vitest'
import { openCluster } from '../../src/cluster/context.js'
import { openRedisStore } from '../../src/cluster/store.js'
import { parseConfig } from '../../src/config.js'
import type { AedesPersistence } from '../../src/broker/persistence/store.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { startNode, useRedis } from '../helpers/redis.js'

const redis = useRedis()
const require = createRequire(import.meta.url)

// What the stores use of Aedes: its id, and subscribe/publish on its emitter (the subscription broadcast).
type Listener = (packet: object, done: () => void) => void
function fakeBroker (id: string) {
  const emitter = (require('mqemitter') as () => { on(t: string, f: Listener, d?: () => void): void, removeListener(t: string, f: Listener, d?: () => void): void, emit(p: object, d?: () => void): void })()
  return {
    id,
    subscribe: (topic: string, f: Listener, done?: () => void) => emitter.on(topic, f, done),
    unsubscribe: (topic: string, f: Listener, done?: () => void) => emitter.removeListener(topic, f, done),
    publish: (packet: object, done?: () => void) => emitter.emit(packet, done)
  }
}

/** The package's async class on its own connection, set up. */
async function bare (): Promise<AedesPersistence> {
  const Persistence = require('aedes-persistence-redis/asyncPersistence.js') as new (o: { conn: Redis }) => AedesPersistence
  const conn = new Redis(redis.url)
  const store = new Persistence({ conn })
  await store.setup(fakeBroker('bare') as never)
  onTestFinished(async () => { await store.destroy() })
  return store
}

async function ours (): Promise<AedesPersistence> {
  const ctx = await openCluster(parseConfig({ cluster: { redis: redis.url, nodeId: 'store-test' } }).cluster!, { logger: pino({ level: 'silent' }) })
  onTestFinished(() => ctx.close())
  const { store } = openRedisStore(ctx)
  await store.setup(fakeBroker(ctx.brokerId) as never)
  onTestFinished(async () => { await store.destroy() })
  return store
}

const CLIENT = { id: 'c1' }
let counter = 0
const message = (payload: string, qos = 1) => ({ cmd: 'publish', topic: 't', payload: Buffer.from(payload), qos, retain: false, dup: false, brokerId: 'b', brokerCounter: ++counter })

async function count (stream: AsyncIterable<unknown>): Promise<number> {
  let n = 0
  for await (const _ of stream) n++
  return n
}

describe('aedes-persistence-redis 12, bare', () => {
  test('its retained stream is an async generator with no pipe(), which Aedes calls on the first SUBSCRIBE', async () => {
    const store = await bare()
    const stream = store.createRetainedStreamCombi(['#']) as unknown as object
    expect('pipe' in stream).toBe(false)
    expect(Symbol.asyncIterator in stream).toBe(true)
  })

  test('QoS 2: an acknowledged message leaves an outgoing:<client>:<broker>:<counter> entry in the queue', async () => {
    const store = await bare()
    const m = message('two', 2)
    await store.outgoingEnqueueCombi([{ clientId: CLIENT.id }], m)
    await store.outgoingUpdate(CLIENT, { ...m, messageId: 1 })
    await store.outgoingUpdate(CLIENT, { cmd: 'pubrel', messageId: 1 })
    await store.outgoingClearMessageId(CLIENT, { cmd: 'pubcomp', messageId: 1 })
    expect(await redis.server.admin.lrange('outgoing:c1', 0, -1)).toEqual(['outgoing:c1:b:' + m.brokerCounter])
  })

  test('a queue streams at most 1,001 entries (maxSessionDelivery): one CONNECT replays no more', async () => {
    const store = await bare()
    for (let i = 0; i < 1500; i++) await store.outgoingEnqueueCombi([{ clientId: CLIENT.id }], message(String(i)))
    expect(await count(store.outgoingStream(CLIENT) as unknown as AsyncIterable<unknown>)).toBe(1001)
  })
})

describe('Switchyard\'s Redis store', () => {
  test('every stream Aedes reads is a Readable', async () => {
    const store = await ours()
    for (const stream of [store.createRetainedStreamCombi(['#']), store.createRetainedStream('a'), store.outgoingStream(CLIENT), store.streamWill({}), store.getClientList('t')]) {
      expect(stream).toBeInstanceOf(Readable)
    }
  })

  test('QoS 2: nothing is left once PUBCOMP clears it', async () => {
    const store = await ours()
    const m = message('two', 2)
    await store.outgoingEnqueueCombi([{ clientId: CLIENT.id }, { clientId: 'c2' }], m)
    await store.outgoingUpdate(CLIENT, { ...m, messageId: 1 })
    await store.outgoingUpdate(CLIENT, { cmd: 'pubrel', messageId: 1 })
    expect((await store.outgoingClearMessageId(CLIENT, { cmd: 'pubcomp', messageId: 1 }) as { cmd: string }).cmd).toBe('pubrel')
    expect(await redis.server.admin.lrange('outgoing:c1', 0, -1)).toEqual([])
    // c2's entry still points at the message
    expect(await count(store.outgoingStream({ id: 'c2' }))).toBe(1)
    await store.outgoingClearMessageId({ id: 'c2' }, m)
    expect((await redis.server.admin.keys('*')).filter(k => k.startsWith('packet:') || k.startsWith('outgoing'))).toEqual([])
  })

  test('a queue streams whole, in order (1,500 entries)', async () => {
    const store = await ours()
    for (let i = 0; i < 1500; i++) await store.outgoingEnqueueCombi([{ clientId: CLIENT.id }], message(String(i)))
    const payloads: string[] = []
    for await (const p of store.outgoingStream(CLIENT)) payloads.push((p as { payload: Buffer }).payload.toString())
    expect(payloads).toEqual(Array.from({ length: 1500 }, (_, i) => String(i)))
  })

  test('a client unsubscribed from everything: its queue is dropped and the messages it alone held go', async () => {
    const store = await ours()
    await store.addSubscriptions(CLIENT, [{ topic: 't', qos: 1 }])
    await store.outgoingEnqueueCombi([{ clientId: CLIENT.id }], message('alone'))
    await store.removeSubscriptions(CLIENT, ['t'])
    expect((await redis.server.admin.keys('*')).filter(k => k.startsWith('packet:') || k.startsWith('outgoing'))).toEqual([])
  })
})

describe('mqemitter-redis: MQTT 5 properties across nodes', () => {
  test('a v5 message published with a Topic Alias reaches a v5 subscriber on the other node with its properties', async () => {
    const a = await startNode(redis.url, 'node-a')
    const b = await startNode(redis.url, 'node-b')
    const sub = await connect(urlFor(b), { clientId: 'v5-sub', protocolVersion: 5 })
    await sub.subscribeAsync('v5/#', { qos: 1 })
    const pub = await connect(urlFor(a), { clientId: 'v5-pub', protocolVersion: 5 })
    // Aedes resolves the alias and leaves topicAlias undefined, which msgpack turns into null
    await pub.publishAsync('v5/t', 'first', { qos: 1, properties: { topicAlias: 1, userProperties: { k: 'v' }, contentType: 'text/plain' } })
    await pub.publishAsync('', 'second', { qos: 1, properties: { topicAlias: 1 } })
    const got = await inbox(sub).waitFor(2)
    expect(got.map(m => [m.topic, m.payload])).toEqual([['v5/t', 'first'], ['v5/t', 'second']])
    expect(got[0]!.packet.properties).toMatchObject({ userProperties: { k: 'v' }, contentType: 'text/plain' })
    expect(sub.connected).toBe(true)
  })
})
