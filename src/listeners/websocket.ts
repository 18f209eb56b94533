import type { Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { certificateIdentity } from './certs.js'
import websocket from 'websocket-stream'
import type { WsListenerConfig, WssListenerConfig } from '../config.js'
import { bind, remoteOf, type BoundListener, type ListenerContext } from './listener.js'

/**
 * MQTT over WebSocket on an HTTP(S) server, shared by ws.ts and wss.ts.
 * websocket-stream runs on ws 8 through package.json "overrides": its own
 * ws@3 is vulnerable to CVE-2024-37890.
 */
export function serveWebSocket (server: HttpServer, config: WsListenerConfig | WssListenerConfig, ctx: ListenerContext): Promise<BoundListener> {
  // Count the raw TCP connection, before any TLS or HTTP work is spent on it.
  server.on('connection', socket => { ctx.gate.admit(socket) })
  if (config.type === 'wss') {
    server.on('tlsClientError', (err: Error, socket: { remoteAddress?: string, remotePort?: number }) => ctx.onTransportError(config.type, remoteOf(socket), err))
  }
  // Answer malformed HTTP the way Node does when no listener is set.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    ctx.onTransportError(config.type, undefined, err)
    if (socket.writable && err.code !== 'ECONNRESET') {
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`)
    }
    socket.destroy()
  })
  const wss = websocket.createServer({
    server,
    path: config.path,
    perMessageDeflate: false,
    // A frame normally carries one MQTT packet; allow some coalescing, but
    // never let ws buffer far more than the largest packet we accept.
    maxPayload: 2 * ctx.maxPacketSize + 1024
  })
  const identityOf = config.type === 'wss' && config.useIdentityAsUsername
    ? (socket: unknown) => certificateIdentity(socket as TLSSocket)
    : () => undefined
  wss.on('stream', (stream, req) => ctx.accept(stream, remoteOf(req.socket), identityOf(req.socket)))
  return bind(server, config, {
    path: config.path,
    ...(config.type === 'wss' ? { setTlsMaterial: m => (server as HttpsServer).setSecureContext(m) } : {})
  })
}
