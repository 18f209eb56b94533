import { wildcardFirst } from '../../topics.js'
import type { AedesPersistence } from './store.js'

/**
 * [MQTT-4.7.2-1] a filter starting with a wildcard must not match a topic
 * starting with '$'. Aedes 1.2 applies it to live deliveries, but to the
 * offline queues only for $SYS/ (aedes.js enqueueOffline): any other '$'
 * topic was queued for an offline persistent '#' subscriber. That included
 * denied publishes, which are diverted to a '$' topic to be acknowledged and
 * dropped (auth-hooks.ts), so a denied payload reached '#' on reconnect.
 */
export function dollarTopicsNotQueuedForWildcards (inner: AedesPersistence): AedesPersistence {
  return {
    ...inner,
    outgoingEnqueueCombi: (subs, packet) => {
      if (!(packet as { topic: string }).topic.startsWith('$')) return inner.outgoingEnqueueCombi(subs, packet)
      const kept = subs.filter(sub => !wildcardFirst((sub as { topic?: string }).topic ?? ''))
      return kept.length > 0 ? inner.outgoingEnqueueCombi(kept, packet) : Promise.resolve(undefined)
    }
  }
}
