/*
 * What Switchyard does to each connection's stream before Aedes reads it:
 * the packet-size guard, write coalescing, and holding reads for flow
 * control. Stream and parser mechanics only; no Aedes import.
 */
import type { Duplex } from 'node:stream'
import type { Counters } from './aedes.js'

interface ParserInternals {
  _parseLength(): boolean
  _emitError(err: Error): void
  packet: { length: number }
}

/**
 * Aedes 1.2 has no packet-size limit: a 50 MB PUBLISH was buffered whole.
 * Check the Remaining Length as soon as the fixed header is parsed, before
 * any payload is buffered, and fail only this connection.
 */
export function guardPacketSize (client: object, max: number, counters: Counters, onOversize: (size: number) => void): void {
  const parser = (client as { _parser: ParserInternals })._parser
  const parseLength = parser._parseLength
  parser._parseLength = function () {
    if (!parseLength.call(this)) return false
    // Runs once per packet: where every packet type is counted, for $SYS/broker/messages/received.
    counters.packetsReceived++
    const remaining = this.packet.length
    const size = 1 + varintBytes(remaining) + remaining
    if (size > max) {
      onOversize(size)
      this._emitError(new Error(`packet of ${size} bytes exceeds maxPacketSize ${max}`))
      return false
    }
    return true
  }
}

/**
 * With noDelay (which the latency needs, see listeners/tcp.ts), every write
 * leaves as its own TCP segment, and Aedes writes each delivery from its own
 * setImmediate: under load that made writev the top of the profile (1.4 s
 * against Aedes's 0.7 s with Nagle, for the same 200k messages). So cork a
 * connection at its first write in an event-loop turn and uncork it when the
 * turn ends: one writev per busy turn, and at low load a delay of
 * microseconds, not Nagle's ~40 ms. mqtt-packet's own per-packet cork nests
 * inside (cork is counted).
 */
export function coalesceWrites (stream: Duplex): void {
  let corked = false
  const flush = () => {
    corked = false
    stream.uncork()
  }
  const write = stream.write
  stream.write = function (this: Duplex, ...args: Parameters<Duplex['write']>) {
    if (!corked) {
      corked = true
      stream.cork()
      setImmediate(flush)
    }
    return write.apply(this, args)
  } as Duplex['write']
}

/** While `stream` is in `held`, read() returns nothing: see pause(). */
export function holdable (stream: Duplex, held: WeakSet<Duplex>): void {
  const read = stream.read
  stream.read = function (this: Duplex, size?: number) {
    return held.has(stream) ? null : read.call(this, size)
  } as Duplex['read']
}

function varintBytes (n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4
}
