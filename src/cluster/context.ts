/*
 * A cluster node's context (issue 13, docs/cluster.md): who the node is, its
 * Redis connections, and the hooks through which the other cluster modules
 * (membership.ts, wills.ts, readiness.ts) join the node's start, health and
 * close. server.ts opens it before the store when config.cluster is set, and
 * hands it to the store (broker/persistence/open.ts) and to the broker core
 * (broker/aedes.ts, through emitter.ts).
 */
import { randomUUID } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import type { Redis, RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { ClusterConfig } from '../config.js'
import { ConfigError } from '../errors.js'
import { connectRedis, redactUrl } from './redis.js'

/**
 * One piece of cluster behaviour with a lifecycle (membership, wills,
 * readiness). Registered with ClusterContext.use() before start().
 */
export interface ClusterPart {
  readonly name: string
  /**
   * After the store and the broker core exist, before any listener binds.
   * Rejecting fails createBroker (e.g. a live node already has this nodeId).
   */
  start?(): Promise<void>
  /** Joined into /healthz: `ok: false` turns it 503, with `error` shown. */
  health?(): { ok: boolean, error?: string }
  /** After the broker core has closed its clients and its store; in reverse order of use(). */
  close?(): Promise<void>
}

/** What happens on the node's Redis connections, for whoever watches (readiness.ts, logs, metrics). */
export interface ClusterEvents {
  /** A connection failed (each failed attempt while Redis is away). */
  redisError: [connection: string, err: Error]
  /** A connection is (again) ready. */
  redisReady: [connection: string]
  /** A connection was lost; ioredis reconnects by itself. */
  redisClose: [connection: string]
}

export interface ClusterContext {
  readonly config: ClusterConfig
  /** For people: stable across restarts (cluster.nodeId). */
  readonly nodeId: string
  /**
   * Aedes's broker id, `<nodeId>-<uuid>`: fresh at each start, never with ':'.
   * Queued packets are keyed packet:<brokerId>:<counter> and the counter
   * restarts at 0, so an id reused across a restart overwrote queued
   * messages (9 of 10 arrived, out of order; issue 13).
   */
  readonly brokerId: string
  readonly logger: Logger
  readonly events: EventEmitter<ClusterEvents>
  /** The store's connection: aedes-persistence-redis, and store.ts's scripts on the same key space. */
  readonly store: Redis
  /** A new connection with the cluster's settings (URL, credentials, redis.ts's options), watched and closed with the context. */
  connect(name: string): Promise<Redis>
  /** Every connection made so far (the store's, the emitter's, the parts'), by name: readiness.ts watches them. */
  connections(): ReadonlyArray<{ readonly name: string, readonly redis: Redis }>
  /** Adds a part; its start() runs in start(), its close() in close(). */
  use(part: ClusterPart): void
  /** Runs every part's start(), in order; server.ts calls it before binding the listeners. */
  start(): Promise<void>
  /** Every part's health; ok when all are. */
  health(): { ok: boolean, errors: string[] }
  /** Closes the parts (reverse order), then every connection. Idempotent. */
  close(): Promise<void>
}

export interface OpenClusterOptions {
  logger: Logger
  /** Where cluster.passwordEnv is looked up (the CLI passes process.env). */
  env?: Readonly<Record<string, string | undefined>>
}

/** Connects to the cluster's Redis (ERR_CLUSTER_UNAVAILABLE when it cannot) and returns the node's context. */
export async function openCluster (config: ClusterConfig, options: OpenClusterOptions): Promise<ClusterContext> {
  const logger = options.logger.child({ component: 'cluster', nodeId: config.nodeId })
  const url = withPassword(config, options.env)
  const extra = redisTls(config)
  const events = new EventEmitter<ClusterEvents>()
  const connections: Redis[] = []
  const named: Array<{ name: string, redis: Redis }> = []
  const parts: ClusterPart[] = []
  let closing: Promise<void> | undefined

  const connect = async (name: string): Promise<Redis> => {
    const redis = await connectRedis(url, { heartbeatMs: config.heartbeatMs, name: `switchyard:${config.nodeId}:${name}`, extra })
    connections.push(redis)
    named.push({ name, redis })
    redis.on('error', (err: Error) => events.emit('redisError', name, err))
    redis.on('ready', () => events.emit('redisReady', name))
    redis.on('close', () => { if (closing === undefined) events.emit('redisClose', name) })
    return redis
  }
  // Logged once per outage and connection, not at every reconnect attempt.
  const down = new Set<string>()
  events.on('redisError', (name, err) => {
    if (down.has(name)) return
    down.add(name)
    logger.warn({ connection: name, err: err.message }, `Redis connection ${name} failed; reconnecting`)
  })
  events.on('redisReady', name => {
    if (down.delete(name)) logger.info({ connection: name }, `Redis connection ${name} is back`)
  })

  const store = await connect('store')
  logger.info({ redis: redactUrl(config.redis) }, 'connected to the cluster\'s Redis')
  return {
    config,
    nodeId: config.nodeId,
    brokerId: `${config.nodeId}-${randomUUID()}`,
    logger,
    events,
    store,
    connect,
    connections: () => named.slice(),
    use (part) {
      if (closing) throw new Error(`cluster part ${part.name} added after close()`)
      parts.push(part)
    },
    async start () {
      for (const part of parts) await part.start?.()
    },
    health () {
      const errors: string[] = []
      for (const part of parts) {
        const h = part.health?.()
        if (h && !h.ok) errors.push(`${part.name}: ${h.error ?? 'not ok'}`)
      }
      return { ok: errors.length === 0, errors }
    },
    close () {
      closing ??= (async () => {
        for (const part of parts.slice().reverse()) {
          try {
            await part.close?.()
          } catch (err) {
            logger.error({ part: part.name, err }, 'cluster part failed to close')
          }
        }
        await Promise.all(connections.map(quit))
      })()
      return closing
    }
  }
}

/**
 * cluster.redis with the password from the environment (cluster.passwordEnv)
 * put in it: the URL carries the credentials (user, password) and TLS
 * (rediss://). It is only ever shown redacted. A missing variable is a config
 * error: the start would otherwise fail later, as NOAUTH.
 */
function withPassword (config: ClusterConfig, env: OpenClusterOptions['env']): string {
  if (config.passwordEnv === undefined) return config.redis
  const password = env?.[config.passwordEnv]
  if (password === undefined || password === '') {
    throw new ConfigError([`cluster.passwordEnv: the environment variable ${config.passwordEnv} is ${password === undefined ? 'not set' : 'empty'}; set it to the Redis password${env === undefined ? ' (an application embedding the broker passes createBroker(config, { env: process.env }))' : ''}`])
  }
  const url = new URL(config.redis)
  url.password = encodeURIComponent(password)
  return url.toString()
}

/** rediss:// turns TLS on (ioredis); cluster.ca replaces the system's CAs for it. */
function redisTls (config: ClusterConfig): RedisOptions {
  if (config.ca === undefined) return {}
  let ca: Buffer
  try {
    ca = readFileSync(config.ca)
  } catch (err) {
    throw new ConfigError([`cluster.ca: cannot read ${config.ca}: ${(err as Error).message}`], undefined, { cause: err })
  }
  return { tls: { ca } }
}

async function quit (redis: Redis): Promise<void> {
  if (redis.status === 'end') return
  try {
    await redis.quit()
  } catch {
    redis.disconnect()
  }
}
