/*
 * The persistence contract: what Switchyard relies on from the store Aedes
 * gets, that is the store as wrapPersistence stacks it (src/broker/persistence.ts).
 * One suite, run over every store kind by test/integration/persistence-contract.test.ts,
 * on real stores. Each layer's tests name the layer they stand for.
 */
import { createRequire } from 'node:module'
import { describe, expect, onTestFinished, test } from 'vitest'
import type { ClusterContext } from '../../src/cluster/context.js'
import type { Config } from '../../src/config.js'
import { openPersistence, wrapPersistence, type Persistence } from '../../src/broker/persistence.js'
import type { QueuedPacket } from '../../src/broker/persistence/store.js'

export interface StoreKind {
  name: string
  /** A new, empty store's config. Opened again after destroy(), a durable store holds what was written. */
  config(): Config['persistence']
  durable: boolean
  /** Whether it keeps MQTT 5 session expiry records (default: durable). */
  sessionExpiry?: boolean
  /** Whether it keeps Aedes's wills (default true; a cluster keeps them in src/cluster/wills.ts instead). */
  wills?: boolean
  /** The cluster context a { type: 'redis' } store is opened on, closed after the test. */
  cluster?(): Promise<ClusterContext>
}

interface Opened {
  p: Persistence
  retained: { readonly size: number }
  /** The bare store under the layers. */
  base: Persistence
  /** Clients the queue cap dropped a message for, in order. */
  drops: string[]
  close(): Promise<void>
}

// What a store may use of Aedes: its id, and (aedes-persistence-redis's
// broadcast of subscriptions between nodes) subscribe and publish on its emitter.
type Listener = (packet: object, done: () => void) => void
const emitter = (createRequire(import.meta.url)('mqemitter') as () => { on(t: string, f: Listener, d?: () => void): void, removeListener(t: string, f: Listener, d?: () => void): void, emit(p: object, d?: () => void): void })()
const BROKER = {
  id: 'contract-broker',
  subscribe: (topic: string, f: Listener, done?: () => void) => emitter.on(topic, f, done),
  unsubscribe: (topic: string, f: Listener, done?: () => void) => emitter.removeListener(topic, f, done),
  publish: (packet: object, done?: () => void) => emitter.emit(packet, done)
}
const CLIENT = { id: 'c1', clean: false }
let counter = 0

/** A PUBLISH as Aedes hands it to outgoingEnqueueCombi: numbered by the broker. */
function message (topic: string, payload: string, qos = 1) {
  return { cmd: 'publish' as const, topic, payload: Buffer.from(payload), qos, retain: false, dup: false, brokerId: BROKER.id, brokerCounter: ++counter }
}

async function all<T> (stream: AsyncIterable<unknown>): Promise<T[]> {
  const out: T[] = []
  for await (const item of stream) out.push(item as T)
  return out
}

const topics = async (stream: AsyncIterable<unknown>) => (await all<{ topic: string }>(stream)).map(m => m.topic).sort()
const payloads = async (stream: AsyncIterable<unknown>) => (await all<{ payload: Buffer }>(stream)).map(m => m.payload.toString())

export function persistenceContract (kind: StoreKind): void {
  /** Opens the wrapped store as the broker does, set up as Aedes does; closed after the test. */
  async function open (config = kind.config(), maxQueuedMessages = 1000): Promise<Opened> {
    const cluster = kind.cluster ? await kind.cluster() : undefined
    if (cluster) onTestFinished(() => cluster.close())
    const opened = await openPersistence(config, cluster)
    const drops: string[] = []
    const { persistence, retained } = await wrapPersistence(opened, { maxQueuedMessages, onQueueDrop: id => drops.push(id) })
    await persistence.setup(BROKER)
    let closed = false
    const close = async () => {
      if (closed) return
      closed = true
      await persistence.destroy()
    }
    onTestFinished(close)
    return { p: persistence, retained, base: opened.store, drops, close }
  }

  /** What Aedes does to deliver a queued message and have it acknowledged. */
  async function deliverAndAck (p: Persistence, packet: object, messageId: number): Promise<void> {
    await p.outgoingUpdate(CLIENT, { ...packet, messageId })
    await p.outgoingClearMessageId(CLIENT, { cmd: 'puback', messageId })
  }

  describe(`persistence contract: ${kind.name}`, () => {
    test('setup() is an AsyncFunction, and cleanIncoming is there only if the store has it: Aedes checks both', async () => {
      const { p, base } = await open()
      expect(p.setup.constructor.name).toBe('AsyncFunction')
      expect(typeof p.cleanIncoming).toBe(typeof base.cleanIncoming)
    })

    describe('retained messages', () => {
      test('stored, replayed to matching filters, cleared by an empty payload [MQTT-3.3.1-10]', async () => {
        const { p } = await open()
        await p.storeRetained({ topic: 'a/b', payload: Buffer.from('1') })
        await p.storeRetained({ topic: 'a/c', payload: Buffer.from('2') })
        await p.storeRetained({ topic: 'x', payload: Buffer.from('3') })
        await p.storeRetained({ topic: 'a/b', payload: Buffer.from('1b') })
        expect(await topics(p.createRetainedStreamCombi(['a/+']))).toEqual(['a/b', 'a/c'])
        expect(await payloads(p.createRetainedStream('a/b'))).toEqual(['1b'])
        await p.storeRetained({ topic: 'a/b', payload: Buffer.alloc(0) })
        expect(await topics(p.createRetainedStreamCombi(['a/#', 'x']))).toEqual(['a/c', 'x'])
      })

      // layer: retained-replay.ts
      test('a filter starting with a wildcard replays no $ topic; a $ filter does [MQTT-4.7.2-1]', async () => {
        const { p } = await open()
        await p.storeRetained({ topic: '$app/x', payload: Buffer.from('d') })
        await p.storeRetained({ topic: '$SYS/broker/uptime', payload: Buffer.from('s') })
        await p.storeRetained({ topic: 'app/x', payload: Buffer.from('a') })
        expect(await topics(p.createRetainedStreamCombi(['#']))).toEqual(['app/x'])
        expect(await topics(p.createRetainedStreamCombi(['+/x']))).toEqual(['app/x'])
        expect(await topics(p.createRetainedStreamCombi(['$app/#', '$SYS/#']))).toEqual(['$SYS/broker/uptime', '$app/x'])
      })

      // layer: sys-retained.ts
      test('$SYS/ retained messages are replayed from memory, never written to the store', async () => {
        const { p, base } = await open()
        await p.storeRetained({ topic: '$SYS/broker/clients/connected', payload: Buffer.from('3') })
        await p.storeRetained({ topic: '$SYS/broker/uptime', payload: Buffer.from('9') })
        expect(await topics(p.createRetainedStreamCombi(['$SYS/broker/#']))).toEqual(['$SYS/broker/clients/connected', '$SYS/broker/uptime'])
        expect(await topics(p.createRetainedStream('$SYS/broker/uptime'))).toEqual(['$SYS/broker/uptime'])
        expect(await topics(base.createRetainedStream('$SYS/#'))).toEqual([])
        await p.storeRetained({ topic: '$SYS/broker/uptime', payload: Buffer.alloc(0) })
        expect(await topics(p.createRetainedStreamCombi(['$SYS/#']))).toEqual(['$SYS/broker/clients/connected'])
      })

      if (kind.durable) {
        test('survive a restart; $SYS/ ones, which describe the previous process, do not', async () => {
          const config = kind.config()
          const first = await open(config)
          await first.p.storeRetained({ topic: 'keep/me', payload: Buffer.from('k') })
          await first.p.storeRetained({ topic: '$SYS/broker/uptime', payload: Buffer.from('9') })
          // as an earlier version did: $SYS/ in the store itself
          await first.base.storeRetained({ topic: '$SYS/broker/stale', payload: Buffer.from('old') })
          await first.close()
          const { p } = await open(config)
          expect(await topics(p.createRetainedStreamCombi(['#', '$SYS/#']))).toEqual(['keep/me'])
        })
      }
    })

    // layer: retained-count.ts
    describe('retained count', () => {
      test('follows stores and clears, once per topic, outside $SYS/', async () => {
        const { p, retained } = await open()
        expect(retained.size).toBe(0)
        await p.storeRetained({ topic: 'a', payload: Buffer.from('1') })
        await p.storeRetained({ topic: 'a', payload: Buffer.from('2') })
        await p.storeRetained({ topic: 'b', payload: Buffer.from('1') })
        await p.storeRetained({ topic: '$SYS/broker/uptime', payload: Buffer.from('1') })
        expect(retained.size).toBe(2)
        await p.storeRetained({ topic: 'a', payload: Buffer.alloc(0) })
        await p.storeRetained({ topic: 'never-stored', payload: Buffer.alloc(0) })
        expect(retained.size).toBe(1)
      })

      if (kind.durable) {
        test('starts from what the store holds', async () => {
          const config = kind.config()
          const first = await open(config)
          for (const t of ['r/1', 'r/2', 'r/3']) await first.p.storeRetained({ topic: t, payload: Buffer.from(t) })
          await first.close()
          const { retained } = await open(config)
          expect(retained.size).toBe(3)
        })
      }
    })

    describe('offline queue', () => {
      test('streamed in the order enqueued, per client; an acknowledged message leaves it', async () => {
        const { p } = await open()
        const sent = [message('q/1', 'm1'), message('q/2', 'm2'), message('q/3', 'm3')]
        for (const m of sent) await p.outgoingEnqueueCombi([{ clientId: 'c1' }, { clientId: 'c2' }], m)
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['m1', 'm2', 'm3'])
        expect(await payloads(p.outgoingStream({ id: 'c2' }))).toEqual(['m1', 'm2', 'm3'])
        await deliverAndAck(p, sent[0]!, 1)
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['m2', 'm3'])
        expect(await payloads(p.outgoingStream({ id: 'c2' }))).toEqual(['m1', 'm2', 'm3'])
      })

      test('a $ topic is not queued for a subscription starting with a wildcard [MQTT-4.7.2-1]', async () => {
        const { p } = await open()
        const subs = [{ clientId: 'c1', topic: '#' }, { clientId: 'c2', topic: '+/denied' }, { clientId: 'c3', topic: '$x/#' }]
        await p.outgoingEnqueueCombi(subs, message('$x/denied', 'dollar'))
        await p.outgoingEnqueueCombi(subs, message('x/denied', 'plain'))
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['plain'])
        expect(await payloads(p.outgoingStream({ id: 'c2' }))).toEqual(['plain'])
        expect(await payloads(p.outgoingStream({ id: 'c3' }))).toEqual(['dollar', 'plain'])
      })

      if (kind.durable) {
        test('survives a restart', async () => {
          const config = kind.config()
          const first = await open(config)
          await first.p.outgoingEnqueueCombi([{ clientId: 'c1' }], message('q/1', 'kept'))
          await first.close()
          const { p } = await open(config)
          expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['kept'])
        })
      }

      // level-store.ts (aedes-persistence-level copies queued packets with aedes-packet 3)
      test('a queued message keeps its MQTT 5 properties and expiry, read back with no absent property', async () => {
        const config = kind.config()
        let opened = await open(config)
        const properties = { userProperties: { a: '1', b: ['x', 'y'] }, contentType: 'text/plain', responseTopic: 'r/t', correlationData: Buffer.from([0, 255]), payloadFormatIndicator: true, messageExpiryInterval: 60, topicAlias: undefined }
        const messageExpiry = Date.now() + 60_000
        await opened.p.outgoingEnqueueCombi([{ clientId: 'c1' }, { clientId: 'c2' }], { ...message('v5/q', 'one'), properties, messageExpiry })
        await opened.p.outgoingEnqueue({ clientId: 'c1' }, { ...message('v5/q', 'two'), properties, messageExpiry })
        if (kind.durable) {
          await opened.close()
          opened = await open(config)
        }
        const { topicAlias: _, ...kept } = properties
        for (const id of ['c1', 'c2']) {
          const queued = await all<{ properties: object, messageExpiry: number }>(opened.p.outgoingStream({ id }))
          expect(queued.length).toBe(id === 'c1' ? 2 : 1)
          for (const q of queued) {
            expect(q.properties).toEqual(kept)
            expect(q.messageExpiry).toBe(messageExpiry)
          }
        }
      })

      // level-store.ts: what Aedes's wipe of an expired session does (Client#emptyOutgoingQueue)
      test('an entry never delivered (no message id) is cleared by the packet read from the queue', async () => {
        const { p } = await open()
        for (const i of [1, 2, 3]) await p.outgoingEnqueueCombi([{ clientId: 'c1' }], message('wipe/t', `m${i}`))
        const [first] = await all<object>(p.outgoingStream(CLIENT))
        await p.outgoingUpdate(CLIENT, { ...first, messageId: 4 })
        for (const packet of await all<QueuedPacket>(p.outgoingStream(CLIENT))) {
          expect(await p.outgoingClearMessageId(CLIENT, packet)).toBeDefined()
        }
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual([])
      })
    })

    // level-store.ts; vendor/aedes/aedes.js restoreSessions
    describe('MQTT 5 session expiry records', () => {
      if (!(kind.sessionExpiry ?? kind.durable)) {
        test('a store that keeps none (memory; Redis, where the timers stay on each node) has none of the methods (Aedes then records nothing)', async () => {
          const { p } = await open()
          expect([p.putSessionExpiry, p.delSessionExpiry, p.streamSessionExpiry]).toEqual([undefined, undefined, undefined])
        })
        return
      }
      test('put, replaced, deleted, and read back in the next run', async () => {
        const config = kind.config()
        const first = await open(config)
        await first.p.putSessionExpiry!('c1', { interval: 60 })
        await first.p.putSessionExpiry!('c1', { interval: 30, disconnectedAt: 1234 })
        await first.p.putSessionExpiry!('c:2/ü', { interval: 5 })
        await first.p.putSessionExpiry!('c3', { interval: 7 })
        await first.p.delSessionExpiry!('c3')
        await first.p.delSessionExpiry!('never-recorded')
        await first.close()
        const { p } = await open(config)
        const records = await all<{ clientId: string }>(p.streamSessionExpiry!())
        expect(records.sort((a, b) => a.clientId < b.clientId ? -1 : 1)).toEqual([
          { clientId: 'c1', interval: 30, disconnectedAt: 1234 },
          { clientId: 'c:2/ü', interval: 5 }
        ])
        // known from the store: deleted in this run too
        await p.delSessionExpiry!('c1')
        expect((await all<{ clientId: string }>(p.streamSessionExpiry!())).map(r => r.clientId)).toEqual(['c:2/ü'])
      })
    })

    // layer: queue-cap.ts
    describe('queue cap (limits.maxQueuedMessages)', () => {
      test('counts each message once per client, drops beyond the cap, and frees a slot on acknowledgement', async () => {
        const { p, drops } = await open(undefined, 3)
        const sent = Array.from({ length: 5 }, (_, i) => message('cap/t', `m${i}`))
        // two subscribers in one call: the store's own combi must not count them again
        for (const m of sent) await p.outgoingEnqueueCombi([{ clientId: 'c1' }, { clientId: 'c2' }], m)
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['m0', 'm1', 'm2'])
        expect(drops).toEqual(['c1', 'c2', 'c1', 'c2'])
        await deliverAndAck(p, sent[0]!, 7)
        await p.outgoingEnqueue({ clientId: 'c1' }, message('cap/t', 'm5'))
        await p.outgoingEnqueue({ clientId: 'c1' }, message('cap/t', 'm6'))
        expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['m1', 'm2', 'm5'])
        expect(drops).toEqual(['c1', 'c2', 'c1', 'c2', 'c1'])
      })

      test('a message it dropped can still be sent live: updating its message id does not fail', async () => {
        const { p, drops } = await open(undefined, 1)
        await p.outgoingEnqueueCombi([{ clientId: 'c1' }], message('cap/t', 'kept'))
        const dropped = message('cap/t', 'live only')
        await p.outgoingEnqueueCombi([{ clientId: 'c1' }], dropped)
        expect(drops).toEqual(['c1'])
        await expect(p.outgoingUpdate(CLIENT, { ...dropped, messageId: 9 })).resolves.toBeUndefined()
      })

      if (kind.durable) {
        test('is exact across a restart: the count is loaded from the store', async () => {
          const config = kind.config()
          const first = await open(config, 2)
          for (const i of [1, 2]) await first.p.outgoingEnqueueCombi([{ clientId: 'c1' }], message('cap/t', `m${i}`))
          await first.close()
          const { p, drops } = await open(config, 2)
          await p.outgoingEnqueueCombi([{ clientId: 'c1' }], message('cap/t', 'm3'))
          expect(drops).toEqual(['c1'])
          expect(await payloads(p.outgoingStream(CLIENT))).toEqual(['m1', 'm2'])
        })
      }
    })

    // layer: order.ts
    describe('per-client order of store operations [MQTT-4.6]', () => {
      test('outgoingUpdate settles in the order asked, a lookup that finds nothing too', async () => {
        const { p } = await open()
        const queued = Array.from({ length: 20 }, (_, i) => message('o/t', `m${i}`))
        await p.outgoingEnqueueCombi([{ clientId: 'c1' }], queued[0]!)
        for (const m of queued.slice(1)) await p.outgoingEnqueueCombi([{ clientId: 'c1' }], m)
        // Each stored message is updated twice (its old message id is then
        // deleted: more work); between them, one that was never stored.
        const settled: number[] = []
        const ops: Array<Promise<unknown>> = []
        let n = 0
        for (const [i, m] of queued.entries()) {
          for (const packet of [{ ...m, messageId: 100 + i }, { ...m, messageId: 200 + i }, { ...message('o/t', 'unstored'), messageId: 300 + i }]) {
            const index = n++
            ops.push(p.outgoingUpdate(CLIENT, packet).finally(() => settled.push(index)))
          }
        }
        await Promise.allSettled(ops)
        expect(settled).toEqual(settled.slice().sort((a, b) => a - b))
      })

      test('incomingStorePacket and incomingGetPacket settle in the order asked; "not found" rejects in turn', async () => {
        const { p } = await open()
        const settled: number[] = []
        const ops: Array<Promise<unknown>> = []
        for (let i = 1; i <= 50; i++) {
          const packet = { ...message('in/t', 'x'.repeat(i % 2 === 0 ? 64 * 1024 : 1), 2), messageId: i }
          ops.push(p.incomingStorePacket(CLIENT, packet).finally(() => settled.push(i)))
        }
        await Promise.all(ops)
        expect(settled).toEqual(settled.slice().sort((a, b) => a - b))
        expect((await p.incomingGetPacket(CLIENT, { messageId: 2 }) as { payload: Buffer }).payload.length).toBe(64 * 1024)
        await expect(p.incomingGetPacket(CLIENT, { messageId: 999 })).rejects.toThrow('no such packet')
        await p.incomingDelPacket(CLIENT, { messageId: 2 })
        await expect(p.incomingGetPacket(CLIENT, { messageId: 2 })).rejects.toThrow('no such packet')
        if (p.cleanIncoming) {
          await p.cleanIncoming(CLIENT)
          await expect(p.incomingGetPacket(CLIENT, { messageId: 1 })).rejects.toThrow('no such packet')
        }
      })
    })

    // layer: clean-acks.ts
    test('a clean session\'s PUBACK is not looked up in the store', async () => {
      const { p } = await open()
      const clean = { id: 'c-clean', clean: true }
      // never the case in a broker (a clean session's deliveries are not stored): here it shows the shortcut
      const m = message('ack/t', 'stored')
      await p.outgoingEnqueueCombi([{ clientId: clean.id }], m)
      await p.outgoingUpdate(clean, { ...m, messageId: 5 })
      await expect(p.outgoingClearMessageId(clean, { cmd: 'puback', messageId: 5 })).resolves.toBeUndefined()
      expect(await payloads(p.outgoingStream(clean))).toEqual(['stored'])
      // a persistent session's PUBACK clears
      await p.outgoingEnqueueCombi([{ clientId: 'c1' }], m)
      await deliverAndAck(p, m, 5)
      expect(await payloads(p.outgoingStream(CLIENT))).toEqual([])
      // MQTT 5, Clean Start 0 with Session Expiry 0: clean, but its stored queue is delivered and acknowledged
      const resumed = { id: 'c-resumed', clean: true, _cleanStart: false }
      await p.outgoingEnqueueCombi([{ clientId: resumed.id }], m)
      await p.outgoingUpdate(resumed, { ...m, messageId: 6 })
      await p.outgoingClearMessageId(resumed, { cmd: 'puback', messageId: 6 })
      expect(await payloads(p.outgoingStream(resumed))).toEqual([])
    })

    describe('subscriptions', () => {
      test('added, matched by topic, removed, counted offline', async () => {
        const { p } = await open()
        await p.addSubscriptions(CLIENT, [{ topic: 'plant/+/temp', qos: 1 }, { topic: 'plant/#', qos: 2 }, { topic: 'other', qos: 1 }])
        await p.addSubscriptions({ id: 'c2' }, [{ topic: 'plant/#', qos: 1 }])
        const byTopic = async (t: string) => ((await p.subscriptionsByTopic(t)) as Array<{ clientId: string, topic: string }>).map(s => `${s.clientId} ${s.topic}`).sort()
        expect(await byTopic('plant/a/temp')).toEqual(['c1 plant/#', 'c1 plant/+/temp', 'c2 plant/#'])
        await p.removeSubscriptions(CLIENT, ['plant/#'])
        expect(await byTopic('plant/a/temp')).toEqual(['c1 plant/+/temp', 'c2 plant/#'])
        const mine = (await p.subscriptionsByClient(CLIENT)) as Array<{ topic: string, qos: number }>
        expect(mine.map(s => `${s.topic} ${s.qos}`).sort()).toEqual(['other 1', 'plant/+/temp 1'])
        expect((await p.countOffline()).clientsCount).toBe(2)
        await p.cleanSubscriptions(CLIENT)
        expect(await byTopic('plant/a/temp')).toEqual(['c2 plant/#'])
      })

      if (kind.durable) {
        test('restored after a restart, by client and by topic', async () => {
          const config = kind.config()
          const first = await open(config)
          await first.p.addSubscriptions(CLIENT, [{ topic: 'plant/#', qos: 1 }])
          await first.close()
          const { p } = await open(config)
          expect(((await p.subscriptionsByClient(CLIENT)) as Array<{ topic: string }>).map(s => s.topic)).toEqual(['plant/#'])
          expect(((await p.subscriptionsByTopic('plant/x')) as Array<{ clientId: string }>).map(s => s.clientId)).toEqual(['c1'])
        })
      }
    })

    describe('wills', () => {
      test.runIf(kind.wills === false)('Aedes\'s wills are not kept: the cluster claims them exactly once itself', async () => {
        const { p } = await open()
        await p.putWill(CLIENT, { topic: 'will/c1', payload: Buffer.from('gone'), qos: 1, retain: false })
        expect(await p.getWill(CLIENT)).toBeUndefined()
        expect(await all(p.streamWill({}))).toEqual([])
      })

      test.runIf(kind.wills !== false)('put with the broker id, got, streamed, deleted', async () => {
        const { p } = await open()
        await p.putWill(CLIENT, { topic: 'will/c1', payload: Buffer.from('gone'), qos: 1, retain: false })
        const will = await p.getWill(CLIENT) as { topic: string, brokerId: string, clientId: string }
        expect([will.topic, will.brokerId, will.clientId]).toEqual(['will/c1', BROKER.id, 'c1'])
        // wills of brokers not in the list: a restarted broker publishes its previous run's
        expect((await all<{ topic: string }>(p.streamWill({}))).map(w => w.topic)).toEqual(['will/c1'])
        expect((await p.delWill(CLIENT) as { topic: string }).topic).toBe('will/c1')
        expect(await p.getWill(CLIENT)).toBeUndefined()
      })
    })
  })
}
