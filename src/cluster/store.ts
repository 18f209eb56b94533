/*
 * The cluster's store: aedes-persistence-redis 12 (its async class) on the
 * context's store connection, with what it gets wrong for Switchyard
 * replaced here. Applied by broker/persistence/open.ts under every layer of
 * broker/persistence.ts, as level-store.ts is for LevelDB; the persistence
 * contract (test/contract/persistence.contract.ts) runs on it.
 * docs/aedes-gaps.md#redis-persistence-and-emitter has each gap with its
 * measurements.
 *
 * The offline queue is written here, on the package's own key scheme (so a
 * store it wrote is read, and the rest of the package keeps working on it):
 *   outgoing:<client>                    the client's queue: a list of entry keys, in order
 *   packet:<brokerId>:<counter>          a queued message not yet sent, shared by the clients it is queued for
 *   packet:<brokerId>:<counter>:offlineCount  how many queue entries point at it
 *   outgoing:<client>:<brokerId>:<counter>    the client's own copy once sent (with its message id), then its PUBREL
 * and one key of ours:
 *   outgoing-id:<client>                 a hash, message id -> that client's entry key
 * Each operation is one Lua script, so it is atomic across nodes.
 */
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { Redis } from 'ioredis'
import { forward, type AedesPersistence, type ClientRef, type QueuedPacket, type Sub } from '../broker/persistence/store.js'
import { queued, readBack, type Publish } from '../broker/persistence/level-store.js'
import type { ClusterContext } from './context.js'

const require = createRequire(import.meta.url)
const ASYNC_PERSISTENCE = require.resolve('aedes-persistence-redis/asyncPersistence.js')
// The async class, as for LevelDB (open.ts): the package's main export wraps
// it in aedes-persistence's callback layer, which Aedes 2 does not use.
const RedisPersistence = require(ASYNC_PERSISTENCE) as new (options: { conn: Redis }) => AedesPersistence
// The codec the package decodes with: its own copy, whatever npm hoists.
const msgpack = createRequire(ASYNC_PERSISTENCE)('msgpack-lite') as { encode(value: unknown): Buffer, decode(buffer: Buffer): unknown }

const enc = encodeURIComponent
const listKey = (clientId: string) => `outgoing:${enc(clientId)}`
const idsKey = (clientId: string) => `outgoing-id:${enc(clientId)}`
const packetKey = (brokerId: string, counter: number | string) => `packet:${brokerId}:${counter}`
const entryKey = (clientId: string, brokerId: string, counter: number | string) => `${listKey(clientId)}:${brokerId}:${counter}`
const COUNT = ':offlineCount'
const RETAINED = 'retained'

/** Values read per MGET when a queue is streamed. */
const READ_BATCH = 256

/**
 * Queues one message for several clients, each under limits.maxQueuedMessages
 * on the store's own queue length (LLEN), so the cap holds across nodes.
 * KEYS: packet, its count. ARGV: the packet, the cap (0: none), the queues.
 * Returns 1 (queued) or 0 (full) per queue.
 */
const ENQUEUE = `
local max = tonumber(ARGV[2])
local result = {}
local n = 0
for i = 3, #ARGV do
  if max == 0 or redis.call('LLEN', ARGV[i]) < max then
    redis.call('RPUSH', ARGV[i], KEYS[1])
    n = n + 1
    result[#result + 1] = 1
  else
    result[#result + 1] = 0
  end
end
if n > 0 then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('INCRBY', KEYS[2], n)
end
return result`

/**
 * A queued message is sent: the client's entry becomes its own copy, in
 * place (the queue keeps its order), with the message id it was sent with,
 * found by that id at PUBACK. Nothing is written for a message that is not
 * in the queue (over the cap, sent live only).
 * KEYS: queue, packet, count, entry, ids. ARGV: the packet as sent, its message id.
 */
const SENT = `
local i = redis.call('LPOS', KEYS[1], KEYS[2])
if i then
  redis.call('LSET', KEYS[1], i, KEYS[4])
  if redis.call('DECR', KEYS[3]) <= 0 then redis.call('DEL', KEYS[2], KEYS[3]) end
elseif not redis.call('LPOS', KEYS[1], KEYS[4]) then
  return 0
end
redis.call('SET', KEYS[4], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[2], KEYS[4])
return 1`

/** QoS 2: the PUBREL replaces the sent PUBLISH in its entry. KEYS: queue, ids. ARGV: message id, the PUBREL. */
const RELEASED = `
local key = redis.call('HGET', KEYS[2], ARGV[1])
if not key or not redis.call('LPOS', KEYS[1], key) then return 0 end
redis.call('SET', key, ARGV[2])
return 1`

/**
 * PUBACK, PUBCOMP (or a refused PUBREC): the entry of that message id leaves
 * the queue. Returns what it held. KEYS: queue, ids. ARGV: message id.
 */
const ACKED = `
local key = redis.call('HGET', KEYS[2], ARGV[1])
if not key then return false end
redis.call('HDEL', KEYS[2], ARGV[1])
local value = redis.call('GET', key)
redis.call('LREM', KEYS[1], 0, key)
redis.call('DEL', key)
return value`

/**
 * A packet read from the queue leaves it (a wiped session, a message not
 * to be sent): its own copy if sent, else its entry pointing at the shared
 * packet. Returns what it held.
 * KEYS: queue, entry, packet, count, ids. ARGV: its message id or ''.
 */
const DROPPED = `
local value = redis.call('GET', KEYS[2])
if redis.call('LREM', KEYS[1], 0, KEYS[2]) > 0 or value then
  redis.call('DEL', KEYS[2])
  if ARGV[1] ~= '' and redis.call('HGET', KEYS[5], ARGV[1]) == KEYS[2] then redis.call('HDEL', KEYS[5], ARGV[1]) end
  return value
end
value = redis.call('GET', KEYS[3])
if redis.call('LREM', KEYS[1], 0, KEYS[3]) > 0 then
  if redis.call('DECR', KEYS[4]) <= 0 then redis.call('DEL', KEYS[3], KEYS[4]) end
  return value
end
return false`

/**
 * Unsubscribes; when that leaves the client no subscription, the package
 * deletes its queue (removeSubscriptions): its entries are released first,
 * so the messages they point at do not stay forever.
 * KEYS: the client's subscriptions, queue, ids. ARGV: the filters.
 */
const UNSUBSCRIBED = `
for i = 1, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local entries = redis.call('LRANGE', KEYS[2], 0, -1)
for _, key in ipairs(entries) do
  if string.sub(key, 1, 7) == 'packet:' then
    if redis.call('DECR', key .. '${COUNT}') <= 0 then redis.call('DEL', key, key .. '${COUNT}') end
  else
    redis.call('DEL', key)
  end
end
redis.call('DEL', KEYS[2], KEYS[3])
return #entries`

const SCRIPTS = { syEnqueue: [ENQUEUE, 2], sySent: [SENT, 5], syReleased: [RELEASED, 2], syAcked: [ACKED, 2], syDropped: [DROPPED, 5], syUnsubscribed: [UNSUBSCRIBED, 3] } as const
type Arg = string | number | Buffer
type Scripted = { [name in keyof typeof SCRIPTS]: (...args: Arg[]) => Promise<unknown> } & { [name in `${keyof typeof SCRIPTS}Buffer`]: (...args: Arg[]) => Promise<unknown> }

export interface RedisStore {
  store: AedesPersistence
  /** limits.maxQueuedMessages on each queue's length in the store (0: none); `onDrop` for each message refused. */
  capQueues(max: number, onDrop: (clientId: string) => void): void
  /** Retained messages in the store, every node's (outside $SYS/, which stays in each node's memory). */
  retained: { readonly size: number }
  /** Rejects when the store cannot be written. */
  probe(): Promise<void>
}

/** The Redis store on the context's store connection. */
export function openRedisStore (ctx: ClusterContext): RedisStore {
  const db = ctx.store
  for (const [name, [lua, numberOfKeys]] of Object.entries(SCRIPTS)) {
    if (!(name in db)) db.defineCommand(name, { lua, numberOfKeys })
  }
  const scripts = db as Redis & Scripted
  const inner = forward(new RedisPersistence({ conn: db }))
  let max = 0
  let onDrop: (clientId: string) => void = () => {}
  let retainedCount = 0
  const countRetained = async () => { retainedCount = await db.hlen(RETAINED) }
  let refresh: NodeJS.Timeout | undefined
  let brokerId: string | undefined

  // Subscriptions: the package waits for its own broadcast of each change
  // to come back through the emitter, one waiter per client and first
  // filter. Aedes's subscribe handler stores the whole SUBSCRIBE once per
  // filter in it (storeSubscriptions, handlers/subscribe.js), concurrently:
  // with two filters the second waiter replaced the first, and the SUBSCRIBE
  // of a persistent session never got its SUBACK. One store per SUBSCRIBE,
  // and one change per client at a time.
  const perClient = serialPerClient()
  const adding = new WeakMap<object, Promise<unknown>>()

  const enqueue = async (subs: Sub[], packet: Publish): Promise<void> => {
    // one entry per client, whatever number of its subscriptions match [MQTT-3.3.5-1]
    const clients = [...new Set(subs.map(s => s.clientId))]
    if (clients.length === 0) return
    const pkt = packetKey(packet.brokerId, packet.brokerCounter)
    const added = await scripts.syEnqueue(pkt, pkt + COUNT, msgpack.encode(queued(packet)), max, ...clients.map(listKey)) as number[]
    added.forEach((ok, i) => { if (ok === 0) onDrop(clients[i]!) })
  }

  const store: AedesPersistence = {
    ...inner,
    async setup (broker) {
      brokerId = broker.id
      await inner.setup(broker)
      // $SYS/ retained messages describe one node and stay in its memory
      // (sys-retained.ts); any in the store are stale.
      const sys: string[] = []
      for await (const fields of db.hscanStream(RETAINED, { match: '$SYS/*' }) as AsyncIterable<string[]>) {
        for (let i = 0; i < fields.length; i += 2) sys.push(fields[i]!)
      }
      if (sys.length > 0) await db.hdel(RETAINED, ...sys)
      await countRetained()
      // Other nodes store retained messages too: the count is read again each heartbeat.
      refresh = setInterval(() => { countRetained().catch(() => {}) }, ctx.config.heartbeatMs)
      refresh.unref()
    },
    async storeRetained (packet) {
      await inner.storeRetained(packet)
      await countRetained()
    },
    createRetainedStream: pattern => Readable.from(readingBack(inner.createRetainedStream(pattern))),
    createRetainedStreamCombi: patterns => Readable.from(readingBack(inner.createRetainedStreamCombi(patterns))),

    addSubscriptions (client, subs) {
      let added = adding.get(subs)
      if (added === undefined) {
        added = perClient(client.id, () => inner.addSubscriptions(client, subs))
        adding.set(subs, added)
      }
      return added
    },
    removeSubscriptions (client, topics) {
      return perClient(client.id, async () => {
        await scripts.syUnsubscribed(`client:${enc(client.id)}`, listKey(client.id), idsKey(client.id), ...topics)
        return await inner.removeSubscriptions(client, topics)
      })
    },
    async cleanSubscriptions (client) {
      // through removeSubscriptions above (the package's own calls its own)
      const subs = await inner.subscriptionsByClient(client) as Array<{ topic: string }>
      if (subs.length > 0) await store.removeSubscriptions(client, subs.map(s => s.topic))
    },

    outgoingEnqueue: (sub, packet) => enqueue([sub], packet as Publish),
    outgoingEnqueueCombi: (subs, packet) => enqueue(subs, packet as Publish),
    async outgoingUpdate (client, packet) {
      const p = packet as Publish & { messageId: number }
      if (p.cmd === 'pubrel') {
        await scripts.syReleased(listKey(client.id), idsKey(client.id), p.messageId, msgpack.encode({ cmd: 'pubrel', messageId: p.messageId }))
        return
      }
      const pkt = packetKey(p.brokerId, p.brokerCounter)
      await scripts.sySent(listKey(client.id), pkt, pkt + COUNT, entryKey(client.id, p.brokerId, p.brokerCounter), idsKey(client.id),
        msgpack.encode({ ...queued(p), messageId: p.messageId }), p.messageId)
    },
    async outgoingClearMessageId (client: ClientRef, packet: QueuedPacket) {
      const p = packet as Partial<Publish>
      let value: Buffer | null
      if (p.brokerId != null && p.brokerCounter !== undefined) {
        const pkt = packetKey(p.brokerId, p.brokerCounter)
        value = await scripts.syDroppedBuffer(listKey(client.id), entryKey(client.id, p.brokerId, p.brokerCounter), pkt, pkt + COUNT, idsKey(client.id), p.messageId ?? '') as Buffer | null
      } else if (p.messageId != null) {
        value = await scripts.syAckedBuffer(listKey(client.id), idsKey(client.id), p.messageId) as Buffer | null
      } else {
        return undefined
      }
      return value === null ? undefined : readBack(msgpack.decode(value))
    },
    outgoingStream: client => Readable.from(queueOf(db, client.id)),

    // Wills are wills.ts's alone (wired by node.ts): Aedes's own will store
    // and its sweep of dead brokers' wills (every 4 heartbeats, publish then
    // delete, no claim) would publish a dead node's wills a second time, and
    // keyed by broker id, after the client came back (issue 13). So Aedes
    // stores none, finds none, and its sweep (_clearWills) streams nothing.
    // A connected client's will stays in Aedes's memory (client.will), which
    // it publishes itself when the connection ends.
    getWill: async () => undefined,
    putWill: async () => {},
    delWill: async () => {},
    streamWill: () => Readable.from([]),
    getClientList: topic => Readable.from(inner.getClientList(topic)),

    async destroy () {
      clearInterval(refresh)
      // One connection answers in order: once PING is answered, every
      // command sent before it has been. The package's destroy() then
      // drops the connection at once (disconnect, not QUIT).
      await db.ping().catch(() => {})
      await inner.destroy()
    }
  }
  return {
    store,
    capQueues (cap, drop) {
      max = cap
      onDrop = drop
    },
    retained: { get size () { return retainedCount } },
    async probe () {
      const key = `switchyard:cluster:probe:${ctx.nodeId}`
      await db.set(key, '1', 'PX', 10_000)
      await db.del(key)
    }
  }
}

/**
 * The whole queue, in order, as it is when read: the package read
 * entries 0 to maxSessionDelivery (1,000), so with 2,000 queued a reconnect
 * got 1,001 and the rest only at the next CONNECT; and it read them one GET
 * at a time. Entries whose message is gone are dropped from the queue, as
 * the package does.
 */
async function * queueOf (db: Redis, clientId: string): AsyncGenerator<unknown> {
  const list = listKey(clientId)
  const keys = await db.lrange(list, 0, -1)
  const stale: string[] = []
  for (let i = 0; i < keys.length; i += READ_BATCH) {
    const batch = keys.slice(i, i + READ_BATCH)
    const values = await db.mgetBuffer(batch)
    for (const [j, value] of values.entries()) {
      const key = batch[j]!
      if (value === null) {
        stale.push(key)
        continue
      }
      const packet = readBack(msgpack.decode(value)) as { brokerId?: string, brokerCounter?: number }
      // A PUBREL entry holds only the PUBREL: its message is in its key.
      if (packet.brokerId === undefined && !key.startsWith('packet:')) {
        const [brokerId, counter] = key.slice(list.length + 1).split(':')
        packet.brokerId = brokerId
        packet.brokerCounter = Number(counter)
      }
      yield packet
    }
  }
  if (stale.length > 0) {
    const pipeline = db.pipeline()
    for (const key of stale) pipeline.lrem(list, 0, key)
    await pipeline.exec()
  }
}

/** Runs each client's operations one after the other (a failure does not stop the next). */
function serialPerClient (): <T>(clientId: string, op: () => Promise<T>) => Promise<T> {
  const tails = new Map<string, Promise<unknown>>()
  return (clientId, op) => {
    const previous = tails.get(clientId) ?? Promise.resolve()
    const run = previous.then(op, op)
    const tail = run.catch(() => undefined)
    tails.set(clientId, tail)
    void tail.then(() => { if (tails.get(clientId) === tail) tails.delete(clientId) })
    return run
  }
}

async function * readingBack (source: AsyncIterable<unknown> | Iterable<unknown>): AsyncGenerator<unknown> {
  for await (const packet of source) yield readBack(packet)
}
