// One load-generator thread: it plays publishers, subscribers, or idle
// connections, on raw sockets, and reports to the main thread.
import net from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import {
  CONNACK, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK,
  ack, connectPacket, decodeConnack, jsonPayload, now, packetReader, publishTemplate, readStamp, stamp, subscribePacket, varint
} from './wire.js'
import mqttPacket from 'mqtt-packet'

// protocolVersion 4 (MQTT 3.1.1, the default) or 5
const { role, port, protocolVersion = 4 } = workerData

/** Connects; resolves with the socket, and with v5 the CONNACK's properties as `socket.connack`. */
function open (clientId, onPacket, connectProperties, clean = true) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', noDelay: true })
    const feed = packetReader((type, flags, buf, start, end) => {
      if (type === CONNACK) {
        if (buf[start + 1] !== 0) reject(new Error(`CONNACK ${buf[start + 1]} for ${clientId}`))
        else {
          if (protocolVersion === 5) socket.connack = decodeConnack(buf, start, end, 5).properties ?? {}
          resolve(socket)
        }
        return
      }
      onPacket(type, flags, buf, start, end, socket)
    })
    socket.on('data', feed)
    socket.on('error', reject)
    socket.write(connectPacket(clientId, { clean, protocolVersion, properties: connectProperties }))
  })
}

// --- publishers ---------------------------------------------------------
// `alias` (v5): the first PUBLISH sets Topic Alias 1, the others carry only the alias.
async function publishers ({ connections, topic, qos, perConnection, window = 100, batch = 64, payload = 'binary', rate = 0, seconds = 0, alias = false }) {
  const pubs = []
  let receiveMaximum = 65535
  for (let c = 0; c < connections; c++) {
    const id = c + 1
    const t = typeof topic === 'string' ? topic.replace('{id}', String(id)) : topic
    const aliasing = alias ? { topicAlias: 1 } : {}
    const template = publishTemplate(t, qos, undefined, { protocolVersion, ...aliasing, aliasOnly: alias })
    const first = alias ? publishTemplate(t, qos, undefined, { protocolVersion, ...aliasing }) : template
    const state = { id, topic: t, template, first, sent: 0, inflight: 0, done: 0, socket: null, waiting: false }
    state.socket = await open(`bench-pub-${id}-${process.pid}`, (type, _flags, buf, start) => {
      const messageId = buf.readUInt16BE(start)
      if (type === PUBACK) { state.inflight--; state.done++; pump(state) } else if (type === PUBREC) { state.socket.write(ack(PUBREL, messageId)) } else if (type === PUBCOMP) { state.inflight--; state.done++; pump(state) }
    })
    // A v5 client keeps no more in flight than the server's Receive Maximum [MQTT-3.3.4-7].
    receiveMaximum = Math.min(receiveMaximum, state.socket.connack?.receiveMaximum ?? 65535)
    // a client may send no alias above the server's Topic Alias Maximum, 0 when absent [MQTT-3.3.2-9]
    if (alias && (state.socket.connack?.topicAliasMaximum ?? 0) < 1) throw new Error(`the broker takes no topic aliases (CONNACK Topic Alias Maximum ${state.socket.connack?.topicAliasMaximum ?? 'absent: 0'})`)
    state.socket.on('drain', () => { state.waiting = false; pump(state) })
    pubs.push(state)
  }
  window = Math.min(window, receiveMaximum)

  const total = perConnection
  const packet = (state, seq) => {
    if (payload === 'json') {
      return mqttPacket.generate({ cmd: 'publish', topic: state.topic, payload: jsonPayload(seq, state.id), qos, retain: false, dup: false, messageId: qos > 0 ? (seq % 65535) + 1 : undefined })
    }
    const template = seq === 0 ? state.first : state.template
    const b = Buffer.from(template.bytes)
    if (qos > 0) b.writeUInt16BE((seq % 65535) + 1, template.messageIdOffset)
    stamp(b, template.payloadOffset, seq, state.id)
    return b
  }

  function pump (state) {
    if (state.waiting) return
    while (state.sent < total) {
      const room = qos === 0 ? batch : Math.min(batch, window - state.inflight)
      if (room <= 0) return
      const n = Math.min(room, total - state.sent)
      const parts = []
      for (let k = 0; k < n; k++) parts.push(packet(state, state.sent++))
      if (qos > 0) state.inflight += n
      else state.done += n
      if (!state.socket.write(parts.length === 1 ? parts[0] : Buffer.concat(parts))) { state.waiting = true; return }
    }
  }

  parentPort.postMessage({ type: 'ready', window })
  await new Promise(resolve => parentPort.once('message', resolve))
  const startedAt = now()
  if (rate > 0) {
    // Paced: `rate` messages a second, for `seconds`, with drift correction.
    const end = startedAt + seconds * 1000
    await new Promise(resolve => {
      let owed = 0
      let last = now()
      const timer = setInterval(() => {
        const t = now()
        owed += (t - last) / 1000 * rate
        last = t
        const state = pubs[0]
        while (owed >= 1) {
          state.socket.write(packet(state, state.sent++))
          owed--
        }
        if (t >= end) { clearInterval(timer); resolve() }
      }, 5)
    })
    parentPort.postMessage({ type: 'sent', sent: pubs.reduce((a, s) => a + s.sent, 0), perPublisher: pubs.map(s => s.sent) })
  } else {
    for (const s of pubs) pump(s)
    await new Promise(resolve => {
      const check = setInterval(() => {
        if (pubs.every(s => s.done >= total)) { clearInterval(check); resolve() }
      }, 2)
    })
    parentPort.postMessage({ type: 'sent', sent: total * connections, perPublisher: pubs.map(s => s.sent), seconds: (now() - startedAt) / 1000 })
  }
  await new Promise(resolve => parentPort.once('message', resolve))
  for (const s of pubs) s.socket.destroy()
  parentPort.postMessage({ type: 'closed' })
}

// --- subscribers --------------------------------------------------------
// `topicAliasMaximum` (v5): lets the broker send topic aliases; deliveries with an empty topic are counted.
// clean: false makes each subscriber a persistent session (QoS 1/2 deliveries then go through its stored queue)
async function subscribers ({ connections, filter, qos, payload = 'binary', topicAliasMaximum = 0, clean = true }) {
  let expected = 0
  const subs = []
  for (let c = 0; c < connections; c++) {
    const state = { received: 0, unique: 0, duplicates: 0, outOfOrder: 0, aliased: 0, latencies: [], seen: new Map(), last: new Map(), first: 0, lastAt: 0 }
    let subacked
    const suback = new Promise(resolve => { subacked = resolve })
    const socket = await open(`bench-sub-${c}-${process.pid}`, (type, flags, buf, start, end, sock) => {
      if (type === SUBACK) { subacked(); return }
      if (type === PUBREL) { sock.write(ack(PUBCOMP, buf.readUInt16BE(start))); return }
      if (type !== PUBLISH) return
      const q = (flags >> 1) & 3
      const topicLength = buf.readUInt16BE(start)
      let at = start + 2 + topicLength
      if (topicLength === 0) state.aliased++
      if (q > 0) {
        sock.write(ack(q === 1 ? PUBACK : PUBREC, buf.readUInt16BE(at)))
        at += 2
      }
      if (protocolVersion === 5) {
        const { value, next } = varint(buf, at)
        at = next + value
      }
      let seq, publisher, sentAt
      if (payload === 'json') {
        const m = JSON.parse(buf.toString('utf8', at, end))
        seq = m.seq; publisher = m.p; sentAt = m.ts
      } else {
        ({ seq, publisher, sentAt } = readStamp(buf, at))
      }
      const t = now()
      if (state.first === 0) state.first = t
      state.lastAt = t
      state.received++
      state.latencies.push(t - sentAt)
      let seen = state.seen.get(publisher)
      if (!seen) { seen = new Set(); state.seen.set(publisher, seen) }
      if (seen.has(seq)) state.duplicates++
      else { seen.add(seq); state.unique++ }
      const last = state.last.get(publisher)
      if (last !== undefined && seq < last) state.outOfOrder++
      else state.last.set(publisher, seq)
    }, topicAliasMaximum ? { topicAliasMaximum } : undefined, clean)
    // 'bench/{id}/t': subscriber c takes publisher c+1's messages only (pairs)
    socket.write(subscribePacket(filter.replace('{id}', String(c + 1)), qos, 1, protocolVersion))
    await suback
    subs.push({ socket, state })
  }
  parentPort.postMessage({ type: 'ready' })
  parentPort.on('message', m => {
    if (m.type === 'expect') expected = m.perSubscriber
    if (m.type === 'finish') {
      const deadline = now() + (m.graceMs ?? 3000)
      let lastTotal = -1
      const check = setInterval(() => {
        const total = subs.reduce((a, s) => a + s.state.unique, 0)
        const complete = subs.every(s => s.state.unique >= expected)
        // done when complete, or when nothing more arrives for a while after the grace period
        if (complete || (now() > deadline && total === lastTotal)) {
          clearInterval(check)
          report()
        }
        lastTotal = total
      }, 100)
    }
  })
  function report () {
    const latencies = new Float64Array(subs.reduce((a, s) => a + s.state.latencies.length, 0))
    let i = 0
    for (const s of subs) for (const l of s.state.latencies) latencies[i++] = l
    const sum = (k) => subs.reduce((a, s) => a + s.state[k], 0)
    parentPort.postMessage({
      type: 'done',
      received: sum('received'),
      unique: sum('unique'),
      duplicates: sum('duplicates'),
      outOfOrder: sum('outOfOrder'),
      aliased: sum('aliased'),
      lost: Math.max(0, expected * subs.length - sum('unique')),
      first: Math.min(...subs.map(s => s.state.first).filter(Boolean)),
      last: Math.max(...subs.map(s => s.state.lastAt)),
      latencies
    }, [latencies.buffer])
    for (const s of subs) s.socket.destroy()
  }
}

// --- idle connections ---------------------------------------------------
async function idle ({ connections, concurrency = 200 }) {
  const sockets = []
  const startedAt = now()
  let next = 0
  async function lane () {
    while (next < connections) {
      const id = next++
      sockets.push(await open(`bench-idle-${id}-${process.pid}`, () => {}))
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const seconds = (now() - startedAt) / 1000
  parentPort.postMessage({ type: 'connected', connections: sockets.length, seconds })
  await new Promise(resolve => parentPort.once('message', resolve))
  for (const s of sockets) s.destroy()
  parentPort.postMessage({ type: 'closed' })
}

// --- retained replay ----------------------------------------------------
// Stores `count` retained messages, then times how long a new subscriber to
// `#` takes to receive all of them, from its SUBSCRIBE to the last one, over
// `rounds` fresh subscribers. A first, untimed subscriber is the barrier
// that every message is stored (a PUBACK may come before the store).
async function retained ({ count, qos = 0, rounds = 3, window = 100 }) {
  let acked = 0
  let sent = 0
  let inflight = 0
  let allAcked
  const stored = new Promise(resolve => { allAcked = resolve })
  const pub = await open(`bench-retain-${process.pid}`, (type) => {
    if (type !== PUBACK) return
    acked++; inflight--
    if (acked === count) allAcked()
    else pump()
  })
  const payload = Buffer.alloc(64, 0x20)
  function pump () {
    const parts = []
    while (sent < count && inflight < window) {
      parts.push(mqttPacket.generate({ cmd: 'publish', topic: `retained/${sent}`, payload, qos: 1, retain: true, dup: false, messageId: (sent % 65535) + 1 }))
      sent++; inflight++
    }
    if (parts.length > 0) pub.write(Buffer.concat(parts))
  }
  const storeStart = now()
  pump()
  await stored
  const storeSeconds = (now() - storeStart) / 1000

  const replay = async (clientId) => {
    let got = 0
    let subscribedAt = 0
    let finished
    const all = new Promise(resolve => { finished = resolve })
    const sock = await open(clientId, (type, flags, buf, start, end, s) => {
      if (type !== PUBLISH) return
      const topicLength = buf.readUInt16BE(start)
      if ((flags >> 1) & 3) s.write(ack(PUBACK, buf.readUInt16BE(start + 2 + topicLength)))
      if ((flags & 1) && buf.toString('utf8', start + 2, start + 2 + 9) === 'retained/' && ++got === count) finished(now())
    })
    // a bound, so that a broker that loses some cannot hang the bench
    setTimeout(() => finished(NaN), 60_000).unref()
    subscribedAt = now()
    sock.write(subscribePacket('#', qos))
    const last = await all
    sock.destroy()
    return (last - subscribedAt) / 1000
  }
  await replay(`bench-retain-warm-${process.pid}`)
  const seconds = []
  for (let r = 0; r < rounds; r++) seconds.push(await replay(`bench-retain-sub-${r}-${process.pid}`))
  pub.destroy()
  parentPort.postMessage({ type: 'done', storeSeconds, seconds })
}

const roles = { publishers, subscribers, idle, retained }
roles[role](workerData).catch(err => {
  parentPort.postMessage({ type: 'error', message: err.message })
})
