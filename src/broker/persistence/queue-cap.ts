import type { AedesPersistence, Sub } from './store.js'

/**
 * Caps each client's outgoing queue (offline and in-flight QoS 1/2 messages)
 * at `max`, like Mosquitto's max_queued_messages: Aedes 1.2 has no cap
 * (aedes#1087), so one absent subscriber could exhaust memory or disk.
 * Counts are loaded lazily from the store, so they stay exact across restarts.
 * max = 0 means unlimited: the store is returned as it is.
 */
/** Above this many client ids counted, those with an empty queue are forgotten. */
export const SWEEP_ABOVE = 10_000

export function capOutgoingQueue (inner: AedesPersistence, max: number, onDrop: (clientId: string) => void): AedesPersistence {
  if (max === 0) return inner
  const counts = new Map<string, number>()
  const loading = new Map<string, Promise<number>>()

  const load = (clientId: string): Promise<number> => {
    let pending = loading.get(clientId)
    if (pending === undefined) {
      pending = (async () => {
        let n = 0
        for await (const _ of inner.outgoingStream({ id: clientId })) n++
        counts.set(clientId, n)
        loading.delete(clientId)
        return n
      })()
      loading.set(clientId, pending)
    }
    return pending
  }

  // Reserve a slot; false when the client's queue is full.
  const reserve = async (clientId: string): Promise<boolean> => {
    // re-read after each await: other reservations, or a sweep, may have run meanwhile
    let n = counts.get(clientId)
    while (n === undefined) {
      await load(clientId)
      n = counts.get(clientId)
    }
    if (n >= max) return false
    counts.set(clientId, n + 1)
    return true
  }
  // A slot reserved for a store that then failed is given back.
  const release = (clientId: string): void => {
    const n = counts.get(clientId)
    if (n !== undefined) counts.set(clientId, Math.max(0, n - 1))
  }
  const store = (sub: Sub, packet: unknown): Promise<unknown> =>
    inner.outgoingEnqueue(sub, packet).catch((err: unknown) => { release(sub.clientId); throw err })

  const enqueue = async (sub: Sub, packet: unknown): Promise<void> => {
    if (await reserve(sub.clientId)) await store(sub, packet)
    else onDrop(sub.clientId)
  }
  // One entry per client id that ever had a message queued: with churn over
  // many ids, empty ones are swept once there are many (they reload lazily,
  // a scan of an empty queue). Not on every empty queue: an online
  // persistent session goes 1, 0, 1, 0 and would scan each time.
  const sweep = (): void => {
    if (counts.size <= SWEEP_ABOVE) return
    for (const [clientId, n] of counts) if (n === 0) counts.delete(clientId)
  }

  return {
    ...inner,
    async outgoingEnqueueCombi (subs, packet) {
      const kept: Sub[] = []
      for (const sub of subs) {
        if (await reserve(sub.clientId)) kept.push(sub)
        else onDrop(sub.clientId)
      }
      // Each kept subscriber is enqueued once, through the store's own
      // outgoingEnqueue. (When this layer patched the store in place,
      // aedes-persistence-level's outgoingEnqueueCombi called the patched
      // outgoingEnqueue, and every message was counted twice: a queue of 500
      // filled the cap of 1,000, issue 9.)
      await Promise.all(kept.map(sub => store(sub, packet)))
    },
    outgoingEnqueue: enqueue,
    async outgoingClearMessageId (client, packet) {
      const removed = await inner.outgoingClearMessageId(client, packet)
      const n = counts.get(client.id)
      if (removed !== undefined && n !== undefined) {
        counts.set(client.id, Math.max(0, n - 1))
        if (n <= 1) sweep()
      }
      return removed
    },
    // A message dropped here is still delivered live to a connected client,
    // and Aedes first records its message id on the queue entry; with no entry
    // it emitted a client error and closed the connection. Send it unstored.
    async outgoingUpdate (client, packet) {
      try {
        return await inner.outgoingUpdate(client, packet)
      } catch (err) {
        const live = (packet as { brokerId?: string }).brokerId !== undefined
        if (live && (err as Error).message === 'no such packet') return undefined
        throw err
      }
    }
  }
}
