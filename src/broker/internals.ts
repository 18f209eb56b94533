/*
 * Every reach into Aedes 1.2 and mqemitter privates, in one file: the patches
 * that close gaps in the message path (docs/aedes-gaps.md), then accessors
 * for the rest of src/broker/. Each is one named function that says why, and
 * test/integration/aedes-internals.test.ts checks on bare Aedes what it
 * relies on, so an upgrade that moves it fails there, not in production.
 * The only casts through unknown in the project are the two below.
 */
import type { Duplex } from 'node:stream'
import type { Aedes, AedesPublishPacket, Client } from '../../vendor/aedes/aedes.js'
import { createRequire } from 'node:module'
import { subscribedFilter, topicMatches } from '../topics.js'

type Callback = (err?: Error | null) => void
type Deliver = (packet: DeliveryPacket, cb: () => void) => void
interface DeliveryPacket {
  topic: string
  qos: 0 | 1 | 2
  brokerId?: string | null
  brokerCounter?: number
  /** The publishing client's id (emitPacket), and the No Local option of the subscription whose copy this is. */
  clientId?: string
  nl?: boolean
  properties?: { subscriptionIdentifier?: number | number[], [name: string]: unknown }
}
/** What an Aedes Client has and its types leave out (lib/client.js). */
interface ClientPrivates {
  broker: Aedes
  conn: Duplex
  deliver0: Deliver
  deliverQoS: Deliver
  duplicates: Record<string, number>
  /** handlers/subscribe.js's Subscription: granted QoS, No Local, Retain As Published, Subscription Identifier. */
  subscriptions: Record<string, { qos: number, nl?: boolean, rap?: boolean, si?: number }>
  id: string | null
  version: number | null
  connackSent: boolean
  _disconnected: boolean
  _nextBatch(): void
  _parser: object
  pause(): void
}
interface PublishPacket { qos: number, brokerId?: string, brokerCounter?: number }
type Publish = (packet: PublishPacket, client?: Client | null | Callback, done?: Callback) => void
/** What an Aedes instance (aedes.js) and its mqemitter have and the types leave out. */
interface AedesPrivates {
  id: string
  counter: number
  publish: Publish
  clients: Record<string, Client>
  mq: {
    emit(message: { brokerId?: string, brokerCounter?: number }, cb?: () => void): void
    length: number
    current: number
    _messageQueue: unknown
    _messageCallbacks: unknown
  }
}
const clientPrivates = (client: Client): ClientPrivates => client as unknown as ClientPrivates
const brokerPrivates = (broker: Aedes): AedesPrivates => broker as unknown as AedesPrivates

/**
 * Issue 9 finding 1. Aedes 1.2 (lib/handlers/publish.js, QoS 1) writes the
 * PUBACK and only then calls broker.publish, which stores the message
 * (retained, offline queues): a kill -9 lost acknowledged messages. QoS 2 is
 * safe, its PUBREC follows the store. Aedes keeps its own order here, but the
 * PUBACK's bytes are held back: lib/write.js writes it with
 * mqtt.writeToStream(packet, client.conn), looked up on mqtt-packet's exports
 * at each call, so that is wrapped (once per process, see pubackQueues); for
 * a connection given to the returned function a PUBACK is queued instead of
 * written, and reported written, so Aedes goes on to broker.publish at once.
 * The instance's publish is wrapped to number that message (brokerId,
 * brokerCounter: Packet keeps the ones it is given) and tie it to its held
 * PUBACK (same client, same messageId, first not yet tied); the instance's
 * mq.emit, to release the PUBACK when Aedes emits the message to
 * subscribers, which emitPacket does after storeRetained and enqueueOffline. [MQTT-4.6.0-2] PUBACKs go out in
 * the order the PUBLISHes came in, though stores may finish out of order. A
 * store error reaches Aedes through publish's callback and it closes the
 * connection; the client's held PUBACKs are then dropped, never written.
 * (Publishing from authorizePublish instead, with Aedes's own publish a
 * no-op, cost ~3 µs/msg more: docs/benchmarks.md.) Returned: what to call
 * for each connection, right after aedes.handle(), before it can publish.
 *
 * `accept` (tap.ts's createAcceptHook: the bus's holds, a bridge's out
 * queue) sees every message as it enters publish, before its stores, and
 * may return a promise (issue 14, "nothing acknowledged is lost"): a held
 * PUBACK is then released only once the message is emitted and the promise
 * resolved, and publish's callback (QoS 2's PUBREC, core.publish()'s promise)
 * waits for it too. A rejection is a store failure: no acknowledgement,
 * and Aedes closes the connection. Without a promise, nothing more is
 * allocated per message.
 */
export function ackAfterStore (broker: Aedes, accept?: (packet: AedesPublishPacket, client: Client | null) => Promise<void> | undefined): (client: Client) => void {
  const aedes = brokerPrivates(broker)
  const ackQueues = pubackQueues()
  // The messages tied to a held PUBACK, by brokerCounter, until emitted.
  const stored = new Map<number, HeldAck>()
  const emit = aedes.mq.emit
  aedes.mq.emit = function (message, cb) {
    if (message.brokerId === aedes.id && message.brokerCounter !== undefined) {
      const held = stored.get(message.brokerCounter)
      if (held !== undefined) {
        stored.delete(message.brokerCounter)
        settle(held)
      }
    }
    return emit.call(this, message, cb)
  }
  const publish = aedes.publish
  aedes.publish = function (packet, client, done) {
    if (typeof client === 'function') {
      done = client
      client = null
    }
    const wait = accept?.(packet as AedesPublishPacket, client ?? null)
    const queue = packet.qos !== 1 || client == null ? undefined : ackQueues.get(clientPrivates(client).conn)
    const held = queue === undefined ? undefined : tiePuback(queue, (packet as { messageId?: number }).messageId)
    if (held === undefined) {
      if (wait === undefined) return publish.call(this, packet, client, done)
      return publish.call(this, packet, client, err => { wait.then(() => done?.(err), (e: Error) => done?.(err ?? e)) })
    }
    packet.brokerId = aedes.id
    const counter = packet.brokerCounter = ++aedes.counter
    stored.set(counter, held)
    if (wait !== undefined) {
      held.waits++
      wait.then(() => settle(held), () => fail(held.queue))
    }
    publish.call(this, packet, client, err => {
      if (err) {
        stored.delete(counter)
        fail(held.queue)
      }
      if (wait === undefined) return done?.(err)
      wait.then(() => done?.(err), (e: Error) => done?.(err ?? e))
    })
  }
  return client => {
    const conn = clientPrivates(client).conn
    ackQueues.set(conn, { client, conn, held: [], tied: 0, failed: false })
  }
}

/**
 * `bytes`: a refusal (MQTT 5 PUBACK with a reason code), written as it is, in its turn.
 * `waits`: what it still waits for: the emit, and an accept hook's promise.
 */
interface HeldAck { queue: AckQueue, messageId: number, stored: boolean, waits: number, bytes?: Buffer }

/** One more of what the PUBACK waits for is done: at the last, it is ready to go out, in its turn. */
function settle (held: HeldAck): void {
  if (--held.waits > 0) return
  held.stored = true
  releasePubacks(held.queue)
}

/** Not stored (a store or an accept hook failed): never acknowledge it, nor what follows; Aedes closes the connection. */
function fail (queue: AckQueue): void {
  queue.failed = true
  queue.held.length = 0
  queue.tied = 0
}
/** A connection's PUBACKs held back, in PUBLISH order; the first `tied` are tied to their message's publish (or refusals). */
interface AckQueue { client: Client, conn: Duplex, held: HeldAck[], tied: number, failed: boolean }

function tiePuback (queue: AckQueue, messageId: number | undefined): HeldAck | undefined {
  const { held } = queue
  for (let i = queue.tied; i < held.length; i++) {
    if (held[i]!.messageId !== messageId || held[i]!.bytes !== undefined) continue
    // Always i === queue.tied: Aedes publishes in the order of the PUBACK writes' callbacks (setImmediate).
    if (i !== queue.tied) held.splice(queue.tied, 0, held.splice(i, 1)[0]!)
    const tied = held[queue.tied++]
    skipRefused(queue)
    return tied
  }
  return undefined
}

/** A refusal needs no tie: counted with the tied ones once it is next, so a later PUBLISH's PUBACK never moves before it. */
function skipRefused (queue: AckQueue): void {
  while (queue.tied < queue.held.length && queue.held[queue.tied]!.bytes !== undefined) queue.tied++
}

function releasePubacks (queue: AckQueue): void {
  const { held } = queue
  let n = 0
  while (n < held.length && held[n]!.stored) n++
  if (n === 0) return
  const { client, conn } = queue
  // As lib/write.js: nothing once the connection is closing.
  const open = (client.connecting || client.connected) && !conn.destroyed
  // The bytes writeToStream writes for Aedes's PUBACK (lib/write.js passes
  // no opts: MQTT 3.1.1, 0x40, remaining length 2, the id), in one buffer
  // for all that are ready.
  let bytes: Buffer | undefined
  if (open) {
    const refused = held.slice(0, n).filter(h => h.bytes !== undefined)
    bytes = Buffer.allocUnsafe(4 * (n - refused.length) + refused.reduce((sum, h) => sum + h.bytes!.length, 0))
    for (let i = 0, at = 0; i < n; i++) {
      const h = held[i]!
      if (h.bytes !== undefined) at += h.bytes.copy(bytes, at)
      else at = bytes.writeUInt32BE(0x40020000 | (h.messageId & 0xffff), at)
    }
  }
  held.splice(0, n)
  queue.tied -= n
  if (bytes !== undefined) conn.write(bytes)
}

type WriteToStream = (packet: object, stream: object, opts?: object) => boolean
const HOLDING = Symbol.for('switchyard.holdPubacks')
/** mqtt-packet's exports: writeToStream carries its one setting, an accessor. */
interface MqttPacketExports { writeToStream: WriteToStream & { cacheNumbers: boolean }, generate: (packet: object, opts?: object) => Buffer, [HOLDING]?: WeakMap<object, AckQueue> }

/**
 * Aedes's lib/write.js calls mqtt.writeToStream, looked up at each call on
 * the exports of the mqtt-packet that Aedes resolves (required here from
 * Aedes's own path, so the same instance even if npm nests a copy). Wrapped
 * once per process: the connections whose PUBACKs are held are kept on those
 * exports too, so that every copy of this module (a test runner may load
 * several) shares the one wrapper. A PUBACK to any other stream (another
 * Aedes instance, a client library in this process) is written as before.
 * The write of a held PUBACK reports the stream's backpressure as the real
 * write would have, so Aedes still waits for 'drain' from a publisher that
 * does not read.
 */
function pubackQueues (): WeakMap<object, AckQueue> {
  // vendor/aedes is two levels up from both src/broker and dist/broker
  const exports = createRequire(new URL('../../vendor/aedes/aedes.js', import.meta.url))('mqtt-packet') as MqttPacketExports
  const existing = exports[HOLDING]
  if (existing !== undefined) return existing
  const queues = new WeakMap<object, AckQueue>()
  const original = exports.writeToStream
  const wrapped = function (this: unknown, packet: object, stream: object, opts?: object) {
    if ((packet as { cmd?: string }).cmd === 'puback') {
      const queue = queues.get(stream)
      if (queue !== undefined) {
        const { messageId, reasonCode } = packet as { messageId: number, reasonCode?: number }
        if (reasonCode !== undefined && reasonCode >= 0x80) {
          // MQTT 5: a refused PUBLISH (e.g. 0x87, not authorized) is never
          // published, so nothing ties it: it is ready now, and goes out in
          // its turn, after the PUBACKs of earlier PUBLISHes [MQTT-4.6.0-2].
          if (!queue.failed) {
            const encoded = exports.generate(packet, opts)
            queue.held.push({ queue, messageId, stored: true, waits: 0, bytes: encoded })
            skipRefused(queue)
            releasePubacks(queue)
          }
        } else if (!queue.failed) {
          queue.held.push({ queue, messageId, stored: false, waits: 1 })
        }
        return !queue.conn.writableNeedDrain
      }
    }
    return original.call(this, packet, stream, opts)
  }
  exports.writeToStream = Object.defineProperty(wrapped, 'cacheNumbers', {
    get: () => original.cacheNumbers,
    set: (value: boolean) => { original.cacheNumbers = value }
  }) as MqttPacketExports['writeToStream']
  exports[HOLDING] = queues
  return queues
}

/**
 * Issue 9 findings 5a, 5c and 5d: what Aedes's per-client delivery functions
 * get wrong. Wraps deliver0 and deliverQoS (which subscriptions capture when
 * they are made, so this runs before the client can subscribe) and routes
 * every delivery itself:
 * - 5d, [MQTT-3.8.4-6], [MQTT-3.3.5-1]: the QoS of a delivery is the lesser
 *   of the message's and the maximum granted over the client's matching
 *   subscriptions (grantedQoS). Aedes looked only at subscriptions[topic],
 *   so a QoS 1 subscriber to dg/# was sent QoS 2.
 * - 5a, aedes #955/#994: see dedupeByHistory.
 * - 5c, [MQTT-3.2.0-1]: see holdUntilConnack.
 * - MQTT 5 (issue 12): for a v5 client the QoS, every matching
 *   subscription's identifier, and No Local are settled in one pass over its
 *   subscriptions: see matchV5. (Receive Maximum, the client's Maximum
 *   Packet Size and Topic Aliases are kept to in vendor/aedes/lib/outbound.js,
 *   when the PUBLISH is written.)
 */
export function patchDeliveries (client: Client, stream: Duplex): void {
  const c = clientPrivates(client)
  const deliver0 = c.deliver0
  const deliverQoS = c.deliverQoS
  const isDuplicate = dedupeByHistory(c)
  const hold = holdUntilConnack(c, stream)
  const route = (entryQoS: 0 | 1 | 2): Deliver => (packet, cb) => {
    // Each subscription's delivery gets its own copy (handlePacketSubscription), so it may be changed.
    if (c.version === 5) {
      if (!matchV5(c, packet, entryQoS)) {
        setImmediate(cb)
        return
      }
    } else if (packet.qos > 0) packet.qos = Math.min(packet.qos, grantedQoS(c, packet.topic) ?? entryQoS) as 0 | 1 | 2
    if (isDuplicate(packet)) {
      setImmediate(cb)
      return
    }
    // Aedes's deliverQoS hands a QoS 0 packet to client.deliver0, which is this again: go direct.
    hold(() => (packet.qos === 0 ? deliver0 : deliverQoS)(packet, cb), cb)
  }
  c.deliver0 = route(0)
  c.deliverQoS = route(2)
}

/**
 * For a v5 client, what the one copy of a message it is sent must carry,
 * from all its subscriptions that match the topic, in one pass:
 * - the QoS: the lesser of the message's and the highest granted (as
 *   grantedQoS) [MQTT-3.3.4-2];
 * - [MQTT-3.3.4-3] [MQTT-3.3.4-4] the Subscription Identifiers of all of
 *   them: Aedes echoes the one of the subscription whose copy this is
 *   (handlers/subscribe.js), and dedupeByHistory drops the other copies
 *   (aedes #1090). Not for a retained message replayed to a new
 *   subscription: that one is sent for its subscription only;
 * - No Local [MQTT-3.8.3-3]: a subscription with it does not match the
 *   client's own messages. Aedes drops a No Local copy of the client's own
 *   message after this, so when it comes first the copy of an overlapping
 *   subscription without No Local, a duplicate by then, was lost too: the
 *   copy goes on as that subscription's, or, if no other subscription
 *   matches, is dropped here, before dedupeByHistory records it.
 * False: nothing to send. A shared subscription ($share/<name>/<filter>) is
 * not matched here: its copy comes only when the group picks this client,
 * at the QoS and with the identifier handlers/subscribe.js gave it.
 */
function matchV5 (c: ClientPrivates, packet: DeliveryPacket, entryQoS: 0 | 1 | 2): boolean {
  const subscriptions = c.subscriptions
  const own = packet.clientId === c.id
  const replay = !packet.brokerId
  let max = -1
  let ids: number[] | undefined
  for (const filter in subscriptions) {
    const sub = subscriptions[filter]!
    if (own && sub.nl === true) continue
    if (!topicMatches(filter, packet.topic)) continue
    if (sub.qos > max) max = sub.qos
    if (sub.si !== undefined && !replay) (ids ??= []).push(sub.si)
  }
  if (max < 0) {
    if (own && packet.nl === true) return false
    max = entryQoS // none matches: an unsubscribe raced the delivery, or a shared subscription's copy
  } else if (own) packet.nl = false
  if (packet.qos > max) packet.qos = max as 0 | 1 | 2
  if (ids !== undefined) {
    const value = ids.length === 1 ? ids[0]! : ids
    const current = packet.properties?.subscriptionIdentifier
    // the properties object may be shared with other copies: replaced, never changed
    if (current !== value) packet.properties = { ...packet.properties, subscriptionIdentifier: value }
  }
  return true
}

/**
 * The maximum QoS granted over the client's subscriptions that match `topic`
 * (undefined if none does: an unsubscribe raced the delivery).
 */
export function grantedQoS (client: { subscriptions: Record<string, { qos: number }> }, topic: string): number | undefined {
  let max: number | undefined
  for (const filter in client.subscriptions) {
    if (!topicMatches(filter, topic)) continue
    const qos = client.subscriptions[filter]!.qos
    if (max === undefined || qos > max) max = qos
    if (max === 2) break
  }
  return max
}

// Copies of one message for overlapping subscriptions come from one mqemitter
// dispatch, which calls every matching listener synchronously: they are next
// to each other. 8 covers that with a margin, for a few bytes per client.
const HISTORY = 8
/** Aedes's watermarks, neutralized: one stateless object shared by every client. */
const NO_WATERMARKS = new Proxy(Object.create(null) as Record<string, number>, { get: () => undefined, set: () => true })

/**
 * Aedes's dedupe() (lib/client.js) drops a message whose brokerCounter is
 * lower than the last one the client was sent. Counters are taken when a
 * message is published, but QoS 1/2 messages wait for the offline-queue
 * store before they are emitted while QoS 0 ones do not, so a QoS 0 message
 * overtook them and real messages were dropped (aedes #955, #994: 102-183 of
 * 3,000 acknowledged QoS 1 in the issue, 207 here, LevelDB). What dedupe is for is the same
 * message reaching a client twice, through overlapping subscriptions (or
 * several emitters in a cluster): the same brokerId and brokerCounter. So,
 * as aedes PR #972 does, remember the last HISTORY counters per brokerId
 * and drop only those; and neutralize Aedes's watermark (its reads of
 * client.duplicates find nothing, so every counter passes). Retained replays
 * carry brokerId null and are never deduplicated, as in Aedes.
 */
export function dedupeByHistory (client: { duplicates: Record<string, number> }): (packet: DeliveryPacket) => boolean {
  client.duplicates = NO_WATERMARKS
  // Made on the first delivery: an idle connection never needs it (issue 16).
  let seen: Map<string, { ring: number[], next: number }> | undefined
  return packet => {
    const id = packet.brokerId
    const counter = packet.brokerCounter
    if (!id || counter === undefined) return false
    seen ??= new Map()
    let history = seen.get(id)
    if (history === undefined) seen.set(id, history = { ring: [], next: 0 })
    if (history.ring.includes(counter)) return true
    history.ring[history.next] = counter
    history.next = (history.next + 1) % HISTORY
    return false
  }
}

/**
 * [MQTT-3.2.0-1] the first packet from the server is CONNACK. Aedes's
 * connect.js restores a persistent session's subscriptions, then stores the
 * will and registers the client, and only then writes CONNACK: a message
 * published meanwhile was written first, and MQTT.js never completed the
 * connect. Deliveries before CONNACK wait, in order, until Aedes has written
 * it (client.connackSent); if the connection closes first they are released
 * undelivered (QoS 1/2 to a persistent session stay in its stored queue).
 * They keep their mqemitter slot meanwhile, as a slow socket would.
 */
export function holdUntilConnack (client: { connackSent: boolean, broker: Aedes }, stream: Duplex): (deliver: () => void, release: () => void) => void {
  let held: Array<{ deliver: () => void, release: () => void }> | undefined = []
  const flush = (sent: boolean) => {
    const waiting = held ?? []
    held = undefined
    connackWaiters.delete(client)
    for (const h of waiting) sent ? h.deliver() : h.release()
  }
  watchConnacks(client.broker)
  // on, not once: 'close' comes once, and once() costs a wrapper per connection (issue 16); flush is idempotent
  stream.on('close', () => flush(false))
  return (deliver, release) => {
    if (held !== undefined && client.connackSent) flush(true)
    if (held === undefined) {
      deliver()
      return
    }
    held.push({ deliver, release })
    connackWaiters.set(client, () => flush(true))
  }
}

// Aedes sets client.connackSent in the CONNACK's write callback, and emits
// 'connackSent' then. One listener per broker, not one per connecting client.
const connackWaiters = new WeakMap<object, () => void>()
const watched = new WeakSet<Aedes>()
function watchConnacks (broker: Aedes): void {
  if (watched.has(broker)) return
  watched.add(broker)
  broker.on('connackSent', (_packet: unknown, client: object) => connackWaiters.get(client)?.())
}

/*
 * Accessors for the rest of the broker: each private Aedes or mqemitter
 * member that src/broker/ reads or writes outside the patches above, behind
 * one named function. The other modules import the Aedes types from here,
 * so that only aedes.ts (the adapter) and this file name 'aedes'.
 */
export type { Aedes, AedesOptions, AedesPublishPacket, Client } from '../../vendor/aedes/aedes.js'

/** The registered clients. aedes.clients (id → Client) is untyped, and Aedes has no API listing its clients. */
export function connectedClients (broker: Aedes): Client[] {
  return Object.values(brokerPrivates(broker).clients)
}

/** The registered client with this id, if any (aedes.clients). */
export function clientById (broker: Aedes, clientId: string): Client | undefined {
  return brokerPrivates(broker).clients[clientId]
}

/** The client's topic filters: client.subscriptions (filter → { qos }) has no public accessor. */
export function subscriptionFilters (client: Client): string[] {
  return Object.keys(clientPrivates(client).subscriptions)
}

/** How many subscriptions the client holds, without building the list. */
export function subscriptionCount (client: Client): number {
  let n = 0
  for (const _ in clientPrivates(client).subscriptions) n++
  return n
}

/**
 * Whether the client ended with a DISCONNECT packet: client._disconnected,
 * which Aedes sets in handlers/disconnect.js (it is what skips the will).
 */
export function disconnectedByPacket (client: Client): boolean {
  return clientPrivates(client)._disconnected
}

/** Stop the client's read loop (client.pause(), untyped): close() stops input with it. */
export function pauseInput (client: Client): void {
  clientPrivates(client).pause()
}

/**
 * Restart the client's read loop: client._nextBatch reads from its stream
 * and parses what it finds. After read() held nothing back (see pause() in
 * aedes.ts), nothing else restarts it: 'readable' has already fired.
 */
export function readNextBatch (client: Client): void {
  clientPrivates(client)._nextBatch()
}

/**
 * Wraps the client's two delivery functions, deliver0 (QoS 0) and
 * deliverQoS (QoS 1/2; it hands a QoS 0 packet to deliver0). A subscription
 * captures them when it is made (handlers/subscribe.js), so this must run
 * before the client can subscribe: right after aedes.handle().
 */
export function wrapDeliveries (client: Client, wrap: (deliver: Deliver) => Deliver): void {
  const c = clientPrivates(client)
  c.deliver0 = wrap(c.deliver0)
  c.deliverQoS = wrap(c.deliverQoS)
}
export type { Deliver }

/**
 * Messages mqemitter still has to dispatch: queued (mq.length) and in
 * dispatch (mq.current, against its concurrency). Neither is in Aedes's types.
 */
export function emitterBacklog (broker: Aedes): number {
  const mq = brokerPrivates(broker).mq
  return mq.length + mq.current
}

/**
 * mqemitter's backlog is two Arrays, mq._messageQueue and
 * mq._messageCallbacks, drained with shift(): quadratic under fan-in. Swap
 * in queues with the same push/shift/length and an O(1) shift (fifo.ts).
 */
export function replaceEmitterQueues (broker: Aedes, makeQueue: () => { push(item: unknown): number, shift(): unknown, readonly length: number }): void {
  const mq = brokerPrivates(broker).mq
  mq._messageQueue = makeQueue()
  mq._messageCallbacks = makeQueue()
}

/**
 * Writes a CONNACK with `returnCode` on the client's connection, before
 * Aedes answers: from preConnect, where Aedes 1.2 can only close without a
 * CONNACK. Fixed header 0x20, remaining length 2, session present 0; for
 * `protocolVersion` 5, `returnCode` is a reason code and an empty property
 * list follows (remaining length 3) [MQTT-3.2.2]. `then` runs once it is
 * flushed, so the close that follows does not lose it.
 */
export function writeConnack (client: Client, returnCode: number, then: () => void, protocolVersion = 4): void {
  const bytes = protocolVersion === 5 ? [0x20, 0x03, 0x00, returnCode, 0x00] : [0x20, 0x02, 0x00, returnCode]
  clientPrivates(client).conn.write(Buffer.from(bytes), () => then())
}

/**
 * MQTT 5 Server Keep Alive for a connecting v5 client, from preConnect:
 * connect.js init() reads client._serverKeepAlive (setKeepAlive arms the
 * timer with it, doConnack advertises it) and sets it itself only under
 * Aedes's keepaliveLimit option, which also refuses every 3.1.1 CONNECT
 * with keepalive 0 (return code 6, which 3.1.1 does not define), so that
 * option stays unset.
 */
export function setServerKeepAlive (client: Client, seconds: number): void {
  (clientPrivates(client) as ClientPrivates & { _serverKeepAlive?: number })._serverKeepAlive = seconds
}

/**
 * Whether one of the client's subscriptions matching `topic` has Retain As
 * Published (MQTT 5 subscription option, client.subscriptions[filter].rap,
 * set by handlers/subscribe.js and restored with a persistent session).
 */
export function retainAsPublished (client: Client, topic: string): boolean {
  const subscriptions = clientPrivates(client).subscriptions as Record<string, { qos: number, rap?: boolean }>
  for (const filter in subscriptions) {
    // a shared subscription's key is $share/<name>/<filter>
    if (subscriptions[filter]!.rap === true && topicMatches(subscribedFilter(filter), topic)) return true
  }
  return false
}

const MARK = Symbol('switchyard.mark')

/**
 * Marks a packet given to aedes.publish() so that the `published` hook can
 * tell it apart: Aedes hands that hook the very object it was given
 * (PublishState.packet), not its Packet copy, so a symbol property rides along.
 */
export function markPacket<T> (packet: AedesPublishPacket, mark: T): void {
  (packet as { [MARK]?: T })[MARK] = mark
}

/** The mark markPacket() put on the packet the `published` hook receives, if any. */
export function packetMark<T> (packet: AedesPublishPacket): T | undefined {
  return (packet as { [MARK]?: T })[MARK]
}

/**
 * The client id on a will Aedes publishes for a client of a dead or previous
 * broker (aedes.js checkAndPublish): the stored will keeps `clientId`, and
 * the `published` hook gets no client for it.
 */
export function willClientId (packet: AedesPublishPacket): string | undefined {
  return (packet as { clientId?: string }).clientId
}

/**
 * The mqtt-packet Parser the client reads its packets with (client._parser),
 * for the guards in connection.ts, which wrap its own private methods
 * (_parseLength, _parseString, _newPacket) to check each packet as it is
 * decoded, before Aedes sees it.
 */
export function clientParser (client: Client): object {
  return clientPrivates(client)._parser
}

/**
 * Whether a packet reaching authorizeForward is a retained message replayed
 * to a new subscription: Aedes sets brokerId null on those
 * (handlers/subscribe.js), while a live message, or one from a stored
 * offline queue, keeps the brokerId it was published with.
 */
export function isRetainedReplay (packet: AedesPublishPacket): boolean {
  return !packet.brokerId
}

/**
 * Aedes emits 'error' (an EventEmitter's, so fatal without a listener) when
 * the store fails while a message is routed: enqueueOffline's
 * subscriptionsByTopic. Its types list only clientError/connectionError.
 */
export function onRoutingError (broker: Aedes, listener: (err: Error) => void): void {
  ;(broker as unknown as NodeJS.EventEmitter).on('error', listener)
}

/**
 * The will a connecting client gave in its CONNECT: Aedes 1.2 keeps it on
 * client._will from connect.js init(), before authenticate runs, and stores
 * it after. Not in Aedes's types.
 */
export function connectWill (client: Client): { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean } | undefined {
  const will = (client as unknown as { _will?: { topic: string, payload: Buffer, qos: 0 | 1 | 2, retain: boolean } | null })._will
  return will ?? undefined
}
