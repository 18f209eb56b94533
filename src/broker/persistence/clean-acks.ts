import type { AedesPersistence } from './store.js'

/**
 * Aedes looks up the outgoing queue for every PUBACK. A clean session never
 * has its deliveries stored (a stored queue it inherited is cleared at
 * CONNECT, packets with a brokerId, not PUBACKs), so on LevelDB each PUBACK
 * was a read that found nothing: 20,000 retained messages to a new '#'
 * subscriber cost 20,000 reads, a quarter of the broker's CPU (issue 9;
 * docs/benchmarks.md).
 * Not for an MQTT 5 session resumed with Clean Start 0 and Session Expiry 0
 * (clean, but _cleanStart false): its stored queue is delivered, and each
 * PUBACK clears its entry.
 */
export function skipCleanAcks (inner: AedesPersistence): AedesPersistence {
  return {
    ...inner,
    outgoingClearMessageId: (client, packet) => {
      const c = client as { clean?: boolean, _cleanStart?: boolean }
      const ack = packet.cmd === 'puback' && c.clean === true && c._cleanStart !== false
      return ack ? Promise.resolve(undefined) : inner.outgoingClearMessageId(client, packet)
    }
  }
}
