/*
 * Issue 15: GET /api/stream, the Server-Sent Events tail of what the broker
 * routes, and its promise: a slow reader gets dropped messages and a count,
 * never a slower broker.
 */
import net from 'node:net'
import { describe, expect, it } from 'vitest'
import type { Broker } from '../../src/index.js'
import { urlFor } from '../helpers/broker.js'
import { barrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { adminBroker, basic, login, request } from './admin-support.js'

interface SseEvent { event: string, data: any }

/** A raw HTTP/1.1 stream reader on its own socket, which a test can stop reading. */
function openStream (broker: Broker, filter: string, credentials = `Authorization: ${basic()}`): { socket: net.Socket, events: SseEvent[], next: (match: (e: SseEvent) => boolean, what: string) => Promise<SseEvent> } {
  const socket = net.connect(broker.admin!.port, '127.0.0.1')
  socket.write(`GET /api/stream?filter=${encodeURIComponent(filter)} HTTP/1.1\r\nHost: 127.0.0.1\r\n${credentials}\r\nAccept: text/event-stream\r\n\r\n`)
  const events: SseEvent[] = []
  const waiters: Array<() => void> = []
  let text = ''
  let headerDone = false
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => {
    text += chunk
    if (!headerDone) {
      const end = text.indexOf('\r\n\r\n')
      if (end < 0) return
      expect(text.slice(0, end)).toMatch(/^HTTP\/1\.1 200 .*\r\n[^]*content-type: text\/event-stream/i)
      text = text.slice(end + 4)
      headerDone = true
    }
    // chunked transfer encoding: drop the chunk-size lines; events end with a blank line
    text = text.replace(/\r\n[0-9a-f]+\r\n/g, '').replace(/^[0-9a-f]+\r\n/, '')
    let at: number
    while ((at = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, at)
      text = text.slice(at + 2)
      const event = /^event: (.*)$/m.exec(block)?.[1]
      const data = /^data: (.*)$/m.exec(block)?.[1]
      if (event !== undefined) events.push({ event, data: data === undefined ? undefined : JSON.parse(data) })
    }
    for (const w of waiters.splice(0)) w()
  })
  const next = (match: (e: SseEvent) => boolean, what: string) => new Promise<SseEvent>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${events.length} events`)), 15_000)
    const check = () => {
      const found = events.find(match)
      if (found) { clearTimeout(timer); resolve(found) } else waiters.push(check)
    }
    check()
  })
  return { socket, events, next }
}

describe('GET /api/stream', () => {
  it('streams a message an MQTT client publishes, with its origin', async () => {
    const broker = await adminBroker()
    const stream = openStream(broker, 'factory/#')
    try {
      await stream.next(e => e.event === 'ready', 'the ready event')
      const pub = await connect(urlFor(broker), { clientId: 'press-4' })
      await pub.publishAsync('factory/press4/temp', '{"t":81.5}', { qos: 1 })
      await pub.publishAsync('elsewhere', 'not this', { qos: 1 })
      await pub.publishAsync('factory/press4/raw', Buffer.from([0xff, 0xfe]), { qos: 0, retain: true })
      const raw = await stream.next(e => e.event === 'message' && e.data.topic === 'factory/press4/raw', 'the binary message')
      expect(stream.events.filter(e => e.event === 'message').map(e => e.data)).toEqual([
        { ts: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/), topic: 'factory/press4/temp', qos: 1, retain: false, payload: '{"t":81.5}', encoding: 'utf8', origin: { kind: 'client', clientId: 'press-4' } },
        raw.data
      ])
      expect(raw.data).toMatchObject({ retain: true, payload: Buffer.from([0xff, 0xfe]).toString('base64'), encoding: 'base64' })
    } finally {
      stream.socket.destroy()
    }
  })

  it('ends a console session\'s stream when it signs out', async () => {
    const broker = await adminBroker()
    const { cookie, csrfToken } = await login(broker)
    const stream = openStream(broker, '#', `Cookie: ${cookie}`)
    await stream.next(e => e.event === 'ready', 'the ready event')
    const ended = new Promise<void>(resolve => stream.socket.once('end', () => resolve()))
    expect((await request(broker, '/api/logout', { method: 'POST', headers: { cookie, 'x-csrf-token': csrfToken } })).status).toBe(200)
    await ended
    stream.socket.destroy()
  })

  it('refuses a filter MQTT forbids, and a caller without a login', async () => {
    const broker = await adminBroker()
    const bad = await request(broker, '/api/stream?filter=' + encodeURIComponent('a/#/b'), { headers: { authorization: basic() } })
    expect(bad.status).toBe(400)
    expect(bad.json.error).toMatch(/filter/)
    expect((await request(broker, '/api/stream')).status).toBe(401)
  })

  it('drops and counts for a reader that stops reading, and the broker delivers everything to MQTT subscribers meanwhile', async () => {
    const broker = await adminBroker()
    const stream = openStream(broker, 'flood/#')
    await stream.next(e => e.event === 'ready', 'the ready event')
    // The reader stops reading: the socket's buffers fill, then the stream's.
    stream.socket.pause()
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('flood/#', { qos: 0 })
    const pub = await connect(urlFor(broker))
    const N = 400
    const payload = 'x'.repeat(64 * 1024)
    for (let i = 0; i < N; i++) pub.publish(`flood/${i}`, payload, { qos: 0 })
    // The barrier: everything published before it reached the MQTT subscriber
    // while the stream's reader was still not reading.
    const received = await barrier(pub, sub, 'flood/marker')
    expect(received).toHaveLength(N)
    expect(inbox(sub).messages.every(m => m.payload.length === payload.length)).toBe(true)
    // The reader reads again: it learns how many it missed.
    stream.socket.resume()
    const total = N + 1 // the marker too
    await stream.next(() => {
      const messages = stream.events.filter(e => e.event === 'message').length
      const dropped = stream.events.filter(e => e.event === 'dropped').at(-1)?.data.dropped ?? 0
      return messages + dropped === total
    }, `${total} messages, streamed or counted as dropped`)
    const dropped = stream.events.filter(e => e.event === 'dropped').map(e => e.data.dropped)
    expect(dropped.length).toBeGreaterThan(0)
    expect(dropped.at(-1)).toBeGreaterThan(0)
    // the count only grows
    expect(dropped).toEqual([...dropped].sort((a, b) => a - b))
    stream.socket.destroy()
  })
})
