import type { Server } from 'node:net'
import type { Duplex } from 'node:stream'
import type { ListenerConfig } from '../config.js'
import { SwitchyardError } from '../errors.js'
import type { ConnectionGate } from './gate.js'

/** What every transport hands its MQTT byte streams to; `identity` is a verified client certificate's CN, when the listener uses it as the username. */
export type Accept = (stream: Duplex, remote: string, identity?: string) => void

export interface ListenerContext {
  gate: ConnectionGate
  accept: Accept
  maxPacketSize: number
  /** Reports a transport-level failure (a bad TLS handshake, an HTTP error) that cost only one connection. */
  onTransportError: (listener: string, remote: string | undefined, err: Error) => void
  /** WebSocket listeners: how long a connection may take from accept to a WebSocket (default HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number
}

/**
 * A connection that has not become an MQTT connection by then is closed:
 * Aedes's CONNECT timeout (30 s), which TCP clients get, applied to the TLS
 * handshake and the HTTP upgrade of the WebSocket listeners.
 */
export const HANDSHAKE_TIMEOUT_MS = 30_000

/** A listener as bound: the address actually in use (port 0 resolved). */
export interface BoundListener {
  readonly type: ListenerConfig['type']
  readonly host: string
  readonly port: number
  readonly path?: string
  /** Still accepting connections. */
  readonly listening: boolean
  /** TLS listeners: use new certificate, key and CA for new connections (SIGHUP). */
  setTlsMaterial?(material: import('./certs.js').TlsMaterial): void
  /** Stop accepting; open connections are ended by the gate. */
  close(): Promise<void>
}

export function remoteOf (socket: { remoteAddress?: string | undefined, remotePort?: number | undefined }): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`
}

export async function bind (server: Server, config: ListenerConfig, extra: Pick<BoundListener, 'path' | 'setTlsMaterial'> = {}): Promise<BoundListener> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(new SwitchyardError('ERR_LISTEN',
        `${config.type} listener on ${config.host}:${config.port}: ${err.code ?? err.message}` +
        (err.code === 'EADDRINUSE' ? '; another process uses this port: stop it or choose another port (0 picks a free one)' : ''),
        { cause: err }))
    }
    server.once('error', onError)
    server.listen(config.port, config.host, () => {
      server.off('error', onError)
      resolve()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address !== null ? address.port : config.port
  let closed: Promise<void> | undefined
  return {
    type: config.type,
    host: config.host,
    port,
    get listening () { return server.listening },
    ...extra,
    close: () => {
      closed ??= new Promise<void>(resolve => server.close(() => resolve()))
      return closed
    }
  }
}
