import { mkdirSync } from 'node:fs'
import { Readable } from 'node:stream'
import { createRequire } from 'node:module'
import { Level } from 'level'
import type { Config } from '../config.js'
import { SwitchyardError } from '../errors.js'
import { wildcardFirst } from '../topics.js'

const require = createRequire(import.meta.url)
// The package's main export wraps this class in a callback API that Aedes 1.x
// rejects (it requires an async setup()); the async class is the real one.
const LevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: Level<string, Buffer>) => Persistence
const memoryPersistence = require('aedes-persistence') as () => Persistence

interface QueuedPacket { messageId?: number }
interface Sub { clientId: string }
interface ClientRef { id: string }

/** The part of the aedes-persistence interface that Switchyard touches. */
export interface Persistence {
  storeRetained(packet: { topic: string, payload: Buffer }): Promise<unknown>
  createRetainedStream(pattern: string): AsyncIterable<{ topic: string }>
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string }>
  countOffline(): Promise<{ clientsCount: number, subsCount: number }>
  incomingGetPacket(client: ClientRef, packet: unknown): Promise<unknown>
  incomingStorePacket(client: ClientRef, packet: unknown): Promise<unknown>
  outgoingUpdate(client: ClientRef, packet: unknown): Promise<unknown>
  outgoingEnqueue(sub: Sub, packet: unknown): Promise<unknown>
  outgoingEnqueueCombi(subs: Sub[], packet: unknown): Promise<unknown>
  outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<unknown>
  outgoingStream(client: ClientRef): AsyncIterable<unknown>
  destroy(): Promise<void>
}

/** What operations need from the store, beside Aedes's own use. */
export interface StoreHealth {
  /** Writes and deletes a key; rejects when the store cannot be written. */
  probe(): Promise<void>
}

export async function openPersistence (config: Config['persistence']): Promise<Persistence & StoreHealth> {
  if (config.type === 'memory') return Object.assign(memoryPersistence(), { probe: async () => {} })
  mkdirSync(config.path, { recursive: true })
  const db = new Level<string, Buffer>(config.path, { valueEncoding: 'buffer' })
  try {
    await db.open()
  } catch (err) {
    // LevelDB holds an exclusive lock: the usual cause is a second broker on the same directory.
    const cause = (err as { cause?: Error }).cause ?? err
    throw new SwitchyardError('ERR_PERSISTENCE',
      `persistence.path: cannot open LevelDB at ${config.path}: ${(cause as Error).message}; ` +
      'is another broker using this directory? Stop it or choose another path', { cause: err })
  }
  // The probe key sorts apart from aedes-persistence-level's own prefixes.
  // 16 KiB: a few bytes would fit in the log file's last allocated page and
  // succeed on a full disk; this much needs new space, as a real message would.
  const probeValue = Buffer.alloc(16 * 1024, 0x2e)
  return Object.assign(new LevelPersistence(db), {
    probe: async () => {
      await db.put('~switchyard-health', probeValue)
      await db.del('~switchyard-health')
    }
  })
}

/**
 * MQTT 3.1.1 section 4.6: topics are ordered by default. Aedes handles the
 * packets of one socket read concurrently and goes to the store before it
 * sends: a QoS 2 PUBLISH is looked up for duplicates (incomingGetPacket) and
 * stored (incomingStorePacket) before it is published, a PUBREL or a
 * delivery to a persistent session is stored before it is written
 * (outgoingUpdate).
 * LevelDB finishes those writes in any order, so a client's messages went
 * out of order (2,491 of 20,000 QoS 2 in the bench, bare Aedes alike). The
 * operations still run concurrently; each client's settle in the order
 * asked (a rejection too: "not found" is how a lookup says new).
 */
export function orderPerClient (p: Persistence): void {
  for (const method of ['incomingGetPacket', 'incomingStorePacket', 'outgoingUpdate'] as const) {
    const call = p[method].bind(p)
    const tails = new Map<string, Promise<unknown>>()
    p[method] = (client, packet) => {
      const previous = tails.get(client.id)
      const write = call(client, packet)
      // Handled at once: a lookup's "not found" would otherwise be an
      // unhandled rejection while it waits its turn, which kills the process.
      write.catch(() => {})
      const ordered = previous ? previous.then(() => write, () => write) : write
      const tail = ordered.then(() => undefined, () => undefined)
      tails.set(client.id, tail)
      void tail.then(() => { if (tails.get(client.id) === tail) tails.delete(client.id) })
      return ordered
    }
  }
}

/**
 * [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics
 * starting with '$'. Aedes 1.2 applies it to live messages but not to the
 * retained messages it replays on SUBSCRIBE: a '#' subscriber received every
 * retained $SYS/ topic. Replay pattern by pattern, and skip those.
 */
export function guardRetainedReplay (p: Persistence): void {
  p.createRetainedStreamCombi = patterns => Readable.from(retainedFor(p, patterns))
}

async function * retainedFor (p: Persistence, patterns: string[]): AsyncGenerator<{ topic: string }> {
  for (const pattern of patterns) {
    const skipDollar = wildcardFirst(pattern)
    for await (const packet of p.createRetainedStream(pattern)) {
      if (skipDollar && packet.topic.startsWith('$')) continue
      yield packet
    }
  }
}

/**
 * Keeps an exact count of retained messages (outside $SYS/): the stores have
 * no count, so it is loaded once and then follows every store and clear.
 */
export async function countRetained (p: Persistence): Promise<{ readonly size: number }> {
  const topics = new Set<string>()
  for await (const packet of p.createRetainedStream('#')) {
    if (!packet.topic.startsWith('$SYS/')) topics.add(packet.topic)
  }
  const store = p.storeRetained.bind(p)
  p.storeRetained = async packet => {
    await store(packet)
    if (packet.topic.startsWith('$SYS/')) return
    // [MQTT-3.3.1-10] an empty payload clears the retained message
    if (packet.payload.length === 0) topics.delete(packet.topic)
    else topics.add(packet.topic)
  }
  return topics
}

/**
 * Caps each client's outgoing queue (offline and in-flight QoS 1/2 messages)
 * at `max`, like Mosquitto's max_queued_messages: Aedes 1.2 has no cap
 * (aedes#1087), so one absent subscriber could exhaust memory or disk.
 * Counts are loaded lazily from the store, so they stay exact across restarts.
 * max = 0 means unlimited.
 */
export function capOutgoingQueue (p: Persistence, max: number, onDrop: (clientId: string) => void): void {
  if (max === 0) return
  const counts = new Map<string, number>()
  const loading = new Map<string, Promise<number>>()
  const enqueue = p.outgoingEnqueue.bind(p)
  const enqueueCombi = p.outgoingEnqueueCombi.bind(p)
  const clear = p.outgoingClearMessageId.bind(p)

  const load = (clientId: string): Promise<number> => {
    let pending = loading.get(clientId)
    if (pending === undefined) {
      pending = (async () => {
        let n = 0
        for await (const _ of p.outgoingStream({ id: clientId })) n++
        counts.set(clientId, n)
        loading.delete(clientId)
        return n
      })()
      loading.set(clientId, pending)
    }
    return pending
  }

  // Reserve a slot; false when the client's queue is full.
  const reserve = async (clientId: string): Promise<boolean> => {
    if (!counts.has(clientId)) await load(clientId)
    // re-read after the await: other reservations may have run meanwhile
    const n = counts.get(clientId)!
    if (n >= max) return false
    counts.set(clientId, n + 1)
    return true
  }

  p.outgoingEnqueueCombi = async (subs, packet) => {
    const kept: Sub[] = []
    for (const sub of subs) {
      if (await reserve(sub.clientId)) kept.push(sub)
      else onDrop(sub.clientId)
    }
    if (kept.length > 0) await enqueueCombi(kept, packet)
  }
  p.outgoingEnqueue = async (sub, packet) => {
    if (await reserve(sub.clientId)) await enqueue(sub, packet)
    else onDrop(sub.clientId)
  }
  p.outgoingClearMessageId = async (client, packet) => {
    const removed = await clear(client, packet)
    const n = counts.get(client.id)
    if (removed !== undefined && n !== undefined) counts.set(client.id, Math.max(0, n - 1))
    return removed
  }
}
