/*
 * Which node each client is on (issue 13: "/api/clients says which node each
 * client is on"). Each node keeps its connected clients in Redis, so that any
 * node's GET /api/clients lists the whole cluster's:
 *
 *   clients:<incarnation>   hash clientId -> JSON { username, remote,
 *                           connectedAt, clean, protocolVersion } of the
 *                           clients connected to that incarnation of a node
 *                           (membership.ts: `<nodeId>/<uuid>`, new each start)
 *
 * - Written from the broker's connect and disconnect events, batched: the
 *   events only mark the client id, and one pipeline a tick later writes
 *   what changed. Nothing waits on Redis, so a Redis outage never holds a
 *   CONNECT; a write that fails is logged (once per outage) and the whole
 *   hash is written again (DEL, HSET all, in MULTI) at the next tick that
 *   reaches Redis. Every half heartbeat a tick refreshes the hash's TTL
 *   (2.5 heartbeats, as node:<nodeId>'s) and compares its length with this
 *   node's count: a hash Redis lost (restarted without its data, or expired
 *   while this node could not reach it) is written again.
 * - Keyed by incarnation, not nodeId: a node restarted under its nodeId
 *   starts a fresh hash, and no survivor's clean-up of the previous
 *   incarnation can touch it.
 * - Removed by the node on close; a dead node's is removed by every tick of
 *   every survivor while membership's `dead` hash names its incarnation
 *   (10 heartbeats, idempotent DEL), and expires by its TTL in any case.
 *   The list reads only the incarnations in `members`: a node declared dead
 *   leaves it at once, so its clients vanish from the list at that moment.
 * - A client connected twice (a takeover on this node, whose disconnect
 *   event may come after the new connection's connect) is counted, and
 *   removed only when its last connection ends.
 * - Subscriptions are not copied (they change with every SUBSCRIBE); the
 *   list shows them for this node's own clients, from memory.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { ClientInfo } from '../broker/core.js'
import { SwitchyardError } from '../errors.js'
import type { ClusterContext } from './context.js'
import { DEFAULT_PREFIX, FailureStreak, Script } from './redis.js'

/** One client of the cluster, as GET /api/clients lists it; `subscriptions` only for the answering node's own. */
export type ClusterClientInfo = Omit<ClientInfo, 'subscriptions' | 'node'> & { node: string, subscriptions?: string[] }

export interface ClusterClientsOptions {
  /** This node's clients, from memory (the broker core's). */
  local: () => ClientInfo[]
  /** The broker's connect and disconnect events (EventHub.on); returns the function that stops listening. */
  on: (event: 'clientConnect' | 'clientDisconnect', listener: (client: ConnectEvent) => void) => () => void
}

export interface ConnectEvent {
  readonly clientId: string
  readonly username: string | null
  readonly remote: string
  readonly clean?: boolean
  readonly protocolVersion: 3 | 4 | 5
}

export interface ClusterClients {
  /**
   * Every client of the cluster with its node (only `node`'s when given),
   * ordered by node then clientId. This node's come from memory. Rejects
   * with ERR_CLUSTER_UNAVAILABLE while Redis is away.
   */
  list(node?: string): Promise<ClusterClientInfo[]>
  /**
   * GET /api/clients: `?local=1` this node's from memory, `?node=<id>` one
   * node's, else every node's. While Redis is away it rejects with
   * ERR_CLUSTER_UNAVAILABLE carrying `clients`: this node's own, which the
   * admin API answers with 503 and `partial: true`.
   */
  query(params: URLSearchParams): Promise<ClusterClientInfo[]>
}

// KEYS: own dead; ARGV: prefix ttlMs. Refreshes the TTL of this node's hash,
// deletes the hashes of incarnations declared dead; returns this hash's length.
const TICK = new Script(`
if redis.call('HLEN', KEYS[1]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
local dead = redis.call('HKEYS', KEYS[2])
for i = 1, #dead do redis.call('DEL', ARGV[1] .. 'clients:' .. dead[i]) end
return redis.call('HLEN', KEYS[1])`, 2)

// KEYS: a node's hash. HGETALL's flat reply, untouched: ioredis would make it
// an object, where a client id '__proto__' is lost.
const READ = new Script("return redis.call('HGETALL', KEYS[1])", 1)

export function attachClusterClients (ctx: ClusterContext, options: ClusterClientsOptions): ClusterClients {
  const p = DEFAULT_PREFIX
  const logger = ctx.logger
  const h = ctx.config.heartbeatMs
  const ttl = Math.ceil(h * 2.5)
  const redis: Redis = ctx.store
  /** clientId -> its entry and how many connections of it this node holds. */
  const mine = new Map<string, { json: string, n: number }>()
  const dirty = new Set<string>()
  const failures = new FailureStreak()
  let key = ''
  let resync = true
  let running: Promise<void> | undefined
  let scheduled = false
  let closed = false
  let timer: NodeJS.Timeout | undefined
  const offs: Array<() => void> = []

  const failed = (what: string) => (err: unknown): void => {
    resync = true
    if (failures.failed()) logger.warn({ err: (err as Error).message }, `cluster: could not ${what} this node's client list in Redis; written again once Redis answers`)
  }

  // One Redis operation at a time, in order: a flush, a full write, a tick.
  const serial = (fn: () => Promise<void>): Promise<void> => {
    const next = (running ?? Promise.resolve()).then(fn).catch(failed('write'))
    running = next
    return next
  }

  const flush = async (): Promise<void> => {
    scheduled = false
    if (closed || key === '' || (dirty.size === 0 && !resync)) return
    const ids = [...dirty]
    dirty.clear()
    const tx = resync ? redis.multi() : redis.pipeline()
    if (resync) {
      tx.del(key)
      // 1,000 fields per HSET: 100,000 clients are 100 commands, not 100,000.
      // A Map, not an object: a client id may be '__proto__'.
      let chunk = new Map<string, string>()
      for (const [id, e] of mine) {
        chunk.set(id, e.json)
        if (chunk.size === 1000) { tx.hset(key, chunk); chunk = new Map() }
      }
      if (chunk.size > 0) tx.hset(key, chunk)
    } else {
      for (const id of ids) {
        const e = mine.get(id)
        if (e) tx.hset(key, id, e.json)
        else tx.hdel(key, id)
      }
    }
    tx.pexpire(key, ttl)
    const wasResync = resync
    resync = false
    const replies = await tx.exec()
    const err = replies?.find(([e]) => e)?.[0]
    if (err) throw err
    if (replies === null) throw new Error('transaction aborted')
    if (failures.succeeded()) logger.info({ clients: mine.size }, 'cluster: this node\'s client list is in Redis again')
    else if (wasResync) logger.debug({ clients: mine.size }, 'cluster: client list written to Redis')
  }

  const schedule = (): void => {
    if (scheduled || closed) return
    scheduled = true
    setImmediate(() => { void serial(flush) })
  }

  const tick = (): Promise<void> => serial(async () => {
    if (closed || key === '') return
    const len = Number(await TICK.run(redis, [key, p + 'dead'], [p, ttl]))
    if (len !== mine.size && dirty.size === 0) resync = true
    if (resync) await flush()
  })

  offs.push(options.on('clientConnect', c => {
    const prev = mine.get(c.clientId)
    const json = JSON.stringify({ username: c.username, remote: c.remote, connectedAt: new Date().toISOString(), clean: c.clean ?? true, protocolVersion: c.protocolVersion })
    mine.set(c.clientId, { json, n: (prev?.n ?? 0) + 1 })
    dirty.add(c.clientId)
    schedule()
  }))
  offs.push(options.on('clientDisconnect', c => {
    const e = mine.get(c.clientId)
    if (!e) return
    if (--e.n > 0) return
    mine.delete(c.clientId)
    dirty.add(c.clientId)
    schedule()
  }))

  ctx.use({
    name: 'clients',
    // After the 'node' part (use() order): membership has joined, and members names this node's incarnation.
    async start () {
      const incarnation = await redis.hget(p + 'members', ctx.nodeId)
      if (incarnation === null) throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster: node ${ctx.nodeId} is not in the registry; cannot keep its client list`)
      key = `${p}clients:${incarnation}`
      timer = setInterval(() => { void tick() }, Math.max(1, Math.floor(h / 2)))
      timer.unref()
      schedule()
    },
    async close () {
      closed = true
      clearInterval(timer)
      for (const off of offs) off()
      await running
      if (key === '') return
      await redis.del(key).catch(err => logger.debug({ err: (err as Error).message }, 'cluster: could not remove this node\'s client list; it expires'))
    }
  })

  return {
    async list (node) {
      let members: Record<string, string>
      let hashes: Array<[Error | null, unknown]>
      const ids: string[] = []
      try {
        members = await redis.hgetall(p + 'members')
        READ.define(redis)
        const pipeline = redis.pipeline()
        for (const id of Object.keys(members).sort()) {
          if (id === ctx.nodeId || (node !== undefined && id !== node)) continue
          ids.push(id)
          READ.queue(pipeline, [`${p}clients:${members[id]}`], [])
        }
        hashes = ids.length === 0 ? [] : (await pipeline.exec()) ?? []
      } catch (err) {
        throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster: cannot read the client lists from Redis: ${(err as Error).message}`, { cause: err })
      }
      const out: ClusterClientInfo[] = []
      const self = (): void => {
        for (const c of options.local().sort((a, b) => a.clientId < b.clientId ? -1 : 1)) out.push({ ...c, node: ctx.nodeId })
      }
      let selfDone = node !== undefined && node !== ctx.nodeId
      ids.forEach((nodeId, i) => {
        if (!selfDone && ctx.nodeId < nodeId) { self(); selfDone = true }
        const [err, flat] = hashes[i] ?? [null, []]
        if (err) throw new SwitchyardError('ERR_CLUSTER_UNAVAILABLE', `cluster: cannot read node ${nodeId}'s clients from Redis: ${err.message}`, { cause: err })
        const pairs: Array<[string, string]> = []
        const list = flat as string[]
        for (let j = 0; j + 1 < list.length; j += 2) pairs.push([list[j]!, list[j + 1]!])
        pairs.sort((x, y) => x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0)
        for (const [clientId, json] of pairs) {
          const entry = parse(json)
          if (entry) out.push({ clientId, ...entry, node: nodeId })
        }
      })
      if (!selfDone) self()
      return out
    },
    async query (params) {
      const node = params.get('node') ?? undefined
      const local = (): ClusterClientInfo[] => node !== undefined && node !== ctx.nodeId
        ? []
        : options.local().map(c => ({ ...c, node: ctx.nodeId }))
      if (params.get('local') === '1' || params.get('local') === 'true') return local()
      try {
        return await this.list(node)
      } catch (err) {
        throw Object.assign(err as Error, { clients: local() })
      }
    }
  }
}

function parse (json: string | undefined): Omit<ClusterClientInfo, 'clientId' | 'node'> | undefined {
  try {
    const v = JSON.parse(json ?? '') as Omit<ClusterClientInfo, 'clientId' | 'node'>
    return v !== null && typeof v === 'object' ? v : undefined
  } catch {
    return undefined
  }
}
