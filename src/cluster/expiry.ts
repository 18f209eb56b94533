/*
 * MQTT 5 Session Expiry across the cluster (issue 13): a session that
 * outlives its connection is ended when its interval has passed by one
 * node, whichever, even if the node it left has died since; and by none if
 * the client connected again, to any node, before then [MQTT-3.1.2-23].
 *
 * Keys (prefix default 'switchyard:cluster:'):
 *   session:<clientId>      hash: owner (incarnation), intervalMs (-1: never
 *                           expires): a v5 session with an interval, while connected
 *   sessions:<incarnation>  set of the clientIds that node holds so: what
 *                           becomes of them if it dies
 *   expiry                  zset clientId -> when its session ends (Redis's clock)
 *   expiry-claim:<clientId> the node ending that session now (a lease)
 *
 * The life of a session, each step one Lua script (expiry-lua.ts):
 *   CONNECT (before CONNACK, with the will record)  its expiry is cancelled
 *     and the session is this node's; should another node be ending it at
 *     this moment (a lease), the CONNECT waits for the end and then finds
 *     no session (sessionPresent 0), as it would have a moment later.
 *   close (Aedes's scheduleSessionExpiry, through the core)  due at now +
 *     interval, only if this node still owns the session: one taken by a
 *     CONNECT elsewhere stays that connection's.
 *   node dead ('nodeDead', then every half heartbeat while membership.ts
 *     lists it) or closing  its connected sessions are due at now + interval:
 *     their connections ended with it.
 *   due  every node, every half heartbeat, claims due sessions: out of the
 *     set and leased in one step, so exactly one node ends each, through the
 *     broker's own wipe (BrokerCore.endSession, Aedes's _wipeSession). The
 *     node the client left also arms a timer, so it is ended on time there.
 *
 * Aedes's own timer is cleared on a cluster node (broker/aedes.ts): this one
 * decides. A node that dies mid-end leaves a lease that lapses (a CONNECT
 * then waits for at most that long); the wipe is not retried.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Membership } from './membership.js'
import { DEFAULT_PREFIX } from './redis.js'
import { CLAIM, CLOSED, CONNECTED, ORPHANED, RELEASE } from './expiry-lua.js'
import { deadWithSet, scanSet } from './incarnation-sets.js'

/** MQTT 5: 0xFFFFFFFF seconds, the session does not expire. */
const NEVER = 0xFFFFFFFF
/** setTimeout's longest delay; a later deadline is left to the sweep. */
const MAX_TIMER_MS = 0x7FFFFFFF

export interface SessionExpiryOptions {
  /** A connection made with connectRedis; not closed by close(). */
  readonly redis: Redis
  readonly membership: Membership
  /** Ends the stored session of a client that is not connected (BrokerCore.endSession). */
  readonly end: (clientId: string) => Promise<void>
  readonly logger: Logger
  readonly prefix?: string
  /** Sessions claimed, and a dead node's sessions read, per step. */
  readonly batch?: number
}

export interface SessionExpiryStats {
  /** Sessions this node ended. */
  readonly expired: number
  /** Ends that failed (logged; the session's lease lapses). */
  readonly failed: number
}

export class SessionExpiry {
  readonly #o: SessionExpiryOptions
  readonly #p: string
  readonly #me: string
  readonly #batch: number
  readonly #leaseMs: number
  readonly #timer: NodeJS.Timeout
  readonly #timers = new Map<string, NodeJS.Timeout>()
  readonly #onDead = (_nodeId: string, incarnation: string): void => { void this.#orphan(incarnation) }
  #expired = 0
  #failed = 0
  #ticking: Promise<void> | undefined
  #closing: Promise<void> | undefined

  constructor (options: SessionExpiryOptions) {
    this.#o = options
    this.#p = options.prefix ?? DEFAULT_PREFIX
    this.#me = options.membership.incarnation
    this.#batch = options.batch ?? 500
    const h = options.membership.heartbeatMs
    this.#leaseMs = Math.max(10_000, 10 * h)
    for (const s of [CONNECTED, CLOSED, ORPHANED, CLAIM, RELEASE]) s.define(options.redis)
    options.membership.on('nodeDead', this.#onDead)
    this.#timer = setInterval(() => { this.#ticking ??= this.#tick().finally(() => { this.#ticking = undefined }) }, Math.max(1, Math.floor(h / 2)))
    this.#timer.unref()
  }

  /**
   * A client connected to this node (call before its CONNACK, before its
   * session is read). `sessionExpiryInterval`: MQTT 5 only, in seconds.
   * Resolves once no node is ending its previous session.
   */
  async connected (clientId: string, sessionExpiryInterval?: number): Promise<void> {
    this.#clearTimer(clientId)
    const s = sessionExpiryInterval ?? 0
    const intervalMs = s === 0 ? '' : s >= NEVER ? -1 : s * 1000
    const { redis } = this.#o
    const claim = this.#claimKey(clientId)
    let ttl = await CONNECTED.run(redis, [this.#expiryKey(), this.#sessionKey(clientId), claim, this.#setKey(this.#me)], [clientId, this.#me, intervalMs, this.#p]) as number
    while (ttl > 0) {
      await new Promise(resolve => setTimeout(resolve, Math.min(50, ttl)))
      ttl = await redis.pttl(claim)
    }
  }

  /**
   * The client's connection on this node ended; its session is kept for
   * `sessionExpiryInterval` seconds (0: Aedes ended it, or it never expires).
   */
  async closed (clientId: string, sessionExpiryInterval: number): Promise<void> {
    const ms = sessionExpiryInterval > 0 && sessionExpiryInterval < NEVER ? sessionExpiryInterval * 1000 : 0
    const kept = await CLOSED.run(this.#o.redis, [this.#expiryKey(), this.#sessionKey(clientId), this.#setKey(this.#me)], [clientId, this.#me, ms]) as number
    if (kept !== 1 || ms === 0 || ms > MAX_TIMER_MS || this.#closing) return
    this.#clearTimer(clientId)
    const timer = setTimeout(() => {
      this.#timers.delete(clientId)
      void this.#claimAndEnd(clientId)
    }, ms)
    timer.unref()
    this.#timers.set(clientId, timer)
  }

  stats (): SessionExpiryStats { return { expired: this.#expired, failed: this.#failed } }

  /**
   * Stops claiming (waits for ends under way) and hands this node's
   * connected sessions over: their connections are closed (call after the
   * broker closed its clients), so they are due at now + interval, ended by
   * the other nodes. Idempotent.
   */
  close (): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    clearInterval(this.#timer)
    for (const t of this.#timers.values()) clearTimeout(t)
    this.#timers.clear()
    this.#o.membership.off('nodeDead', this.#onDead)
    await this.#ticking
    try {
      await this.#orphanAll(this.#me)
    } catch (err) {
      // Left behind, they are handed over when the others declare this node dead.
      this.#o.logger.warn({ err: (err as Error).message }, 'cluster: could not hand this node\'s sessions over')
    }
  }

  async #tick (): Promise<void> {
    if (this.#closing) return
    try {
      // membership.ts lists a dead incarnation for 10 heartbeats at least
      for (const incarnation of await deadWithSet(this.#o.redis, this.#p, i => this.#setKey(i))) await this.#orphanAll(incarnation)
      let claimed: number
      do {
        claimed = await this.#claimAndEnd('')
      } while (claimed === this.#batch && !this.#closing)
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message }, 'cluster: session expiry tick failed')
    }
  }

  async #orphan (incarnation: string): Promise<void> {
    try {
      await this.#orphanAll(incarnation)
    } catch (err) {
      this.#o.logger.warn({ incarnation, err: (err as Error).message }, 'cluster: starting a dead node\'s session expiries failed; retried next tick')
    }
  }

  async #orphanAll (incarnation: string): Promise<void> {
    const { redis } = this.#o
    const set = this.#setKey(incarnation)
    for await (const ids of scanSet(redis, set, this.#batch)) {
      const pipeline = redis.pipeline()
      for (const id of ids) ORPHANED.queue(pipeline, [this.#expiryKey(), this.#sessionKey(id), set], [id, incarnation])
      const failed = ((await pipeline.exec()) ?? []).find(([err]) => err)
      if (failed) throw failed[0]!
    }
  }

  /** Claims `clientId`'s session if due, or ('') every due one up to a batch, and ends them. */
  async #claimAndEnd (clientId: string): Promise<number> {
    const { redis, logger } = this.#o
    let ids: string[]
    try {
      ids = await CLAIM.run(redis, [this.#expiryKey()], [this.#p, this.#me, this.#leaseMs, this.#batch, clientId]) as string[]
    } catch (err) {
      if (clientId === '') throw err
      // the sweep tries it again
      logger.debug({ clientId, err: (err as Error).message }, 'cluster: session expiry claim failed')
      return 0
    }
    await Promise.all(ids.map(async id => {
      try {
        await this.#o.end(id)
        this.#expired++
        logger.debug({ clientId: id }, 'cluster: session expired')
      } catch (err) {
        this.#failed++
        logger.warn({ clientId: id, err: (err as Error).message }, 'cluster: ending an expired session failed')
      }
      await RELEASE.run(redis, [this.#claimKey(id)], [this.#me]).catch(() => {})
    }))
    return ids.length
  }

  #clearTimer (clientId: string): void {
    const t = this.#timers.get(clientId)
    if (t === undefined) return
    clearTimeout(t)
    this.#timers.delete(clientId)
  }

  #expiryKey (): string { return this.#p + 'expiry' }
  #sessionKey (clientId: string): string { return `${this.#p}session:${clientId}` }
  #setKey (incarnation: string): string { return `${this.#p}sessions:${incarnation}` }
  #claimKey (clientId: string): string { return `${this.#p}expiry-claim:${clientId}` }
}

export function createSessionExpiry (options: SessionExpiryOptions): SessionExpiry {
  return new SessionExpiry(options)
}
