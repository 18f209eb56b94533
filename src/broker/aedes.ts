/*
 * The Aedes adapter: the only module that imports aedes (internals.ts
 * re-exports its types). It creates Aedes and wires the pieces of
 * src/broker/ into it: counters, the client registry, the auth hooks, the
 * tap to the bus, stall detection, the fixes in internals.ts for what
 * running Aedes 1.2 here revealed (docs/aedes-gaps.md), and the connection
 * guards, so that an Aedes upgrade stays local.
 */
import { randomUUID } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import type { Duplex } from 'node:stream'
import { Aedes, type AedesPublishPacket, type Client } from '../../vendor/aedes/aedes.js'
import { SwitchyardError } from '../errors.js'
import { coalesceWrites, guardPacketSize, guardTopics, holdable, leanParserBuffer } from './connection.js'
import { Fifo } from './fifo.js'
import { createCounters } from './counters.js'
import type { BrokerCore, BrokerCoreOptions, CoreClusterGate, CoreWill } from './core.js'
import type { AedesShared } from '../cluster/shared.js'
import { boundStalledDeliveries, DRAIN_TIMEOUT_MS } from './stall.js'
import { ackAfterStore, onRoutingError, clientById, clientParser, connectedClients, emitterBacklog, patchDeliveries, pauseInput, readNextBatch, replaceEmitterQueues, setServerKeepAlive, subscriptionCount, subscriptionFilters, writeConnack } from './internals.js'
import { ClientRegistry } from './registry.js'
import { createAuthHooks, SYS_PREFIX } from './auth-hooks.js'
import { createAcceptHook, createPublishedHook, markOrigin } from './tap.js'
import { ConnackCode, connackRefusal, ReasonCode } from './reason-codes.js'
import { protocolLevel, watchClients } from './client-events.js'
import { MQTT_DEFAULTS } from '../config.js'

export type { Counters } from './counters.js'
export type { BrokerCore, BrokerCoreOptions, ClientInfo } from './core.js'

const DRAIN_WAIT_MS = 2000

export async function createBrokerCore (options: BrokerCoreOptions): Promise<BrokerCore> {
  const { limits, persistence, logger, auth, bus, events, hooks } = options
  const mqtt = options.mqtt ?? MQTT_DEFAULTS
  // Shared with the persistence layers (queue drops), when server.ts passes them.
  const counters = options.counters ?? createCounters()
  const held = new WeakSet<Duplex>()
  const registry = new ClientRegistry(auth)

  // Aedes publishes $SYS/<id>/new/clients, new/subscribes, new/unsubscribes,
  // disconnect/clients, heartbeat and birth for itself (and for a cluster):
  // they name every client and its subscriptions, so no client receives them,
  // whatever the ACL (see authorizeForward). A cluster node's is fresh at
  // each start too: `<nodeId>-<uuid>` (src/cluster/context.ts).
  const cluster = options.cluster
  const brokerId = cluster?.brokerId ?? randomUUID()
  const internalSys = SYS_PREFIX + brokerId + '/'
  const authHooks = createAuthHooks({ auth, registry, counters, logger, hooks, internalSys })
  // A cluster node's readiness and wills (src/cluster/node.ts): see clusterHooks.
  const gate = cluster?.gate
  const clusterWills = gate === undefined ? undefined : new ClusterWills(gate)
  // A v5 client within the Receive Maximum must never trip Aedes's own bound
  // on unacknowledged inbound QoS 2 (maxInflightInbound, 1000 by default,
  // for 3.1.1 clients too), which closes the connection. (The option is
  // missing from vendor/aedes's types, hence not in the literal below.)
  const inflightBound = { maxInflightInbound: Math.max(1000, mqtt.receiveMaximum) }
  const aedes = await Aedes.createBroker({
    id: brokerId,
    persistence,
    // A cluster node: messages cross nodes through Redis (src/cluster/emitter.ts).
    ...(cluster === undefined ? {} : { mq: cluster.mq, heartbeatInterval: cluster.heartbeatMs }),
    drainTimeout: DRAIN_TIMEOUT_MS,
    // MQTT 5 Receive Maximum: per client, QoS 1/2 deliveries in flight or
    // waiting for a slot beyond limits.maxQueuedMessages are dropped (deliveryDropped below)
    outboundQueueLimit: limits.maxQueuedMessages,
    // MQTT 5, advertised in CONNACK (config "mqtt", docs/configuration.md#mqtt).
    // Aedes would answer an oversized packet from a v5 client with DISCONNECT
    // 0x95, but guardPacketSize (connection.ts) checks every client's first,
    // and closes the connection without it.
    maximumPacketSize: limits.maxPacketSize,
    topicAliasMaximum: mqtt.topicAliasMaximum,
    receiveMaximum: mqtt.receiveMaximum,
    ...inflightBound,
    sessionExpiryIntervalLimit: mqtt.maxSessionExpiryInterval,
    sharedSubscriptions: mqtt.sharedSubscriptions,
    // Not keepaliveLimit: Aedes would refuse every 3.1.1 CONNECT with
    // keepalive 0 (return code 6, which 3.1.1 does not define). preConnect
    // imposes mqtt.maxKeepalive on v5 clients only, as Server Keep Alive.
    // Reject with an Error, never callback(null, false): Aedes 1.2 leaves
    // the socket open forever on the latter (docs/aedes-gaps.md#preconnect-rejection).
    preConnect (client, packet, callback) {
      counters.connects++
      const version = packet.protocolVersion ?? 4
      // A cluster node while Redis is unreachable (src/cluster/readiness.ts):
      // the client's session cannot be read. CONNACK 0x03 / v5 0x88.
      if (gate !== undefined && !gate.ready()) {
        const refusal = connackRefusal(ConnackCode.SERVER_UNAVAILABLE, version)
        logger.info({ clientId: packet.clientId.slice(0, 64), connack: refusal.name }, 'Redis unreachable; connection refused')
        writeConnack(client, refusal.code, () => callback(new Error('Redis unreachable'), false), version)
        return
      }
      // [MQTT-3.1.3-8] in MQTT 3.1.1 a zero-length client id requires a
      // clean session; Aedes 1.2 accepted it anyway, so answer CONNACK 0x02
      // ourselves. MQTT 5 allows it with Clean Start 0 too: Aedes assigns an
      // id [MQTT-3.1.3-6].
      if (version < 5 && packet.clientId === '' && packet.clean === false) {
        // close only after the CONNACK has been flushed
        writeConnack(client, ConnackCode.IDENTIFIER_REJECTED, () => callback(new Error('zero-length client id with clean session 0 [MQTT-3.1.3-8]'), false))
        return
      }
      // [MQTT-3.1.3-9] the server may reject a client id: limits.maxClientIdLength.
      // v5: CONNACK 0x85, client identifier not valid [MQTT-3.1.3-8 in MQTT 5].
      const idBytes = Buffer.byteLength(packet.clientId)
      if (limits.maxClientIdLength > 0 && idBytes > limits.maxClientIdLength) {
        const refusal = connackRefusal(ConnackCode.IDENTIFIER_REJECTED, version)
        logger.info({ clientId: packet.clientId.slice(0, 64), bytes: idBytes, maxClientIdLength: limits.maxClientIdLength, connack: refusal.name }, 'client id too long (limits.maxClientIdLength); refused')
        writeConnack(client, refusal.code, () => callback(new Error(`client id of ${idBytes} bytes exceeds limits.maxClientIdLength`), false), version)
        return
      }
      // MQTT 5 Server Keep Alive [MQTT-3.2.2-21]: a v5 client asking for no
      // keepalive, or a longer one, is told to use mqtt.maxKeepalive.
      if (version === 5 && mqtt.maxKeepalive > 0 && (!packet.keepalive || packet.keepalive > mqtt.maxKeepalive)) {
        setServerKeepAlive(client, mqtt.maxKeepalive)
      }
      callback(null, true)
    },
    ...authHooks,
    ...(gate === undefined || clusterWills === undefined ? {} : clusterHooks(authHooks, gate, clusterWills, logger)),
    // The one tap to the bus (tap.ts).
    published: createPublishedHook(counters, bus, registry)
  })

  // mqemitter's backlog is an Array drained with shift(): quadratic under
  // fan-in. Same interface, O(1) shift (see fifo.ts).
  replaceEmitterQueues(aedes, () => new Fifo())
  // QoS 1: PUBACK only once the message is stored (internals.ts, issue 9 finding 1),
  // and written where the bus's holds keep it (a bridge's out queue, issue 14).
  const holdPubacks = ackAfterStore(aedes, createAcceptHook(bus, registry))
  watchClients(aedes, { registry, counters, logger, events })
  if (gate !== undefined && clusterWills !== undefined) clusterWills.attach(aedes)
  if (gate?.sessionClosed !== undefined && clusterWills !== undefined) clusterSessionExpiry(aedes, gate.sessionClosed.bind(gate), clusterWills)
  // Shared subscriptions across the cluster (src/cluster/shared.ts): not in vendor/aedes's types.
  gate?.attachShared?.((aedes as unknown as { shared: AedesShared }).shared)
  // MQTT 5 deliveries not sent to a client (vendor/aedes/lib/outbound.js): too
  // many waiting for its Receive Maximum, or over its Maximum Packet Size.
  aedes.on('deliveryDropped', (client, _packet, reason) => {
    if (reason === 'queue-full') counters.queueDropped++
    logger.debug({ clientId: client.id, reason }, 'delivery dropped for this client')
  })

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
          protocolVersion: protocolLevel(client.version),
          subscriptions: subscriptionFilters(client)
        }
      })
    },

    disconnect (clientId) {
      const client = clientById(aedes, clientId)
      if (!client) return false
      const c = client as unknown as { version: number, disconnect(opts: object, done: () => void): void, close(done?: () => void): void }
      // [MQTT-3.14.2-1 in MQTT 5] the server may send DISCONNECT, with a reason, before it closes.
      if (c.version === 5) c.disconnect({ reasonCode: ReasonCode.ADMINISTRATIVE_ACTION }, () => {})
      else c.close()
      return true
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
      const meta = registry.add(client, remote, identity)
      // The reason code of the client's DISCONNECT (MQTT 5), which Aedes does
      // not keep, for the disconnect log and event (client-events.ts).
      ;(clientParser(client) as EventEmitter).on('packet', (packet: { cmd: string, reasonCode?: number }) => {
        if (packet.cmd === 'disconnect') meta.disconnectPacketReason = packet.reasonCode ?? 0
      })
      leanParserBuffer(clientParser(client))
      guardTopics(clientParser(client), problem => {
        counters.invalidTopics++
        logger.debug({ clientId: client.id ?? undefined, remote, problem }, 'forbidden topic or malformed string; connection closed')
      })
      guardPacketSize(clientParser(client), limits.maxPacketSize, counters, (size) => {
        counters.oversizedPackets++
        logger.warn({ remote, size, maxPacketSize: limits.maxPacketSize }, 'packet exceeds limits.maxPacketSize; connection closed')
      })
    },

    publishWill (will) {
      if (aedes.closed) return Promise.reject(new SwitchyardError('ERR_CLOSED', 'broker is closed'))
      // As Aedes publishes a previous run's will (publishWill with client
      // null): the tap sees clientId on the packet (willClientId), so the
      // rules see the client's will.
      const packet = {
        cmd: 'publish' as const,
        topic: will.topic,
        payload: will.payload,
        qos: will.qos,
        retain: will.retain,
        dup: false,
        clientId: will.clientId,
        ...(will.properties === undefined ? {} : { properties: { ...will.properties } })
      } as unknown as AedesPublishPacket
      return new Promise((resolve, reject) => {
        aedes.authorizePublish(null as unknown as Client, packet, (err?: Error | null) => {
          // Denied ($SYS, the drop prefix): dropped, as Aedes drops such a will.
          if (err) return resolve()
          aedes.publish(packet, (e?: Error | null) => e ? reject(new SwitchyardError('ERR_PUBLISH', `will on ${will.topic} failed: ${e.message}`, { cause: e })) : resolve())
        })
      })
    },

    dropWills () {
      for (const client of connectedClients(aedes)) {
        const c = client as unknown as { will: unknown, _will: unknown }
        c.will = null
        c._will = null
      }
      const broker = aedes as unknown as { delayedWills: Map<string, unknown>, clearDelayedWill(id: string): void }
      for (const id of [...broker.delayedWills.keys()]) broker.clearDelayedWill(id)
    },

    async endSession (clientId) {
      const broker = aedes as unknown as { clients: Record<string, unknown>, _wipeSession(ref: { id: string }): Promise<void> }
      // connected here: the session is that connection's
      if (aedes.closed || broker.clients[clientId] !== undefined) return
      const ref = { id: clientId }
      await broker._wipeSession(ref)
      aedes.emit('sessionExpired', ref as unknown as Client)
    },

    connectedWills () {
      return connectedClients(aedes).map(client => {
        const will = (client as unknown as { will?: CoreWill | null }).will ?? null
        return { clientId: client.id, will, ...(client.version === 5 ? { sessionExpiryInterval: (client as unknown as { sessionExpiryInterval: number }).sessionExpiryInterval } : {}) }
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
        dup: false,
        // MQTT 5 properties (checked by the caller): a copy, as Aedes's packets share theirs
        ...(message.properties === undefined ? {} : { properties: { ...message.properties } })
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

/*
 * A cluster node's wills (src/cluster/wills.ts) follow each connection:
 * recorded before CONNACK, forgotten when the connection ends cleanly or
 * this node published the will, marked delayed while a Will Delay Interval
 * runs here. `latest` is the connection whose record this node owns for a
 * client id: a connection taken over on this node must not forget the
 * record its successor just made.
 */
class ClusterWills {
  readonly #gate: CoreClusterGate
  readonly #latest = new Map<string, Client>()
  readonly #delayed = new WeakSet<Client>()

  constructor (gate: CoreClusterGate) { this.#gate = gate }

  async connected (client: Client): Promise<void> {
    this.#latest.set(client.id, client)
    const raw = (client as unknown as { _will?: CoreWill | null })._will ?? null
    const expiry = client.version === 5 ? (client as unknown as { sessionExpiryInterval?: number }).sessionExpiryInterval : undefined
    try {
      await this.#gate.connected(client.id, raw, expiry)
    } catch (err) {
      if (this.#latest.get(client.id) === client) this.#latest.delete(client.id)
      throw err
    }
  }

  /** A newer connection with this client id has authenticated on this node (it holds the session). */
  superseded (client: Client): boolean {
    const latest = this.#latest.get(client.id)
    return latest !== undefined && latest !== client
  }

  #settled (client: Client | null): void {
    if (client === null || this.#latest.get(client.id) !== client) return
    this.#latest.delete(client.id)
    this.#gate.forget(client.id)
  }

  attach (aedes: Aedes): void {
    const broker = aedes as unknown as {
      publishWill(client: Client | null, will: unknown, clientId?: string): void
      scheduleWill(client: Client, will: unknown, delay: number): void
      delayedWills: Map<string, unknown>
    }
    const publishWill = broker.publishWill.bind(aedes)
    broker.publishWill = (client, will, clientId) => {
      publishWill(client, will, clientId ?? client?.id)
      this.#settled(client)
    }
    const scheduleWill = broker.scheduleWill.bind(aedes)
    broker.scheduleWill = (client, will, delay) => {
      scheduleWill(client, will, delay)
      if (broker.delayedWills.has(client.id) && this.#latest.get(client.id) === client) {
        this.#delayed.add(client)
        this.#gate.disconnected(client.id)
      }
    }
    aedes.on('clientDisconnect', client => {
      if (!this.#delayed.has(client)) this.#settled(client)
    })
    // A store operation failed while routing: readiness looks again now.
    onRoutingError(aedes, err => this.#gate.reportFailure(err, 'store'))
    // Wills are wills.ts's: Aedes's sweep of dead brokers' wills is off
    // (its store hooks are no-ops too, src/cluster/store.ts).
    clearInterval((aedes as unknown as { _clearWillInterval?: NodeJS.Timeout })._clearWillInterval)
  }
}

/**
 * MQTT 5 Session Expiry on a cluster node: Aedes's timer (armed when a
 * session outlives its connection) is replaced by the cluster's
 * (src/cluster/expiry.ts), which ends the session on whichever node claims
 * it, even if this one has died [MQTT-3.1.2-23]. Aedes still wipes a session
 * that ends with its connection (interval 0) itself.
 */
function clusterSessionExpiry (aedes: Aedes, closed: (clientId: string, sessionExpiryInterval: number) => void, wills: ClusterWills): void {
  const broker = aedes as unknown as {
    scheduleSessionExpiry(client: Client): void
    clearSessionExpiry(clientId: string): void
    expiringSessions: Map<string, unknown>
    _takingOver: Set<string>
  }
  const schedule = broker.scheduleSessionExpiry.bind(aedes)
  broker.scheduleSessionExpiry = client => {
    // a takeover on this node, or a new CONNECT of this id past its
    // authentication: the new connection holds the session
    const takingOver = broker._takingOver.has(client.id) || wills.superseded(client)
    schedule(client)
    if (aedes.closed || takingOver || client.version !== 5) return
    const interval = (client as unknown as { sessionExpiryInterval: number }).sessionExpiryInterval
    const armed = interval > 0 && interval < 0xFFFFFFFF && broker.expiringSessions.has(client.id)
    if (armed) broker.clearSessionExpiry(client.id)
    closed(client.id, armed ? interval : 0)
  }
}

/** authenticate and authorizePublish with a cluster node's will record and readiness gate. */
function clusterHooks (hooks: ReturnType<typeof createAuthHooks>, gate: CoreClusterGate, wills: ClusterWills, logger: BrokerCoreOptions['logger']): Pick<ReturnType<typeof createAuthHooks>, 'authenticate' | 'authorizePublish'> {
  return {
    authenticate (client, username, password, callback) {
      hooks.authenticate(client, username, password, (err, ok) => {
        if (err || !ok) return callback(err, ok)
        wills.connected(client).then(() => callback(null, true), (e: Error) => {
          logger.warn({ clientId: client.id, err: e.message }, 'cannot record the client\'s will in Redis; connection refused')
          callback(Object.assign(new Error('Redis unreachable'), { returnCode: ConnackCode.SERVER_UNAVAILABLE }), false)
        })
      })
    },
    authorizePublish (client, packet, callback) {
      // A will (client null) and QoS 0 while ready go straight on.
      if (client === null) return hooks.authorizePublish(client, packet, callback)
      const drop = (): void => {
        // Nothing stored, nothing acknowledged (vendor/aedes publish.js).
        ;(packet as { _notAuthorized?: boolean })._notAuthorized = true
        callback(null)
      }
      if (packet.qos === 0) {
        if (gate.ready()) return hooks.authorizePublish(client, packet, callback)
        gate.droppedQos0()
        return drop()
      }
      const refuse = (): void => {
        logger.info({ clientId: client.id, topic: packet.topic }, 'Redis unreachable; QoS 1/2 publish not acknowledged, connection closed')
        drop()
        const c = client as unknown as { version: number, disconnect(opts: object, done: () => void): void, close(done?: () => void): void }
        // 0x89 Server busy: 0x88 (Server unavailable) is a CONNACK code only, and
        // MQTT.js rejects a DISCONNECT carrying it ("Invalid disconnect reason code").
        if (c.version === 5) c.disconnect({ reasonCode: ReasonCode.SERVER_BUSY }, () => {})
        else c.close()
      }
      const admitted = gate.admit(packet.payload.length + Buffer.byteLength(packet.topic))
      if (admitted === true) return hooks.authorizePublish(client, packet, callback)
      if (admitted === false) return refuse()
      admitted.then(ok => ok ? hooks.authorizePublish(client, packet, callback) : refuse(), () => refuse())
    }
  }
}

async function waitForDrain (aedes: Aedes): Promise<void> {
  const deadline = Date.now() + DRAIN_WAIT_MS
  while (emitterBacklog(aedes) > 0 && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}
