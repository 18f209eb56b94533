/*
 * The broker core's contract: what server.ts, and later the cluster, MQTT 5
 * and the bridges, see of the broker. Implemented by createBrokerCore
 * (aedes.ts); nothing here depends on Aedes.
 */
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import type { Authenticator } from '../auth/authenticator.js'
import type { Bus } from '../bus.js'
import type { Config } from '../config.js'
import type { EventHub } from '../events.js'
import type { Hooks } from '../hooks.js'
import type { Message } from '../message.js'
import type { Counters } from './counters.js'
import type { Persistence } from './persistence.js'
import type { AedesShared } from '../cluster/shared.js'

export interface ClientInfo {
  clientId: string
  username: string | null
  remote: string
  connectedAt: string
  clean: boolean
  /** The MQTT protocol level the client connected with: 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: 3 | 4 | 5
  subscriptions: string[]
  /** A cluster node: the nodeId of the node the client is connected to (GET /api/clients lists every node's: src/cluster/clients.ts). */
  node?: string
}

export interface BrokerCoreOptions {
  limits: Config['limits']
  /** What v5 clients are granted (config "mqtt"); the schema's defaults when left out. */
  mqtt?: Config['mqtt']
  /** The store, wrapped once by wrapPersistence (persistence.ts) at the composition root. */
  persistence: Persistence
  /** The counters to bump; server.ts shares them with the persistence layers (queue drops). Default: new ones. */
  counters?: Counters
  auth: Authenticator
  logger: Logger
  /** Where every routed message goes, as a Message (the one tap is the `published` hook). */
  bus: Bus
  /** broker.on() listeners: connect, disconnect, subscribe, unsubscribe. */
  events?: EventHub
  /** The application's auth hooks, run after the password file and the ACL (src/hooks.ts). */
  hooks?: Hooks
  /** Set on a cluster node (src/cluster/, docs/cluster.md). */
  cluster?: CoreCluster
}

/** What the broker core takes from a cluster node's context (src/cluster/context.ts). */
export interface CoreCluster {
  /** Aedes's broker id: `<nodeId>-<uuid>`, fresh at each start (ClusterContext.brokerId). */
  brokerId: string
  /** Aedes's emitter: mqemitter-redis (src/cluster/emitter.ts), shared by every node through Redis. */
  mq: object
  /** cluster.heartbeatMs: Aedes's own heartbeat ($SYS/<brokerId>/heartbeat). */
  heartbeatMs: number
  /** The node's readiness and wills (src/cluster/node.ts); absent in tests of the bare store and emitter. */
  gate?: CoreClusterGate
}

/** A will as the core hands it to the cluster (wills.ts records it, encoded). */
export interface CoreWill {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  properties?: Readonly<Record<string, unknown>>
}

/**
 * What the core consults on a cluster node (src/cluster/node.ts), wired in
 * aedes.ts: readiness.ts's gate and wills.ts's records.
 */
export interface CoreClusterGate {
  /** False while Redis is unreachable: a CONNECT is refused with Server unavailable. */
  ready(): boolean
  /** After authentication, before CONNACK: records (or with null deletes) the client's will cluster-wide. Rejects: CONNACK Server unavailable. */
  connected(clientId: string, will: CoreWill | null, sessionExpiryInterval: number | undefined): Promise<void>
  /** The client's will is settled on this node (clean disconnect, or published by this node). */
  forget(clientId: string): void
  /** Unclean disconnect with a Will Delay Interval running on this node. */
  disconnected(clientId: string): void
  /**
   * An MQTT 5 connection on this node ended and its session is kept for
   * `sessionExpiryInterval` seconds (0: ended now, or never expires): the
   * cluster ends it then, on whichever node (src/cluster/expiry.ts).
   */
  sessionClosed?(clientId: string, sessionExpiryInterval: number): void
  /** A QoS 1/2 PUBLISH of `bytes` from a client: true go on, false refuse (close, no ack), or wait. */
  admit(bytes: number): boolean | Promise<boolean>
  /** A QoS 0 PUBLISH dropped while not ready. */
  droppedQos0(): void
  /** A store or emitter operation failed. */
  reportFailure(err: unknown, name?: string): void
  /** Aedes's shared subscriptions (broker.shared), made cluster-wide by src/cluster/shared.ts. */
  attachShared?(shared: AedesShared): void
}

export interface BrokerCore {
  readonly id: string
  readonly counters: Readonly<Counters>
  readonly connectedClients: number
  /** The connected clients. */
  clients(): ClientInfo[]
  /** Subscriptions of the connected clients. */
  subscriptionCount(): number
  /**
   * Closes a connected client's connection, as an administrator's kick (the
   * admin API): an MQTT 5 client first gets DISCONNECT 0x98 (Administrative
   * action). Its will is published, as on any unclean close. False: no such client.
   */
  disconnect(clientId: string): boolean
  /** Stop reading from a client (flow control: TCP then slows its sender); resume() undoes it. */
  pause(clientId: string): void
  resume(clientId: string): void
  /** Serve one connection. `remote` is the peer address; `identity` the client certificate's CN, on a useIdentityAsUsername listener. */
  handle(stream: Duplex, remote: string, identity?: string): void
  /** A dead node's will, as its client's (client null, clientId set): authorized as a will is, then published. Denied: dropped. */
  publishWill(will: CoreWill & { clientId: string }): Promise<void>
  /**
   * A cluster node that was evicted (declared dead): the survivors publish
   * its clients' wills, so this node drops them (and its delayed ones) before
   * it closes, lest they go out twice.
   */
  dropWills(): void
  /**
   * Ends the stored session of a client not connected to this node, as its
   * Session Expiry does (subscriptions, queue, inbound QoS 2 state), and
   * resolves when the store is done. A cluster node calls it for a session
   * whose expiry it claimed (src/cluster/expiry.ts). Connected here: nothing.
   */
  endSession(clientId: string): Promise<void>
  /** The connected clients' wills (a cluster records them again after Redis lost its data). */
  connectedWills(): Array<{ clientId: string, will: CoreWill | null, sessionExpiryInterval?: number }>
  /** Publishes as `message.origin` says (the broker, the application, a rule), with its MQTT 5 `properties` if any; the bus sees it with that origin. */
  publish(message: Message): Promise<void>
  /** Stop reading from clients, let queued deliveries drain, close clients, then persistence. */
  close(): Promise<void>
}
