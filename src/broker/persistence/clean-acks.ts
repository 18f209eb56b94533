import type { AedesPersistence } from './store.js'

/**
 * Aedes looks up the outgoing queue for every PUBACK. A clean session never
 * has its deliveries stored (a stored queue it inherited is cleared at
 * CONNECT, packets with a brokerId, not PUBACKs), so on LevelDB each PUBACK
 * was a read that found nothing: 20,000 retained messages to a new '#'
 * subscriber cost 20,000 reads, a quarter of the broker's CPU (issue 9;
 * docs/benchmarks.md).
 */
export function skipCleanAcks (inner: AedesPersistence): AedesPersistence {
  return {
    ...inner,
    outgoingClearMessageId: (client, packet) => {
      const ack = packet.cmd === 'puback' && (client as { clean?: boolean }).clean === true
      return ack ? Promise.resolve(undefined) : inner.outgoingClearMessageId(client, packet)
    }
  }
}
