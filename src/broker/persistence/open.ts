/*
 * Opens the configured store: memory (aedes-persistence), LevelDB
 * (aedes-persistence-level, completed for MQTT 5 sessions by level-store.ts)
 * or, for a cluster node, the cluster's Redis (aedes-persistence-redis,
 * completed by src/cluster/store.ts).
 * What Switchyard adds on top is in the layers beside this file, stacked by
 * wrapPersistence (../persistence.ts).
 */
import { mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Level } from 'level'
import type { ClusterContext } from '../../cluster/context.js'
import type { Config } from '../../config.js'
import { SwitchyardError } from '../../errors.js'
import { completeLevelStore } from './level-store.js'
import type { AedesPersistence } from './store.js'

const require = createRequire(import.meta.url)
// The package's main export wraps this class in a callback API that Aedes 1.x
// rejects (it requires an async setup()); the async class is the real one.
const LevelPersistence = require('aedes-persistence-level/asyncPersistence.js') as new (db: Level<string, Buffer>) => AedesPersistence
const memoryPersistence = require('aedes-persistence') as () => AedesPersistence

/** What operations need from the store, beside Aedes's own use. */
export interface StoreHealth {
  /** Writes and deletes a key; rejects when the store cannot be written. */
  probe(): Promise<void>
}

export interface OpenedStore {
  store: AedesPersistence
  probe: StoreHealth['probe']
  /**
   * Set for a store several brokers share (the cluster's Redis): what
   * persistence.ts would otherwise count in this process, the store counts
   * itself, across every node.
   */
  shared?: SharedStore
  /** persistence "level": the LevelDB itself, where the bridges keep their out queues (a sublevel; src/bridges/queue-store.ts). */
  level?: Level<string, Buffer>
}

export interface SharedStore {
  /** limits.maxQueuedMessages, on each queue's length in the store, atomically with the enqueue (0: none). */
  capQueues(max: number, onDrop: (clientId: string) => void): void
  /** The retained messages outside $SYS/ in the store, whichever node stored them. */
  readonly retained: { readonly size: number }
}

/** `cluster`: the node's context, for { type: 'redis' } (server.ts opens it first). */
export async function openPersistence (config: Config['persistence'], cluster?: ClusterContext): Promise<OpenedStore> {
  if (config.type === 'memory') return { store: memoryPersistence(), probe: async () => {} }
  if (config.type === 'redis') {
    if (cluster === undefined) throw new SwitchyardError('ERR_PERSISTENCE', 'persistence.type: "redis" is the cluster\'s store: it needs "cluster" (and the node\'s cluster context)')
    // loaded only for a cluster node: a single broker never loads the Redis packages
    const redis = (await import('../../cluster/store.js')).openRedisStore(cluster)
    return { store: redis.store, probe: redis.probe, shared: { capQueues: redis.capQueues, retained: redis.retained } }
  }
  mkdirSync(config.path, { recursive: true })
  const db = new Level<string, Buffer>(config.path, { valueEncoding: 'buffer' })
  try {
    await db.open()
  } catch (err) {
    // LevelDB holds an exclusive lock: the usual cause is a second broker on the same directory.
    const cause = (err as { cause?: Error }).cause ?? err
    throw new SwitchyardError('ERR_PERSISTENCE',
      `persistence.path: cannot open LevelDB at ${config.path}: ${(cause as Error).message}; ` +
      'is another broker using this directory? Stop it or choose another path', { cause: err })
  }
  // The probe key sorts apart from aedes-persistence-level's own prefixes.
  // 16 KiB: a few bytes would fit in the log file's last allocated page and
  // succeed on a full disk; this much needs new space, as a real message would.
  const probeValue = Buffer.alloc(16 * 1024, 0x2e)
  // Earlier versions stored $SYS/ retained messages here; they are stale now
  // (sys-retained.ts keeps them in memory).
  await db.clear({ gte: 'retained:$SYS/', lt: 'retained:$SYS0' })
  return {
    // with what it lacks for MQTT 5 sessions (level-store.ts)
    store: completeLevelStore(new LevelPersistence(db), db),
    level: db,
    probe: async () => {
      await db.put('~switchyard-health', probeValue)
      await db.del('~switchyard-health')
    }
  }
}
