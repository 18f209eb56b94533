import http from 'node:http'
import type { WsListenerConfig } from '../config.js'
import type { BoundListener, ListenerContext } from './listener.js'
import { serveWebSocket } from './websocket.js'

export function listenWs (config: WsListenerConfig, ctx: ListenerContext): Promise<BoundListener> {
  return serveWebSocket(http.createServer(), config, ctx)
}
