/*
 * GET /api/stream?filter=<filter>: the messages the broker routes, as
 * Server-Sent Events, for the console's Live page and for dashboards that
 * cannot speak MQTT. It subscribes through the bus (broker.subscribe(), the
 * internal message API) and unsubscribes when the connection closes.
 *
 * A slow reader never slows the broker: each connection may have at most
 * BUFFER_BYTES waiting to be written; beyond that messages are dropped for it
 * and counted, and `event: dropped` tells it the total once it can be written.
 */
import type http from 'node:http'
import type { Message } from '../../message.js'
import { encodePayload } from './http.js'

/** Bytes an SSE connection may have waiting (in Node and the socket) before its messages are dropped. */
export const BUFFER_BYTES = 256 * 1024
const HEARTBEAT_MS = 15_000

export type Subscribe = (filter: string, handler: (message: Message) => void) => () => void

export class StreamHub {
  /** Each open stream's close, with the console session it was opened in (undefined: Basic or anonymous). */
  readonly #open = new Map<() => void, string | undefined>()

  get size (): number { return this.#open.size }

  /**
   * Serves one stream; `subscribe` throws (ERR_INVALID_FILTER) before any
   * byte is written. `session`: the console session it belongs to, which
   * ends it when it ends (endSession).
   */
  open (req: http.IncomingMessage, res: http.ServerResponse, filter: string, subscribe: Subscribe, session?: string): void {
    let dropped = 0
    let reported = 0
    // Events of one event-loop turn go out in one write: a write per message
    // (a syscall, a chunk header) was most of what a tail cost the broker.
    let batch: string[] = []
    let batchBytes = 0
    let flushing: NodeJS.Immediate | undefined
    const flush = (): void => {
      flushing = undefined
      if (batch.length === 0) return
      const text = batch.length === 1 ? batch[0]! : batch.join('')
      batch = []
      batchBytes = 0
      res.write(text)
    }
    const write = (text: string): void => {
      batch.push(text)
      batchBytes += text.length
      flushing ??= setImmediate(flush)
    }
    const reportDropped = (): void => {
      if (dropped === reported) return
      reported = dropped
      write(`event: dropped\ndata: {"dropped":${dropped}}\n\n`)
    }
    const unsubscribe = subscribe(filter, message => {
      if (res.writableLength + batchBytes > BUFFER_BYTES) {
        dropped++
        return
      }
      reportDropped()
      write(`event: message\ndata: ${event(message)}\n\n`)
    })
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // a reverse proxy (nginx) must pass events on as they come
      'x-accel-buffering': 'no',
      // a stream that ends (logout, close) ends its connection too
      connection: 'close'
    })
    write(`retry: 3000\nevent: ready\ndata: ${JSON.stringify({ filter })}\n\n`)
    res.on('drain', reportDropped)
    const heartbeat = setInterval(() => {
      if (res.writableLength + batchBytes <= BUFFER_BYTES) write(': heartbeat\n\n')
    }, HEARTBEAT_MS)
    heartbeat.unref()
    const close = (): void => {
      if (!this.#open.delete(close)) return
      unsubscribe()
      clearInterval(heartbeat)
      if (flushing) clearImmediate(flushing)
      res.end()
    }
    this.#open.set(close, session)
    req.socket.setNoDelay(true)
    res.on('close', close)
  }

  /** Ends every stream (the admin listener is closing). */
  closeAll (): void {
    for (const close of [...this.#open.keys()]) close()
  }

  /** Ends the streams of a console session that ended (logout), or of every session (undefined: a reload signed everyone out). */
  endSession (session: string | undefined): void {
    for (const [close, owner] of [...this.#open]) if (owner !== undefined && (session === undefined || owner === session)) close()
  }
}

// Formatted once per millisecond, not once per message.
let isoAt = 0
let iso = ''
function now (): string {
  const ms = Date.now()
  if (ms !== isoAt) {
    isoAt = ms
    iso = new Date(ms).toISOString()
  }
  return iso
}

/** The event's JSON, written out: JSON.stringify of the strings only is cheaper than of an object, per message. */
function event (m: Message): string {
  const { payload, encoding } = encodePayload(m.payload)
  const { kind, clientId, rule } = m.origin
  const origin = `{"kind":"${kind}"${clientId === null ? '' : `,"clientId":${JSON.stringify(clientId)}`}${rule === undefined ? '' : `,"rule":${JSON.stringify(rule)}`}}`
  return `{"ts":"${now()}","topic":${JSON.stringify(m.topic)},"qos":${m.qos},"retain":${m.retain},"payload":${JSON.stringify(payload)},"encoding":"${encoding}","origin":${origin}}`
}
