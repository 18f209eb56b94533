/*
 * Wills across the cluster: each node records its clients' wills in Redis,
 * and when a node dies (membership.ts 'nodeDead') the survivors publish them,
 * each exactly once, and none whose client has connected again.
 *
 * Keys (prefix default 'switchyard:cluster:'):
 *   will:<clientId>        hash: owner (incarnation, or 'due'), node, packet (will-codec),
 *                          delayMs, disconnectedAt, dueAt, claimUntil, claimedBy
 *   wills:<incarnation>    set of the clientIds whose wills that node recorded
 *   wills:due              zset clientId -> when a delayed will of a dead node is due
 *
 * Keyed by clientId, not by node: a client id is one session in the whole
 * cluster, so a reconnect anywhere overwrites (or deletes) the record in the
 * same step, whatever node held it. Aedes keys its wills by the node
 * (`will:<brokerId>:<clientId>`, with brokerId undefined in
 * aedes-persistence-redis 12), so a dead node's will outlived the client's
 * reconnect and overwrote its fresh retained "online" (issue 13).
 *
 * Exactly once: a survivor claims a will with a lease (one Lua script: owner
 * still the dead incarnation, no live lease), publishes it through the
 * integrator's callback, and then deletes it. Concurrent survivors skip
 * leased wills. A failed publish releases the lease and the will is tried
 * again on the next tick; a survivor that dies mid-publish leaves a lease
 * that expires, so another one publishes it. (Only a survivor dying between
 * its publish and the delete, one round trip, can cause a second copy.)
 *
 * MQTT 5 Will Delay Interval [MQTT-3.1.3-9]: a dead node's delayed will is
 * moved to wills:due, due its delay after the client's disconnect (if the
 * node recorded one) or after the node was declared dead; a reconnect before
 * then deletes it. Due wills are checked every half heartbeat.
 *
 * Scale: a dead node's set is read with SSCAN in batches (`batch`, default
 * 500), claims are pipelined, so 10,000 wills and more are all published.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Membership } from './membership.js'
import { DEFAULT_PREFIX } from './redis.js'
import { CLAIM, DISCONNECTED, FORGET, RECORD, SETTLE } from './wills-lua.js'
import { deadWithSet, scanSet } from './incarnation-sets.js'
import { decodeWill, encodeWill, type WillMessage } from './will-codec.js'

export type { WillMessage }

/** A dead node's will, to publish as the broker would (with no client, clientId known). */
export interface OrphanWill extends WillMessage {
  readonly clientId: string
  /** The node the client was connected to. */
  readonly nodeId: string
}

export interface WillsOptions {
  /** A connection made with connectRedis; not closed by close(). */
  readonly redis: Redis
  readonly membership: Membership
  /** Publishes one will; a rejection leaves it to be tried again on the next tick. */
  readonly publish: (will: OrphanWill) => Promise<void>
  readonly logger: Logger
  readonly prefix?: string
  /** SSCAN COUNT and pipeline size. */
  readonly batch?: number
}

export interface WillsStats {
  /** Wills of dead nodes published by this node. */
  readonly published: number
  /** Publishes that failed and were released to be tried again. */
  readonly failed: number
}

type WillInput = Parameters<typeof encodeWill>[0]

export function createWills (options: WillsOptions): Wills {
  return new Wills(options)
}

export class Wills {
  readonly #o: WillsOptions
  readonly #p: string
  readonly #me: string
  readonly #batch: number
  readonly #leaseMs: number
  readonly #sweeps = new Map<string, Promise<void>>()
  readonly #timer: NodeJS.Timeout
  readonly #onDead = (_nodeId: string, incarnation: string): void => { void this.#sweep(incarnation) }
  #published = 0
  #failed = 0
  #ticking = false
  #closing: Promise<void> | undefined

  constructor (options: WillsOptions) {
    this.#o = options
    this.#p = options.prefix ?? DEFAULT_PREFIX
    this.#me = options.membership.incarnation
    this.#batch = options.batch ?? 500
    const h = options.membership.heartbeatMs
    // Long enough for any publish; it only matters when a claimer dies mid-publish.
    this.#leaseMs = Math.max(10_000, 10 * h)
    for (const s of [RECORD, FORGET, DISCONNECTED, CLAIM, SETTLE]) s.define(options.redis)
    options.membership.on('nodeDead', this.#onDead)
    // The retry path: dead nodes whose sweep failed or was cut short (a
    // survivor died mid-sweep), and delayed wills coming due.
    this.#timer = setInterval(() => { void this.#tick() }, Math.max(1, Math.floor(h / 2)))
    this.#timer.unref()
  }

  /**
   * A client connected to this node (call before its CONNACK). Records its
   * will, or with `will` null deletes any will recorded for this clientId on
   * any node: the session is this connection's now. `sessionExpiryInterval`
   * (MQTT 5, seconds) caps the Will Delay Interval.
   */
  async connected (clientId: string, will: WillInput | null, options: { sessionExpiryInterval?: number } = {}): Promise<void> {
    const delayS = will ? Number(will.properties?.willDelayInterval ?? 0) : 0
    const capped = options.sessionExpiryInterval === undefined ? delayS : Math.min(delayS, options.sessionExpiryInterval)
    await RECORD.run(this.#o.redis, this.#keys(clientId, this.#me), [this.#me, will ? encodeWill(will) : '', capped * 1000, clientId, this.#p, this.#o.membership.nodeId])
  }

  /**
   * The client's will is settled on this node: a clean disconnect (no will
   * [MQTT-3.1.2-10]), or the broker published or dropped it itself. Removes
   * the record only if this node still owns it (a reconnect elsewhere may own it).
   */
  async forget (clientId: string): Promise<void> {
    await FORGET.run(this.#o.redis, this.#keys(clientId, this.#me).slice(0, 2), [this.#me, clientId])
  }

  /**
   * The client's connection ended without DISCONNECT and its will waits out
   * a Will Delay Interval on this node. Should this node die meanwhile, the
   * survivors publish it when the delay, counted from now, is over.
   */
  async disconnected (clientId: string): Promise<void> {
    await DISCONNECTED.run(this.#o.redis, [this.#willKey(clientId)], [this.#me])
  }

  /** Publishes a dead incarnation's wills now (normally started by 'nodeDead'). */
  sweep (incarnation: string): Promise<void> {
    return this.#sweep(incarnation)
  }

  stats (): WillsStats { return { published: this.#published, failed: this.#failed } }

  /**
   * Stops sweeping (waits for sweeps under way) and removes the wills this
   * node recorded: call after the broker closed its clients, which published
   * their wills. Idempotent.
   */
  close (): Promise<void> {
    this.#closing ??= this.#close()
    return this.#closing
  }

  async #close (): Promise<void> {
    clearInterval(this.#timer)
    this.#o.membership.off('nodeDead', this.#onDead)
    await Promise.allSettled(this.#sweeps.values())
    const { redis } = this.#o
    const index = this.#indexKey(this.#me)
    try {
      for await (const ids of scanSet(redis, index, this.#batch)) {
        const pipeline = redis.pipeline()
        for (const id of ids) FORGET.queue(pipeline, [this.#willKey(id), index], [this.#me, id])
        await pipeline.exec()
      }
    } catch (err) {
      // Left behind, they are swept when the others declare this node dead.
      this.#o.logger.warn({ err: (err as Error).message }, 'cluster: could not remove this node\'s will records')
    }
  }

  #sweep (incarnation: string): Promise<void> {
    const running = this.#sweeps.get(incarnation)
    if (running) return running
    const p = this.#runSweep(incarnation)
      .catch(err => this.#o.logger.warn({ incarnation, err: (err as Error).message }, 'cluster: sweeping a dead node\'s wills failed; retried next tick'))
      .finally(() => this.#sweeps.delete(incarnation))
    this.#sweeps.set(incarnation, p)
    return p
  }

  async #runSweep (incarnation: string): Promise<void> {
    if (this.#closing) return
    for await (const ids of scanSet(this.#o.redis, this.#indexKey(incarnation), this.#batch)) {
      await this.#claimAndPublish(ids, incarnation)
      if (this.#closing) return
    }
    // Settled, deferred and stale entries left the set; Redis deletes it when
    // empty, and membership.ts then lets the dead entry go. Wills leased by
    // another survivor keep it for the next tick.
  }

  async #claimAndPublish (ids: string[], expected: string): Promise<void> {
    if (ids.length === 0) return
    const { redis } = this.#o
    const claims = redis.pipeline()
    for (const id of ids) CLAIM.queue(claims, this.#keys(id, expected), [expected, this.#me, this.#leaseMs, id])
    const replies = (await claims.exec()) ?? []
    const settle = redis.pipeline()
    await Promise.all(ids.map(async (clientId, i) => {
      const [err, reply] = replies[i] ?? [new Error('no reply'), null]
      // Not claimed, so not ours to settle: a later tick tries it again.
      if (err) { this.#o.logger.debug({ clientId, err: err.message }, 'cluster: will claim failed'); return }
      const [status, packet, nodeId = ''] = reply as [string, string?, string?]
      if (status !== 'claimed' || packet === undefined) return
      let ok = false
      try {
        const will = decodeWill(packet)
        const { willDelayInterval: _, ...publishable } = will.properties ?? {}
        await this.#o.publish({ ...will, properties: Object.keys(publishable).length > 0 ? publishable : undefined, clientId, nodeId } as OrphanWill)
        ok = true
        this.#published++
      } catch (e) {
        this.#failed++
        this.#o.logger.warn({ clientId, nodeId, err: (e as Error).message }, 'cluster: publishing a dead node\'s will failed; retried next tick')
      }
      SETTLE.queue(settle, this.#keys(clientId, expected), [expected, this.#me, clientId, ok ? '1' : '0'])
    }))
    await settle.exec()
  }

  async #tick (): Promise<void> {
    if (this.#ticking || this.#closing) return
    this.#ticking = true
    try {
      const { redis } = this.#o
      // membership.ts keeps a dead incarnation listed while its set exists
      for (const incarnation of await deadWithSet(redis, this.#p, i => this.#indexKey(i))) void this.#sweep(incarnation)
      // Redis's clock, as in the scripts: node clocks may disagree.
      const [s, us] = await redis.time()
      const due = await redis.zrangebyscore(this.#p + 'wills:due', '-inf', Number(s) * 1000 + Math.floor(Number(us) / 1000), 'LIMIT', 0, this.#batch)
      await this.#claimAndPublish(due, 'due')
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message }, 'cluster: will tick failed')
    } finally {
      this.#ticking = false
    }
  }

  #keys (clientId: string, owner: string): string[] {
    return [this.#willKey(clientId), this.#indexKey(owner), this.#p + 'wills:due']
  }

  #willKey (clientId: string): string { return `${this.#p}will:${clientId}` }
  #indexKey (incarnation: string): string { return `${this.#p}wills:${incarnation}` }
}
