/*
 * The parts of AdminSource (admin.ts) that act on the broker: server.ts
 * builds them from its core, bus, store and rules engine, so that the admin
 * listener never reaches past this interface.
 */
import type { BrokerCore } from '../../broker/core.js'
import type { Persistence } from '../../broker/persistence.js'
import type { Bus } from '../../bus.js'
import type { Config } from '../../config.js'
import { NO_CHAIN, type Origin } from '../../message.js'
import { messageFrom } from '../../publish-input.js'
import type { RulesEngine } from '../../rules/engine.js'
import { topicMatches } from '../../topics.js'
import type { AdminSource } from '../admin.js'

type Operations = Pick<AdminSource, 'publish' | 'subscribe' | 'retained' | 'disconnect' | 'rule' | 'ruleLimits' | 'traffic'>

export function adminOperations (parts: { core: BrokerCore, bus: Bus, persistence: Persistence, engine: RulesEngine, config: Config }): Operations {
  const { core, bus, persistence, engine, config } = parts
  return {
    publish: (message, username) => {
      // As broker.publish() (origin 'api'), naming the administrator who published.
      const origin: Origin = { kind: 'api', clientId: null, username, chain: NO_CHAIN }
      return core.publish(messageFrom(message, origin, config.limits.maxPacketSize))
    },
    subscribe: (filter, handler) => bus.subscribe(filter, handler),
    async retained (filter, limit) {
      const found: Array<{ topic: string, payload: Buffer, qos: 0 | 1 | 2 }> = []
      // A store's pattern matching may differ on $ topics: MQTT's rule is applied here [MQTT-4.7.2-1].
      for await (const packet of persistence.createRetainedStream(filter) as AsyncIterable<{ topic: string, payload: Buffer, qos?: number }>) {
        if (!topicMatches(filter, packet.topic) || packet.payload.length === 0) continue
        found.push({ topic: packet.topic, payload: Buffer.from(packet.payload), qos: (packet.qos ?? 0) as 0 | 1 | 2 })
        if (found.length >= limit) break
      }
      return found
    },
    disconnect: clientId => core.disconnect(clientId),
    rule: name => engine.rule(name),
    ruleLimits: { limits: { timeoutMs: config.rules.timeoutMs, memoryLimitMb: config.rules.memoryLimitMb }, maxPacketSize: config.limits.maxPacketSize },
    traffic: () => {
      const c = core.counters
      return { received: c.publishReceived[0] + c.publishReceived[1] + c.publishReceived[2], sent: c.publishSent[0] + c.publishSent[1] + c.publishSent[2], clients: core.connectedClients }
    }
  }
}
