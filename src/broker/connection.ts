/*
 * What Switchyard does to each connection's stream before Aedes reads it:
 * the packet-size guard, write coalescing, and holding reads for flow
 * control. Stream and parser mechanics only; no Aedes import. The guards
 * patch the client's mqtt-packet Parser (clientParser() in internals.ts).
 */
import { createRequire } from 'node:module'
import type { Duplex } from 'node:stream'
import { filterProblem, hasWildcard, receivedStringProblem, type ByteSource } from '../topics.js'
import type { Counters } from './counters.js'

interface ParserInternals {
  _parseLength(): boolean
  _parseString(): string | null
  _newPacket(): boolean
  _emitError(err: Error): void
  packet: ParsedPacket
  _pos: number
  _list: ByteSource
}

interface ParsedPacket {
  length: number
  cmd?: string
  topic?: string
  properties?: { topicAlias?: number }
  will?: { topic: string }
  subscriptions?: Array<{ topic: string }>
  unsubscriptions?: string[]
}

/**
 * Aedes 1.2 has no packet-size limit: a 50 MB PUBLISH was buffered whole.
 * Check the Remaining Length as soon as the fixed header is parsed, before
 * any payload is buffered, and fail only this connection.
 */
export function guardPacketSize (clientParser: object, max: number, counters: Counters, onOversize: (size: number) => void): void {
  const parser = clientParser as ParserInternals
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
 * Aedes 1.2 forwards topics MQTT forbids: U+0000 and ill-formed UTF-8 in any
 * string, and wildcards in a will topic; it also accepts some invalid
 * filters ('a#', 'a+'). So check them in the parser, the one place that sees
 * every string field of every packet (CONNECT's client id, will topic and
 * username; PUBLISH's topic; SUBSCRIBE's and UNSUBSCRIBE's filters) together
 * with its raw bytes, which mqtt-packet decodes without checking. A field is
 * checked as it is decoded; the packet, before it is emitted to Aedes, which
 * then never sees it. Every case closes the connection:
 * - U+0000 or ill-formed UTF-8 in any string: [MQTT-1.5.3-1] [MQTT-1.5.3-2];
 * - a CONNECT whose will topic is not a valid topic name: [MQTT-3.1.4-1]
 *   (close without CONNACK);
 * - a wildcard in a PUBLISH topic [MQTT-3.3.2-2] (Aedes closes too, later);
 * - an invalid filter in a SUBSCRIBE or UNSUBSCRIBE [MQTT-4.7.1-2]
 *   [MQTT-4.7.1-3], a protocol violation [MQTT-4.8.0-1].
 * A PUBLISH costs two scans of its decoded topic for the string check and
 * two for the wildcards; the bytes are read only when U+FFFD appears.
 */
export function guardTopics (clientParser: object, onInvalid: (problem: string) => void): void {
  const parser = clientParser as ParserInternals
  const parseString = parser._parseString
  const newPacket = parser._newPacket
  // The first bad string of the packet being parsed; reported when the packet
  // is complete, so a malformed packet still fails with one error only.
  let bad: string | undefined
  let badPacket: ParsedPacket | undefined
  parser._parseString = function () {
    const start = this._pos + 2 // after the length
    const text = parseString.call(this)
    if (text !== null && badPacket !== this.packet) {
      const problem = receivedStringProblem(text, this._list, start, this._pos)
      if (problem !== undefined) {
        bad = problem
        badPacket = this.packet
      }
    }
    return text
  }
  parser._newPacket = function () {
    const problem = badPacket === this.packet ? `a string ${bad}` : packetTopicProblem(this.packet)
    if (problem === undefined) return newPacket.call(this)
    badPacket = undefined
    const message = `${(this.packet.cmd ?? 'packet').toUpperCase()}: ${problem}`
    onInvalid(message)
    this._emitError(new Error(message))
    return false
  }
}

function packetTopicProblem (packet: ParsedPacket): string | undefined {
  switch (packet.cmd) {
    case 'publish':
      // MQTT 5: an empty topic with a Topic Alias names the alias's topic (MQTT 5 section 3.3.2.3.4; Aedes resolves it)
      if ((packet.topic === '' && packet.properties?.topicAlias === undefined) || hasWildcard(packet.topic!)) return `topic ${JSON.stringify(packet.topic)} must be non-empty, without + or # [MQTT-3.3.2-2] [MQTT-4.7.3-1]`
      return undefined
    case 'connect':
      if (packet.will && (packet.will.topic === '' || hasWildcard(packet.will.topic))) return `will topic ${JSON.stringify(packet.will.topic)} must be non-empty, without + or # [MQTT-3.1.4-1]`
      return undefined
    case 'subscribe':
      for (const { topic } of packet.subscriptions ?? []) {
        const problem = filterProblem(topic)
        if (problem !== undefined) return `filter ${JSON.stringify(topic)} ${problem}`
      }
      return undefined
    case 'unsubscribe':
      for (const topic of packet.unsubscriptions ?? []) {
        const problem = filterProblem(topic)
        if (problem !== undefined) return `filter ${JSON.stringify(topic)} ${problem}`
      }
      return undefined
    default:
      return undefined
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
  stream.write = coalescing(stream.write)
}

// Shared by every connection (issue 16: a closure and its context per
// connection cost ~150 bytes of 10,000 idle ones): one wrapper per original
// write function, and one setImmediate per turn for every corked stream.
const corked = new Set<Duplex>()
const coalescingWrites = new WeakMap<Duplex['write'], Duplex['write']>()
const uncorkAll = () => {
  for (const stream of corked) stream.uncork()
  corked.clear()
}

function coalescing (write: Duplex['write']): Duplex['write'] {
  let wrapped = coalescingWrites.get(write)
  if (wrapped === undefined) {
    wrapped = function (this: Duplex, ...args: Parameters<Duplex['write']>) {
      if (!corked.has(this)) {
        if (corked.size === 0) setImmediate(uncorkAll)
        corked.add(this)
        this.cork()
      }
      return write.apply(this, args)
    } as Duplex['write']
    coalescingWrites.set(write, wrapped)
  }
  return wrapped
}

/**
 * mqtt-packet's Parser keeps the bytes not yet parsed in bl's
 * BufferListStream: a whole Duplex stream (readable-stream's, with its
 * ReadableState and WritableState) per connection, of which it uses only the
 * list methods (append, consume, slice, readUInt8...). Give it bl's plain
 * BufferList, the same methods without the stream (issue 16: ~0.7 KiB less
 * per connection). Before the first byte is parsed: the list is empty then.
 */
export function leanParserBuffer (clientParser: object): void {
  const parser = clientParser as { _list: { length: number } }
  if (parser._list.length === 0) parser._list = new BufferList()
}

// bl as mqtt-packet resolves it (mqtt-packet as Aedes does, from vendor/aedes: two levels up from src/broker and dist/broker)
const BufferList = (() => {
  const fromAedes = createRequire(new URL('../../vendor/aedes/aedes.js', import.meta.url))
  const bl = createRequire(fromAedes.resolve('mqtt-packet'))('bl') as { BufferList: new () => { length: number } }
  return bl.BufferList
})()

/** While `stream` is in `held`, read() returns nothing: see pause(). */
export function holdable (stream: Duplex, held: WeakSet<Duplex>): void {
  stream.read = holding(held, stream.read)
}

// One wrapper per (held set, original read), shared by every connection, as coalescing() is.
const holdingReads = new WeakMap<WeakSet<Duplex>, Map<Duplex['read'], Duplex['read']>>()

function holding (held: WeakSet<Duplex>, read: Duplex['read']): Duplex['read'] {
  let byRead = holdingReads.get(held)
  if (byRead === undefined) holdingReads.set(held, byRead = new Map())
  let wrapped = byRead.get(read)
  if (wrapped === undefined) {
    wrapped = function (this: Duplex, size?: number) {
      return held.has(this) ? null : read.call(this, size)
    } as Duplex['read']
    byRead.set(read, wrapped)
  }
  return wrapped
}

function varintBytes (n: number): number {
  return n < 128 ? 1 : n < 16384 ? 2 : n < 2097152 ? 3 : 4
}
