import net from 'node:net'
import type { TcpListenerConfig } from '../config.js'
import { bind, remoteOf, type BoundListener, type ListenerContext } from './listener.js'

export function listenTcp (config: TcpListenerConfig, ctx: ListenerContext): Promise<BoundListener> {
  // noDelay: Aedes never sets it, and Nagle's algorithm put ping-pong
  // latency at about 44 ms here (docs/aedes-gaps.md#nodelay).
  const server = net.createServer({ noDelay: true }, socket => {
    if (ctx.gate.admit(socket)) ctx.accept(socket, remoteOf(socket))
  })
  return bind(server, config)
}
