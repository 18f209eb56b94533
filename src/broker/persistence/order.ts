import type { AedesPersistence, ClientRef } from './store.js'

type Operation = (client: ClientRef, packet: unknown) => Promise<unknown>

/**
 * MQTT 3.1.1 section 4.6: topics are ordered by default. Aedes handles the
 * packets of one socket read concurrently and goes to the store before it
 * sends: a QoS 2 PUBLISH is looked up for duplicates (incomingGetPacket) and
 * stored (incomingStorePacket) before it is published, a PUBREL or a
 * delivery to a persistent session is stored before it is written
 * (outgoingUpdate).
 * LevelDB finishes those writes in any order, so a client's messages went
 * out of order (2,491 of 20,000 QoS 2 in the bench, bare Aedes alike). The
 * operations still run concurrently; each client's settle in the order
 * asked (a rejection too: "not found" is how a lookup says new).
 */
export function orderPerClient (inner: AedesPersistence): AedesPersistence {
  return {
    ...inner,
    incomingGetPacket: inOrder(inner.incomingGetPacket),
    incomingStorePacket: inOrder(inner.incomingStorePacket),
    outgoingUpdate: inOrder(inner.outgoingUpdate)
  }
}

function inOrder (call: Operation): Operation {
  const tails = new Map<string, Promise<unknown>>()
  return (client, packet) => {
    const previous = tails.get(client.id)
    const write = call(client, packet)
    // Handled at once: a lookup's "not found" would otherwise be an
    // unhandled rejection while it waits its turn, which kills the process.
    write.catch(() => {})
    const ordered = previous ? previous.then(() => write, () => write) : write
    const tail = ordered.then(() => undefined, () => undefined)
    tails.set(client.id, tail)
    void tail.then(() => { if (tails.get(client.id) === tail) tails.delete(client.id) })
    return ordered
  }
}
