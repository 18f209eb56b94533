/*
 * What aedes-persistence-level 9 needs to hold an MQTT 5 session: applied by
 * open.ts to the LevelDB store, under every layer of ../persistence.ts.
 * Each part says what the bare store gets wrong; the persistence contract
 * (test/contract/persistence.contract.ts) and test/integration/mqtt5-session.test.ts
 * check them. The key scheme below is aedes-persistence-level's own
 * (asyncPersistence.js), read and written directly where the store cannot be
 * reached through its methods: the contract fails if an upgrade changes it.
 * docs/aedes-gaps.md, "MQTT 5 on the vendored Aedes: session and will".
 */
import { createRequire } from 'node:module'
import { Readable } from 'node:stream'
import type { Level } from 'level'
import { forward, type AedesPersistence, type ClientRef, type QueuedPacket, type SessionExpiryRecord, type Sub } from './store.js'

const require = createRequire(import.meta.url)
// The codec the store decodes with: its own copy, whatever npm hoists.
const msgpack = createRequire(require.resolve('aedes-persistence-level/asyncPersistence.js'))('msgpack-lite') as {
  encode(value: unknown): Buffer
  decode(buffer: Buffer): unknown
}

const OUTGOING = 'outgoing:'
/** Ours, beside the store's prefixes (retained:, subscriptions:, outgoing:, outgoing-id:, incoming:, will:). */
const SESSION = 'switchyard-session:'

const padId = (id: number): string => id.toString().padStart(16, '0')
const outgoingKey = (clientId: string, brokerId: string, brokerCounter: number): string =>
  `${OUTGOING}${encodeURIComponent(clientId)}:${brokerId}:${padId(brokerCounter)}`
/** Every key under a prefix ending in ':' (as the store's prefixRange). */
const under = (prefix: string) => ({ gte: prefix, lt: `${prefix.slice(0, -1)};` })

export interface Publish {
  cmd?: string
  topic: string
  payload: Buffer
  qos: number
  retain: boolean
  dup: boolean
  brokerId: string
  brokerCounter: number
  messageId?: number | null
  clientId?: string
  nl?: boolean
  properties?: Record<string, unknown>
  messageExpiry?: number
}

/**
 * MQTT 5 properties without absent entries. msgpack turns undefined into
 * null (Aedes sets a resolved topicAlias to undefined), and mqtt-packet
 * refuses a null property value by destroying the connection it writes to.
 */
export function presentProperties (properties: Record<string, unknown>): Record<string, unknown> | undefined {
  let kept: Record<string, unknown> | undefined
  for (const [name, value] of Object.entries(properties)) {
    if (value !== undefined && value !== null) (kept ??= {})[name] = value
  }
  return kept
}

/** A packet read back from the store, its properties as they were written. (The Redis store too: src/cluster/store.ts.) */
export function readBack<T> (packet: T): T {
  const p = packet as { properties?: Record<string, unknown> | null }
  if (p.properties === null) {
    delete p.properties
  } else if (p.properties !== undefined) {
    const kept = presentProperties(p.properties)
    if (kept === undefined) delete p.properties
    else p.properties = kept
  }
  return packet
}

async function * readingBack (stream: Readable): AsyncGenerator<unknown> {
  for await (const packet of stream) yield readBack(packet)
}

/**
 * An offline-queue entry as the store's outgoingEnqueue writes it, with what
 * that drops: the message's MQTT 5 properties and its absolute expiry
 * (messageExpiry, which Aedes sets from the Message Expiry Interval). The
 * store copies the packet with its own aedes-packet 3, which predates both,
 * so a queued message lost its user properties, content type, response topic,
 * correlation data, payload format indicator and expiry. No messageId: one is
 * given at delivery (outgoingUpdate). The Redis store writes the same
 * entry (src/cluster/store.ts).
 */
export function queued (packet: Publish): Publish {
  const entry: Publish = {
    cmd: packet.cmd ?? 'publish',
    brokerId: packet.brokerId,
    brokerCounter: packet.brokerCounter,
    topic: packet.topic,
    payload: packet.payload ?? Buffer.alloc(0),
    qos: packet.qos ?? 0,
    retain: packet.retain ?? false,
    dup: packet.dup ?? false
  }
  if (Object.hasOwn(packet, 'clientId')) entry.clientId = packet.clientId!
  if (Object.hasOwn(packet, 'nl')) entry.nl = packet.nl!
  const properties = packet.properties === undefined ? undefined : presentProperties(packet.properties)
  if (properties !== undefined) entry.properties = properties
  if (packet.messageExpiry !== undefined) entry.messageExpiry = packet.messageExpiry
  return entry
}

/**
 * Per key, operations settle in the order they were asked: LevelDB runs
 * separate puts and deletes concurrently, so a record written at a close and
 * deleted by the wipe that follows could otherwise come back.
 */
function serialPerKey (): (key: string, op: () => Promise<unknown>) => Promise<void> {
  const tails = new Map<string, Promise<void>>()
  return (key, op) => {
    const previous = tails.get(key) ?? Promise.resolve()
    const run = previous.then(op, op).then(() => undefined)
    const tail = run.catch(() => undefined)
    tails.set(key, tail)
    void tail.then(() => { if (tails.get(key) === tail) tails.delete(key) })
    return run
  }
}

export function completeLevelStore (store: AedesPersistence, db: Level<string, Buffer>): AedesPersistence {
  const inner = forward(store)
  const bufferEncoding = { valueEncoding: 'buffer' } as const
  const putQueued = (sub: Sub, packet: Publish) => ({
    type: 'put' as const,
    key: outgoingKey(sub.clientId, packet.brokerId, packet.brokerCounter),
    value: msgpack.encode(queued(packet))
  })
  // Session records (Aedes#restoreSessions): the ids that have one, so that
  // the delete every v3/v4 CONNECT asks for costs nothing when there is none.
  const sessions = new Set<string>()
  const inOrder = serialPerKey()
  return {
    ...inner,
    async setup (broker) {
      await inner.setup(broker)
      for await (const key of db.keys(under(SESSION))) sessions.add(decodeURIComponent(key.slice(SESSION.length)))
    },

    async outgoingEnqueue (sub, packet) {
      const op = putQueued(sub, packet as Publish)
      await db.put(op.key, op.value, bufferEncoding)
    },
    async outgoingEnqueueCombi (subs, packet) {
      if (subs.length === 0) return
      await db.batch(subs.map(sub => putQueued(sub, packet as Publish)), bufferEncoding)
    },
    outgoingStream: client => Readable.from(readingBack(inner.outgoingStream(client))),
    /**
     * The store finds an entry by the messageId its delivery gave it, so
     * one never delivered (no messageId) stayed: Aedes's wipe of an expired
     * session (Client#emptyOutgoingQueue, Aedes#_wipeSession) left every
     * undelivered message, and a later Clean Start 0 got them. Such an entry
     * is found by its key instead.
     */
    async outgoingClearMessageId (client: ClientRef, packet: QueuedPacket) {
      const p = packet as Partial<Publish>
      if (p.messageId == null && p.cmd !== 'puback' && p.brokerId !== undefined && p.brokerCounter !== undefined) {
        const key = outgoingKey(client.id, p.brokerId, p.brokerCounter)
        const value = await db.get(key, bufferEncoding)
        if (value === undefined) return undefined
        await db.del(key)
        return readBack(msgpack.decode(value))
      }
      return await inner.outgoingClearMessageId(client, packet)
    },
    createRetainedStream: pattern => Readable.from(readingBack(inner.createRetainedStream(pattern))),
    createRetainedStreamCombi: patterns => Readable.from(readingBack(inner.createRetainedStreamCombi(patterns))),
    getWill: async client => {
      const will = await inner.getWill(client)
      return will === undefined ? undefined : readBack(will)
    },

    async putSessionExpiry (clientId: string, record: SessionExpiryRecord) {
      sessions.add(clientId)
      const value = Buffer.from(JSON.stringify(record))
      await inOrder(clientId, () => db.put(SESSION + encodeURIComponent(clientId), value, bufferEncoding))
    },
    async delSessionExpiry (clientId: string) {
      if (!sessions.delete(clientId)) return
      await inOrder(clientId, () => db.del(SESSION + encodeURIComponent(clientId)))
    },
    streamSessionExpiry: () => Readable.from(sessionRecords(db))
  }
}

async function * sessionRecords (db: Level<string, Buffer>): AsyncGenerator<SessionExpiryRecord & { clientId: string }> {
  for await (const [key, value] of db.iterator({ ...under(SESSION), valueEncoding: 'buffer' })) {
    const record = JSON.parse(value.toString()) as SessionExpiryRecord
    yield { clientId: decodeURIComponent(key.slice(SESSION.length)), ...record }
  }
}
