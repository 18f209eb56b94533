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

export interface ClientInfo {
  clientId: string
  username: string | null
  remote: string
  connectedAt: string
  clean: boolean
  /** The MQTT protocol level the client connected with: 3 (MQTT 3.1), 4 (3.1.1) or 5. */
  protocolVersion: 3 | 4 | 5
  subscriptions: string[]
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
}

export interface BrokerCore {
  readonly id: string
  readonly counters: Readonly<Counters>
  readonly connectedClients: number
  /** The connected clients. */
  clients(): ClientInfo[]
  /** Subscriptions of the connected clients. */
  subscriptionCount(): number
  /** Stop reading from a client (flow control: TCP then slows its sender); resume() undoes it. */
  pause(clientId: string): void
  resume(clientId: string): void
  /** Serve one connection. `remote` is the peer address; `identity` the client certificate's CN, on a useIdentityAsUsername listener. */
  handle(stream: Duplex, remote: string, identity?: string): void
  /** Publishes as `message.origin` says (the broker, the application, a rule), with its MQTT 5 `properties` if any; the bus sees it with that origin. */
  publish(message: Message): Promise<void>
  /** Stop reading from clients, let queued deliveries drain, close clients, then persistence. */
  close(): Promise<void>
}
