/*
 * ctx.state in the broker (rule-state.ts has the whole picture): a mirror of
 * each rule's state, updated from every conversion result that comes back
 * from the rule host, and written to the persistence in batches, one per
 * turn of the event loop (so one per batch of results, coalesced per key).
 *
 * persistence "level": a sublevel of the broker's LevelDB; a cluster node
 * (persistence "redis"): a hash per rule in Redis, the node's own. Both
 * survive a restart. persistence "memory": kept in this process only (it
 * survives a rule host crash, not a broker restart).
 *
 * What a crash can lose: a rule host crash, the changes of the conversions
 * in flight (their outputs are lost too: lostToHostCrash); a broker crash
 * (kill -9, power), the changes not written yet, those of the last batch or
 * so. A graceful close writes everything (flush).
 */
import type { Level } from 'level'
import type { Logger } from 'pino'
import { applyChanges, type StateChanges } from './rule-state.js'

/** Where rules' state is kept between runs of the broker. */
export interface RuleStateStore {
  /** A rule's state as kept, [key, JSON text]. */
  load(rule: string): Promise<Array<[string, string]>>
  write(rule: string, changes: StateChanges): void
  /** The rule is gone: its state with it. */
  drop(rule: string): void
  /** Resolves once every write and drop made so far is stored. */
  flush(): Promise<void>
}

/** Nothing outlives the process. */
export function memoryRuleStateStore (): RuleStateStore {
  return { load: async () => [], write: () => {}, drop: () => {}, flush: async () => {} }
}

/** Changes to write: rule → key → JSON text, or null to delete. */
type Pending = Map<string, Map<string, string | null>>

/** What a store does, without the batching. */
interface Backend {
  read(rule: string): Promise<Array<[string, string]>>
  write(changes: Pending): Promise<void>
  clear(rule: string): Promise<void>
}

/** persistence "level": a sublevel of the broker's LevelDB, keys "!rule-state!<rule>\0<key>". */
export function levelRuleStateStore (db: Level<string, Buffer>, logger: Logger): RuleStateStore {
  const sub = db.sublevel<string, string>('rule-state', { valueEncoding: 'utf8' })
  // Rule names never hold U+0000 (validate.ts).
  const range = (rule: string) => ({ gte: `${rule}\u0000`, lt: `${rule}\u0001` })
  return batched({
    async read (rule) {
      const entries: Array<[string, string]> = []
      for await (const [key, value] of sub.iterator(range(rule))) entries.push([key.slice(rule.length + 1), value])
      return entries
    },
    async write (changes) {
      const ops = [...changes].flatMap(([rule, keys]) => [...keys].map(([key, value]) => value === null
        ? { type: 'del' as const, key: `${rule}\u0000${key}` }
        : { type: 'put' as const, key: `${rule}\u0000${key}`, value }))
      await sub.batch(ops)
    },
    clear: rule => sub.clear(range(rule))
  }, logger)
}

/** The slice of ioredis used here. */
interface RedisLike {
  hgetall(key: string): Promise<Record<string, string>>
  del(key: string): Promise<number>
  multi(): { hset(key: string, values: Record<string, string>): unknown, hdel(key: string, ...fields: string[]): unknown, exec(): Promise<unknown> }
}

/** Under the cluster's key prefix (cluster/redis.ts DEFAULT_PREFIX), not loaded here so as not to load ioredis. */
export const RULE_STATE_PREFIX = 'switchyard:cluster:rule-state:'

/**
 * A cluster node (persistence "redis"): one hash per rule and node,
 * `switchyard:cluster:rule-state:<nodeId>:<rule>`. Per node, as the node's rules are
 * (docs/cluster.md#rules-in-a-cluster): it survives the node's restart, and
 * is not shared with the other nodes.
 */
export function redisRuleStateStore (redis: RedisLike, keyPrefix: string, logger: Logger): RuleStateStore {
  const key = (rule: string) => `${keyPrefix}${rule}`
  return batched({
    read: async rule => Object.entries(await redis.hgetall(key(rule))),
    async write (changes) {
      const tx = redis.multi()
      for (const [rule, keys] of changes) {
        const puts: Record<string, string> = {}
        const dels: string[] = []
        for (const [k, value] of keys) {
          if (value === null) dels.push(k)
          else puts[k] = value
        }
        if (Object.keys(puts).length > 0) tx.hset(key(rule), puts)
        if (dels.length > 0) tx.hdel(key(rule), ...dels)
      }
      await tx.exec()
    },
    clear: async rule => { await redis.del(key(rule)) }
  }, logger)
}

/**
 * Writes in batches, one per turn of the event loop, coalesced per key, and
 * in the order they were made (a drop after a write lands after it).
 */
function batched (backend: Backend, logger: Logger): RuleStateStore {
  let pending: Pending = new Map()
  let chain: Promise<void> = Promise.resolve()
  let scheduled = false
  // A drop or a flush takes what is pending at once: a batch scheduled before it is then moot.
  let generation = 0
  const failed = (err: unknown) => logger.error({ err: (err as Error).message }, 'rule state could not be written to the persistence; it is kept in memory')
  const take = () => {
    const changes = pending
    pending = new Map()
    return changes
  }
  const enqueue = (work: () => Promise<void>) => { chain = chain.then(work).catch(failed) }
  const writeNow = () => {
    const changes = take()
    generation++
    scheduled = false
    enqueue(async () => { if (changes.size > 0) await backend.write(changes) })
  }
  return {
    async load (rule) {
      await chain
      return backend.read(rule)
    },
    write (rule, changes) {
      let keys = pending.get(rule)
      if (!keys) pending.set(rule, keys = new Map())
      for (const [k, value] of changes) keys.set(k, value)
      if (scheduled) return
      scheduled = true
      const mine = generation
      enqueue(async () => {
        await new Promise<void>(resolve => setImmediate(resolve))
        if (mine !== generation) return
        scheduled = false
        const changes = take()
        if (changes.size > 0) await backend.write(changes)
      })
    },
    drop (rule) {
      pending.delete(rule)
      writeNow()
      enqueue(() => backend.clear(rule))
    },
    async flush () {
      writeNow()
      await chain
    }
  }
}

/** Every rule's state in the broker: the live copies, and the store behind them. */
export class RuleStates {
  readonly #store: RuleStateStore
  readonly #rules = new Map<string, Map<string, string>>()

  constructor (store: RuleStateStore) {
    this.#store = store
  }

  /** A rule's live copy, read from the store the first time. */
  async of (rule: string): Promise<Map<string, string>> {
    const known = this.#rules.get(rule)
    if (known) return known
    const entries = new Map(await this.#store.load(rule))
    // Another load of the same rule may have read it meanwhile: one copy.
    const raced = this.#rules.get(rule)
    if (raced) return raced
    this.#rules.set(rule, entries)
    return entries
  }

  apply (rule: string, changes: StateChanges): void {
    let entries = this.#rules.get(rule)
    if (!entries) this.#rules.set(rule, entries = new Map())
    applyChanges(entries, changes)
    this.#store.write(rule, changes)
  }

  drop (rule: string): void {
    this.#rules.delete(rule)
    this.#store.drop(rule)
  }

  flush (): Promise<void> { return this.#store.flush() }
}
