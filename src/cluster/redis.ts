/*
 * The ioredis settings every cluster connection uses, and the small things
 * membership.ts, wills.ts and readiness.ts share: key names and Lua scripts.
 *
 * Why these options (measured with Redis 7.0, issue 13):
 * - enableOfflineQueue: false. With the offline queue on and
 *   maxRetriesPerRequest null, a 20 s outage was buffered whole in the
 *   node's memory. Off, a command issued while Redis is unreachable fails at
 *   once; nothing waits in the node, and the caller (readiness.ts's gate, or
 *   Aedes's store step) refuses the work instead of acknowledging it.
 * - maxRetriesPerRequest: 0. A command already written when the connection
 *   drops fails on the first reconnect attempt instead of after 20 (the
 *   default, which held a QoS 1 publisher for seconds and then surfaced as
 *   Aedes 'error' events). Failing is safe because nothing was acknowledged:
 *   the client keeps the message and sends it again [MQTT-4.4.0-1]. (With 1,
 *   nodes died of unhandledRejection: not because of the number, but because
 *   a caller had no catch. Every call in src/cluster/ is caught.)
 * - autoResendUnfulfilledCommands: false. A command Redis may already have
 *   run (an RPUSH) must not run twice after a reconnect.
 * - retryStrategy never gives up (returning a non-number would end the
 *   connection for good: no recovery without a restart), and backs off only
 *   to a quarter heartbeat, so that every node is back within the grace
 *   membership.ts gives the others after an outage.
 * - enableReadyCheck (the default, kept): 'ready' waits until a restarted
 *   Redis has loaded its AOF, so nothing reads a half-loaded store.
 * - connectTimeout and commandTimeout: a Redis that is unreachable without a
 *   TCP reset, or stopped (SIGSTOP), would otherwise hold commands forever.
 */
import { createHash } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import { SwitchyardError } from '../errors.js'

/** The ioredis options for a cluster connection (see the header for why). */
export function clusterRedisOptions (heartbeatMs: number): RedisOptions {
  const backoffCapMs = Math.max(20, Math.min(1000, Math.floor(heartbeatMs / 4)))
  return {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableReadyCheck: true,
    retryStrategy: (times: number) => Math.min(times * 20, backoffCapMs),
    connectTimeout: Math.min(10_000, Math.max(1000, 2 * heartbeatMs)),
    commandTimeout: Math.max(5000, 2 * heartbeatMs),
    keepAlive: 10_000
  }
}

/**
 * A connection to `url` (redis:// or rediss://, credentials in it) with
 * clusterRedisOptions, resolved once it is ready. With the offline queue off
 * nothing may be sent before that: a library given clusterRedisOptions to
 * make its own connection must wait for 'ready' too. Rejects with
 * ERR_CLUSTER_UNAVAILABLE, and closes the connection again, when it is not
 * ready within `timeoutMs` (default two heartbeats, 1 to 10 s), or at once
 * on wrong credentials or a certificate that does not verify.
 */
export async function connectRedis (url: string, options: { heartbeatMs: number, name?: string, timeoutMs?: number, extra?: RedisOptions }): Promise<Redis> {
  const redis = new Redis(url, { ...clusterRedisOptions(options.heartbeatMs), lazyConnect: true, ...(options.name ? { connectionName: options.name } : {}), ...options.extra })
  // ioredis emits 'error' on every failed attempt, and prints them when
  // nothing listens: this listener stays, and keeps the last for the message.
  let lastError: Error | undefined
  const timeoutMs = options.timeoutMs ?? Math.min(10_000, Math.max(1000, 2 * options.heartbeatMs))
  let timer: NodeJS.Timeout | undefined
  const outcome = new Promise<'ready' | 'timeout' | 'refused'>(resolve => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs)
    redis.once('ready', () => resolve('ready'))
    redis.on('error', (err: Error) => {
      lastError = err
      // Wrong credentials or a certificate that does not verify will not
      // fix themselves: say so now rather than at the deadline.
      if (PERMANENT.test(err.message) || PERMANENT.test(String((err as { code?: unknown }).code))) resolve('refused')
    })
  })
  // A refused attempt rejects connect(), but ioredis goes on trying: Redis
  // may be starting too. Wait for 'ready' until the deadline (two heartbeats).
  redis.connect().catch(() => {})
  const result = await outcome
  clearTimeout(timer)
  if (result !== 'ready') {
    redis.disconnect()
    const why = result === 'timeout' ? `not ready within ${timeoutMs} ms${lastError ? ` (${lastError.message})` : ''}` : lastError!.message
    throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster.redis: cannot connect to ${redactUrl(url)}: ${why}`, { cause: lastError })
  }
  return redis
}

const PERMANENT = /WRONGPASS|NOAUTH|invalid (username|password)|AUTH.*(failed|without any password)|CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/

/** The URL without its password, for messages and logs. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '<invalid url>'
  }
}

/** The default prefix of every key the cluster modules write, apart from the store's own. */
export const DEFAULT_PREFIX = 'switchyard:cluster:'

/**
 * A Lua script run with EVALSHA (ioredis loads it again after a Redis
 * restart emptied the script cache, in pipelines too). Scripts read the time
 * with TIME: every node then compares Redis's one clock, not its own.
 */
export class Script {
  readonly #name: string

  constructor (readonly lua: string, readonly keys: number) {
    this.#name = 'sy_' + createHash('sha1').update(lua).digest('hex').slice(0, 16)
  }

  /** Registers the script on `redis`; a pipeline knows only the scripts defined before it was made. */
  define (redis: Redis): void {
    if (!(this.#name in redis)) redis.defineCommand(this.#name, { numberOfKeys: this.keys, lua: this.lua })
  }

  run (redis: Redis, keys: string[], args: Array<string | number>): Promise<unknown> {
    this.define(redis)
    const fn = (redis as unknown as Record<string, (...a: Array<string | number>) => Promise<unknown>>)[this.#name]!
    return fn.call(redis, ...keys, ...args)
  }

  /** Adds a call to `pipeline`, made by redis.pipeline() after define(redis). */
  queue (pipeline: ReturnType<Redis['pipeline']>, keys: string[], args: Array<string | number>): void {
    const fn = (pipeline as unknown as Record<string, ((...a: Array<string | number>) => unknown) | undefined>)[this.#name]
    if (fn === undefined) throw new Error('Script.queue: define(redis) before redis.pipeline()')
    fn.call(pipeline, ...keys, ...args)
  }
}

/** Redis's clock in ms, the first lines of a script. */
export const LUA_NOW = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"

/** Logs a caught failure once per streak: the first at warn, then nothing until a success resets it. */
export class FailureStreak {
  #failing = false
  failed (): boolean {
    const first = !this.#failing
    this.#failing = true
    return first
  }

  /** Whether this success ends a streak. */
  succeeded (): boolean {
    const was = this.#failing
    this.#failing = false
    return was
  }
}
