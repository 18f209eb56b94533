/*
 * A bridge's out queue in a cluster: a Redis list per bridge
 * (<prefix>bridge:<name>:queue), so that it does not depend on one node.
 * Every node appends what its own clients publish that matches an `out`
 * topic (only that node sees the message before its PUBACK, which waits for
 * the append: bus.hold()); commands on one connection run in order, so each
 * publisher's messages keep their order. The lease holder (lease.ts) reads
 * from the head, sends, and trims an entry only once the remote broker has
 * acknowledged it and every entry before it; the trim checks the lease in
 * the same script, so a node that lost the lease can never trim what the new
 * holder has not sent. A new holder starts from the head: what the old one
 * sent and had not trimmed is sent again (QoS 1 allows the duplicate).
 * QoS 0 messages join the list too (their order with the others holds); they
 * are not waited for.
 */
import type { Redis } from 'ioredis'
import { Script } from '../cluster/redis.js'
import type { Entry, BridgeQueue } from './queue.js'
import { decode, encode, type OutMessage } from './queue-store.js'

// KEYS[1] the list; ARGV[1] the bound, ARGV[2] the entry. 0: full, refused.
const ENQUEUE = new Script(`
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[2])
return 1`, 1)
// KEYS[1] the list, KEYS[2] the lease; ARGV[1] our lease value, ARGV[2] how many to drop from the head.
const TRIM = new Script(`
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end
redis.call('LTRIM', KEYS[1], ARGV[2], -1)
return redis.call('LLEN', KEYS[1])`, 2)

const FETCH = 256
const IDLE_POLL_MS = 50

interface Slot { readonly seq: number, readonly message: OutMessage, state: 'pending' | 'sent' | 'acked' }

export interface RedisQueueOptions {
  redis: Redis
  key: string
  leaseKey: string
  leaseValue: string
  max: number
  onError: (err: Error) => void
}

export class RedisOutQueue implements BridgeQueue {
  max: number
  onAvailable?: () => void
  onFull?: () => void
  readonly #o: RedisQueueOptions
  /** While this node holds the lease: the entries read from the head of the list, in order; #slots[0] is at index 0. */
  #slots: Slot[] = []
  #cursor = 0
  /** Slots sent and not acknowledged. */
  #sent = 0
  #nextSeq = 1
  #active = false
  #fetching = false
  #poll: NodeJS.Timeout | undefined
  #trimming: Promise<unknown> = Promise.resolve()
  /** The list's length, as last seen. */
  #length = 0
  /** Bumped at each activate() and deactivate(): a read made before is not this run's. */
  #epoch = 0

  constructor (options: RedisQueueOptions) {
    this.#o = options
    this.max = options.max
  }

  get size (): number { return this.#active ? Math.max(this.#length, this.#slots.length) : this.#length }
  get inflight (): number { return this.#sent }

  push (message: OutMessage): boolean | Promise<void> {
    const appended = ENQUEUE.run(this.#o.redis, [this.#o.key], [this.max, encode(message).toString()]).then(added => {
      if (added === 0) this.onFull?.()
      else this.#length++
      if (this.#active && this.#cursor >= this.#slots.length) this.#fetch()
    })
    if (message.qos > 0) return appended
    appended.catch((err: Error) => this.#o.onError(err))
    return true
  }

  /** On a node without the lease: the list's length, for GET /api/bridges and the metrics. */
  refresh (): void {
    if (this.#active) return
    this.#o.redis.llen(this.#o.key).then(n => { if (!this.#active) this.#length = n }, () => {})
  }

  /** This node took the lease: read from the head. */
  activate (): void {
    this.#active = true
    this.#epoch++
    this.#fetching = false
    this.#slots = []
    this.#cursor = 0
    this.#sent = 0
    this.#fetch()
  }

  /** This node lost the lease (or closes): forget what was read; the list keeps it for the next holder. */
  deactivate (): void {
    this.#active = false
    this.#epoch++
    this.#fetching = false
    clearTimeout(this.#poll)
    this.#poll = undefined
    this.#slots = []
    this.#cursor = 0
    this.#sent = 0
  }

  take (): Entry | undefined {
    while (this.#cursor < this.#slots.length && this.#slots[this.#cursor]!.state !== 'pending') this.#cursor++
    const slot = this.#slots[this.#cursor]
    if (slot === undefined) {
      this.#fetch()
      return undefined
    }
    slot.state = 'sent'
    this.#sent++
    this.#cursor++
    // Read ahead, so that sending does not stall at each FETCH boundary.
    if (this.#slots.length - this.#cursor < FETCH / 2) this.#fetch()
    return slot
  }

  done (seq: number): void {
    const slot = this.#slots.find(s => s.seq === seq)
    if (slot === undefined || slot.state !== 'sent') return
    slot.state = 'acked'
    this.#sent--
    let n = 0
    while (n < this.#slots.length && this.#slots[n]!.state === 'acked') n++
    if (n === 0) return
    this.#slots.splice(0, n)
    this.#cursor = Math.max(0, this.#cursor - n)
    const o = this.#o
    // Issued now, so that it runs before any later LRANGE on this connection.
    const trim = TRIM.run(o.redis, [o.key, o.leaseKey], [o.leaseValue, n]).then(left => {
      if (typeof left === 'number' && left >= 0) this.#length = left
    }, (err: Error) => o.onError(err))
    this.#trimming = this.#trimming.then(() => trim)
  }

  /** The connection dropped: what was sent and not acknowledged is sent again, from the first. */
  requeue (): number {
    for (const s of this.#slots) if (s.state === 'sent') s.state = 'pending'
    this.#cursor = 0
    this.#sent = 0
    return 0
  }

  dropVolatile (): number {
    return 0
  }

  async flush (): Promise<void> {
    await this.#trimming
  }

  /** Reads the next entries after those already read; polls while the list has no more. */
  #fetch (): void {
    if (!this.#active || this.#fetching) return
    this.#fetching = true
    clearTimeout(this.#poll)
    this.#poll = undefined
    const o = this.#o
    const epoch = this.#epoch
    // Read once every trim issued so far is done (a trim's first run may be
    // resent as EVAL, after a read issued meanwhile): `from` counts from the
    // trimmed head. A trim issued after the read runs after it, and splices
    // #slots only after `from` was taken: the entries read follow the last slot.
    const read = (): Promise<Array<[Error | null, unknown]> | null> => {
      const trims = this.#trimming
      return trims.then(() => {
        if (trims !== this.#trimming) return read()
        const from = this.#slots.length
        return o.redis.multi().lrange(o.key, from, from + FETCH - 1).llen(o.key).exec()
      })
    }
    read().then(results => {
      if (epoch !== this.#epoch) return
      this.#fetching = false
      if (!this.#active || results === null) return
      const values = results[0]![1] as Buffer[] | string[]
      this.#length = results[1]![1] as number
      for (const v of values) this.#slots.push({ seq: this.#nextSeq++, message: decode(Buffer.from(v)), state: 'pending' })
      if (values.length > 0) this.onAvailable?.()
      else this.#poll = setTimeout(() => this.#fetch(), IDLE_POLL_MS)
    }, (err: Error) => {
      if (epoch !== this.#epoch) return
      this.#fetching = false
      o.onError(err)
      if (this.#active) this.#poll = setTimeout(() => this.#fetch(), IDLE_POLL_MS * 10)
    })
  }
}
