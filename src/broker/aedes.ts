/*
 * The only module that imports aedes. Everything Aedes-specific lives here:
 * its hooks, and the fixes for what running Aedes 1.2 here revealed
 * (shared/PITFALLS.md), so that an Aedes upgrade stays local.
 */
import type { Duplex } from 'node:stream'
import { Aedes, type AedesPublishPacket, type Client } from 'aedes'
import type { Logger } from 'pino'
import type { Authenticator, ClientAccess } from '../auth/authenticator.js'
import type { Config } from '../config.js'
import { SwitchyardError } from '../errors.js'
import type { Persistence } from './persistence.js'
import { capOutgoingQueue, guardRetainedReplay, orderPerClient } from './persistence.js'
import { coalesceWrites, guardPacketSize, holdable } from './connection.js'
import { Fifo } from './fifo.js'

export interface PublishInput {
  topic: string
  payload: string | Uint8Array
  qos?: 0 | 1 | 2
  retain?: boolean
}

/** A message accepted from a client, after authorization. */
export interface AcceptedMessage {
  topic: string
  payload: Buffer
  qos: 0 | 1 | 2
  retain: boolean
  clientId: string
  username: string | null
}

export interface Counters {
  /** Messages not queued because a client's outgoing queue was full (limits.maxQueuedMessages). */
  queueDropped: number
  /** Connections closed for sending a packet larger than limits.maxPacketSize. */
  oversizedPackets: number
  /** Connections closed for a protocol error (malformed bytes, bad first packet...). */
  protocolErrors: number
  /** Publishes acknowledged and dropped because the client may not publish there ($SYS/, or the ACL). */
  deniedPublishes: number
  /** Subscriptions refused by the ACL (SUBACK 0x80). */
  deniedSubscriptions: number
  /** CONNECTs refused: bad credentials, or anonymous where it is not allowed. */
  authFailures: number
  /** MQTT packets of every type received. */
  packetsReceived: number
  /** CONNECT packets received. */
  connects: number
  /** PUBLISH packets received from clients, by QoS, and their payload bytes. */
  publishReceived: [number, number, number]
  publishBytesReceived: number
  /** PUBLISH packets sent to clients, by the message's QoS, and their payload bytes. */
  publishSent: [number, number, number]
  publishBytesSent: number
  /** The most clients connected at once. */
  maxConnected: number
  /** Deliveries shed to a client that stopped reading (see boundStalledDeliveries). */
  slowConsumerDropped: number
}

export interface ClientInfo {
  clientId: string
  username: string | null
  remote: string
  connectedAt: string
  clean: boolean
  subscriptions: string[]
}

export interface BrokerCoreOptions {
  limits: Config['limits']
  persistence: Persistence
  auth: Authenticator
  logger: Logger
  /** Called for every message a client published, after it was accepted. */
  onClientPublish?: (message: AcceptedMessage) => void
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
  publish(message: PublishInput): Promise<void>
  /** Stop reading from clients, let queued deliveries drain, close clients, then persistence. */
  close(): Promise<void>
}

const SYS_PREFIX = '$SYS/'
/*
 * A delivery to a client whose socket is full waits for 'drain' while it
 * holds one of mqemitter's 100 delivery slots: one frozen subscriber on busy
 * topics took them all and stalled every other client until Aedes's
 * drainTimeout (60 s) dropped it. See boundStalledDeliveries; and a client
 * that does not drain for 10 s is disconnected.
 */
// Stalled: no progress for a second with a real backlog waiting, or none at
// all for five. Time alone is not enough: a healthy client on a slow link,
// or busy for a moment, also goes a while without draining.
const STALLED_AFTER_MS = 1000
const STALLED_BACKLOG_BYTES = 256 * 1024
const STALLED_ANYWAY_MS = 5000
const STALL_CHECK_MS = 250
const DRAIN_TIMEOUT_MS = 10_000
/*
 * A denied PUBLISH must be acknowledged and dropped (MQTT 3.1.1 section
 * 3.3.5: the server "MUST either make a positive acknowledgement ... or close
 * the Network Connection"; Mosquitto acknowledges). Aedes can only close, so
 * a denied packet is diverted to this topic, which no client may subscribe
 * to, with retain cleared: the QoS flow completes and nobody receives it.
 */
const DROP_PREFIX = '$switchyard-dropped/'

function divert (packet: { topic: string, retain: boolean }): void {
  packet.topic = DROP_PREFIX + 'denied'
  packet.retain = false
}
const DRAIN_WAIT_MS = 2000

export async function createBrokerCore (options: BrokerCoreOptions): Promise<BrokerCore> {
  const { limits, persistence, logger, auth } = options
  const counters: Counters = {
    queueDropped: 0,
    oversizedPackets: 0,
    protocolErrors: 0,
    deniedPublishes: 0,
    deniedSubscriptions: 0,
    authFailures: 0,
    packetsReceived: 0,
    connects: 0,
    publishReceived: [0, 0, 0],
    publishBytesReceived: 0,
    publishSent: [0, 0, 0],
    publishBytesSent: 0,
    maxConnected: 0,
    slowConsumerDropped: 0
  }
  const connectedAt = new WeakMap<Client, Date>()
  const held = new WeakSet<Duplex>()
  const disconnectReasons = new WeakMap<Client, string>()
  // Aedes 1.2 does not keep the username on the client (PITFALLS.md).
  const usernames = new WeakMap<Client, string | null>()
  const remotes = new WeakMap<Client, string>()
  const identities = new WeakMap<Client, string>()
  const accesses = new WeakMap<Client, ClientAccess>()
  // Compiled once per client, and again after an ACL reload.
  const accessOf = (client: Client): ClientAccess => {
    let access = accesses.get(client)
    if (access === undefined || access.generation !== auth.generation) {
      access = auth.access({ username: usernames.get(client) ?? null, clientId: client.id })
      accesses.set(client, access)
    }
    return access
  }

  guardRetainedReplay(persistence)
  orderPerClient(persistence)
  capOutgoingQueue(persistence, limits.maxQueuedMessages, clientId => {
    if (counters.queueDropped++ % 1000 === 0) {
      logger.warn({ clientId, dropped: counters.queueDropped }, 'outgoing queue full (limits.maxQueuedMessages); message dropped for this client')
    }
  })

  const aedes = await Aedes.createBroker({
    persistence,
    drainTimeout: DRAIN_TIMEOUT_MS,
    // Reject with an Error, never callback(null, false): Aedes 1.2 leaves
    // the socket open forever on the latter (PITFALLS.md).
    preConnect (client, packet, callback) {
      counters.connects++
      // [MQTT-3.1.3-8] a zero-length client id requires a clean session;
      // Aedes 1.2 accepts it anyway, so answer CONNACK 0x02 ourselves.
      if (packet.clientId === '' && packet.clean === false) {
        // close only after the CONNACK has been flushed
        rejectIdentifier(client, () => callback(new Error('zero-length client id with clean session 0 [MQTT-3.1.3-8]'), false))
        return
      }
      callback(null, true)
    },
    authenticate (client, username, password, callback) {
      const remote = remotes.get(client) ?? ''
      auth.authenticate({
        clientId: client.id,
        username: username ?? undefined,
        password: password ?? undefined,
        identity: identities.get(client),
        address: remote.slice(0, remote.lastIndexOf(':'))
      }).then(result => {
        if (result.ok) {
          usernames.set(client, result.username)
          callback(null, true)
          return
        }
        counters.authFailures++
        // Usernames at info, never passwords.
        logger.info({ clientId: client.id, remote, username, reason: result.reason, delayMs: result.delayMs }, 'authentication failed')
        // CONNACK 5 (not authorized), as Mosquitto answers; held back while an address keeps failing.
        const refuse = () => callback(Object.assign(new Error(result.reason), { returnCode: 5 as const }), false)
        if (result.delayMs > 0) setTimeout(refuse, result.delayMs).unref()
        else refuse()
      }, (err: Error) => {
        logger.error({ clientId: client.id, err: err.message }, 'authentication error')
        callback(Object.assign(new Error('authentication error'), { returnCode: 5 as const }), false)
      })
    },
    authorizePublish (client, packet, callback) {
      // Clients must not publish into $SYS/: the broker owns it. A denied
      // publish is acknowledged and dropped (see DROP_PREFIX).
      if (client !== null && (packet.topic.startsWith(SYS_PREFIX) || packet.topic.startsWith(DROP_PREFIX) || !accessOf(client).canWrite(packet.topic))) {
        counters.deniedPublishes++
        logger.debug({ clientId: client.id, topic: packet.topic }, 'publish denied; acknowledged and dropped')
        divert(packet)
      }
      callback(null)
    },
    authorizeSubscribe (client, sub, callback) {
      // Nobody may listen where denied publishes are diverted. null: 0x80 in SUBACK.
      if (sub.topic.startsWith(DROP_PREFIX) || !accessOf(client).canSubscribe(sub.topic)) {
        counters.deniedSubscriptions++
        logger.debug({ clientId: client.id, filter: sub.topic }, 'subscription denied')
        callback(null, null)
        return
      }
      callback(null, sub)
    },
    authorizeForward (client, packet) {
      // Read access is checked per message, so a wide subscription, or a
      // retained message, never delivers a topic the client may not read.
      if (auth.hasAcl && !accessOf(client).canRead(packet.topic)) return null as unknown as typeof packet
      // [MQTT-3.3.1-9] only a message sent because of a new subscription
      // carries retain=1. Aedes marks retained replays with brokerId=null;
      // a stored offline-queue entry keeps its brokerId and, in Aedes 1.2,
      // its original retain flag. The packet here is the client's own copy.
      if (packet.retain && packet.brokerId) packet.retain = false
      counters.publishSent[packet.qos]++
      counters.publishBytesSent += packet.payload.length
      return packet
    },
    published (packet, client, callback) {
      if (client) {
        counters.publishReceived[packet.qos]++
        counters.publishBytesReceived += packet.payload.length
      }
      if (client && options.onClientPublish && !packet.topic.startsWith(DROP_PREFIX)) {
        options.onClientPublish({
          topic: packet.topic,
          payload: packet.payload as Buffer,
          qos: packet.qos,
          retain: packet.retain,
          clientId: client.id,
          username: usernames.get(client) ?? null
        })
      }
      callback(null)
    }
  })

  // mqemitter's backlog is an Array drained with shift(): quadratic under
  // fan-in. Same interface, O(1) shift (see fifo.ts).
  const mq = (aedes as unknown as { mq: { _messageQueue: unknown, _messageCallbacks: unknown } }).mq
  mq._messageQueue = new Fifo()
  mq._messageCallbacks = new Fifo()

  aedes.on('client', client => {
    connectedAt.set(client, new Date())
    counters.maxConnected = Math.max(counters.maxConnected, aedes.connectedClients)
    logger.info({ clientId: client.id, remote: remotes.get(client), username: usernames.get(client) ?? undefined, clean: client.clean }, 'client connected')
  })
  aedes.on('clientDisconnect', client => {
    const reason = (client as unknown as { _disconnected: boolean })._disconnected ? 'DISCONNECT' : disconnectReasons.get(client) ?? 'connection closed'
    logger.info({ clientId: client.id, remote: remotes.get(client), reason }, 'client disconnected')
  })
  aedes.on('keepaliveTimeout', client => { disconnectReasons.set(client, 'keepalive timeout') })
  aedes.on('clientError', (client, err) => {
    if (!disconnectReasons.has(client)) disconnectReasons.set(client, err.message)
    logger.debug({ clientId: client.id, remote: remotes.get(client), err: err.message }, 'client error')
  })
  aedes.on('connectionError', (client, err) => {
    counters.protocolErrors++
    logger.debug({ remote: remotes.get(client), err: err.message }, 'connection error before CONNECT completed')
  })

  let closing: Promise<void> | undefined

  return {
    id: aedes.id,
    counters,
    get connectedClients () { return aedes.connectedClients },

    clients () {
      return Object.values((aedes as unknown as AedesInternals).clients).map(c => {
        const client = c as unknown as Client
        return {
          clientId: client.id,
          username: usernames.get(client) ?? null,
          remote: remotes.get(client) ?? '',
          connectedAt: (connectedAt.get(client) ?? new Date()).toISOString(),
          clean: client.clean,
          subscriptions: Object.keys((client as unknown as { subscriptions: object }).subscriptions)
        }
      })
    },

    // Not Aedes's client.pause(): its read loop returns before counting the
    // packets in flight, so resume() never restarts it. Instead the stream's
    // read() yields nothing while held; Node's buffer fills, the socket stops
    // reading, and TCP slows the sender.
    pause (clientId) {
      const client = (aedes as unknown as AedesInternals).clients[clientId]
      if (client) held.add((client as unknown as { conn: Duplex }).conn)
    },

    resume (clientId) {
      const client = (aedes as unknown as AedesInternals).clients[clientId]
      if (!client) return
      held.delete((client as unknown as { conn: Duplex }).conn)
      ;(client as unknown as { _nextBatch(): void })._nextBatch()
    },

    subscriptionCount () {
      let n = 0
      for (const c of Object.values((aedes as unknown as AedesInternals).clients)) n += Object.keys((c as unknown as { subscriptions: object }).subscriptions).length
      return n
    },

    handle (stream, remote, identity) {
      coalesceWrites(stream)
      holdable(stream, held)
      const client = aedes.handle(stream)
      boundStalledDeliveries(client, stream, counters)
      remotes.set(client, remote)
      if (identity !== undefined) identities.set(client, identity)
      guardPacketSize(client, limits.maxPacketSize, counters, (size) => {
        counters.oversizedPackets++
        logger.warn({ remote, size, maxPacketSize: limits.maxPacketSize }, 'packet exceeds limits.maxPacketSize; connection closed')
      })
    },

    publish (message) {
      if (aedes.closed) return Promise.reject(new SwitchyardError('ERR_CLOSED', 'broker is closed'))
      const packet = {
        cmd: 'publish' as const,
        topic: message.topic,
        payload: typeof message.payload === 'string' ? Buffer.from(message.payload) : Buffer.from(message.payload.buffer, message.payload.byteOffset, message.payload.byteLength),
        qos: message.qos ?? 0,
        retain: message.retain ?? false,
        dup: false
      } as AedesPublishPacket
      return new Promise((resolve, reject) => {
        aedes.publish(packet, (err?: Error | null) => err ? reject(new SwitchyardError('ERR_PUBLISH', `publish to ${message.topic} failed: ${err.message}`, { cause: err })) : resolve())
      })
    },

    close () {
      closing ??= (async () => {
        // Stop input first, then let the emitter drain: closing Aedes while
        // mqemitter still has a queue recursed into a stack overflow under
        // a QoS 0 flood (mqemitter#193, PITFALLS.md).
        const internals = aedes as unknown as AedesInternals
        for (const client of Object.values(internals.clients)) client.pause()
        await waitForDrain(internals.mq)
        await new Promise<void>(resolve => aedes.close(() => resolve()))
        // Aedes does not close its persistence (PITFALLS.md).
        await persistence.destroy()
      })()
      return closing
    }
  }
}

async function waitForDrain (mq: { length: number, current: number }): Promise<void> {
  const deadline = Date.now() + DRAIN_WAIT_MS
  while ((mq.length > 0 || mq.current > 0) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

interface AedesInternals {
  clients: Record<string, { pause(): void, resume(): void }>  // Client, with the parts its types leave out
  mq: { length: number, current: number }
}

type Deliver = (packet: { qos: number }, cb: (...args: unknown[]) => void) => void

/**
 * Aedes finishes a publish only when every delivery of it has called back,
 * and a delivery to a full socket calls back on 'drain'. So one client that
 * stops reading held up the publishers of every topic it subscribes to, and
 * through them everyone else, until its drainTimeout. Here, a client with
 * deliveries in progress and no progress for STALLED_AFTER_MS with
 * STALLED_BACKLOG_BYTES waiting, or for STALLED_ANYWAY_MS, is stalled:
 * its pending deliveries are released at once (their bytes stay in its
 * socket buffer), and further deliveries to it are shed and counted until it
 * drains. A healthy client, even a slow or busy one, keeps draining and is
 * never stalled. A shed QoS 0 message is gone, as QoS 0 allows; a shed
 * QoS 1/2 message to a persistent session stays in its stored queue and is
 * delivered when the client is back; to a clean session it is dropped, as
 * Mosquitto drops beyond max_queued_messages. Installed before the client
 * can subscribe, since subscriptions capture these functions.
 */
function boundStalledDeliveries (client: Client, stream: Duplex, counters: Counters): void {
  const c = client as unknown as { deliver0: Deliver, deliverQoS: Deliver }
  const pending = new Set<() => void>()
  let lastProgress = Date.now()
  let stalled = false
  let timer: NodeJS.Timeout | undefined
  const progress = () => {
    lastProgress = Date.now()
    stalled = false
  }
  stream.on('drain', progress)
  stream.once('close', () => clearTimeout(timer))
  const watch = () => {
    timer = undefined
    if (pending.size === 0) return
    const idle = Date.now() - lastProgress
    if (idle < STALLED_ANYWAY_MS && (idle < STALLED_AFTER_MS || stream.writableLength < STALLED_BACKLOG_BYTES)) {
      timer = setTimeout(watch, STALL_CHECK_MS)
      return
    }
    stalled = true
    for (const release of [...pending]) release()
  }
  const bound = (deliver: Deliver): Deliver => (packet, cb) => {
    if (stalled) {
      counters.slowConsumerDropped++
      setImmediate(cb)
      return
    }
    let done = false
    const release = () => {
      if (done) return
      done = true
      pending.delete(release)
      cb()
    }
    pending.add(release)
    timer ??= setTimeout(watch, STALL_CHECK_MS)
    deliver(packet, () => {
      progress()
      release()
    })
  }
  c.deliver0 = bound(c.deliver0)
  c.deliverQoS = bound(c.deliverQoS)
}

function rejectIdentifier (client: Client, then: () => void): void {
  // CONNACK, remaining length 2, session present 0, return code 2 (identifier rejected)
  const conn = (client as unknown as { conn: Duplex }).conn
  conn.write(Buffer.from([0x20, 0x02, 0x00, 0x02]), () => then())
}
