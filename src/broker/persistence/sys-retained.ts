import { Readable } from 'node:stream'
import { topicMatches } from '../../topics.js'
import type { AedesPersistence, RetainedPacket } from './store.js'

const SYS = '$SYS/'

/**
 * Keeps $SYS/ retained messages (the broker's own statistics, republished
 * every sys.interval) in memory, out of the store. aedes-persistence-level
 * answers every SUBSCRIBE by reading and decoding every retained message in
 * LevelDB, so the ~45 $SYS/broker/ values were read on each of them, in
 * LevelDB's threads and as one native buffer each: under connection churn
 * glibc's arenas grew to 100 MiB for 5,000 cycles and 200 MiB for 20,000,
 * with 7-9 MiB in use, and kept it (issue 9, finding 3;
 * docs/aedes-gaps.md#memory-under-connection-churn-on-leveldb-issue-9-finding-3).
 * They are not worth keeping across a restart either: they describe the
 * process that published them. Stacked on every store, so each behaves alike.
 */
export function sysRetainedInMemory (inner: AedesPersistence): AedesPersistence {
  const sys = new Map<string, RetainedPacket>()
  const stream = (pattern: string): Readable =>
    // Only a pattern starting with '$' can match a $SYS/ topic [MQTT-4.7.2-1].
    pattern.startsWith('$') ? Readable.from(withSys(sys, pattern, inner)) : inner.createRetainedStream(pattern)
  return {
    ...inner,
    async storeRetained (packet) {
      if (!packet.topic.startsWith(SYS)) return await inner.storeRetained(packet)
      // [MQTT-3.3.1-10] an empty payload clears the retained message
      if (packet.payload.length === 0) sys.delete(packet.topic)
      else sys.set(packet.topic, packet)
    },
    createRetainedStream: stream,
    createRetainedStreamCombi: patterns => Readable.from(each(patterns, stream))
  }
}

async function * withSys (sys: Map<string, RetainedPacket>, pattern: string, inner: AedesPersistence): AsyncGenerator<RetainedPacket> {
  for (const packet of [...sys.values()]) if (topicMatches(pattern, packet.topic)) yield packet
  yield * inner.createRetainedStream(pattern) as AsyncIterable<RetainedPacket>
}

async function * each (patterns: string[], stream: (pattern: string) => Readable): AsyncGenerator<RetainedPacket> {
  for (const pattern of patterns) yield * stream(pattern) as AsyncIterable<RetainedPacket>
}
