/*
 * A cluster node's wiring (issue 13, docs/cluster.md): joins membership.ts,
 * wills.ts and readiness.ts into the node's life through ClusterContext.use(),
 * and hands the broker core (broker/aedes.ts) the gate it consults on each
 * CONNECT, disconnect and QoS 1/2 PUBLISH (CoreClusterGate in broker/core.ts).
 *
 * - start: readiness watches every Redis connection (the store's, the
 *   emitter's two, and the 'cluster' one made here); join() registers the
 *   node (a live node with this nodeId fails createBroker with
 *   ERR_CLUSTER_NODE_ID_TAKEN); wills publishes dead nodes' wills through
 *   the core, as the client's will (the rules see it, with its clientId).
 * - session expiry (expiry.ts): a v5 session that outlives its connection
 *   is ended by whichever node claims it when due (core.endSession), even
 *   if the node it left has died; Aedes's own timer is off (aedes.ts).
 * - 'evicted': the node closes (onEvicted, server.ts). 'restored' (Redis lost
 *   its data): every connected client's will is recorded again.
 * - shared subscriptions (shared.ts): Aedes's broker.shared, handed over by
 *   the core (gate.attachShared), is joined to the directory in Redis once
 *   membership has given the node its incarnation, on two connections of
 *   its own ('shared', 'shared-sub').
 * - close, after the core closed its clients (which published their wills):
 *   shared subscriptions, session expiry (hands this node's sessions over),
 *   wills, membership, readiness; the connections are the context's.
 */
import type { Redis } from 'ioredis'
import type { CoreClusterGate } from '../broker/core.js'
import type { SwitchyardError } from '../errors.js'
import type { ClusterContext } from './context.js'
import { join, type Membership, type NodeInfo, type NodeStats } from './membership.js'
import { createReadiness, type Readiness, type ReadinessStats, type RedisHealth } from './readiness.js'
import { createWills, type OrphanWill, type Wills, type WillsStats, type WillMessage } from './wills.js'
import { startSharedDirectory, type AedesShared, type SharedDirectory, type SharedStats } from './shared.js'
import { createSessionExpiry, type SessionExpiry, type SessionExpiryStats } from './expiry.js'

export interface ClusterNodeOptions {
  /** How people and load balancers reach this node ('host:port'). */
  address: string
  /** Read at each heartbeat, for GET /api/cluster. */
  stats: () => NodeStats
  /** Publishes a dead node's will as its client's (client null, clientId set). */
  publishWill: (will: OrphanWill) => Promise<void>
  /** Ends the stored session of a client not connected here (BrokerCore.endSession): expiry.ts claimed its expiry. */
  endSession: (clientId: string) => Promise<void>
  /** Every connected client's will, to record again after Redis lost its data. */
  connectedWills: () => Array<{ clientId: string, will: WillMessage | null, sessionExpiryInterval?: number }>
  /** This node was declared dead or its nodeId taken: close it. */
  onEvicted: (err: SwitchyardError) => void
  /** readiness.ts's timings; tests shorten them. */
  readiness?: { pingMs?: number, pingTimeoutMs?: number, holdMs?: number, holdBytes?: number }
}

export interface ClusterNode {
  readonly nodeId: string
  readonly readiness: Readiness
  /** What the broker core consults (broker/core.ts). */
  readonly gate: CoreClusterGate
  /** Every registered node (GET /api/cluster). ERR_CLUSTER_UNAVAILABLE when Redis is away. */
  nodes(): Promise<NodeInfo[]>
  health(): RedisHealth
  stats(): { readiness: ReadinessStats, wills: WillsStats, qos0Dropped: number, shared: SharedStats, expiry: SessionExpiryStats }
}

export function attachClusterNode (ctx: ClusterContext, options: ClusterNodeOptions): ClusterNode {
  const logger = ctx.logger
  const h = ctx.config.heartbeatMs
  // PING each connection a few times per heartbeat, at most every second.
  const readiness = createReadiness({ logger, pingMs: Math.min(1000, Math.max(100, h / 2)), pingTimeoutMs: Math.min(1000, Math.max(200, h)), ...options.readiness })
  const watched = new Set<Redis>()
  const watchAll = (): void => {
    for (const { name, redis } of ctx.connections()) {
      if (watched.has(redis)) continue
      watched.add(redis)
      readiness.watch(redis, name)
    }
  }
  // The store's and the emitter's exist already: watched from now on.
  watchAll()
  let membership: Membership | undefined
  let wills: Wills | undefined
  let expiry: SessionExpiry | undefined
  let aedesShared: AedesShared | undefined
  let shared: SharedDirectory | undefined
  let qos0Dropped = 0
  const failed = (what: string) => (err: unknown) => {
    readiness.reportFailure(err, 'cluster')
    logger.warn({ err: (err as Error)?.message }, `cluster: ${what} failed`)
    throw err
  }

  ctx.use({
    name: 'node',
    async start () {
      const redis = await ctx.connect('cluster')
      watchAll()
      membership = await join({ redis, nodeId: ctx.nodeId, address: options.address, heartbeatMs: h, logger, stats: options.stats })
      membership.on('evicted', err => options.onEvicted(err))
      membership.on('restored', () => {
        const w = wills
        if (!w) return
        for (const c of options.connectedWills()) {
          w.connected(c.clientId, c.will, c.sessionExpiryInterval === undefined ? {} : { sessionExpiryInterval: c.sessionExpiryInterval })
            .catch(err => logger.warn({ clientId: c.clientId, err: (err as Error).message }, 'cluster: could not record a will again'))
          expiry?.connected(c.clientId, c.sessionExpiryInterval)
            .catch(err => logger.warn({ clientId: c.clientId, err: (err as Error).message }, 'cluster: could not record a session again'))
        }
      })
      wills = createWills({ redis, membership, logger, publish: options.publishWill })
      // MQTT 5 Session Expiry across nodes (expiry.ts), on the same connection
      expiry = createSessionExpiry({ redis, membership, logger, end: options.endSession })
      if (aedesShared) {
        const [sharedRedis, sub] = await Promise.all([ctx.connect('shared'), ctx.connect('shared-sub')])
        watchAll()
        shared = await startSharedDirectory({ redis: sharedRedis, sub, membership, shared: aedesShared, logger })
      }
    },
    health () {
      const r = readiness.health()
      if (r.ok) return { ok: true }
      return { ok: false, error: `Redis unreachable: ${r.connections.filter(c => !c.ok).map(c => `${c.name} ${c.error ?? c.status}`).join('; ')}` }
    },
    async close () {
      await shared?.close()
      await expiry?.close()
      await wills?.close()
      await membership?.leave()
      await readiness.close()
    }
  })

  const gate: CoreClusterGate = {
    ready: () => readiness.ready,
    async connected (clientId, will, sessionExpiryInterval) {
      if (!wills) return
      await Promise.all([
        wills.connected(clientId, will, sessionExpiryInterval === undefined ? {} : { sessionExpiryInterval }).catch(failed('recording a will')),
        expiry?.connected(clientId, sessionExpiryInterval).catch(failed('recording a session'))
      ])
    },
    sessionClosed (clientId, sessionExpiryInterval) {
      expiry?.closed(clientId, sessionExpiryInterval).catch(err => logger.warn({ clientId, err: (err as Error).message }, 'cluster: could not record a session\'s expiry'))
    },
    forget (clientId) {
      wills?.forget(clientId).catch(err => logger.debug({ clientId, err: (err as Error).message }, 'cluster: could not remove a will record'))
    },
    disconnected (clientId) {
      wills?.disconnected(clientId).catch(err => logger.debug({ clientId, err: (err as Error).message }, 'cluster: could not mark a will as delayed'))
    },
    admit: bytes => readiness.admit(bytes),
    droppedQos0 () { qos0Dropped++ },
    reportFailure: (err, name) => readiness.reportFailure(err, name),
    attachShared (s) { aedesShared = s }
  }

  return {
    nodeId: ctx.nodeId,
    readiness,
    gate,
    async nodes () {
      if (!membership) return []
      return membership.nodes()
    },
    health: () => readiness.health(),
    stats: () => ({ readiness: readiness.stats(), wills: wills?.stats() ?? { published: 0, failed: 0 }, qos0Dropped, shared: shared?.stats() ?? { groups: 0, members: 0, notices: 0, resyncs: 0, failures: 0 }, expiry: expiry?.stats() ?? { expired: 0, failed: 0 } })
  }
}
