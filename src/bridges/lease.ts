/*
 * In a cluster, a bridge runs on exactly one node at a time: the holder of
 * its lease, a Redis key per bridge name (docs/bridges.md#clusters). Taken
 * with SET NX PX (two heartbeats), renewed every half heartbeat by a
 * compare-and-renew script; a node whose renewal fails (another node holds
 * it, or Redis did not answer) stops its bridge at once, before the key can
 * expire. The others try to take it every heartbeat, so when the holder
 * dies the bridge moves to a survivor within about two heartbeats. The value
 * is the holder's node id and its incarnation (the broker id, fresh at each
 * start), so a restarted node never mistakes its previous life's lease for
 * its own.
 */
import type { Redis } from 'ioredis'
import { Script } from '../cluster/redis.js'

// KEYS[1] the lease; ARGV[1] our value, ARGV[2] the time to live (ms).
const RENEW = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`, 1)
const RELEASE = new Script(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`, 1)

export interface LeaseEvents {
  /** This node took the lease: start the bridge. */
  acquired(): void
  /** This node no longer holds it (or cannot tell): stop the bridge now. */
  lost(reason: string): void
  /** Each heartbeat on a node without the lease, after its try. */
  standby?(): void
}

export class BridgeLease {
  readonly key: string
  readonly value: string
  readonly #redis: Redis
  readonly #heartbeatMs: number
  readonly #events: LeaseEvents
  #holding = false
  #holder: string | null = null
  #timer: NodeJS.Timeout | undefined
  #ticks = 0
  #busy = false
  #closed = false

  constructor (redis: Redis, key: string, nodeId: string, incarnation: string, heartbeatMs: number, events: LeaseEvents) {
    this.#redis = redis
    this.key = key
    this.value = `${nodeId} ${incarnation}`
    this.#heartbeatMs = heartbeatMs
    this.#events = events
  }

  get holding (): boolean { return this.#holding }

  /** The node id of the holder, as last seen (this node's while it holds it); null: nobody. */
  get runningOn (): string | null { return this.#holder?.split(' ')[0] ?? null }

  start (): void {
    void this.#tick()
    this.#timer = setInterval(() => { void this.#tick() }, Math.max(1, Math.floor(this.#heartbeatMs / 2)))
  }

  async #tick (): Promise<void> {
    if (this.#busy || this.#closed) return
    this.#busy = true
    const ttl = 2 * this.#heartbeatMs
    try {
      if (this.#holding) {
        const renewed = await RENEW.run(this.#redis, [this.key], [this.value, ttl]).catch((err: Error) => err)
        if (renewed !== 1 && this.#holding && !this.#closed) {
          this.#holding = false
          this.#holder = null
          this.#events.lost(renewed instanceof Error ? `cannot renew the lease: ${renewed.message}` : 'the lease was taken over')
        }
      } else if (this.#ticks++ % 2 === 0) {
        const taken = await this.#redis.set(this.key, this.value, 'PX', ttl, 'NX')
        if (this.#closed) {
          // closed meanwhile: give back what was just taken, rather than make the others wait for it to expire
          if (taken === 'OK') await RELEASE.run(this.#redis, [this.key], [this.value])
          return
        }
        if (taken === 'OK') {
          this.#holding = true
          this.#holder = this.value
          this.#events.acquired()
        } else {
          this.#holder = await this.#redis.get(this.key)
          this.#events.standby?.()
        }
      }
    } catch {
      // Redis away: not holding, and nothing to stop; try again next heartbeat.
    } finally {
      this.#busy = false
    }
  }

  /** Stops renewing and, if held, gives the lease up, so that a survivor takes it at its next try. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    clearInterval(this.#timer)
    if (!this.#holding) return
    this.#holding = false
    await RELEASE.run(this.#redis, [this.key], [this.value]).catch(() => {})
  }
}
