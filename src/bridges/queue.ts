/*
 * A bridge's out queue: every message on its way to the remote broker, in
 * the order it was routed here, from the moment it is routed until the
 * remote broker acknowledges it (PUBACK for QoS 1, PUBCOMP for QoS 2; a QoS 0
 * message once written). Entries are `pending` (not sent on the current
 * connection) or in flight; when the connection drops, the ones in flight go
 * back to the head, in order, and are sent again on the next connection
 * (MQTT.js keeps its own in-flight store in memory only, and each connection
 * gets a fresh client: this queue is the one source of truth).
 *
 * Bounded by queue.maxMessages, pending and in flight together. At the bound
 * the new message is refused and counted, as Mosquitto does for
 * max_queued_messages and Switchyard for limits.maxQueuedMessages: the head
 * may be in flight, and dropping it would break the order the remote sees.
 */
import type { OutMessage, QueueStore } from './queue-store.js'

export interface Entry { readonly seq: number, readonly message: OutMessage }

/** What the bridge (outbound.ts) uses of a queue: OutQueue here, or redis-queue.ts in a cluster. */
export interface BridgeQueue {
  max: number
  readonly size: number
  readonly inflight: number
  push(message: OutMessage): boolean | Promise<void>
  take(): Entry | undefined
  done(seq: number): void
  requeue(): number
  dropVolatile(): number
  flush(): Promise<void>
  /** Called when entries became available after take() found none (a cluster queue fetches them from Redis). */
  onAvailable?: () => void
  /** A cluster queue learns only later that a message was refused at the bound: it calls this then. */
  onFull?: () => void
}

export class OutQueue implements BridgeQueue {
  readonly #store: QueueStore
  /** queue.maxMessages (a reload may change it). */
  max: number
  #pending: Entry[] = []
  #head = 0
  readonly #inflight = new Map<number, Entry>()
  #next = 1

  constructor (store: QueueStore, max: number) {
    this.#store = store
    this.max = max
  }

  /** Loads what an earlier run left; call once, before anything is pushed. */
  async restore (): Promise<number> {
    const entries = await this.#store.load()
    this.#pending = entries
    this.#head = 0
    if (entries.length > 0) this.#next = entries[entries.length - 1]!.seq + 1
    return entries.length
  }

  /** Pending and in flight. */
  get size (): number {
    return this.#pending.length - this.#head + this.#inflight.size
  }

  get inflight (): number {
    return this.#inflight.size
  }

  /**
   * False: the queue is full and the message was not queued. True: queued,
   * nothing to wait for. A promise: queued, and written to the store when
   * it resolves (QoS 1 and 2 with a persistent store).
   */
  push (message: OutMessage): boolean | Promise<void> {
    if (this.size >= this.max) return false
    const entry = { seq: this.#next++, message }
    this.#pending.push(entry)
    return (message.qos > 0 ? this.#store.put(entry.seq, message) : undefined) ?? true
  }

  /** The next entry to send, now counted as in flight. */
  take (): Entry | undefined {
    if (this.#head >= this.#pending.length) return undefined
    const entry = this.#pending[this.#head]!
    this.#pending[this.#head++] = undefined as unknown as Entry
    if (this.#head >= 1024 && this.#head * 2 >= this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head)
      this.#head = 0
    }
    this.#inflight.set(entry.seq, entry)
    return entry
  }

  /** The remote broker has it (or refused it for good): forget it. */
  done (seq: number): void {
    const entry = this.#inflight.get(seq)
    if (entry === undefined) return
    this.#inflight.delete(seq)
    if (entry.message.qos > 0) this.#store.del(seq)
  }

  /**
   * The connection dropped: QoS 1 and 2 entries in flight go back to the
   * head, in order, to be sent again (duplicates are what QoS 1 allows; see
   * docs/bridges.md for QoS 2). QoS 0 ones are dropped; returns how many.
   */
  requeue (): number {
    const back = [...this.#inflight.values()].sort((a, b) => a.seq - b.seq)
    this.#inflight.clear()
    const kept = back.filter(e => e.message.qos > 0)
    this.#pending = kept.concat(this.#pending.slice(this.#head))
    this.#head = 0
    return back.length - kept.length
  }

  /** Drops pending QoS 0 entries (the link is down, and they are not kept); returns how many. */
  dropVolatile (): number {
    const rest = this.#pending.slice(this.#head)
    const kept = rest.filter(e => e.message.qos > 0)
    this.#pending = kept
    this.#head = 0
    return rest.length - kept.length
  }

  flush (): Promise<void> {
    return this.#store.flush()
  }
}
