/*
 * The cluster's node registry in Redis: who is alive, at which address, with
 * how many clients, and who has died (so that wills.ts publishes their wills).
 *
 * Keys (prefix default 'switchyard:cluster:'):
 *   members          hash nodeId -> incarnation: the live registry
 *   node:<nodeId>    hash of the incarnation's address, stats and last beat
 *                    (Redis's clock), with a TTL of 2.5 heartbeats: a node
 *                    nobody declares dead still disappears from nodes().
 *                    Field `counters`: the node's counters (node-counters.ts),
 *                    written only by a beat that changed them
 *   dead             hash incarnation -> '<declaredAt>:<nodeId>': declared dead.
 *                    Kept 10 heartbeats, so that every node polling sees it
 *                    and emits 'nodeDead', and after that as long as
 *                    wills:<incarnation> (wills.ts) holds wills to publish
 *   cluster          the registry's generation (a uuid): a new one only after
 *                    Redis lost its data, so that a node missing from members
 *                    tells "declared dead" from "Redis forgot us"
 *
 * An incarnation is `<nodeId>/<uuid>`, new each start: a node restarted under
 * its stable nodeId is a new incarnation, and its old one's wills are swept
 * like any dead node's (the old one's clients' connections died with it).
 *
 * Timing, with h = heartbeatMs. A node beats every h/2. Every node polls
 * every h/4 and declares dead a node whose last beat is older than 1.25 h.
 * A node killed just after a beat is declared at most 1.25 h + h/4 = 1.5 h
 * later, which leaves half a heartbeat of the contract's two for the sweep
 * (wills.ts). A live node may be up to 0.75 h late before it is called dead.
 *
 * Death is found by polling, not by keyspace notifications: those need
 * `notify-keyspace-events` set on the server (CONFIG is often disabled on
 * managed Redis); an 'expired' event fires when Redis gets round to expiring
 * the key, not at its TTL; and pub/sub is at most once, so a node that was
 * reconnecting misses it. The poll is one short Lua script over the members
 * hash, judged by Redis's own clock (TIME), so node clocks may disagree.
 *
 * Declaring is atomic (one script): exactly one node moves an incarnation
 * from members to dead. A node that finds itself declared dead, or its
 * nodeId taken by a newer incarnation, stops and emits 'evicted'.
 */
import { EventEmitter } from 'node:events'
import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { SwitchyardError } from '../errors.js'
import { BEAT, JOIN, LEAVE, REAP } from './membership-lua.js'
import { decodeCounters, encodeCounters, type CounterSources, type NodeCounters } from './node-counters.js'
import { DEFAULT_PREFIX, FailureStreak } from './redis.js'

const DEAD_AFTER = 1.25 // heartbeats without a beat before a node is dead

export interface NodeStats {
  readonly clients: number
  readonly messagesPerSecond: number
  /** The node's counters, for GET /api/cluster's per-node and summed figures (node-counters.ts). */
  readonly counters?: CounterSources
}

export interface MembershipOptions {
  /** A connection made with connectRedis (clusterRedisOptions); not closed by leave(). */
  readonly redis: Redis
  readonly nodeId: string
  /** How people and load balancers reach this node, e.g. 'host:1883'. */
  readonly address: string
  readonly heartbeatMs: number
  /** Read at each beat, for GET /api/cluster. */
  readonly stats?: () => NodeStats
  readonly logger: Logger
  readonly prefix?: string
}

/** One node, as GET /api/cluster lists it. */
export interface NodeInfo {
  readonly nodeId: string
  readonly address: string
  readonly startedAt: string
  /** ISO time of its last beat, by Redis's clock. */
  readonly lastHeartbeat: string
  readonly ageMs: number
  readonly heartbeatMs: number
  readonly clients: number
  readonly messagesPerSecond: number
  /** What it counted since it started, as of its last heartbeat that changed it; zeros before its first. */
  readonly counters: NodeCounters
}

export interface MembershipEvents {
  /** A node was declared dead (by any node); once per incarnation on each node. */
  nodeDead: [nodeId: string, incarnation: string]
  /** This node was declared dead, or its nodeId taken; it stopped beating. Close the broker. */
  evicted: [error: SwitchyardError]
  /** Redis had lost the registry (restarted without its data); this node registered again. */
  restored: []
}

/**
 * Registers this node, refusing with ERR_CLUSTER_NODE_ID_TAKEN while a live
 * node holds `nodeId`; a holder whose beats stopped more than 1.25 heartbeats
 * ago is declared dead and replaced. Redis unreachable: ERR_CLUSTER_UNAVAILABLE.
 */
export async function join (options: MembershipOptions): Promise<Membership> {
  const m = new Membership(options)
  await m.start()
  return m
}

export class Membership extends EventEmitter<MembershipEvents> {
  readonly nodeId: string
  readonly incarnation: string
  readonly heartbeatMs: number
  readonly #o: MembershipOptions
  readonly #p: string
  readonly #timers: NodeJS.Timeout[] = []
  readonly #announced = new Set<string>()
  readonly #beatFailures = new FailureStreak()
  #lastBeatOk = 0
  /** The counters as the last successful beat wrote them: an unchanged value is not sent again. */
  #countersSent = ''
  #generation = ''
  /** No node is declared dead before this (performance.now()): see #beat. */
  #quietUntil = 0
  #busy = { beat: false, reap: false }
  #state: 'joining' | 'joined' | 'evicted' | 'left' = 'joining'
  #leaving: Promise<void> | undefined

  constructor (options: MembershipOptions) {
    super()
    this.#o = options
    this.#p = options.prefix ?? DEFAULT_PREFIX
    this.nodeId = options.nodeId
    this.heartbeatMs = options.heartbeatMs
    this.incarnation = `${options.nodeId}/${randomUUID()}`
  }

  get state (): 'joining' | 'joined' | 'evicted' | 'left' { return this.#state }

  /** Registers and starts beating; join() calls it. Once only. */
  async start (): Promise<void> {
    if (this.#state !== 'joining' || this.#timers.length > 0) throw new Error('Membership.start() called twice')
    const { redis, heartbeatMs: h } = this.#o
    let result: string[]
    try {
      result = await JOIN.run(redis, [this.#p + 'members', this.#p + 'dead', this.#p + 'cluster', this.#nodeKey(this.nodeId)],
        [this.incarnation, this.#o.address, h, this.#ttl(), DEAD_AFTER, this.nodeId, randomUUID()]) as string[]
    } catch (err) {
      throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster: cannot register node ${this.nodeId} in Redis: ${(err as Error).message}`, { cause: err })
    }
    if (result[0] === 'taken') {
      throw new SwitchyardError('ERR_CLUSTER_NODE_ID_TAKEN',
        `cluster.nodeId: node ${JSON.stringify(this.nodeId)} is already running (at ${result[1]}, last heartbeat ${result[2]} ms ago); ` +
        'stop it, or give this node another nodeId')
    }
    if (result[1]) this.#o.logger.warn({ nodeId: this.nodeId, previous: result[1] }, 'cluster: took over the nodeId of a node that stopped beating; its wills are published')
    this.#generation = result[2]!
    this.#state = 'joined'
    this.#lastBeatOk = performance.now()
    // Just joined, perhaps as Redis came back: the others may not have beaten yet.
    this.#quietUntil = this.#lastBeatOk + h * DEAD_AFTER
    this.#every(h / 2, () => this.#beat())
    this.#every(h / 4, () => this.#reap())
  }

  /** Every registered node, this one included, ordered by nodeId. Redis unreachable: ERR_CLUSTER_UNAVAILABLE. */
  async nodes (): Promise<NodeInfo[]> {
    const { redis } = this.#o
    let members: Record<string, string>
    let replies: Array<[Error | null, unknown]>
    let ids: string[]
    try {
      members = await redis.hgetall(this.#p + 'members')
      ids = Object.keys(members).sort()
      const pipeline = redis.pipeline()
      for (const id of ids) pipeline.hgetall(this.#nodeKey(id))
      pipeline.time()
      replies = (await pipeline.exec()) ?? []
    } catch (err) {
      throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster: cannot read the node registry from Redis: ${(err as Error).message}`, { cause: err })
    }
    const time = replies[replies.length - 1]?.[1] as [string, string]
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
    const out: NodeInfo[] = []
    ids.forEach((nodeId, i) => {
      const h = replies[i]?.[1] as Record<string, string> | undefined
      if (!h || h.incarnation !== members[nodeId]) return
      const last = Number(h.lastBeat)
      out.push({
        nodeId,
        address: h.address ?? '',
        startedAt: new Date(Number(h.startedAt)).toISOString(),
        lastHeartbeat: new Date(last).toISOString(),
        ageMs: Math.max(0, now - last),
        heartbeatMs: Number(h.heartbeatMs),
        clients: Number(h.clients),
        messagesPerSecond: Number(h.messagesPerSecond),
        counters: decodeCounters(h.counters)
      })
    })
    return out
  }

  /** Stops beating and removes this node from the registry. Idempotent; close() is the same. */
  leave (): Promise<void> {
    this.#leaving ??= this.#leave()
    return this.#leaving
  }

  close (): Promise<void> { return this.leave() }

  async #leave (): Promise<void> {
    this.#stop()
    if (this.#state !== 'joined') { this.#state = 'left'; return }
    this.#state = 'left'
    try {
      await LEAVE.run(this.#o.redis, [this.#p + 'members', this.#nodeKey(this.nodeId)], [this.nodeId, this.incarnation])
    } catch (err) {
      // Redis is away: the registry entry is declared dead by the others
      // 1.25 heartbeats on, as for a crash; Aedes has published the wills.
      this.#o.logger.warn({ err: (err as Error).message }, 'cluster: could not remove this node from the registry; the others will declare it dead')
    }
  }

  async #beat (): Promise<void> {
    if (this.#busy.beat || this.#state !== 'joined') return
    this.#busy.beat = true
    const started = performance.now()
    try {
      const stats: NodeStats = this.#o.stats?.() ?? { clients: 0, messagesPerSecond: 0 }
      const counters = stats.counters === undefined ? '' : encodeCounters(stats.counters)
      const send = counters === this.#countersSent ? '' : counters
      const [status, generation, missing] = await BEAT.run(this.#o.redis, [this.#p + 'members', this.#p + 'cluster', this.#nodeKey(this.nodeId)],
        [this.incarnation, this.#o.address, this.#o.heartbeatMs, this.#ttl(), stats.clients, Math.round(stats.messagesPerSecond * 100) / 100,
          this.nodeId, this.#generation, randomUUID(), send]) as [string, string?, number?]
      // Written, or found missing (the hash was recreated): the next beat sends it again.
      this.#countersSent = missing === 1 ? '' : counters
      if (this.#state !== 'joined') return
      if (status === 'taken' || status === 'evicted') return this.#evicted(status)
      const now = performance.now()
      // This node could not reach Redis for longer than a node may be silent
      // (or the beat itself hung that long): if Redis itself was away, every
      // node's beats are just as stale, and they come back over the next few
      // moments. Give them the same grace before declaring anyone dead.
      if (started - this.#lastBeatOk > this.#deadAfterMs() || now - started > this.#deadAfterMs()) {
        this.#quietUntil = now + this.#deadAfterMs()
      }
      this.#lastBeatOk = now
      if (this.#beatFailures.succeeded()) this.#o.logger.info({ nodeId: this.nodeId }, 'cluster: heartbeats reach Redis again')
      if (status === 'restored') {
        this.#generation = generation!
        this.#o.logger.warn({ nodeId: this.nodeId }, 'cluster: the registry was gone from Redis (restarted without its data?); registered again')
        this.#emit('restored')
      }
    } catch (err) {
      if (this.#beatFailures.failed()) this.#o.logger.warn({ nodeId: this.nodeId, err: (err as Error).message }, 'cluster: heartbeat failed; retrying every half heartbeat')
    } finally {
      this.#busy.beat = false
    }
  }

  async #reap (): Promise<void> {
    if (this.#busy.reap || this.#state !== 'joined') return
    this.#busy.reap = true
    try {
      // Only a node that is itself beating on time (its last beat within 1.5
      // beat intervals) judges the others: a node whose own event loop or
      // link stalled would see everyone late.
      const now = performance.now()
      const declare = now >= this.#quietUntil && now - this.#lastBeatOk < this.#o.heartbeatMs * 0.75
      const dead = await REAP.run(this.#o.redis, [this.#p + 'members', this.#p + 'dead'], [this.#p, DEAD_AFTER, this.nodeId, declare ? '1' : '0', 10 * this.#o.heartbeatMs]) as string[]
      const current = new Set<string>()
      for (let i = 0; i < dead.length; i += 2) {
        const incarnation = dead[i]!
        const nodeId = dead[i + 1]!
        current.add(incarnation)
        if (this.#announced.has(incarnation) || this.#state !== 'joined') continue
        this.#announced.add(incarnation)
        this.#o.logger.warn({ nodeId, incarnation }, 'cluster: node declared dead')
        this.#emit('nodeDead', nodeId, incarnation)
      }
      // Entries pruned from the hash: forget them here too.
      for (const inc of this.#announced) if (!current.has(inc)) this.#announced.delete(inc)
    } catch (err) {
      this.#o.logger.debug({ err: (err as Error).message }, 'cluster: dead-node poll failed')
    } finally {
      this.#busy.reap = false
    }
  }

  #evicted (status: 'taken' | 'evicted'): void {
    this.#stop()
    this.#state = 'evicted'
    const why = status === 'taken'
      ? `another process started as node ${JSON.stringify(this.nodeId)} after this one stopped beating`
      : `the other nodes declared this one dead: no heartbeat reached Redis for ${this.#deadAfterMs()} ms`
    const err = new SwitchyardError('ERR_CLUSTER_EVICTED', `cluster: node ${this.nodeId} was evicted: ${why}; its clients' wills have been published, so it must close`)
    this.#o.logger.error({ nodeId: this.nodeId, incarnation: this.incarnation }, err.message)
    this.#emit('evicted', err)
  }

  #emit<E extends keyof MembershipEvents> (event: E, ...args: MembershipEvents[E]): void {
    try {
      (this.emit as (e: E, ...a: MembershipEvents[E]) => boolean)(event, ...args)
    } catch (err) {
      this.#o.logger.error({ err, event }, 'cluster: a membership listener threw')
    }
  }

  #every (ms: number, fn: () => Promise<void>): void {
    const timer = setInterval(() => { void fn() }, Math.max(1, Math.floor(ms)))
    timer.unref()
    this.#timers.push(timer)
  }

  #stop (): void {
    for (const t of this.#timers) clearInterval(t)
    this.#timers.length = 0
  }

  #nodeKey (nodeId: string): string { return `${this.#p}node:${nodeId}` }
  #deadAfterMs (): number { return this.#o.heartbeatMs * DEAD_AFTER }
  #ttl (): number { return Math.ceil(this.#o.heartbeatMs * 2.5) }
}
