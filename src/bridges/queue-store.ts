/*
 * Where a bridge's out queue is kept: beside the broker's own store, in the
 * same LevelDB (a sublevel, keys "!bridges!<name>!<seq>"), so that it
 * survives a restart with the sessions it belongs with; or nowhere, with
 * `persistence: { type: "memory" }`. Only QoS 1 and 2 entries are written
 * (QoS 0 is not kept across a restart, as MQTT promises nothing for it).
 *
 * Writes go out in the order they were made, one batch at a time: a delete
 * (the remote broker acknowledged) must never land before its put, or the
 * entry would come back after a restart. A put still waiting for its batch
 * when its delete comes is dropped with it: the message never reaches disk.
 * put() returns the promise of its batch (one per batch, not per message):
 * the publisher's acknowledgement waits for it (bus.hold(), docs/bridges.md).
 */
import type { Level } from 'level'
import type { MessageProperties } from '../properties.js'
import type { QoS } from '../message.js'

/** A message on its way to the remote broker: the remote topic, as it will be published there. */
export interface OutMessage {
  readonly topic: string
  readonly payload: Buffer
  readonly qos: QoS
  readonly retain: boolean
  readonly properties?: MessageProperties
}

export interface QueueStore {
  /** The entries kept by an earlier run, in order. */
  load(): Promise<Array<{ seq: number, message: OutMessage }>>
  /** Resolves once the entry is written (or deleted before it was); undefined: nothing to wait for. Rejects if the write failed. */
  put(seq: number, message: OutMessage): Promise<void> | undefined
  del(seq: number): void
  /** Resolves when every put and del made so far is written. */
  flush(): Promise<void>
}

/** persistence "memory": nothing outlives the process. */
export const memoryQueueStore: QueueStore = {
  load: async () => [],
  put: () => undefined,
  del: () => {},
  flush: async () => {}
}

interface Op { type: 'put' | 'del', key: string, value?: Buffer, cancelled?: boolean }
interface Batch { promise: Promise<void>, resolve: () => void, reject: (err: Error) => void }

function batch (): Batch {
  let resolve!: () => void
  let reject!: (err: Error) => void
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej })
  // Handled: a failure is logged here; a waiting publisher is told by its own handler.
  promise.catch(() => {})
  return { promise, resolve, reject }
}

export function levelQueueStore (db: Level<string, Buffer>, name: string, onError: (err: Error) => void): QueueStore {
  const sub = db.sublevel<string, Buffer>('bridges', { valueEncoding: 'buffer' })
  // Names are [A-Za-z0-9._-] (bridges/config.ts): "<name>!" up to "<name>\"" holds one bridge's keys only.
  const keyOf = (seq: number) => `${name}!${seq.toString(16).padStart(13, '0')}`
  let ops: Op[] = []
  // The batch that `ops` will go out in, once a put waits for it.
  let next: Batch | undefined
  const unwritten = new Map<string, Op>()
  let writing: Promise<void> | undefined
  const drain = async (): Promise<void> => {
    while (ops.length > 0) {
      const writes = ops.filter(op => op.cancelled !== true)
      const done = next
      ops = []
      next = undefined
      unwritten.clear()
      try {
        if (writes.length > 0) await sub.batch(writes.map(op => op.type === 'put' ? { type: 'put' as const, key: op.key, value: op.value! } : { type: 'del' as const, key: op.key }))
        done?.resolve()
      } catch (err) {
        onError(err as Error)
        done?.reject(err as Error)
      }
    }
    writing = undefined
  }
  const push = (op: Op) => {
    ops.push(op)
    writing ??= drain()
  }
  return {
    async load () {
      const entries: Array<{ seq: number, message: OutMessage }> = []
      for await (const [key, value] of sub.iterator({ gt: `${name}!`, lt: `${name}"` })) {
        entries.push({ seq: parseInt(key.slice(name.length + 1), 16), message: decode(value) })
      }
      return entries
    },
    put (seq, message) {
      const op: Op = { type: 'put', key: keyOf(seq), value: encode(message) }
      unwritten.set(op.key, op)
      // Made before push(): drain() takes the batch with the ops, at once when idle.
      const waiting = (next ??= batch()).promise
      push(op)
      return waiting
    },
    del (seq) {
      const key = keyOf(seq)
      const put = unwritten.get(key)
      if (put !== undefined) {
        put.cancelled = true
        unwritten.delete(key)
        return
      }
      push({ type: 'del', key })
    },
    async flush () {
      while (writing !== undefined) await writing
    }
  }
}

export function encode (m: OutMessage): Buffer {
  const { correlationData, ...props } = m.properties ?? {}
  return Buffer.from(JSON.stringify({
    t: m.topic,
    q: m.qos,
    r: m.retain,
    p: m.payload.toString('base64'),
    ...(m.properties === undefined ? {} : { o: props }),
    ...(correlationData === undefined ? {} : { c: correlationData.toString('base64') })
  }))
}

export function decode (value: Buffer): OutMessage {
  const v = JSON.parse(value.toString()) as { t: string, q: QoS, r: boolean, p: string, o?: MessageProperties, c?: string }
  const properties = v.o === undefined ? undefined : { ...v.o, ...(v.c === undefined ? {} : { correlationData: Buffer.from(v.c, 'base64') }) }
  return { topic: v.t, qos: v.q, retain: v.r, payload: Buffer.from(v.p, 'base64'), ...(properties === undefined ? {} : { properties }) }
}
