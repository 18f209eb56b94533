/*
 * Aedes's authentication and authorization hooks: the password file, the
 * ACL, then the application's hooks (src/hooks.ts), and what a denial does.
 * Also where read access is checked per delivery (authorizeForward).
 */
import type { Logger } from 'pino'
import type { Authenticator } from '../auth/authenticator.js'
import { InOrder, runHook, type Hooks } from '../hooks.js'
import type { Counters } from './counters.js'
import { connectWill, isRetainedReplay, type AedesOptions, type Client } from './internals.js'
import { ConnackCode } from './reason-codes.js'
import type { ClientRegistry } from './registry.js'

export const SYS_PREFIX = '$SYS/'
/*
 * A denied PUBLISH must be acknowledged and dropped (MQTT 3.1.1 section
 * 3.3.5: the server "MUST either make a positive acknowledgement ... or close
 * the Network Connection"; Mosquitto acknowledges). Aedes can only close, so
 * a denied packet is diverted to this topic, which no client may subscribe
 * to, with retain cleared: the QoS flow completes and nobody receives it.
 */
export const DROP_PREFIX = '$switchyard-dropped/'

function divert (packet: { topic: string, retain: boolean }): void {
  packet.topic = DROP_PREFIX + 'denied'
  packet.retain = false
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
            logger.info({ clientId: client.id, remote, username, reason }, 'authentication failed')
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
        logger.info({ clientId: client.id, remote, username, reason: result.reason, delayMs: result.delayMs }, 'authentication failed')
        // CONNACK 5 (not authorized), as Mosquitto answers; held back while an address keeps failing.
        const refuse = () => callback(Object.assign(new Error(result.reason), { returnCode: ConnackCode.NOT_AUTHORIZED }), false)
        if (result.delayMs > 0) setTimeout(refuse, result.delayMs).unref()
        else refuse()
      }, (err: Error) => {
        logger.error({ clientId: client.id, err: err.message }, 'authentication error')
        callback(Object.assign(new Error('authentication error'), { returnCode: ConnackCode.NOT_AUTHORIZED }), false)
      })
    },
    authorizePublish (client, packet, callback) {
      // Clients must not publish into $SYS/: the broker owns it. A denied
      // publish is acknowledged and dropped (see DROP_PREFIX).
      // client null: a will of a previous run's client, checked when it was given (checkWill).
      const reserved = packet.topic.startsWith(SYS_PREFIX) || packet.topic.startsWith(DROP_PREFIX)
      const denied = reserved || (client !== null && !accessOf(client).canWrite(packet.topic))
      if (denied) {
        counters.deniedPublishes++
        logger.debug({ clientId: client?.id, topic: packet.topic }, 'publish denied; acknowledged and dropped')
        divert(packet)
      }
      const hook = hooks?.authorizePublish
      if (!hook || denied || client === null) return callback(null)
      const message = { topic: packet.topic, payload: packet.payload as Buffer, qos: packet.qos, retain: packet.retain }
      publishHooks.run(client, done => runHook('authorizePublish', () => hook(hookClient(client), message), logger, { clientId: client.id, topic: packet.topic }, allowed => {
        if (!allowed) {
          counters.deniedPublishes++
          logger.debug({ clientId: client.id, topic: packet.topic }, 'publish denied by the authorizePublish hook; acknowledged and dropped')
          divert(packet)
        }
        callback(null)
        done()
      }))
    },
    authorizeSubscribe (client, sub, callback) {
      // Nobody may listen where denied publishes are diverted. null: SUBACK 0x80 (SubackCode.FAILURE).
      if (sub.topic.startsWith(DROP_PREFIX) || !accessOf(client).canSubscribe(sub.topic)) {
        counters.deniedSubscriptions++
        logger.debug({ clientId: client.id, filter: sub.topic }, 'subscription denied')
        callback(null, null)
        return
      }
      const hook = hooks?.authorizeSubscribe
      if (!hook) return callback(null, sub)
      runHook('authorizeSubscribe', () => hook(hookClient(client), { filter: sub.topic, qos: sub.qos }), logger, { clientId: client.id, filter: sub.topic }, allowed => {
        if (allowed) return callback(null, sub)
        counters.deniedSubscriptions++
        logger.debug({ clientId: client.id, filter: sub.topic }, 'subscription denied by the authorizeSubscribe hook')
        callback(null, null)
      })
    },
    authorizeForward (client, packet) {
      if (packet.topic.startsWith(internalSys)) return null
      // Read access is checked per message, so a wide subscription, or a
      // retained message, never delivers a topic the client may not read.
      if (auth.hasAcl && !accessOf(client).canRead(packet.topic)) return null
      // [MQTT-3.3.1-9] only a message sent because of a new subscription
      // carries retain=1; a stored offline-queue entry keeps, in Aedes 1.2,
      // its original retain flag. The packet here is the client's own copy.
      if (packet.retain && !isRetainedReplay(packet)) packet.retain = false
      counters.publishSent[packet.qos]++
      counters.publishBytesSent += packet.payload.length
      return packet
    }
  }
}
