import type { Socket } from 'node:net'

/**
 * Admits raw sockets from every listener against one global
 * limits.maxConnections, and remembers them so close() can end them all.
 * Counting happens at accept, before TLS or HTTP work is spent on them.
 */
export class ConnectionGate {
  readonly #max: number
  readonly #open = new Set<Socket>()
  #refused = 0
  #accepted = 0
  #closedBytesRead = 0
  #closedBytesWritten = 0
  #closed = false

  constructor (maxConnections: number) {
    this.#max = maxConnections
  }

  get open (): number { return this.#open.size }
  get refused (): number { return this.#refused }
  /** Sockets admitted since start. */
  get accepted (): number { return this.#accepted }

  /** Bytes received and sent on every socket since start, TLS and WebSocket framing included. */
  bytes (): { received: number, sent: number } {
    let received = this.#closedBytesRead
    let sent = this.#closedBytesWritten
    for (const s of this.#open) {
      received += s.bytesRead
      sent += s.bytesWritten
    }
    return { received, sent }
  }

  /** Returns false, having destroyed the socket, when it may not proceed. */
  admit (socket: Socket): boolean {
    if (this.#closed || this.#open.size >= this.#max) {
      this.#refused++
      socket.destroy()
      return false
    }
    this.#accepted++
    this.#open.add(socket)
    socket.once('close', () => {
      this.#open.delete(socket)
      this.#closedBytesRead += socket.bytesRead
      this.#closedBytesWritten += socket.bytesWritten
    })
    return true
  }

  /** Refuse everything from now on and end what is open. */
  destroyAll (): void {
    this.#closed = true
    for (const socket of this.#open) socket.destroy()
  }
}
