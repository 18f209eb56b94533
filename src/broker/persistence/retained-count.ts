import type { AedesPersistence } from './store.js'

/**
 * Keeps an exact count of retained messages (outside $SYS/), for
 * $SYS/broker/retained messages/count and the metrics: the stores have no
 * count, so it is loaded once from the store and then follows every store
 * and clear. Stack it before Aedes stores anything.
 */
export async function countRetained (inner: AedesPersistence): Promise<{ persistence: AedesPersistence, retained: { readonly size: number } }> {
  const topics = new Set<string>()
  for await (const packet of inner.createRetainedStream('#') as AsyncIterable<{ topic: string }>) {
    if (!packet.topic.startsWith('$SYS/')) topics.add(packet.topic)
  }
  const persistence: AedesPersistence = {
    ...inner,
    async storeRetained (packet) {
      await inner.storeRetained(packet)
      if (packet.topic.startsWith('$SYS/')) return
      // [MQTT-3.3.1-10] an empty payload clears the retained message
      if (packet.payload.length === 0) topics.delete(packet.topic)
      else topics.add(packet.topic)
    }
  }
  return { persistence, retained: topics }
}
