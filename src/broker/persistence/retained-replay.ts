import { Readable } from 'node:stream'
import { wildcardFirst } from '../../topics.js'
import type { AedesPersistence } from './store.js'

/**
 * [MQTT-4.7.2-1] a filter starting with a wildcard does not match topics
 * starting with '$'. Aedes 1.2 applies it to live messages but not to the
 * retained messages it replays on SUBSCRIBE: a '#' subscriber received every
 * retained $SYS/ topic. Replay pattern by pattern, and skip those.
 */
export function guardRetainedReplay (inner: AedesPersistence): AedesPersistence {
  return {
    ...inner,
    createRetainedStreamCombi: patterns => Readable.from(retainedFor(inner, patterns))
  }
}

async function * retainedFor (inner: AedesPersistence, patterns: string[]): AsyncGenerator<{ topic: string }> {
  for (const pattern of patterns) {
    const skipDollar = wildcardFirst(pattern)
    for await (const packet of inner.createRetainedStream(pattern) as AsyncIterable<{ topic: string }>) {
      if (skipDollar && packet.topic.startsWith('$')) continue
      yield packet
    }
  }
}
