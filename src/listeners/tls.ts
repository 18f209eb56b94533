import tls from 'node:tls'
import type { TlsListenerConfig } from '../config.js'
import { bind, HANDSHAKE_TIMEOUT_MS, remoteOf, type BoundListener, type ListenerContext } from './listener.js'
import { certificateIdentity, type TlsMaterial } from './certs.js'

export function listenTls (config: TlsListenerConfig, material: TlsMaterial, ctx: ListenerContext): Promise<BoundListener> {
  // tls.Server's own handshakeTimeout is 120 s: a silent socket held its
  // connection slot that long; give it what a CONNECT gets.
  const server = tls.createServer({ ...material, noDelay: true, handshakeTimeout: ctx.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS } as tls.TlsOptions)
  // Count the raw TCP connection before spending a handshake on it.
  server.on('connection', socket => { ctx.gate.admit(socket) })
  server.on('secureConnection', socket => {
    socket.setNoDelay(true)
    ctx.accept(socket, remoteOf(socket), config.useIdentityAsUsername ? certificateIdentity(socket) : undefined)
  })
  // A failed handshake (no or a bad client certificate, too) costs that one connection.
  // Node 20 reports a handshake timeout here but leaves the socket open.
  server.on('tlsClientError', (err, socket) => {
    ctx.onTransportError('tls', remoteOf(socket), err)
    socket.destroy()
  })
  return bind(server, config, { setTlsMaterial: m => server.setSecureContext(m) })
}
