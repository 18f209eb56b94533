/*
 * Every configured bridge (docs/bridges.md): started with the broker, listed
 * by GET /api/bridges and the metrics, reconciled on reload (SIGHUP) and
 * closed before the broker's store. A bridge whose settings did not change
 * on reload keeps its connection; a changed one is closed and started again
 * with the same out queue (it is keyed by name), a removed one is closed
 * (its queue is kept, for when it comes back). On a cluster node, each
 * bridge's queue is in Redis and it connects only while this node holds its
 * lease (cluster.ts).
 */
import type { Redis } from 'ioredis'
import type { Level } from 'level'
import type { Logger } from 'pino'
import { Bridge, type BridgeDeps, type BridgeView } from './bridge.js'
import { ClusterSlot, type BridgeCluster } from './cluster.js'
import type { BridgeConfig } from './config.js'
import { OutQueue, type BridgeQueue } from './queue.js'
import { levelQueueStore, memoryQueueStore, type QueueStore } from './queue-store.js'
import { resolveSettings, type BridgeSettings } from './settings.js'

export interface BridgesOptions extends Omit<BridgeDeps, 'logger'> {
  logger: Logger
  /** The broker's LevelDB, when persistence is "level": the out queues are kept there. */
  level?: Level<string, Buffer>
  env: Readonly<Record<string, string | undefined>>
  /** Set on a cluster node: the queues go to Redis, and each bridge runs on the node holding its lease. */
  cluster?: BridgeCluster
}

export class Bridges {
  readonly #options: BridgesOptions
  readonly #running = new Map<string, Bridge>()
  readonly #queues = new Map<string, OutQueue>()
  readonly #slots = new Map<string, ClusterSlot>()
  /** A cluster node's connection for the bridges, opened with the first bridge. */
  #redis: Promise<Redis> | undefined
  #configs: readonly BridgeConfig[] = []
  #closed = false
  #reconciling: Promise<unknown> = Promise.resolve()

  constructor (options: BridgesOptions) {
    this.#options = options
  }

  /**
   * Starts every bridge. Throws (an Error whose message lists `key: problem`
   * lines) when a password variable or a certificate cannot be read: nothing
   * is started then.
   */
  async start (configs: readonly BridgeConfig[]): Promise<void> {
    const settings = this.#resolve(configs)
    if ('problems' in settings) throw new Error(settings.problems.join('\n'))
    this.#configs = configs
    for (const [i, config] of configs.entries()) await this.#startOne(config, settings.list[i]!)
  }

  /**
   * Re-reads passwords and certificates (and takes `configs`, the bridges of
   * a re-read config file, when given), then restarts only the bridges whose
   * settings changed. On a problem nothing changes and the problems are returned.
   */
  reload (configs?: readonly BridgeConfig[]): Promise<string[]> {
    const run = this.#reconciling.then(() => this.#reload(configs ?? this.#configs))
    this.#reconciling = run.catch(() => {})
    return run
  }

  async #reload (configs: readonly BridgeConfig[]): Promise<string[]> {
    if (this.#closed) return []
    const settings = this.#resolve(configs)
    if ('problems' in settings) return settings.problems
    this.#configs = configs
    const wanted = new Set(configs.map(c => c.name))
    for (const [name, bridge] of this.#running) {
      if (wanted.has(name)) continue
      this.#running.delete(name)
      await bridge.close()
      await this.#slots.get(name)?.close()
      this.#slots.delete(name)
      this.#options.logger.info({ bridge: name }, `bridge ${name} removed`)
    }
    for (const [i, config] of configs.entries()) {
      const current = this.#running.get(config.name)
      const next = settings.list[i]!
      if (current?.settings.fingerprint === next.fingerprint) continue
      if (current !== undefined) {
        this.#options.logger.info({ bridge: config.name }, `bridge ${config.name}: settings changed; reconnecting`)
        await current.close()
      }
      await this.#startOne(config, next)
    }
    return []
  }

  list (): BridgeView[] {
    return [...this.#running.values()].map(b => {
      const slot = this.#slots.get(b.name)
      return slot === undefined ? b.view() : { ...b.view(), runningOn: slot.runningOn }
    })
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#reconciling
    await Promise.all([...this.#running.values()].map(b => b.close()))
    this.#running.clear()
    await Promise.all([...this.#slots.values()].map(s => s.close()))
    this.#slots.clear()
  }

  async #startOne (config: BridgeConfig, settings: BridgeSettings): Promise<void> {
    const cluster = this.#options.cluster
    if (cluster !== undefined) {
      let slot = this.#slots.get(config.name)
      if (slot === undefined) {
        slot = new ClusterSlot(await (this.#redis ??= cluster.redis()), cluster, config.name, config.queue.maxMessages, this.#options.logger)
        this.#slots.set(config.name, slot)
      }
      slot.queue.max = config.queue.maxMessages
      const bridge = this.#bridge(config, settings, slot.queue, true)
      slot.attach(bridge)
      bridge.start(slot.holding)
      return
    }
    let queue = this.#queues.get(config.name)
    if (queue === undefined) {
      queue = new OutQueue(this.#store(config.name), config.queue.maxMessages)
      const kept = await queue.restore()
      if (kept > 0) this.#options.logger.info({ bridge: config.name, queued: kept }, `bridge ${config.name}: ${kept} message(s) waiting in the out queue from the last run`)
      this.#queues.set(config.name, queue)
    }
    // A lower bound on reload refuses new messages until the queue is under it; none already queued is dropped.
    queue.max = config.queue.maxMessages
    this.#bridge(config, settings, queue, false).start()
  }

  #bridge (config: BridgeConfig, settings: BridgeSettings, queue: BridgeQueue, shared: boolean): Bridge {
    const bridge = new Bridge(config, settings, queue, { ...this.#options, logger: this.#options.logger, shared })
    this.#running.set(config.name, bridge)
    return bridge
  }

  #store (name: string): QueueStore {
    const db = this.#options.level
    if (db === undefined) return memoryQueueStore
    return levelQueueStore(db, name, err => this.#options.logger.error({ bridge: name, err: err.message }, `bridge ${name}: cannot write the out queue to LevelDB`))
  }

  #resolve (configs: readonly BridgeConfig[]): { list: BridgeSettings[] } | { problems: string[] } {
    const problems: string[] = []
    const list: BridgeSettings[] = []
    configs.forEach((c, i) => {
      try {
        list.push(resolveSettings(c, i, this.#options.env))
      } catch (err) {
        problems.push((err as Error).message)
      }
    })
    return problems.length > 0 ? { problems } : { list }
  }
}
