/*
 * Aedes's authentication and authorization hooks: the password file, the
 * ACL, then the application's hooks (src/hooks.ts), and what a denial does.
 * Also where read access is checked per delivery (authorizeForward).
 */
import type { Logger } from 'pino'
import type { Authenticator } from '../auth/authenticator.js'
import { InOrder, runHook, type Hooks } from '../hooks.js'
import type { Counters } from './counters.js'
import { connectWill, isRetainedReplay, retainAsPublished, type AedesOptions, type Client } from './internals.js'
import { ConnackCode, connackRefusal, publishRefusal, reasonName, subscribeRefusal } from './reason-codes.js'
import { subscribedFilter } from '../topics.js'
import type { ClientRegistry } from './registry.js'

export const SYS_PREFIX = '$SYS/'
/*
 * A denied PUBLISH must be acknowledged and dropped (MQTT 3.1.1 section
 * 3.3.5: the server "MUST either make a positive acknowledgement ... or close
 * the Network Connection"; Mosquitto acknowledges). Aedes can only close, so
 * a denied packet is diverted to this topic, which no client may subscribe
 * to, with retain cleared: the QoS flow completes and nobody receives it.
 * MQTT 5 has a negative acknowledgement instead, 0x87 (see refusePublish).
 */
export const DROP_PREFIX = '$switchyard-dropped/'

function divert (packet: { topic: string, retain: boolean }): void {
  packet.topic = DROP_PREFIX + 'denied'
  packet.retain = false
}

const DENIAL = Symbol('switchyard.denial')

/**
 * The error a v5 denial hands Aedes. Its message would become the PUBACK's
 * Reason String: none, as Mosquitto sends none (0x87 says it all, and Paho's
 * test client refuses an acknowledgement with properties). Aedes also emits
 * it as a 'clientError': isDenial() tells it from a real error.
 */
function notAuthorized (): Error {
  return Object.assign(new Error(''), { [DENIAL]: true })
}

/** Whether an error Aedes reports is a v5 denial of ours (notAuthorized), not a connection's failure. */
export function isDenial (err: Error): boolean {
  return (err as { [DENIAL]?: boolean })[DENIAL] === true
}

export interface AuthHooksOptions {
  auth: Authenticator
  registry: ClientRegistry
  counters: Counters
  logger: Logger
  /** The application's hooks, run after the password file and the ACL allowed. */
  hooks: Hooks | undefined
  /** Aedes's own $SYS/<id>/ topics, which no client receives (see createBrokerCore). */
  internalSys: string
}

export type AuthHooks = Required<Pick<AedesOptions, 'authenticate' | 'authorizePublish' | 'authorizeSubscribe' | 'authorizeForward'>>

export function createAuthHooks (options: AuthHooksOptions): AuthHooks {
  const { auth, registry, counters, logger, hooks, internalSys } = options
  const accessOf = (client: Client) => registry.access(client)
  const hookClient = (client: Client) => registry.hookClient(client)
  const publishHooks = new InOrder<Client>()
  /*
   * A denied PUBLISH (publishRefusal in reason-codes.ts). MQTT 5: an error
   * makes Aedes answer PUBACK/PUBREC 0x87 and drop the message, QoS 0
   * silently; the connection stays. MQTT 3.1.1: acknowledged and dropped
   * (see DROP_PREFIX). Counted as received either way, as the published
   * hook counts what it sees.
   */
  const refusePublish = (client: Client | null, packet: Parameters<AuthHooks['authorizePublish']>[1], callback: (err?: Error | null) => void, what: string): void => {
    counters.deniedPublishes++
    const code = client === null ? undefined : publishRefusal(client.version)
    if (client === null || code === undefined) {
      logger.debug({ clientId: client?.id, topic: packet.topic, reason: 'acknowledged and dropped (MQTT 3.1.1)' }, what)
      divert(packet)
      return callback(null)
    }
    counters.publishReceived[packet.qos]++
    counters.publishBytesReceived += packet.payload.length
    logger.debug({ clientId: client.id, topic: packet.topic, reason: packet.qos === 0 ? 'dropped (QoS 0)' : reasonName(code, packet.qos === 1 ? 'puback' : 'pubrec') }, what)
    callback(notAuthorized())
  }
  /*
   * A will is checked when it is given, at CONNECT, as Mosquitto 2 does
   * (CONNACK 5 when the client may not publish there): a will published
   * later by another broker run, after a crash, has no client to check it
   * against (Aedes calls authorizePublish with client null).
   */
  const checkWill = (client: Client, then: (refused: string | undefined) => void): void => {
    const will = connectWill(client)
    if (will === undefined) return then(undefined)
    if (will.topic.startsWith(SYS_PREFIX) || will.topic.startsWith(DROP_PREFIX) || !accessOf(client).canWrite(will.topic)) {
      return then(`will topic ${JSON.stringify(will.topic)} not allowed`)
    }
    const hook = hooks?.authorizePublish
    if (!hook) return then(undefined)
    const message = { topic: will.topic, payload: will.payload, qos: will.qos, retain: will.retain }
    runHook('authorizePublish', () => hook(hookClient(client), message), logger, { clientId: client.id, topic: will.topic },
      allowed => then(allowed ? undefined : `will topic ${JSON.stringify(will.topic)} denied by the authorizePublish hook`))
  }
  return {
    authenticate (client, username, password, callback) {
      const { remote, identity } = registry.of(client)
      auth.authenticate({
        clientId: client.id,
        username: username ?? undefined,
        password: password ?? undefined,
        identity,
        address: remote.slice(0, remote.lastIndexOf(':'))
      }).then(result => {
        if (result.ok) {
          registry.of(client).username = result.username
          const refuse = (reason: string) => {
            counters.authFailures++
            logger.info({ clientId: client.id, remote, username, reason, connack: connackRefusal(ConnackCode.NOT_AUTHORIZED, client.version).name }, 'authentication failed')
            callback(Object.assign(new Error(reason), { returnCode: ConnackCode.NOT_AUTHORIZED }), false)
          }
          const hook = hooks?.authenticate
          const willChecked = () => checkWill(client, reason => reason === undefined ? callback(null, true) : refuse(reason))
          if (!hook) return willChecked()
          const request = { clientId: client.id, username: result.username, remote, password: password ?? null }
          runHook('authenticate', () => hook(request), logger, { clientId: client.id, remote }, allowed => {
            if (allowed) willChecked()
            else refuse('denied by the authenticate hook')
          })
          return
        }
        counters.authFailures++
        // Usernames at info, never passwords.
        logger.info({ clientId: client.id, remote, username, reason: result.reason, delayMs: result.delayMs, connack: connackRefusal(ConnackCode.NOT_AUTHORIZED, client.version).name }, 'authentication failed')
        // CONNACK 5 (not authorized), as Mosquitto answers (v5: 0x87, Aedes maps it); held back while an address keeps failing.
        const refuse = () => callback(Object.assign(new Error(result.reason), { returnCode: ConnackCode.NOT_AUTHORIZED }), false)
        if (result.delayMs > 0) setTimeout(refuse, result.delayMs).unref()
        else refuse()
      }, (err: Error) => {
        logger.error({ clientId: client.id, err: err.message }, 'authentication error')
        callback(Object.assign(new Error('authentication error'), { returnCode: ConnackCode.NOT_AUTHORIZED }), false)
      })
    },
    authorizePublish (client, packet, callback) {
      // Clients must not publish into $SYS/: the broker owns it.
      // client null: a will of a previous run's client, checked when it was given (checkWill).
      const reserved = packet.topic.startsWith(SYS_PREFIX) || packet.topic.startsWith(DROP_PREFIX)
      const denied = reserved || (client !== null && !accessOf(client).canWrite(packet.topic))
      if (denied) return refusePublish(client, packet, callback, 'publish denied')
      const hook = hooks?.authorizePublish
      if (!hook || client === null) return callback(null)
      const message = { topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos, retain: packet.retain }
      publishHooks.run(client, done => runHook('authorizePublish', () => hook(hookClient(client), message), logger, { clientId: client.id, topic: packet.topic }, allowed => {
        if (allowed) callback(null)
        else refusePublish(client, packet, callback, 'publish denied by the authorizePublish hook')
        done()
      }))
    },
    authorizeSubscribe (client, sub, callback) {
      // Nobody may listen where denied publishes are diverted. null: Aedes answers SUBACK 0x87 (v5) or 0x80 (subscribeRefusal).
      // A shared subscription is checked on its filter; the hook sees all of `$share/<name>/<filter>`.
      const filter = subscribedFilter(sub.topic)
      if (filter.startsWith(DROP_PREFIX) || !accessOf(client).canSubscribe(filter)) {
        counters.deniedSubscriptions++
        logger.debug({ clientId: client.id, filter: sub.topic, reason: reasonName(subscribeRefusal(client.version), 'suback', client.version) }, 'subscription denied')
        callback(null, null)
        return
      }
      const hook = hooks?.authorizeSubscribe
      if (!hook) return callback(null, sub)
      runHook('authorizeSubscribe', () => hook(hookClient(client), { filter: sub.topic, qos: sub.qos }), logger, { clientId: client.id, filter: sub.topic }, allowed => {
        if (allowed) return callback(null, sub)
        counters.deniedSubscriptions++
        logger.debug({ clientId: client.id, filter: sub.topic, reason: reasonName(subscribeRefusal(client.version), 'suback', client.version) }, 'subscription denied by the authorizeSubscribe hook')
        callback(null, null)
      })
    },
    authorizeForward (client, packet) {
      if (packet.topic.startsWith(internalSys)) return null
      // Read access is checked per message, so a wide subscription, or a
      // retained message, never delivers a topic the client may not read.
      if (auth.hasAcl && !accessOf(client).canRead(packet.topic)) return null
      // [MQTT-3.3.1-9] a message sent because of a new subscription carries
      // retain=1; otherwise retain=0 [MQTT-3.3.1-13], unless the subscription
      // has Retain As Published (MQTT 5) [MQTT-3.3.1-12]. Live deliveries
      // come here with that already applied (handlers/subscribe.js); a stored
      // offline-queue entry keeps its original flag. The packet here is the
      // client's own copy.
      if (packet.retain && !isRetainedReplay(packet) && !(client.version === 5 && retainAsPublished(client, packet.topic))) packet.retain = false
      counters.publishSent[packet.qos]++
      counters.publishBytesSent += packet.payload.length
      return packet
    }
  }
}
