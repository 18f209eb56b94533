/*
 * Aedes's emitter for a cluster node: mqemitter-redis, so that a message
 * published on one node reaches the subscribers on every node (Redis
 * PUBLISH, one channel per topic; each node subscribes to the topics its
 * clients subscribe to). A node receives its own messages back from Redis
 * and delivers them locally from there, so every subscriber sees one order
 * per publisher. What mqemitter-redis gets wrong for us is fixed here, each
 * with why (docs/aedes-gaps.md#redis-persistence-and-emitter).
 */
import { createRequire } from 'node:module'
import type { Redis } from 'ioredis'
import { presentProperties } from '../broker/persistence/level-store.js'
import type { ClusterContext } from './context.js'

const require = createRequire(import.meta.url)
type Done = (err?: Error | null) => void
interface Message { topic: string, properties?: Record<string, unknown> | null, [key: string]: unknown }
/** What Aedes uses of an emitter (mqemitter's interface), and mqemitter-redis's own parts used here. */
export interface RedisEmitter {
  emit(message: Message, done?: Done): void
  on(topic: string, listener: (message: Message, done: () => void) => void, done?: () => void): unknown
  removeListener(topic: string, listener: (message: Message, done: () => void) => void, done?: () => void): unknown
  close(done: () => void): void
  /** mqemitter's own emit: a local dispatch (mqemitter-redis keeps it as _emit, and dispatches what Redis brings with it). */
  _emit(message: Message, done?: Done): void
  /** The Redis channel or pattern for a filter; `_opts` holds the wildcards as RegExps. */
  _subTopic(topic: string): string
  _containsWildcard(topic: string): boolean
  _opts: { regexWildcardOne: RegExp, regexWildcardSome: RegExp }
  /** mqemitter's own removeListener: local only. */
  _removeListener(topic: string, listener: (message: Message, done: () => void) => void): void
  /** mqemitter-redis reports its connections' errors here; an 'error' without a listener would throw. */
  state: NodeJS.EventEmitter
  length: number
  current: number
}
const MQEmitterRedis = require('mqemitter-redis') as new (options: object) => RedisEmitter
const MQEmitter = require('mqemitter') as { prototype: { emit(this: unknown, message: Message, done?: Done): void } }

/**
 * The node's own $SYS topics stay on the node: $SYS/broker/... (sys.ts) and
 * Switchyard's $SYS/switchyard/... (rule status), which every node
 * publishes under the same names. Through Redis, a $SYS/# subscriber on one
 * node received every node's values in turn ("clients connected" 3, 7, 3...)
 * [MQTT-4.7.2] leaves $SYS to the server; Mosquitto's are per broker.
 * $SYS/switchyard/nodes/<nodeId>/... is named per node, and crosses.
 * Aedes's own $SYS/<brokerId>/... (heartbeats, takeover: new/clients) and
 * $SYS/sub/... (the persistence's subscription broadcast) must cross.
 */
export function nodeLocalTopic (topic: string): boolean {
  if (!topic.startsWith('$SYS/')) return false
  return topic.startsWith('$SYS/broker/') || (topic.startsWith('$SYS/switchyard/') && !topic.startsWith('$SYS/switchyard/nodes/'))
}

/** How long close() waits for Redis to acknowledge QUIT before it drops the connections. */
const CLOSE_WAIT_MS = 2000

/** The emitter Aedes gets as `mq`, on two connections of the context. */
export async function openEmitter (ctx: ClusterContext): Promise<RedisEmitter> {
  const [sub, pub] = await Promise.all([ctx.connect('emitter-sub'), ctx.connect('emitter-pub')])
  const mq = new MQEmitterRedis({
    subConn: sub,
    pubConn: pub,
    // Aedes's own emitter settings (vendor/aedes/aedes.js): [MQTT-4.7.1-3]
    concurrency: 100,
    matchEmptyLevels: true
  })
  // Connection failures are logged by the context, once per outage.
  mq.state.on('error', (err: Error) => ctx.logger.debug({ err: err.message }, 'emitter: Redis error'))

  // A filter with a wildcard becomes a Redis PSUBSCRIBE glob ('+' and '#'
  // become '*'), where '?', '*', '[' and '\\' are glob characters too: a
  // subscription to 'a[1]/#' received nothing, not even on its own node
  // (every local delivery comes back through Redis). Escaped first.
  mq._subTopic = function (topic) {
    if (!this._containsWildcard(topic)) return topic
    return topic.replace(/[\\?*[\]]/g, '\\$&').replace(this._opts.regexWildcardOne, '*').replace(this._opts.regexWildcardSome, '*')
  }
  const dispatch = MQEmitter.prototype.emit
  // What Redis brings back was msgpack-encoded, which turns an absent
  // (undefined) MQTT 5 property into null: Aedes sets a resolved Topic Alias
  // to undefined, and mqtt-packet answers a null property by destroying the
  // connection it writes to (as on LevelDB, level-store.ts).
  mq._emit = function (message, done) {
    if (message.properties !== undefined) {
      const kept = message.properties === null ? undefined : presentProperties(message.properties)
      if (kept === undefined) delete message.properties
      else message.properties = kept
    }
    return dispatch.call(this, message, done)
  }
  const publish = mq.emit
  mq.emit = function (message, done) {
    if (nodeLocalTopic(message.topic)) return this._emit(message, done)
    return publish.call(this, message, done)
  }
  // Aedes closes its emitter before the store, and the store then removes
  // its listener (aedes-persistence's subscription broadcast): an
  // UNSUBSCRIBE on the closed connection, an unhandled rejection.
  let closed = false
  const removeListener = mq.removeListener
  mq.removeListener = function (topic, listener, done) {
    if (!closed) return removeListener.call(this, topic, listener, done)
    this._removeListener(topic, listener)
    if (done) setImmediate(done)
  }
  // mqemitter-redis's close() sends QUIT on both connections without a
  // catch: QUIT rejects ("Connection is closed") when the socket closes
  // before its reply, an unhandled rejection. Its close waits for 'end' anyway.
  for (const conn of [sub, pub]) {
    const quit = conn.quit.bind(conn)
    conn.quit = ((...args: Parameters<Redis['quit']>) => {
      const quitting = quit(...args)
      quitting.catch(() => {})
      return quitting
    }) as Redis['quit']
  }
  const close = mq.close
  mq.close = function (done) {
    closed = true
    // mqemitter-redis waits for both connections' 'end'; a Redis that is
    // away never answers QUIT, and Aedes's close would wait forever.
    const timer = setTimeout(() => { drop(sub); drop(pub) }, CLOSE_WAIT_MS)
    close.call(this, () => { clearTimeout(timer); done() })
  }
  return mq
}

function drop (redis: Redis): void {
  if (redis.status !== 'end') redis.disconnect()
}
