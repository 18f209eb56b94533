import https from 'node:https'
import type { WssListenerConfig } from '../config.js'
import type { BoundListener, ListenerContext } from './listener.js'
import type { TlsMaterial } from './certs.js'
import { serveWebSocket } from './websocket.js'

export function listenWss (config: WssListenerConfig, material: TlsMaterial, ctx: ListenerContext): Promise<BoundListener> {
  return serveWebSocket(https.createServer({ ...material }), config, ctx)
}
