/*
 * Aedes's client lifecycle events, turned into logs, counters, the
 * registry's connect time and disconnect reason, and broker.on() events.
 */
import type { Logger } from 'pino'
import type { EventHub } from '../events.js'
import type { Counters } from './counters.js'
import { isDenial } from './auth-hooks.js'
import { disconnectedByPacket, onRoutingError, type Aedes, type Client } from './internals.js'
import { isRefusal, reasonName } from './reason-codes.js'
import type { ClientMeta, ClientRegistry } from './registry.js'

/** The MQTT protocol level a client connected with: 3 (MQTT 3.1), 4 (3.1.1) or 5. */
export function protocolLevel (version: number): 3 | 4 | 5 {
  return version === 3 || version === 5 ? version : 4
}

export interface ClientEventsOptions {
  registry: ClientRegistry
  counters: Counters
  logger: Logger
  events: EventHub | undefined
}

export function watchClients (aedes: Aedes, options: ClientEventsOptions): void {
  const { registry, counters, logger, events } = options
  const hookClient = (client: Client) => registry.hookClient(client)

  aedes.on('client', client => {
    const meta = registry.of(client)
    meta.connectedAt = new Date()
    const protocolVersion = protocolLevel(client.version)
    counters.connectedByProtocol[protocolVersion]++
    counters.maxConnected = Math.max(counters.maxConnected, aedes.connectedClients)
    logger.info({ clientId: client.id, remote: meta.remote, username: meta.username ?? undefined, clean: client.clean, protocolVersion }, 'client connected')
    if (events?.has('clientConnect')) events.emit('clientConnect', { ...hookClient(client), clean: client.clean, protocolVersion })
  })
  aedes.on('clientDisconnect', client => {
    const meta = registry.of(client)
    const protocolVersion = protocolLevel(client.version)
    counters.connectedByProtocol[protocolVersion]--
    const { reason, reasonCode } = whyDisconnected(client, meta)
    logger.info({ clientId: client.id, remote: meta.remote, reason, protocolVersion, reasonCode }, 'client disconnected')
    if (events?.has('clientDisconnect')) events.emit('clientDisconnect', { ...hookClient(client), reason, protocolVersion, ...(reasonCode === undefined ? {} : { reasonCode }) })
  })
  aedes.on('subscribe', (subscriptions, client) => {
    if (!events?.has('subscribe')) return
    // Aedes sets each subscription's qos to what was granted, or its refusal:
    // 0x80 (3.1.1), 0x87 or another reason code of 0x80 or more (v5).
    const granted = subscriptions.filter(s => !isRefusal(s.qos)).map(s => ({ filter: s.topic, qos: s.qos }))
    if (granted.length > 0) events.emit('subscribe', hookClient(client), granted)
  })
  aedes.on('unsubscribe', (filters, client) => {
    if (events?.has('unsubscribe')) events.emit('unsubscribe', hookClient(client), filters)
  })
  aedes.on('keepaliveTimeout', client => { registry.of(client).disconnectReason = 'keepalive timeout' })
  aedes.on('clientError', (client, err) => {
    // A v5 denial (PUBACK/PUBREC 0x87) costs the message, not the connection.
    if (isDenial(err)) return
    const meta = registry.of(client)
    meta.disconnectReason ??= err.message
    logger.debug({ clientId: client.id, remote: meta.remote, err: err.message }, 'client error')
  })
  // Aedes emits 'error' when the store fails while it routes a message (the
  // subscriptions lookup of enqueueOffline). With no listener that would
  // kill the process; the message it was routing is not acknowledged.
  onRoutingError(aedes, err => {
    logger.error({ err: err.message }, 'persistence failed while routing a message; it was not acknowledged')
  })
  aedes.on('connectionError', (client, err) => {
    counters.protocolErrors++
    logger.debug({ remote: registry.of(client).remote, err: err.message }, 'connection error before CONNECT completed')
  })
}

/**
 * Why a client's connection ended. `reason`: 'DISCONNECT' when the client
 * sent one; else the first error, a keepalive timeout, or 'connection
 * closed'. `reasonCode`, MQTT 5 only: the DISCONNECT's reason code by name,
 * the client's, or the one the broker sent it (e.g. SESSION_TAKEN_OVER).
 */
function whyDisconnected (client: Client, meta: ClientMeta): { reason: string, reasonCode: string | undefined } {
  // 0x04 (with will) leaves disconnectedByPacket false: the will is still published.
  const byPacket = disconnectedByPacket(client) || meta.disconnectPacketReason !== undefined
  const reason = byPacket ? 'DISCONNECT' : meta.disconnectReason ?? 'connection closed'
  if (client.version !== 5) return { reason, reasonCode: undefined }
  const code = meta.disconnectPacketReason ?? client.disconnectReasonCode ?? undefined
  return { reason, reasonCode: code === undefined ? undefined : reasonName(code, 'disconnect') }
}
