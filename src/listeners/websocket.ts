import type { Server as HttpServer } from 'node:http'
import type { Server as HttpsServer } from 'node:https'
import type { TLSSocket } from 'node:tls'
import { certificateIdentity } from './certs.js'
import websocket from 'websocket-stream'
import type { WsListenerConfig, WssListenerConfig } from '../config.js'
import { bind, HANDSHAKE_TIMEOUT_MS, remoteOf, type BoundListener, type ListenerContext } from './listener.js'

/**
 * MQTT over WebSocket on an HTTP(S) server, shared by ws.ts and wss.ts.
 * websocket-stream runs on ws 8 through package.json "overrides": its own
 * ws@3 is vulnerable to CVE-2024-37890.
 */
export function serveWebSocket (server: HttpServer, config: WsListenerConfig | WssListenerConfig, ctx: ListenerContext): Promise<BoundListener> {
  // Count the raw TCP connection, before any TLS or HTTP work is spent on it.
  server.on('connection', socket => { ctx.gate.admit(socket) })
  if (config.type === 'wss') {
    // Node 20 reports a handshake timeout here but leaves the socket open.
    server.on('tlsClientError', (err: Error, socket: { remoteAddress?: string, remotePort?: number, destroy(): void }) => {
      ctx.onTransportError(config.type, remoteOf(socket), err)
      socket.destroy()
    })
  }
  // Answer malformed HTTP the way Node does when no listener is set.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    ctx.onTransportError(config.type, undefined, err)
    if (socket.writable && err.code !== 'ECONNRESET') {
      const status = err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request'
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`)
    }
    socket.destroy()
  })
  // Node's defaults let a silent client keep its socket forever and a slow
  // one take 60 s over its headers. An idle socket is destroyed (no 'timeout'
  // listener); ws clears the idle timeout once the connection is upgraded, and
  // from then on the MQTT keepalive applies.
  const timeoutMs = ctx.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS
  server.setTimeout(timeoutMs)
  server.headersTimeout = timeoutMs
  server.requestTimeout = timeoutMs
  // Read when the server starts listening; Node's default is every 30 s.
  ;(server as { connectionsCheckingInterval?: number }).connectionsCheckingInterval = Math.min(1000, timeoutMs)
  // Anything but an upgrade (a load-balancer probe, a browser, curl) is
  // answered at once; with no 'request' listener Node never answers it.
  const notWebSocket = `This port serves MQTT over WebSocket at ${config.path}.\n`
  server.on('request', (_req, res) => {
    res.writeHead(426, { Upgrade: 'websocket', Connection: 'close', 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(notWebSocket) })
    res.end(notWebSocket)
  })
  const wss = websocket.createServer({
    server,
    path: config.path,
    perMessageDeflate: false,
    // When the broker closes a connection (CONNECT timeout, protocol error),
    // ws waits this long for the peer's close frame before it drops the
    // socket; its 30 s default kept a silent client's slot for 60 s. (ws 8.23
    // has the option; @types/ws does not list it yet.)
    ...{ closeTimeout: 2000 },
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
