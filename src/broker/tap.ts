/*
 * The one tap: Aedes's `published` hook. Every message Aedes routes reaches
 * it once, whoever published it (a client, its will, core.publish()); here it
 * is counted and handed to the bus as a Message with its origin.
 */
import type { Bus } from '../bus.js'
import { NO_CHAIN, type Message, type Origin } from '../message.js'
import { propertiesOf } from '../properties.js'
import { DROP_PREFIX, SYS_PREFIX } from './auth-hooks.js'
import type { Counters } from './counters.js'
import { markPacket, packetMark, willClientId, type AedesOptions, type AedesPublishPacket, type Client } from './internals.js'
import type { ClientRegistry } from './registry.js'

/** Where core.publish() puts a message's origin: on its packet, for the tap. */
export function markOrigin (packet: AedesPublishPacket, origin: Origin): void {
  markPacket(packet, origin)
}

// core.publish() marks its packets with their origin; unmarked ones are a
// client's (its PUBLISH or will), or a will of a previous run's client
// (client null), or Aedes's own $SYS/<id>/ traffic, which nobody receives.
// A client's origin is made once per connection, not per message: the rules
// engine keeps it while a conversion waits (many wait under a flood).
function origins (registry: ClientRegistry): (packet: AedesPublishPacket, client: Client | null) => Origin | undefined {
  const ofClient = new WeakMap<Client, Origin>()
  return (packet, client) => {
    const marked = packetMark<Origin>(packet)
    if (marked !== undefined) return marked
    if (client) {
      const username = registry.of(client).username
      let origin = ofClient.get(client)
      if (origin === undefined || origin.clientId !== client.id || origin.username !== username) {
        ofClient.set(client, origin = Object.freeze({ kind: 'client', clientId: client.id, username, chain: NO_CHAIN }))
      }
      return origin
    }
    if (packet.topic.startsWith(SYS_PREFIX)) return undefined
    return { kind: 'client', clientId: willClientId(packet) ?? null, username: null, chain: NO_CHAIN }
  }
}

/**
 * The bus's holds (bus.hold(): a bridge's out queue), as a message enters
 * Aedes's publish, before its stores: ackAfterStore (internals.ts) makes the
 * acknowledgement wait for what they return. Without a matching hold, no
 * Message is built and nothing is allocated.
 */
export function createAcceptHook (bus: Bus, registry: ClientRegistry): (packet: AedesPublishPacket, client: Client | null) => Promise<void> | undefined {
  const originOf = origins(registry)
  return (packet, client) => {
    if (!bus.holds(packet.topic) || packet.topic.startsWith(DROP_PREFIX)) return undefined
    const origin = originOf(packet, client)
    if (origin === undefined) return undefined
    const message: Message = { topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos, retain: packet.retain, origin }
    const properties = packet.properties === undefined ? undefined : propertiesOf(packet as { properties?: Record<string, unknown> })
    return bus.accept(properties === undefined ? message : { ...message, properties })
  }
}

export function createPublishedHook (counters: Counters, bus: Bus, registry: ClientRegistry): NonNullable<AedesOptions['published']> {
  const originOf = origins(registry)
  return (packet, client, callback) => {
    if (client) {
      counters.publishReceived[packet.qos]++
      counters.publishBytesReceived += packet.payload.length
    }
    // Skipped while nothing listens: no Message built.
    if (!bus.idle && !packet.topic.startsWith(DROP_PREFIX)) {
      const origin = originOf(packet, client)
      if (origin !== undefined) {
        const message: Message = { topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos, retain: packet.retain, origin }
        // MQTT 5 properties, from a v5 client or core.publish(); none on a 3.1.1 client's packet.
        const properties = packet.properties === undefined ? undefined : propertiesOf(packet as { properties?: Record<string, unknown> })
        bus.dispatch(properties === undefined ? message : { ...message, properties })
      }
    }
    callback(null)
  }
}
