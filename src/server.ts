import { Authenticator } from './auth/authenticator.js'
import { createBrokerCore, type BrokerCore, type ClientInfo, type Counters, type PublishInput } from './broker/aedes.js'
import { countRetained, openPersistence } from './broker/persistence.js'
import { isLoopback, isValidated, parseConfig, type Config, type ConfigInput } from './config.js'
import { ConfigError } from './errors.js'
import { VERSION } from './version.js'
import { createLogger, type Logger } from './log.js'
import { loadTlsMaterial } from './listeners/certs.js'
import { ConnectionGate } from './listeners/gate.js'
import type { BoundListener, ListenerContext } from './listeners/listener.js'
import { listenTcp } from './listeners/tcp.js'
import { listenTls } from './listeners/tls.js'
import { listenWs } from './listeners/ws.js'
import { listenWss } from './listeners/wss.js'
import { startAdmin, type AdminServer, type Health } from './ops/admin.js'
import { Metrics } from './ops/metrics.js'
import { SysPublisher, type SysSource } from './ops/sys.js'
import { RulesEngine } from './rules/engine.js'
import type { RuleStateView } from './rules/state.js'

export interface BrokerOptions {
  /** Directory relative paths in an object config resolve against. Default: the current directory. */
  baseDir?: string
  /** A pino logger to use instead of one built from config.log. */
  logger?: Logger
}

export interface ListenerAddress {
  readonly type: 'tcp' | 'tls' | 'ws' | 'wss'
  readonly host: string
  readonly port: number
  readonly path?: string
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
  /** Publish as the broker (not as a client): QoS, retain, persistence and rules apply. */
  publish(message: PublishInput): Promise<void>
  stats(): BrokerStats
  /** The connected clients, as GET /api/clients shows them. */
  clients(): ClientInfo[]
  /** What GET /healthz answers: every listener up, persistence writable. */
  health(): Promise<Health>
  /** The Prometheus text that GET /metrics serves. */
  metrics(): Promise<string>
  /** Every rule's state: status, error, counters, execution times (docs/rules.md). */
  rules(): RuleStateView[]
  /** Re-reads the rules directory now; the watcher does it by itself within a second. */
  reloadRules(): Promise<void>
  /**
   * Re-reads the password file, the ACL file and the TLS certificates (what
   * SIGHUP does). Connected clients stay connected; new connections and new
   * checks see the new state. On any problem the old state is kept.
   */
  reload(): Promise<{ ok: boolean, problems: string[] }>
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
  const gate = new ConnectionGate(cfg.limits.maxConnections)
  const persistence = await openPersistence(cfg.persistence)
  // Before Aedes stores anything, so the count follows every change.
  const retained = await countRetained(persistence)
  let engine: RulesEngine | undefined
  const core = await createBrokerCore({
    limits: cfg.limits,
    persistence,
    auth,
    logger,
    onClientPublish: message => engine?.route(message)
  })
  let metrics: Metrics | undefined
  engine = new RulesEngine({
    config: cfg.rules,
    maxPacketSize: cfg.limits.maxPacketSize,
    publisher: core,
    logger,
    onDuration: (rule, ms) => metrics?.observeRule(rule, ms),
    flow: core
  })
  const stats: SysSource = {
    counters: () => core.counters,
    connectedClients: () => core.connectedClients,
    sockets: () => ({ accepted: gate.accepted, refused: gate.refused, open: gate.open }),
    bytes: () => gate.bytes(),
    retained: () => retained.size,
    subscriptions: () => core.subscriptionCount(),
    rules: () => engine.rules(),
    offlineClients: async () => (await persistence.countOffline()).clientsCount,
    publish: (topic, payload) => core.publish({ topic, payload, qos: 0, retain: true })
  }
  metrics = new Metrics(stats)
  const sys = new SysPublisher(stats, cfg.sys.interval, VERSION)

  const ctx: ListenerContext = {
    gate,
    accept: (stream, remote, identity) => core.handle(stream, remote, identity),
    maxPacketSize: cfg.limits.maxPacketSize,
    onTransportError: (listener, remote, err) => logger.debug({ listener, remote, err: err.message }, 'transport error; connection closed')
  }
  const bound: BoundListener[] = []
  let admin: AdminServer | undefined
  const health = async (): Promise<Health> => {
    const listeners = bound.map(b => ({ type: b.type, port: b.port, up: b.listening }))
    const store = await withTimeout(persistence.probe(), 2000, 'persistence did not answer within 2 s').then(() => ({ ok: true }), (err: Error) => ({ ok: false, error: err.message }))
    return { ok: store.ok && listeners.every(l => l.up), listeners, persistence: store }
  }
  try {
    // Rules first: clients that connect find them loaded.
    await engine.start()
    for (const l of cfg.listeners) bound.push(await startListener(l, cfg, ctx, logger))
    if (cfg.admin) {
      admin = await startAdmin(cfg.admin, {
        metrics: async () => ({ contentType: metrics!.contentType, body: await metrics!.text() }),
        health,
        rules: () => engine.rules(),
        clients: () => core.clients()
      }, err => logger.error({ err }, 'admin request failed'))
    }
  } catch (err) {
    await Promise.all(bound.map(b => b.close()))
    gate.destroyAll()
    await engine.close()
    await core.close()
    throw err
  }
  for (const b of bound) {
    const scheme = { tcp: 'mqtt', tls: 'mqtts', ws: 'ws', wss: 'wss' }[b.type]
    logger.info({ listener: b.type, host: b.host, port: b.port }, `listening on ${scheme}://${formatHost(b.host)}:${b.port}${b.path ?? ''}`)
  }
  if (admin) {
    logger.info({ listener: 'admin', host: admin.host, port: admin.port }, `admin on http://${formatHost(admin.host)}:${admin.port} (/metrics, /healthz, /api/rules, /api/clients)`)
    if (!isLoopback(admin.host)) logger.warn({ host: admin.host }, 'the admin listener has no authentication and is not on loopback: restrict it with a firewall or a reverse proxy')
  }
  sys.start()

  let closing: Promise<void> | undefined
  return {
    listeners: Object.freeze(bound.map(({ type, host, port, path }) => Object.freeze(path === undefined ? { type, host, port } : { type, host, port, path }))),
    admin: admin ? Object.freeze({ host: admin.host, port: admin.port }) : undefined,
    config: cfg,
    async publish (message) {
      await core.publish(message)
      engine.route({ topic: message.topic, payload: message.payload, qos: message.qos ?? 0, retain: message.retain ?? false, clientId: null, username: null })
    },
    stats: () => ({
      ...core.counters,
      connectedClients: core.connectedClients,
      openConnections: gate.open,
      refusedConnections: gate.refused,
      rulesHostPid: engine.hostPid
    }),
    clients: () => core.clients(),
    health,
    metrics: () => metrics!.text(),
    rules: () => engine.rules(),
    reloadRules: () => engine.rescan(),
    async reload () {
      const problems = await auth.reload()
      cfg.listeners.forEach((l, i) => {
        const listener = bound[i]
        if ((l.type !== 'tls' && l.type !== 'wss') || !listener?.setTlsMaterial) return
        try {
          listener.setTlsMaterial(loadTlsMaterial(l, cfg.devCertDir, () => {}))
        } catch (err) {
          problems.push(`listeners[${i}]: ${(err as Error).message}`)
        }
      })
      if (problems.length > 0) logger.error({ problems }, 'reload failed in part; the previous state is kept where it failed')
      else logger.info('reloaded the password file, the ACL file and the TLS certificates')
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
        await Promise.all(stopped.concat(closeCore(core, gate)))
        logger.info('broker closed')
      })()
      return closing
    }
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

async function startListener (l: Config['listeners'][number], cfg: Config, ctx: ListenerContext, logger: Logger): Promise<BoundListener> {
  const onGenerated = (caPath: string) => logger.warn({ ca: caPath }, `generated a development CA and server certificate for localhost; clients must trust ${caPath}`)
  switch (l.type) {
    case 'tcp': return listenTcp(l, ctx)
    case 'ws': return listenWs(l, ctx)
    case 'tls': return listenTls(l, loadTlsMaterial(l, cfg.devCertDir, onGenerated), ctx)
    case 'wss': return listenWss(l, loadTlsMaterial(l, cfg.devCertDir, onGenerated), ctx)
  }
}

function formatHost (host: string): string {
  return host.includes(':') ? `[${host}]` : host
}
