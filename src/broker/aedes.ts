/*
 * The Aedes adapter: the only module that imports aedes (internals.ts
 * re-exports its types). It creates Aedes and wires the pieces of
 * src/broker/ into it: counters, the client registry, the auth hooks, the
 * tap to the bus, stall detection, the fixes in internals.ts for what
 * running Aedes 1.2 here revealed (docs/aedes-gaps.md), and the connection
 * guards, so that an Aedes upgrade stays local.
 */
import { randomUUID } from 'node:crypto'
import type { Duplex } from 'node:stream'
import { Aedes, type AedesPublishPacket } from '../../vendor/aedes/aedes.js'
import { SwitchyardError } from '../errors.js'
import { coalesceWrites, guardPacketSize, guardTopics, holdable } from './connection.js'
import { Fifo } from './fifo.js'
import { createCounters } from './counters.js'
import type { BrokerCore, BrokerCoreOptions } from './core.js'
import { boundStalledDeliveries, DRAIN_TIMEOUT_MS } from './stall.js'
import { ackAfterStore, clientById, clientParser, connectedClients, emitterBacklog, patchDeliveries, pauseInput, readNextBatch, replaceEmitterQueues, subscriptionCount, subscriptionFilters, writeConnack } from './internals.js'
import { ClientRegistry } from './registry.js'
import { createAuthHooks, SYS_PREFIX } from './auth-hooks.js'
import { createPublishedHook, markOrigin } from './tap.js'
import { ConnackCode } from './reason-codes.js'
import { watchClients } from './client-events.js'

export type { Counters } from './counters.js'
export type { BrokerCore, BrokerCoreOptions, ClientInfo } from './core.js'

const DRAIN_WAIT_MS = 2000

export async function createBrokerCore (options: BrokerCoreOptions): Promise<BrokerCore> {
  const { limits, persistence, logger, auth, bus, events, hooks } = options
  // Shared with the persistence layers (queue drops), when server.ts passes them.
  const counters = options.counters ?? createCounters()
  const held = new WeakSet<Duplex>()
  const registry = new ClientRegistry(auth)

  // Aedes publishes $SYS/<id>/new/clients, new/subscribes, new/unsubscribes,
  // disconnect/clients, heartbeat and birth for itself (and for a cluster):
  // they name every client and its subscriptions, so no client receives them,
  // whatever the ACL (see authorizeForward).
  const brokerId = randomUUID()
  const internalSys = SYS_PREFIX + brokerId + '/'
  const authHooks = createAuthHooks({ auth, registry, counters, logger, hooks, internalSys })
  const aedes = await Aedes.createBroker({
    id: brokerId,
    persistence,
    drainTimeout: DRAIN_TIMEOUT_MS,
    // Reject with an Error, never callback(null, false): Aedes 1.2 leaves
    // the socket open forever on the latter (docs/aedes-gaps.md#preconnect-rejection).
    preConnect (client, packet, callback) {
      counters.connects++
      // [MQTT-3.1.3-8] a zero-length client id requires a clean session;
      // Aedes 1.2 accepts it anyway, so answer CONNACK 0x02 ourselves.
      if (packet.clientId === '' && packet.clean === false) {
        // close only after the CONNACK has been flushed
        writeConnack(client, ConnackCode.IDENTIFIER_REJECTED, () => callback(new Error('zero-length client id with clean session 0 [MQTT-3.1.3-8]'), false))
        return
      }
      // [MQTT-3.1.3-9] the server may reject a client id: limits.maxClientIdLength
      const idBytes = Buffer.byteLength(packet.clientId)
      if (limits.maxClientIdLength > 0 && idBytes > limits.maxClientIdLength) {
        logger.info({ clientId: packet.clientId.slice(0, 64), bytes: idBytes, maxClientIdLength: limits.maxClientIdLength }, 'client id too long (limits.maxClientIdLength); CONNACK 0x02')
        writeConnack(client, ConnackCode.IDENTIFIER_REJECTED, () => callback(new Error(`client id of ${idBytes} bytes exceeds limits.maxClientIdLength`), false))
        return
      }
      callback(null, true)
    },
    ...authHooks,
    // The one tap to the bus (tap.ts).
    published: createPublishedHook(counters, bus, registry)
  })

  // mqemitter's backlog is an Array drained with shift(): quadratic under
  // fan-in. Same interface, O(1) shift (see fifo.ts).
  replaceEmitterQueues(aedes, () => new Fifo())
  // QoS 1: PUBACK only once the message is stored (internals.ts, issue 9 finding 1).
  const holdPubacks = ackAfterStore(aedes)
  watchClients(aedes, { registry, counters, logger, events })

  let closing: Promise<void> | undefined

  return {
    id: aedes.id,
    counters,
    get connectedClients () { return aedes.connectedClients },

    clients () {
      return connectedClients(aedes).map(client => {
        const meta = registry.of(client)
        return {
          clientId: client.id,
          username: meta.username,
          remote: meta.remote,
          connectedAt: (meta.connectedAt ?? new Date()).toISOString(),
          clean: client.clean,
          subscriptions: subscriptionFilters(client)
        }
      })
    },

    // Not Aedes's client.pause(): its read loop returns before counting the
    // packets in flight, so resume() never restarts it. Instead the stream's
    // read() yields nothing while held; Node's buffer fills, the socket stops
    // reading, and TCP slows the sender.
    pause (clientId) {
      const client = clientById(aedes, clientId)
      if (client) held.add(client.conn)
    },

    resume (clientId) {
      const client = clientById(aedes, clientId)
      // Only a held client: restarting the read loop of one that was not
      // (reconnected meanwhile, never paused) would read its next chunk
      // while a batch is still in flight.
      if (client && held.delete(client.conn)) readNextBatch(client)
    },

    subscriptionCount () {
      let n = 0
      for (const client of connectedClients(aedes)) n += subscriptionCount(client)
      return n
    },

    handle (stream, remote, identity) {
      coalesceWrites(stream)
      holdable(stream, held)
      const client = aedes.handle(stream)
      holdPubacks(client)
      boundStalledDeliveries(client, stream, counters)
      // outside boundStalledDeliveries: what waits for CONNACK is not stalled
      patchDeliveries(client, stream)
      registry.add(client, remote, identity)
      guardTopics(clientParser(client), problem => {
        counters.invalidTopics++
        logger.debug({ clientId: client.id ?? undefined, remote, problem }, 'forbidden topic or malformed string; connection closed')
      })
      guardPacketSize(clientParser(client), limits.maxPacketSize, counters, (size) => {
        counters.oversizedPackets++
        logger.warn({ remote, size, maxPacketSize: limits.maxPacketSize }, 'packet exceeds limits.maxPacketSize; connection closed')
      })
    },

    publish (message) {
      if (aedes.closed) return Promise.reject(new SwitchyardError('ERR_CLOSED', 'broker is closed'))
      // Checked by the caller (publish-input.ts, outputs.ts); the origin rides on the packet to the tap.
      const packet = {
        cmd: 'publish' as const,
        topic: message.topic,
        payload: message.payload,
        qos: message.qos,
        retain: message.retain,
        dup: false
      } as AedesPublishPacket
      markOrigin(packet, message.origin)
      return new Promise((resolve, reject) => {
        aedes.publish(packet, (err?: Error | null) => err ? reject(new SwitchyardError('ERR_PUBLISH', `publish to ${message.topic} failed: ${err.message}`, { cause: err })) : resolve())
      })
    },

    close () {
      closing ??= (async () => {
        // Stop input first, then let the emitter drain: closing Aedes while
        // mqemitter still has a queue recursed into a stack overflow under
        // a QoS 0 flood (mqemitter#193, docs/aedes-gaps.md#closing-under-a-qos-0-flood).
        for (const client of connectedClients(aedes)) pauseInput(client)
        await waitForDrain(aedes)
        await new Promise<void>(resolve => aedes.close(() => resolve()))
        // Aedes does not close its persistence (docs/aedes-gaps.md#persistence-left-open).
        await persistence.destroy()
      })()
      return closing
    }
  }
}

async function waitForDrain (aedes: Aedes): Promise<void> {
  const deadline = Date.now() + DRAIN_WAIT_MS
  while (emitterBacklog(aedes) > 0 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
