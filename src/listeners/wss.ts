import https from 'node:https'
import type { WssListenerConfig } from '../config.js'
import { HANDSHAKE_TIMEOUT_MS, type BoundListener, type ListenerContext } from './listener.js'
import type { TlsMaterial } from './certs.js'
import { serveWebSocket } from './websocket.js'

export function listenWss (config: WssListenerConfig, material: TlsMaterial, ctx: ListenerContext): Promise<BoundListener> {
  // tls.Server's own handshakeTimeout is 120 s: a silent socket held its slot that long.
  return serveWebSocket(https.createServer({ ...material, handshakeTimeout: ctx.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS }), config, ctx)
}
