/*
 * Whether this node can reach Redis, and what the broker does while it
 * cannot: the outage policy of issue 13.
 *
 * Tracking. Each connection the node depends on (the emitter's two, the
 * store's, the cluster modules') is watched: ioredis's 'ready' and 'close'
 * events, and a PING every `pingMs` that must answer within `pingTimeoutMs`
 * (a stopped or blackholed Redis keeps the socket open and answers nothing).
 * The node is ready when every watched connection is. Each fall from ready is
 * an outage: counted, logged once at warn, and its end logged at info with
 * its length. Recovery needs nothing: ioredis reconnects (clusterRedisOptions
 * never gives up), and the next 'ready' makes the node ready again.
 *
 * Policy: a readiness gate, not a byte budget. A budget that buffers
 * acknowledged work would lose it on a crash; one that buffers unacknowledged
 * work still has to refuse when it is full, and only delays the refusal
 * while costing memory. So while not ready:
 * - a new CONNECT is refused: CONNACK 0x03 (3.1.1) / 0x88 (5) Server
 *   unavailable; its session cannot be read;
 * - a QoS 1 or 2 PUBLISH is not acknowledged. admit() holds it for at most
 *   `holdMs` (the blip of a Redis failover or restart) within `holdBytes`
 *   in all, then answers false, and the broker closes that connection
 *   without PUBACK/PUBREC (MQTT 5: DISCONNECT 0x89 Server busy; 0x88 is CONNACK-only). The client keeps the
 *   message and sends it again when it reconnects [MQTT-4.4.0-1];
 * - QoS 0 is dropped (at most once allows it), and counted by the broker;
 * - /healthz answers 503 (health().ok), so a load balancer sends new
 *   clients to a node that can serve them.
 * Connected clients that do not publish at QoS 1/2 (subscribers) keep their
 * connections. Memory is bounded by `holdBytes`: commands are never queued
 * in ioredis (enableOfflineQueue false), nothing is buffered anywhere else.
 * docs/cluster-failure.md says the same for operators.
 */
import { EventEmitter } from 'node:events'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { SwitchyardError } from '../errors.js'

export interface ReadinessOptions {
  readonly logger: Logger
  /** How often each watched connection is PINGed. Default 1000. */
  readonly pingMs?: number
  /** A PING not answered within this makes the connection not ready. Default 1000. */
  readonly pingTimeoutMs?: number
  /** How long admit() holds a QoS 1/2 PUBLISH while not ready. Default 2000. */
  readonly holdMs?: number
  /** The bytes admit() holds at most, in all. Default 8 MiB. */
  readonly holdBytes?: number
}

export interface RedisHealth {
  readonly ok: boolean
  readonly connections: ReadonlyArray<{ readonly name: string, readonly status: string, readonly ok: boolean, readonly error?: string }>
  /** Outages since start. */
  readonly outages: number
  /** While not ready: since when (ISO). */
  readonly downSince?: string
}

export interface ReadinessStats {
  readonly ready: boolean
  readonly outages: number
  /** Length of the last outage that ended, ms. */
  readonly lastOutageMs: number
  /** Publishes admit() is holding now, and their bytes. */
  readonly held: number
  readonly heldBytes: number
  /** Publishes admit() refused (budget full, held too long, or closing). */
  readonly refused: number
}

export interface ReadinessEvents {
  change: [ready: boolean]
}

interface Watched {
  readonly name: string
  readonly redis: Redis
  pingOk: boolean
  pinging: boolean
  error: string | undefined
  readonly off: () => void
}

interface Waiter { readonly bytes: number, readonly resolve: (ok: boolean) => void, readonly timer: NodeJS.Timeout }

export function createReadiness (options: ReadinessOptions): Readiness {
  return new Readiness(options)
}

export class Readiness extends EventEmitter<ReadinessEvents> {
  readonly #o: Required<ReadinessOptions>
  readonly #watched: Watched[] = []
  readonly #waiters = new Set<Waiter>()
  readonly #timer: NodeJS.Timeout
  #ready = true
  #downSince = 0
  #outages = 0
  #lastOutageMs = 0
  #heldBytes = 0
  #refused = 0
  #closed = false

  constructor (options: ReadinessOptions) {
    super()
    this.#o = { pingMs: 1000, pingTimeoutMs: 1000, holdMs: 2000, holdBytes: 8 * 1024 * 1024, ...options }
    this.#timer = setInterval(() => { for (const w of this.#watched) void this.#ping(w) }, this.#o.pingMs)
    this.#timer.unref()
  }

  /** Whether every watched connection reaches Redis. */
  get ready (): boolean { return this.#ready }

  /**
   * Adds a connection the node depends on (made by connectRedis, so ready
   * now: one that is not counts as an outage at once). Not closed by close().
   */
  watch (redis: Redis, name: string): void {
    const w: Watched = { name, redis, pingOk: true, pinging: false, error: undefined, off: () => {} }
    const onReady = (): void => { w.pingOk = true; w.error = undefined; this.#update(w) }
    const onDown = (): void => { this.#update(w) }
    // ioredis emits one per failed attempt: keep the last for health(), log none here.
    const onError = (err: Error): void => { w.error = err.message }
    redis.on('ready', onReady)
    redis.on('close', onDown)
    redis.on('end', onDown)
    redis.on('error', onError)
    ;(w as { off: () => void }).off = () => {
      redis.off('ready', onReady)
      redis.off('close', onDown)
      redis.off('end', onDown)
      redis.off('error', onError)
    }
    this.#watched.push(w)
    this.#update(w)
  }

  /**
   * A store or emitter operation failed: look again now rather than at the
   * next PING, so that the gate closes before more work is taken in.
   */
  reportFailure (err: unknown, name?: string): void {
    for (const w of this.#watched) if (name === undefined || w.name === name) { w.error = (err as Error)?.message ?? String(err); void this.#ping(w) }
  }

  /**
   * The gate for one QoS 1/2 PUBLISH of `bytes`: true (go on, synchronously,
   * while ready), false (refuse: close the connection without
   * acknowledging), or a promise of either while not ready, settled when
   * Redis is back or after holdMs. Beyond holdBytes held: false at once.
   */
  admit (bytes: number): boolean | Promise<boolean> {
    if (this.#ready && !this.#closed) return true
    if (this.#closed || this.#heldBytes + bytes > this.#o.holdBytes) { this.#refused++; return false }
    this.#heldBytes += bytes
    return new Promise(resolve => {
      const waiter: Waiter = {
        bytes,
        resolve,
        timer: setTimeout(() => this.#settle(waiter, false), this.#o.holdMs)
      }
      this.#waiters.add(waiter)
    })
  }

  /** For /healthz: 503 while !ok. */
  health (): RedisHealth {
    return {
      ok: this.#ready,
      connections: this.#watched.map(w => ({ name: w.name, status: w.redis.status, ok: this.#ok(w), ...(w.error && !this.#ok(w) ? { error: w.error } : {}) })),
      outages: this.#outages,
      ...(this.#ready ? {} : { downSince: new Date(Date.now() - (performance.now() - this.#downSince)).toISOString() })
    }
  }

  /** Resolves while ready; rejects with ERR_CLUSTER_UNAVAILABLE otherwise (a persistence probe). */
  async probe (): Promise<void> {
    if (this.#ready) return
    const down = this.#watched.filter(w => !this.#ok(w)).map(w => `${w.name}: ${w.error ?? w.redis.status}`)
    throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `Redis unreachable (${down.join('; ')})`)
  }

  stats (): ReadinessStats {
    return { ready: this.#ready, outages: this.#outages, lastOutageMs: this.#lastOutageMs, held: this.#waiters.size, heldBytes: this.#heldBytes, refused: this.#refused }
  }

  /** Stops watching and refuses what is held. Idempotent. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    for (const w of this.#watched) w.off()
    for (const waiter of [...this.#waiters]) this.#settle(waiter, false)
  }

  #ok (w: Watched): boolean { return w.redis.status === 'ready' && w.pingOk }

  async #ping (w: Watched): Promise<void> {
    if (w.pinging || this.#closed || w.redis.status !== 'ready') return
    w.pinging = true
    let timer: NodeJS.Timeout | undefined
    try {
      await Promise.race([
        w.redis.ping(),
        new Promise((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`PING not answered within ${this.#o.pingTimeoutMs} ms`)), this.#o.pingTimeoutMs) })
      ])
      w.pingOk = true
    } catch (err) {
      w.pingOk = false
      w.error = (err as Error).message
    } finally {
      clearTimeout(timer)
      w.pinging = false
    }
    this.#update(w)
  }

  #update (changed: Watched): void {
    if (this.#closed) return
    const ready = this.#watched.every(w => this.#ok(w))
    if (ready === this.#ready) return
    this.#ready = ready
    const now = performance.now()
    if (!ready) {
      this.#outages++
      this.#downSince = now
      this.#o.logger.warn({ connection: changed.name, status: changed.redis.status, err: changed.error, outages: this.#outages },
        'cluster: Redis unreachable; refusing new connections and QoS 1/2 publishes until it is back')
    } else {
      this.#lastOutageMs = Math.round(now - this.#downSince)
      this.#o.logger.info({ outageMs: this.#lastOutageMs, outages: this.#outages }, 'cluster: Redis reachable again')
      for (const waiter of [...this.#waiters]) this.#settle(waiter, true)
    }
    try {
      this.emit('change', ready)
    } catch (err) {
      this.#o.logger.error({ err }, 'cluster: a readiness listener threw')
    }
  }

  #settle (waiter: Waiter, ok: boolean): void {
    if (!this.#waiters.delete(waiter)) return
    clearTimeout(waiter.timer)
    this.#heldBytes -= waiter.bytes
    if (!ok) this.#refused++
    waiter.resolve(ok)
  }
}
