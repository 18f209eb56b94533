import { Authenticator } from './auth/authenticator.js'
import { createBrokerCore, type BrokerCore, type ClientInfo, type Counters } from './broker/aedes.js'
import { Bus, type MessageHandler } from './bus.js'
import type { BridgeView } from './bridges/bridge.js'
import { Bridges } from './bridges/bridges.js'
import os from 'node:os'
import type { ClusterContext } from './cluster/context.js'
import type { ClusterNode } from './cluster/node.js'
import type { NodeInfo } from './cluster/membership.js'
import type { ClusterClients, ClusterClientInfo } from './cluster/clients.js'
import { sumCounters, type NodeCounters } from './cluster/node-counters.js'
import { EventHub, type BrokerEvents, type BrokerEventName } from './events.js'
import type { Hooks } from './hooks.js'
import { API_ORIGIN, BROKER_ORIGIN, type PublishInput } from './message.js'
import { messageFrom } from './publish-input.js'
import { RuleSources } from './rules/code-source.js'
import { createCounters } from './broker/counters.js'
import { openPersistence, wrapPersistence } from './broker/persistence.js'
import { isLoopback, isValidated, parseConfig, type Config, type ConfigInput } from './config.js'
import { ConfigError, SwitchyardError } from './errors.js'
import { VERSION } from './version.js'
import { createLogger, type Logger } from './log.js'
import { loadTlsMaterial, type TlsMaterial } from './listeners/certs.js'
import { ConnectionGate } from './listeners/gate.js'
import type { BoundListener, ListenerContext } from './listeners/listener.js'
import { listenTcp } from './listeners/tcp.js'
import { listenTls } from './listeners/tls.js'
import { listenWs } from './listeners/ws.js'
import { listenWss } from './listeners/wss.js'
import { startAdmin, type AdminServer, type Health } from './ops/admin.js'
import { adminOperations } from './ops/admin/source.js'
import { Metrics } from './ops/metrics.js'
import { SysPublisher, type SysSource } from './ops/sys.js'
import { RulesEngine } from './rules/engine.js'
import { RuleHostProcess } from './rules/host-process.js'
import { RuleFiles } from './rules/loader.js'
import { levelRuleStateStore, redisRuleStateStore, RULE_STATE_PREFIX } from './rules/rule-state-store.js'
import type { RuleStateView } from './rules/state.js'

export interface BrokerOptions {
  /** Directory relative paths in an object config resolve against. Default: the current directory. */
  baseDir?: string
  /** A pino logger to use instead of one built from config.log. */
  logger?: Logger
  /**
   * The rule host process. `startTimeoutMs`: how long start-up waits for it
   * to be ready before createBroker fails with ERR_RULES_HOST (default
   * 10000). `entry` (tests only): the script forked instead of the built host.
   */
  rulesHost?: { startTimeoutMs?: number, entry?: string }
  /**
   * Authentication and authorization from code, run after the password file
   * and the ACL (src/hooks.ts, docs/embedding.md). Here and not in the config:
   * functions cannot come from a JSON file.
   */
  hooks?: Hooks
  /**
   * Where `cluster.passwordEnv` and `bridges[].passwordEnv` are looked up
   * (the CLI passes process.env). Only those passwords are read from it.
   */
  env?: Readonly<Record<string, string | undefined>>
}

/** broker.rules: call it for every rule's state; add and remove rules from code. */
export interface BrokerRules {
  /** Every rule's state: status, error, counters, execution times (docs/rules.md). */
  (): RuleStateView[]
  /**
   * Loads a rule from its source (an ES module, as a rule file holds), or
   * replaces the code rule of that name, with the same sandbox, limits and
   * status as a rule file. Resolves with its state once the load has been
   * tried: `status` 'failed' and `error` say why it did not load (a replaced
   * rule then keeps running its previous version). Rejects with
   * ERR_INVALID_RULE when the name cannot be a rule's or the rules directory
   * has it, ERR_CLOSED after close().
   */
  add(rule: { name: string, source: string }): Promise<RuleStateView>
  /** Removes a rule added with add(); false when there is none of that name. ERR_INVALID_RULE for a rule file's name. */
  remove(name: string): Promise<boolean>
}

/** What reload() may take beside the files it re-reads. */
export interface ReloadOptions {
  /** The "bridges" section of a re-read config file (SIGHUP): bridges whose settings changed reconnect, new ones start, removed ones stop. */
  bridges?: Config['bridges']
}

export interface ListenerAddress {
  readonly type: 'tcp' | 'tls' | 'ws' | 'wss'
  readonly host: string
  readonly port: number
  readonly path?: string
}

/** GET /api/cluster and broker.cluster(). */
export interface ClusterView {
  /** This node. */
  nodeId: string
  nodes: NodeInfo[]
  /** Summed across the nodes listed. */
  totals: { nodes: number, clients: number, messagesPerSecond: number, counters: NodeCounters }
  /** This node's readiness (Redis outages, refused publishes), wills of dead nodes it published, QoS 0 it dropped while Redis was away. */
  self: ReturnType<ClusterNode['stats']>
}

export interface BrokerStats extends Counters {
  connectedClients: number
  openConnections: number
  refusedConnections: number
  /** The rule host process, while it runs (it starts with the first rule). */
  rulesHostPid: number | undefined
}

export interface Broker {
  /** The listeners as bound: port 0 is resolved to the real port. */
  readonly listeners: readonly ListenerAddress[]
  /** The admin HTTP listener as bound, when configured. */
  readonly admin: { readonly host: string, readonly port: number } | undefined
  readonly config: Config
  /**
   * Publish as the application (origin 'api'): QoS, retain, persistence and
   * rules apply. Checked as a client's PUBLISH: ERR_INVALID_TOPIC,
   * ERR_INVALID_QOS, ERR_INVALID_PAYLOAD. A plain object or array payload is
   * sent as JSON.
   */
  publish(message: PublishInput): Promise<void>
  /**
   * Calls `handler` with every message the broker routes whose topic matches
   * `filter` (MQTT matching: `#` does not match `$SYS/`), whoever published
   * it; `message.origin` says who. Returns the function that ends it. A
   * handler that throws is logged and costs only itself. ERR_INVALID_FILTER
   * for a filter MQTT forbids.
   */
  subscribe(filter: string, handler: MessageHandler): () => void
  /** Listens to a broker event; returns the function that stops listening. */
  on<E extends BrokerEventName>(event: E, listener: BrokerEvents[E]): () => void
  stats(): BrokerStats
  /** The connected clients, as GET /api/clients shows them. */
  clients(): ClientInfo[]
  /** A cluster node: GET /api/cluster (every node, their sums, this node's counters). */
  cluster?(): Promise<ClusterView>
  /** A cluster node: every client of the cluster with its `node` (only that node's with `node`); GET /api/clients. ERR_CLUSTER_UNAVAILABLE while Redis is away. */
  clusterClients?(node?: string): Promise<ClusterClientInfo[]>
  /** What GET /healthz answers: every listener up, persistence writable. */
  health(): Promise<Health>
  /** The Prometheus text that GET /metrics serves. */
  metrics(): Promise<string>
  /** Every rule's state with rules(); rules.add() and rules.remove() for rules from code. */
  readonly rules: BrokerRules
  /** Re-reads the rules directory now; the watcher does it by itself within a second. */
  reloadRules(): Promise<void>
  /**
   * Re-reads the password file, the ACL file and the TLS certificates (what
   * SIGHUP does). Connected clients stay connected; new connections and new
   * checks see the new state. On any problem the old state is kept. Also the
   * bridges' password variables and certificates, and `options.bridges` when
   * given: only bridges whose settings changed reconnect (docs/bridges.md).
   */
  reload(options?: ReloadOptions): Promise<{ ok: boolean, problems: string[] }>
  /** Every bridge's state and counters, as GET /api/bridges shows them (docs/bridges.md). */
  bridges(): BridgeView[]
  /** Graceful and idempotent: stop accepting, drain, close clients, close persistence. */
  close(): Promise<void>
}

/**
 * Starts a broker. `config` has the shape of the JSON config file and is
 * validated the same way (a ConfigError lists every problem).
 *
 * @example
 * const broker = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' } })
 * console.log(broker.listeners[0].port)
 * await broker.close()
 */
export async function createBroker (config: ConfigInput | Config = {}, options: BrokerOptions = {}): Promise<Broker> {
  const cfg = isValidated(config) ? config : parseConfig(config, { baseDir: options.baseDir })
  const logger = options.logger ?? createLogger(cfg.log)
  let auth: Authenticator
  try {
    auth = await Authenticator.load(cfg.auth)
  } catch (err) {
    throw new ConfigError((err as Error).message.split('\n'))
  }
  // Lines Mosquitto accepts too (we keep their meaning), but most likely typos.
  for (const warning of auth.warnings) logger.warn(warning)
  // Before anything is opened or bound: one ERR_TLS names every TLS listener's problems.
  const tlsMaterial = loadListenersTls(cfg, logger)
  const gate = new ConnectionGate(cfg.limits.maxConnections)
  const counters = createCounters()
  // A cluster node (docs/cluster.md): its Redis connections, then Aedes's
  // emitter on them; membership, wills and readiness join through cluster.use().
  // Loaded only then: a single broker never loads ioredis.
  const cluster: ClusterContext | undefined = cfg.cluster === undefined
    ? undefined
    : await (await import('./cluster/context.js')).openCluster(cfg.cluster, { logger, env: options.env })
  let opened: Awaited<ReturnType<typeof openPersistence>>
  let mq: object | undefined
  try {
    if (cluster) mq = await (await import('./cluster/emitter.js')).openEmitter(cluster)
    // The one place the store is wrapped (persistence.ts), before Aedes stores anything.
    opened = await openPersistence(cfg.persistence, cluster)
  } catch (err) {
    await cluster?.close()
    throw err
  }
  // Every routed message passes the bus once: subscribers, events, rules.
  const bus = new Bus(logger)
  const events = new EventHub(bus, logger)
  let wrapped: Awaited<ReturnType<typeof wrapPersistence>>
  // eslint-disable-next-line prefer-const -- assigned below, read late by the cluster node's callbacks
  let core: BrokerCore
  // A cluster node's membership, wills and readiness (src/cluster/node.ts),
  // started with cluster.start(); evicted: the node closes itself.
  const late = { close: async (): Promise<void> => {} }
  let rate = { at: performance.now(), received: 0, perSecond: 0 }
  const node: ClusterNode | undefined = cluster && (await import('./cluster/node.js')).attachClusterNode(cluster, {
    address: `${os.hostname()}:${cfg.listeners[0]?.port ?? 0}`,
    stats: () => {
      const c = core.counters
      const received = c.publishReceived[0] + c.publishReceived[1] + c.publishReceived[2]
      const now = performance.now()
      if (now - rate.at >= 100) rate = { at: now, received, perSecond: (received - rate.received) / ((now - rate.at) / 1000) }
      // Summed across nodes by GET /api/cluster (cluster/node-counters.ts).
      const own = node?.stats()
      const counters = { received: c.publishReceived, sent: c.publishSent, qos0Dropped: own?.qos0Dropped ?? 0, refused: own?.readiness.refused ?? 0, willsPublished: own?.wills.published ?? 0, rules: engine.rules() }
      return { clients: core.connectedClients, messagesPerSecond: rate.perSecond, counters }
    },
    publishWill: will => core.publishWill(will),
    endSession: clientId => core.endSession(clientId),
    connectedWills: () => core.connectedWills(),
    onEvicted: err => {
      logger.error({ err: err.message }, 'this cluster node was evicted; closing')
      // The survivors publish its clients' wills (wills.ts): not this node too.
      core.dropWills()
      void late.close()
    }
  })
  try {
    wrapped = await wrapPersistence(opened, {
      maxQueuedMessages: cfg.limits.maxQueuedMessages,
      onQueueDrop: clientId => {
        if (counters.queueDropped++ % 1000 === 0) {
          logger.warn({ clientId, dropped: counters.queueDropped }, 'outgoing queue full (limits.maxQueuedMessages); message dropped for this client')
        }
      }
    })
    core = await createBrokerCore({
      limits: cfg.limits,
      mqtt: cfg.mqtt,
      persistence: wrapped.persistence,
      counters,
      auth,
      logger,
      bus,
      events,
      hooks: options.hooks,
      ...(cluster && mq ? { cluster: { brokerId: cluster.brokerId, mq, heartbeatMs: cluster.config.heartbeatMs, ...(node ? { gate: node.gate } : {}) } } : {})
    })
  } catch (err) {
    // Release the store (and LevelDB's lock), so that a retry in this process can open it.
    await opened.store.destroy().catch(() => {})
    await cluster?.close()
    throw err
  }
  const { persistence, retained, probe } = wrapped
  const rulesLog = logger.child({ component: 'rules' })
  const ruleSources: RuleSources = new RuleSources(cfg.rules.dir === null ? undefined : new RuleFiles(cfg.rules.dir, rulesLog), rulesLog)
  // Durations go to the metrics, which read the engine: a late-bound sink breaks the cycle.
  const durations: { observe: (rule: string, ms: number) => void } = { observe: () => {} }
  const engine = new RulesEngine({
    config: cfg.rules,
    maxPacketSize: cfg.limits.maxPacketSize,
    runner: new RuleHostProcess({ logger: rulesLog, ...options.rulesHost }),
    source: ruleSources,
    publisher: core,
    feed: bus,
    logger,
    onDuration: (rule, ms) => durations.observe(rule, ms),
    flow: core,
    ...(cluster ? { nodeId: cluster.nodeId } : {}),
    // ctx.state beside the sessions: in the LevelDB, or a cluster node's own in Redis; in memory otherwise (docs/rules.md#per-rule-state-ctxstate)
    ...(opened.level
      ? { ruleState: levelRuleStateStore(opened.level, rulesLog) }
      : cluster ? { ruleState: redisRuleStateStore(cluster.store, `${RULE_STATE_PREFIX}${cluster.nodeId}:`, rulesLog) } : {})
  })
  // Bridges to other brokers (docs/bridges.md): in through core.publish()
  // with origin 'bridge', out from bus holds; started after the rules.
  const bridges = new Bridges({
    publish: message => core.publish(message),
    // Before the publisher's PUBACK: it waits for the out-queue write (bus.hold()).
    hold: (filter, handler) => bus.hold(filter, handler),
    // Mosquitto's bridge state topic, retained: 1 connected, 0 not.
    state: (name, connected) => {
      core.publish({ topic: `$SYS/broker/connection/${name}/state`, payload: Buffer.from(connected ? '1' : '0'), qos: 0, retain: true, origin: BROKER_ORIGIN }).catch(() => {})
    },
    logger: logger.child({ component: 'bridges' }),
    maxPacketSize: cfg.limits.maxPacketSize,
    env: options.env ?? {},
    ...(opened.level ? { level: opened.level } : {}),
    // A cluster node: queues in Redis, each bridge on the node holding its lease (docs/bridges.md#clusters).
    ...(cluster ? { cluster: { redis: () => cluster.connect('bridges'), nodeId: cluster.nodeId, incarnation: cluster.brokerId, heartbeatMs: cluster.config.heartbeatMs } } : {})
  })
  const stats: SysSource = {
    bridges: () => bridges.list(),
    counters: () => core.counters,
    connectedClients: () => core.connectedClients,
    sockets: () => ({ accepted: gate.accepted, refused: gate.refused, open: gate.open }),
    bytes: () => gate.bytes(),
    retained: () => retained.size,
    subscriptions: () => core.subscriptionCount(),
    rules: () => engine.rules(),
    offlineClients: async () => (await persistence.countOffline()).clientsCount,
    ...(node
      ? {
          cluster: () => {
            const s = node.stats()
            return { nodeId: node.nodeId, ...s.readiness, qos0Dropped: s.qos0Dropped, willsPublished: s.wills.published, willsFailed: s.wills.failed }
          }
        }
      : {}),
    publish: (topic, payload) => core.publish({ topic, payload: Buffer.from(payload), qos: 0, retain: true, origin: BROKER_ORIGIN })
  }
  const metrics = new Metrics(stats)
  durations.observe = (rule, ms) => metrics.observeRule(rule, ms)
  // A cluster node's values also go to $SYS/switchyard/nodes/<nodeId>/..., which cross nodes.
  const sys = new SysPublisher(stats, cfg.sys.interval, VERSION, cluster?.nodeId)

  const ctx: ListenerContext = {
    gate,
    accept: (stream, remote, identity) => core.handle(stream, remote, identity),
    maxPacketSize: cfg.limits.maxPacketSize,
    onTransportError: (listener, remote, err) => logger.debug({ listener, remote, err: err.message }, 'transport error; connection closed')
  }
  // A cluster node names itself on each of its clients (the others' are on their own nodes' /api/clients).
  const listClients = (): ClientInfo[] => cluster ? core.clients().map(c => ({ ...c, node: cluster.nodeId })) : core.clients()
  // A cluster node: every node's clients, from Redis (cluster/clients.ts).
  const clusterClients: ClusterClients | undefined = cluster && node
    ? (await import('./cluster/clients.js')).attachClusterClients(cluster, { local: () => core.clients(), on: (event, listener) => events.on(event, listener) })
    : undefined
  const bound: BoundListener[] = []
  let admin: AdminServer | undefined
  const health = async (): Promise<Health> => {
    const listeners = bound.map(b => ({ type: b.type, port: b.port, up: b.listening }))
    const store = await withTimeout(probe(), 2000, 'persistence did not answer within 2 s').then(() => ({ ok: true }), (err: Error) => ({ ok: false, error: err.message }))
    // A cluster node: its parts' health too (src/cluster/context.ts).
    const parts = cluster?.health()
    const ok = store.ok && listeners.every(l => l.up) && (parts?.ok ?? true)
    return { ok, listeners, persistence: store, ...(cluster && parts ? { cluster: { nodeId: cluster.nodeId, ...parts, ...(node ? { redis: node.health() } : {}) } } : {}) }
  }
  try {
    // A cluster node's parts join here, with cluster.use({ name, start, health, close })
    // (src/cluster/context.ts): membership.ts (refuses a live node with this
    // nodeId, heartbeats with core's stats), wills.ts (publishes a dead node's
    // wills through core), readiness.ts (cluster.events: Redis up or down).
    // Their start() runs here, before any client can connect.
    await cluster?.start()
    // Rules first: clients that connect find them loaded.
    await engine.start()
    // A password variable or certificate that cannot be read: nothing is bound yet.
    await bridges.start(cfg.bridges).catch((err: Error) => { throw new ConfigError(err.message.split('\n')) })
    for (const [i, l] of cfg.listeners.entries()) bound.push(await startListener(l, tlsMaterial[i], ctx))
    if (cfg.admin) {
      admin = await startAdmin(cfg.admin, {
        metrics: async () => ({ contentType: metrics.contentType, body: await metrics.text() }),
        health,
        rules: () => engine.rules(),
        bridges: () => bridges.list(),
        clients: query => clusterClients ? clusterClients.query(query) : listClients(),
        ...(node ? { cluster: () => clusterView(node) } : {}),
        // publish, stream, retained, disconnect, rule detail and test, history (src/ops/admin/)
        ...adminOperations({ core, bus, persistence, engine, config: cfg })
      }, err => logger.error({ err }, 'admin request failed'))
    }
  } catch (err) {
    await Promise.all(bound.map(b => b.close()))
    gate.destroyAll()
    await bridges.close()
    await engine.close()
    await core.close()
    await cluster?.close()
    throw err
  }
  for (const b of bound) {
    const scheme = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' }[b.type]
    logger.info({ listener: b.type, host: b.host, port: b.port }, `listening on ${scheme}://${formatHost(b.host)}:${b.port}${b.path ?? ''}`)
  }
  if (admin) {
    logger.info({ listener: 'admin', host: admin.host, port: admin.port }, `admin on ${admin.secure ? 'https' : 'http'}://${formatHost(admin.host)}:${admin.port} (console at /, /metrics, /healthz, /api/)`)
    // Only with "allowAnonymous": true (config.ts refuses it otherwise).
    if (!isLoopback(admin.host) && cfg.admin?.passwordFile === undefined) logger.warn({ host: admin.host }, 'the admin listener has no login (admin.allowAnonymous) and is not on loopback: anyone who reaches it controls the broker')
  }
  sys.start()

  let closing: Promise<void> | undefined
  const rules: BrokerRules = Object.assign(() => engine.rules(), {
    async add (rule: { name: string, source: string }) {
      if (closing) throw new SwitchyardError('ERR_CLOSED', 'rules.add(): the broker is closed')
      const { name, source } = rule ?? {}
      ruleSources.check(name, source)
      await ruleSources.code.add(name, source)
      const view = engine.rules().find(r => r.name === name)
      if (!view) throw new SwitchyardError('ERR_CLOSED', 'rules.add(): the broker closed meanwhile')
      return view
    },
    async remove (name: string) {
      if (ruleSources.isFileRule(name)) throw new SwitchyardError('ERR_INVALID_RULE', `rules.remove(): rule ${name} comes from the rules directory; delete its file instead`)
      return ruleSources.code.remove(name)
    }
  })
  const broker: Broker = {
    listeners: Object.freeze(bound.map(({ type, host, port, path }) => Object.freeze(path === undefined ? { type, host, port } : { type, host, port, path }))),
    admin: admin ? Object.freeze({ host: admin.host, port: admin.port }) : undefined,
    config: cfg,
    async publish (input) {
      // The bus hands it to the rules, as any other message.
      await core.publish(messageFrom(input, API_ORIGIN, cfg.limits.maxPacketSize))
    },
    subscribe: (filter, handler) => bus.subscribe(filter, handler),
    on: (event, listener) => events.on(event, listener),
    stats: () => ({
      ...core.counters,
      connectedByProtocol: { ...core.counters.connectedByProtocol },
      connectedClients: core.connectedClients,
      openConnections: gate.open,
      refusedConnections: gate.refused,
      rulesHostPid: engine.hostPid
    }),
    clients: () => listClients(),
    ...(node ? { cluster: () => clusterView(node) } : {}),
    ...(clusterClients ? { clusterClients: (n?: string) => clusterClients.list(n) } : {}),
    health,
    metrics: () => metrics.text(),
    rules,
    reloadRules: () => engine.rescan(),
    bridges: () => bridges.list(),
    async reload (reloadOptions?: ReloadOptions) {
      const problems = await auth.reload()
      problems.push(...await bridges.reload(reloadOptions?.bridges))
      if (admin) problems.push(...await admin.reload())
      for (const warning of auth.warnings) logger.warn(warning)
      cfg.listeners.forEach((l, i) => {
        const listener = bound[i]
        if ((l.type !== 'tls' && l.type !== 'wss') || !listener?.setTlsMaterial) return
        try {
          listener.setTlsMaterial(loadTlsMaterial(l, cfg.devCertDir, () => {}, { key: `listeners[${i}]`, baseDir: cfg.baseDir }))
        } catch (err) {
          // The listener keeps its current certificate.
          if (err instanceof ConfigError) problems.push(...err.problems)
          else problems.push(`listeners[${i}]: ${(err as Error).message}`)
        }
      })
      if (problems.length > 0) logger.error({ problems }, 'reload failed in part; the previous state is kept where it failed')
      else logger.info('reloaded the password file, the ACL file, the TLS certificates and the bridges')
      return { ok: problems.length === 0, problems }
    },
    close () {
      closing ??= (async () => {
        // Stop accepting; stop the rules (their pending outputs still
        // publish); then drain and close clients and persistence.
        sys.stop()
        const stopped = bound.map(b => b.close())
        if (admin) stopped.push(admin.close())
        await engine.close()
        // Before the store: the out queues' last writes go to its LevelDB.
        await bridges.close()
        await Promise.all(stopped.concat(closeCore(core, gate)))
        // After the store: membership leaves the registry last.
        await cluster?.close()
        logger.info('broker closed')
      })()
      return closing
    }
  }
  late.close = broker.close
  return broker
}

/**
 * GET /api/cluster: every node (membership.ts: id, address, last heartbeat,
 * clients, messages per second), their sums, and this node's own cluster
 * counters. Rejects with ERR_CLUSTER_UNAVAILABLE while Redis is away.
 */
async function clusterView (node: ClusterNode): Promise<ClusterView> {
  const nodes = await node.nodes()
  return {
    nodeId: node.nodeId,
    nodes,
    totals: {
      nodes: nodes.length,
      clients: nodes.reduce((n, x) => n + x.clients, 0),
      messagesPerSecond: Math.round(nodes.reduce((n, x) => n + x.messagesPerSecond, 0) * 100) / 100,
      counters: sumCounters(nodes.map(n => n.counters))
    },
    self: node.stats()
  }
}

function withTimeout<T> (promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(message)), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// server.close() resolves only once every connection has ended, so end them
// through the broker first (graceful), then whatever never spoke MQTT.
async function closeCore (core: BrokerCore, gate: ConnectionGate): Promise<void> {
  try {
    await core.close()
  } finally {
    gate.destroyAll()
  }
}

async function startListener (l: Config['listeners'][number], material: TlsMaterial | undefined, ctx: ListenerContext): Promise<BoundListener> {
  switch (l.type) {
    case 'tcp': return listenTcp(l, ctx)
    case 'ws': return listenWs(l, ctx)
    case 'tls': return listenTls(l, material!, ctx)
    case 'wss': return listenWss(l, material!, ctx)
  }
}

/** Each TLS listener's material, by listener index; the problems of all of them in one ConfigError (ERR_TLS). */
function loadListenersTls (cfg: Config, logger: Logger): Array<TlsMaterial | undefined> {
  const onGenerated = (caPath: string) => logger.warn({ ca: caPath }, `generated a development CA and server certificate for localhost; clients must trust ${caPath}`)
  const problems: string[] = []
  let cause: unknown
  const materials = cfg.listeners.map((l, i) => {
    if (l.type !== 'tls' && l.type !== 'wss') return undefined
    try {
      return loadTlsMaterial(l, cfg.devCertDir, onGenerated, { key: `listeners[${i}]`, baseDir: cfg.baseDir })
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      problems.push(...err.problems)
      cause ??= err.cause
      return undefined
    }
  })
  if (problems.length > 0) throw new ConfigError(problems, undefined, { code: 'ERR_TLS', cause })
  return materials
}

function formatHost (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
