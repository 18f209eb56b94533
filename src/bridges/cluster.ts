/*
 * A bridge on a cluster node (docs/bridges.md#clusters): its out queue is a
 * Redis list every node appends to (redis-queue.ts), and its connection to
 * the remote broker runs on the holder of its lease only (lease.ts). One
 * ClusterSlot per bridge name, kept across reloads like the queue of a
 * single broker; the Bridge it drives may be replaced by a reload.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { DEFAULT_PREFIX } from '../cluster/redis.js'
import type { Bridge } from './bridge.js'
import { BridgeLease } from './lease.js'
import { RedisOutQueue } from './redis-queue.js'

export interface BridgeCluster {
  /** Opens the node's connection for the bridges (called once: one connection, so that each publisher's appends keep their order). */
  redis(): Promise<Redis>
  nodeId: string
  /** The broker id: fresh at each start. */
  incarnation: string
  heartbeatMs: number
  prefix?: string
}

export class ClusterSlot {
  readonly queue: RedisOutQueue
  readonly #lease: BridgeLease
  #bridge: Bridge | undefined

  constructor (redis: Redis, cluster: BridgeCluster, name: string, max: number, log: Logger) {
    const p = `${cluster.prefix ?? DEFAULT_PREFIX}bridge:${name}:`
    const onError = (err: Error): void => log.error({ bridge: name, err: err.message }, `bridge ${name}: the out queue in Redis failed: ${err.message}`)
    this.#lease = new BridgeLease(redis, `${p}lease`, cluster.nodeId, cluster.incarnation, cluster.heartbeatMs, {
      acquired: () => {
        log.info({ bridge: name, node: cluster.nodeId }, `bridge ${name}: this node took the lease; the bridge runs here`)
        this.queue.activate()
        this.#bridge?.activate()
      },
      lost: reason => {
        log.warn({ bridge: name, node: cluster.nodeId, reason }, `bridge ${name}: lease lost (${reason}); the bridge stops here`)
        this.#bridge?.standby()
        this.queue.deactivate()
      },
      standby: () => this.queue.refresh()
    })
    this.queue = new RedisOutQueue({ redis, key: `${p}queue`, leaseKey: this.#lease.key, leaseValue: this.#lease.value, max, onError })
  }

  /** Whether this node runs the bridge now. */
  get holding (): boolean { return this.#lease.holding }
  get runningOn (): string | null { return this.#lease.runningOn }

  /** The bridge this slot drives (a reload replaces it); the lease starts with the first. */
  attach (bridge: Bridge): void {
    const first = this.#bridge === undefined
    this.#bridge = bridge
    if (first) this.#lease.start()
  }

  /** The bridge closed for good: give the lease up, for another node to take. */
  async close (): Promise<void> {
    this.queue.deactivate()
    await this.#lease.close()
  }
}
