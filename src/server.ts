import { Authenticator } from './auth/authenticator.js'
import { createBrokerCore, type BrokerCore, type Counters, type PublishInput } from './broker/aedes.js'
import { openPersistence } from './broker/persistence.js'
import { isValidated, parseConfig, type Config, type ConfigInput } from './config.js'
import { ConfigError } from './errors.js'
import { createLogger, type Logger } from './log.js'
import { loadTlsMaterial } from './listeners/certs.js'
import { ConnectionGate } from './listeners/gate.js'
import type { BoundListener, ListenerContext } from './listeners/listener.js'
import { listenTcp } from './listeners/tcp.js'
import { listenTls } from './listeners/tls.js'
import { listenWs } from './listeners/ws.js'
import { listenWss } from './listeners/wss.js'
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
  readonly config: Config
  /** Publish as the broker (not as a client): QoS, retain, persistence and rules apply. */
  publish(message: PublishInput): Promise<void>
  stats(): BrokerStats
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
  let engine: RulesEngine | undefined
  const core = await createBrokerCore({
    limits: cfg.limits,
    persistence,
    auth,
    logger,
    onClientPublish: message => engine?.route(message)
  })
  engine = new RulesEngine({ config: cfg.rules, maxPacketSize: cfg.limits.maxPacketSize, publisher: core, logger })

  const ctx: ListenerContext = {
    gate,
    accept: (stream, remote, identity) => core.handle(stream, remote, identity),
    maxPacketSize: cfg.limits.maxPacketSize,
    onTransportError: (listener, remote, err) => logger.debug({ listener, remote, err: err.message }, 'transport error; connection closed')
  }
  const bound: BoundListener[] = []
  try {
    // Rules first: clients that connect find them loaded.
    await engine.start()
    for (const l of cfg.listeners) {
      bound.push(await startListener(l, cfg, ctx, logger))
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

  let closing: Promise<void> | undefined
  return {
    listeners: Object.freeze(bound.map(({ type, host, port, path }) => Object.freeze(path === undefined ? { type, host, port } : { type, host, port, path }))),
    config: cfg,
    async publish (message) {
      await core.publish(message)
      const payload = typeof message.payload === 'string' ? Buffer.from(message.payload) : Buffer.from(message.payload)
      engine.route({ topic: message.topic, payload, qos: message.qos ?? 0, retain: message.retain ?? false, clientId: null, username: null })
    },
    stats: () => ({
      ...core.counters,
      connectedClients: core.connectedClients,
      openConnections: gate.open,
      refusedConnections: gate.refused,
      rulesHostPid: engine.hostPid
    }),
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
        const stopped = bound.map(b => b.close())
        await engine.close()
        await Promise.all(stopped.concat(closeCore(core, gate)))
        logger.info('broker closed')
      })()
      return closing
    }
  }
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
