/*
 * Shared subscriptions across the cluster (issue 13, docs/cluster.md
 * "Shared subscriptions"): each message goes to exactly one member of a
 * `$share/<group>/<filter>` group [MQTT-4.8.2], whichever node the members
 * and the publisher are on.
 *
 * Aedes's SharedSubscriptions (vendor/aedes/lib/shared.js, patch 012)
 * chooses the member on the publishing node and names, on the packet, the
 * node that delivers; the others let it pass. For that every node needs the
 * cluster's members of every group: this module is the directory in Redis
 * that it reports its local changes to (the `directory` hook), and whose
 * view of each group it takes back (applyRemote).
 *
 * Keys (prefix default 'switchyard:cluster:'; scripts in shared-lua.ts):
 *   share:<group key>        hash clientId -> '<incarnation or ''>|<qos>|<clean 1/0>'
 *   shares                   set of the group keys with a record
 *   share-client:<clientId>  set of the group keys clientId has a record in
 *   share-notice             channel: a group key, after each change of it
 *
 * A node is named by its incarnation (membership.ts), not its nodeId: the
 * records of a node restarted under the same nodeId are its old
 * incarnation's, swept like any dead node's.
 *
 * Every change is a Lua script that PUBLISHes the group's key; every node
 * then reads that group again (HGETALL) and applies it. Pub/sub is at most
 * once, so each heartbeat a node also sweeps records of nodes no longer in
 * the registry (dead, or gone without cleaning up), records again its own
 * members Redis does not know (lost writes, a Redis that lost its data), and
 * reads every group. On 'nodeDead' the sweep runs at once.
 *
 * Writes and reads go in order on one connection: a read answered before
 * one of this node's own writes is corrected by that write's notice.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Membership } from './membership.js'
import { DEFAULT_PREFIX, FailureStreak } from './redis.js'
import { JOINED, LEFT, FORGET_CLIENT, REASSERT, SWEEP } from './shared-lua.js'

/** One member as the directory holds it: `node` null while a persistent member is offline. */
export interface SharedEntry { clientId: string, node: string | null, qos: number, clean: boolean }

/** What Aedes's SharedSubscriptions tells its directory (vendor/aedes/lib/shared.js). */
export interface SharedDirectoryHooks {
  joined(key: string, clientId: string, qos: number, clean: boolean): void
  left(key: string, clientId: string, clean: boolean): void
  forgot(key: string, clientId: string): void
  forgotClient(clientId: string): void
}

/** The part of Aedes's SharedSubscriptions (broker.shared) a cluster node drives. */
export interface AedesShared {
  nodeId: string | null
  directory: SharedDirectoryHooks | null
  readonly groups: ReadonlyMap<string, { readonly members: ReadonlyArray<{ readonly clientId: string, readonly client: object | null, readonly qos: number, readonly clean: boolean }> }>
  applyRemote(key: string, entries: SharedEntry[], done?: (err?: Error | null) => void): void
}

/** GET /api/cluster, self.shared: this node's view of the cluster's groups, and the directory's work. */
export interface SharedStats {
  /** Groups with a member anywhere in the cluster, as this node sees them. */
  groups: number
  /** Their members, on any node or offline. */
  members: number
  notices: number
  resyncs: number
  failures: number
}

export interface SharedDirectoryOptions {
  /** Commands and reads, in order. */
  readonly redis: Redis
  /** Subscribed to the notice channel; nothing else is sent on it. */
  readonly sub: Redis
  readonly membership: Membership
  readonly shared: AedesShared
  readonly logger: Logger
  readonly prefix?: string
}

export interface SharedDirectory {
  /** Reads every group and sweeps dead nodes' records now (also each heartbeat). */
  resync(): Promise<void>
  stats(): SharedStats
  /** This node's members leave the directory (persistent ones offline); stops. Idempotent. */
  close(): Promise<void>
}

/** Joins `shared` to the directory: its local changes are recorded, the cluster's applied to it. */
export async function startSharedDirectory (o: SharedDirectoryOptions): Promise<SharedDirectory> {
  const p = o.prefix ?? DEFAULT_PREFIX
  const me = o.membership.incarnation
  const channel = p + 'share-notice'
  const { redis, shared, logger } = o
  const counts = { notices: 0, resyncs: 0, failures: 0 }
  const streak = new FailureStreak()
  let closed = false
  const failed = (what: string) => (err: unknown): void => {
    counts.failures++
    if (streak.failed()) logger.warn({ err: (err as Error)?.message }, `cluster: shared subscriptions: ${what} failed; retried at the next heartbeat`)
  }
  const ok = (): void => { if (streak.succeeded()) logger.info('cluster: shared subscriptions reach Redis again') }
  const record = (qos: number, clean: boolean): string => `${me}|${qos}|${clean ? 1 : 0}`
  const shareKey = (key: string): string => p + 'share:' + key
  const clientKey = (clientId: string): string => p + 'share-client:' + clientId

  // Group keys whose notice arrived, read together once per turn of the event loop.
  const pending = new Set<string>()
  let reading: Promise<void> = Promise.resolve()
  const schedule = (keys: Iterable<string>): void => {
    const idle = pending.size === 0
    for (const k of keys) pending.add(k)
    if (idle && pending.size > 0) reading = reading.then(() => new Promise(resolve => setImmediate(resolve))).then(readPending).catch(failed('reading a group'))
  }
  const readPending = async (): Promise<void> => {
    const keys = [...pending]
    pending.clear()
    if (closed || keys.length === 0) return
    const pipeline = redis.pipeline()
    for (const key of keys) pipeline.hgetall(shareKey(key))
    const replies = await pipeline.exec().catch((err: unknown) => { failed('reading a group')(err); return null })
    if (replies === null) return
    await Promise.all(keys.map((key, i) => {
      const [err, hash] = replies[i] ?? [new Error('no reply'), null]
      if (err) { failed('reading a group')(err); return undefined }
      return apply(key, hash as Record<string, string>)
    }))
  }
  const apply = (key: string, hash: Record<string, string>): Promise<void> => new Promise(resolve => {
    if (closed) return resolve()
    const entries: SharedEntry[] = []
    for (const [clientId, v] of Object.entries(hash)) entries.push(parseRecord(clientId, v))
    shared.applyRemote(key, entries, err => {
      if (err) logger.warn({ key, err: err.message }, 'cluster: shared subscriptions: could not apply a group')
      resolve()
    })
  })

  // A leave that found the record rewritten (the client took over on
  // another node) sends no notice: this node reads the group itself, whose
  // member it has just marked offline here.
  const unchanged = (key: string) => (changed: unknown): void => {
    ok()
    if (changed === 0) schedule([key])
  }
  const hooks: SharedDirectoryHooks = {
    joined (key, clientId, qos, clean) {
      JOINED.run(redis, [shareKey(key), p + 'shares', clientKey(clientId)], [clientId, record(qos, clean), key, channel]).then(ok, failed('recording a member'))
    },
    left (key, clientId, clean) {
      LEFT.run(redis, [shareKey(key)], [clientId, me, clean ? '1' : '0', key, channel, p]).then(unchanged(key), failed('recording a member\'s leave'))
    },
    forgot (key, clientId) {
      LEFT.run(redis, [shareKey(key)], [clientId, me, '1', key, channel, p]).then(unchanged(key), failed('removing a member'))
    },
    forgotClient (clientId) {
      FORGET_CLIENT.run(redis, [clientKey(clientId)], [clientId, me, p, channel]).then(ok, failed('removing a session\'s memberships'))
    }
  }

  const sweep = (closing = ''): Promise<unknown> => SWEEP.run(redis, [p + 'shares', p + 'members'], [p, channel, closing])
  let resyncing: Promise<void> | undefined
  const resync = (): Promise<void> => {
    resyncing ??= (async () => {
      try {
        await sweep()
        // This node's connected members that Redis does not know.
        REASSERT.define(redis)
        const pipeline = redis.pipeline()
        for (const [key, group] of shared.groups) {
          for (const m of group.members) {
            if (m.client !== null) REASSERT.queue(pipeline, [shareKey(key), p + 'shares', clientKey(m.clientId)], [m.clientId, record(m.qos, m.clean), key, channel])
          }
        }
        if (pipeline.length > 0) await pipeline.exec()
        const keys = await redis.smembers(p + 'shares')
        schedule([...keys, ...shared.groups.keys()])
        await reading
        counts.resyncs++
        ok()
      } catch (err) {
        failed('resynchronizing')(err)
      } finally {
        resyncing = undefined
      }
    })()
    return resyncing
  }

  o.sub.on('message', (ch: string, key: string) => {
    if (ch !== channel || closed) return
    counts.notices++
    schedule([key])
  })
  await o.sub.subscribe(channel)
  // Notices sent while the subscriber was reconnecting are lost: read all.
  o.sub.on('ready', () => { if (!closed) void resync() })
  shared.nodeId = me
  shared.directory = hooks
  const onDead = (): void => { void resync() }
  const onRestored = (): void => { void resync() }
  o.membership.on('nodeDead', onDead)
  o.membership.on('restored', onRestored)
  const timer = setInterval(() => { void resync() }, o.membership.heartbeatMs)
  timer.unref()
  await resync()

  let closing: Promise<void> | undefined
  return {
    resync,
    stats () {
      let members = 0
      for (const g of shared.groups.values()) members += g.members.length
      return { groups: shared.groups.size, members, ...counts }
    },
    close () {
      closing ??= (async () => {
        closed = true
        clearInterval(timer)
        o.membership.off('nodeDead', onDead)
        o.membership.off('restored', onRestored)
        shared.directory = null
        await resyncing
        await reading
        // The core has closed its clients (their leaves are queued before
        // this on the connection); whatever remains is swept as a dead node's.
        await sweep(me).catch(failed('removing this node\'s members'))
      })()
      return closing
    }
  }
}

/** '<node>|<qos>|<clean>' (shared-lua.ts): the node is everything before the last two '|'. */
export function parseRecord (clientId: string, v: string): SharedEntry {
  const c = v.lastIndexOf('|')
  const q = v.lastIndexOf('|', c - 1)
  const node = v.slice(0, q)
  return { clientId, node: node === '' ? null : node, qos: Number(v.slice(q + 1, c)), clean: v.slice(c + 1) === '1' }
}
