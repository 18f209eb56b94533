/*
 * Aedes's client lifecycle events, turned into logs, counters, the
 * registry's connect time and disconnect reason, and broker.on() events.
 */
import type { Logger } from 'pino'
import type { EventHub } from '../events.js'
import type { Counters } from './counters.js'
import { disconnectedByPacket, onRoutingError, type Aedes, type Client } from './internals.js'
import { SubackCode } from './reason-codes.js'
import type { ClientRegistry } from './registry.js'

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
    counters.maxConnected = Math.max(counters.maxConnected, aedes.connectedClients)
    logger.info({ clientId: client.id, remote: meta.remote, username: meta.username ?? undefined, clean: client.clean }, 'client connected')
    if (events?.has('clientConnect')) events.emit('clientConnect', { ...hookClient(client), clean: client.clean })
  })
  aedes.on('clientDisconnect', client => {
    const meta = registry.of(client)
    const reason = disconnectedByPacket(client) ? 'DISCONNECT' : meta.disconnectReason ?? 'connection closed'
    logger.info({ clientId: client.id, remote: meta.remote, reason }, 'client disconnected')
    if (events?.has('clientDisconnect')) events.emit('clientDisconnect', { ...hookClient(client), reason })
  })
  aedes.on('subscribe', (subscriptions, client) => {
    if (!events?.has('subscribe')) return
    // Aedes sets each subscription's qos to what was granted, 0x80 when denied.
    const granted = subscriptions.filter(s => s.qos !== SubackCode.FAILURE as number).map(s => ({ filter: s.topic, qos: s.qos }))
    if (granted.length > 0) events.emit('subscribe', hookClient(client), granted)
  })
  aedes.on('unsubscribe', (filters, client) => {
    if (events?.has('unsubscribe')) events.emit('unsubscribe', hookClient(client), filters)
  })
  aedes.on('keepaliveTimeout', client => { registry.of(client).disconnectReason = 'keepalive timeout' })
  aedes.on('clientError', (client, err) => {
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
