import tls from 'node:tls'
import type { TlsListenerConfig } from '../config.js'
import { bind, remoteOf, type BoundListener, type ListenerContext } from './listener.js'
import { certificateIdentity, type TlsMaterial } from './certs.js'

export function listenTls (config: TlsListenerConfig, material: TlsMaterial, ctx: ListenerContext): Promise<BoundListener> {
  const server = tls.createServer({ ...material, noDelay: true } as tls.TlsOptions)
  // Count the raw TCP connection before spending a handshake on it.
  server.on('connection', socket => { ctx.gate.admit(socket) })
  server.on('secureConnection', socket => {
    socket.setNoDelay(true)
    ctx.accept(socket, remoteOf(socket), config.useIdentityAsUsername ? certificateIdentity(socket) : undefined)
  })
  // A failed handshake (no or a bad client certificate, too) costs that one connection.
  server.on('tlsClientError', (err, socket) => ctx.onTransportError('tls', remoteOf(socket), err))
  return bind(server, config, { setTlsMaterial: m => server.setSecureContext(m) })
}
