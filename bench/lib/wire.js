// Just enough MQTT 3.1.1 and 5 for a load generator that is not the
// bottleneck: packets are pre-encoded once with mqtt-packet, then stamped in
// place.
import mqttPacket from 'mqtt-packet'

export const PAYLOAD_BYTES = 64

/** `protocolVersion` 4 (3.1.1) or 5; `properties`: v5 CONNECT properties (topicAliasMaximum...). */
export function connectPacket (clientId, { clean = true, keepalive = 0, protocolVersion = 4, properties } = {}) {
  return mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion, clean, clientId, keepalive, ...(protocolVersion === 5 && properties ? { properties } : {}) })
}

export function subscribePacket (topic, qos, messageId = 1, protocolVersion = 4) {
  return mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] }, { protocolVersion })
}

/**
 * A PUBLISH template: where to write the message id and the payload stamp.
 * With v5, `topicAlias` adds a Topic Alias property; `aliasOnly` sends the
 * alias with an empty topic [MQTT-3.3.2-12], once the alias is set.
 */
export function publishTemplate (topic, qos, payload, { protocolVersion = 4, topicAlias, aliasOnly = false } = {}) {
  const body = payload ?? Buffer.alloc(PAYLOAD_BYTES, 0x20)
  const name = aliasOnly ? '' : topic
  const properties = protocolVersion === 5 && topicAlias ? { properties: { topicAlias } } : {}
  const bytes = mqttPacket.generate({ cmd: 'publish', topic: name, payload: body, qos, retain: false, dup: false, messageId: qos > 0 ? 1 : undefined, ...properties }, { protocolVersion })
  const payloadOffset = bytes.length - body.length
  // fixed header, then the topic; the message id follows the topic (before v5's properties)
  let header = 2
  while (bytes[header - 1] & 0x80) header++
  return { bytes, payloadOffset, messageIdOffset: qos > 0 ? header + 2 + Buffer.byteLength(name) : -1 }
}

/** A variable byte integer at `at`: its value and where what follows it starts. */
export function varint (buf, at) {
  let value = 0
  let mul = 1
  for (;;) {
    const b = buf[at++]
    value += (b & 0x7f) * mul
    if ((b & 0x80) === 0) return { value, next: at }
    mul *= 128
  }
}

/** A CONNACK body (between start and end) decoded, v5 properties included. */
export function decodeConnack (buf, start, end, protocolVersion) {
  const body = buf.subarray(start, end)
  const length = []
  let n = body.length
  do { length.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>= 7 } while (n > 0)
  let packet
  const parser = mqttPacket.parser({ protocolVersion })
  parser.on('packet', p => { packet = p })
  parser.parse(Buffer.concat([Buffer.from([0x20, ...length]), body]))
  return packet
}

export const now = () => performance.timeOrigin + performance.now()

/** Binary stamp: seq (u32), publisher (u16), send time (f64, epoch ms). */
export function stamp (buf, at, seq, publisher) {
  buf.writeUInt32BE(seq, at)
  buf.writeUInt16BE(publisher, at + 4)
  buf.writeDoubleBE(now(), at + 6)
}

export function readStamp (buf, at) {
  return { seq: buf.readUInt32BE(at), publisher: buf.readUInt16BE(at + 4), sentAt: buf.readDoubleBE(at + 6) }
}

/** JSON stamp for rule scenarios: {"value":..,"seq":..,"p":..,"ts":..}, the shape the bench rule reads. */
export function jsonPayload (seq, publisher) {
  return Buffer.from(JSON.stringify({ value: 21.5, seq, p: publisher, ts: now() }))
}

/**
 * A streaming reader of fixed headers. Calls onPacket(type, flags, buf, start, end)
 * with the packet's body between start and end, without copying.
 */
export function packetReader (onPacket) {
  let pending = null
  return function feed (chunk) {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk
    pending = null
    let i = 0
    while (i < buf.length) {
      if (buf.length - i < 2) break
      const first = buf[i]
      let len = 0
      let mul = 1
      let j = i + 1
      let complete = false
      for (; j < buf.length && j < i + 5; j++) {
        const b = buf[j]
        len += (b & 0x7f) * mul
        mul *= 128
        if ((b & 0x80) === 0) { complete = true; j++; break }
      }
      if (!complete || buf.length - j < len) break
      onPacket(first >> 4, first & 0x0f, buf, j, j + len)
      i = j + len
    }
    if (i < buf.length) pending = buf.subarray(i)
  }
}

export const PUBLISH = 3
export const PUBACK = 4
export const PUBREC = 5
export const PUBREL = 6
export const PUBCOMP = 7
export const CONNACK = 2
export const SUBACK = 9

export function ack (type, messageId) {
  // PUBREL has flags 0b0010 [MQTT-3.6.1-1]
  const b = Buffer.allocUnsafe(4)
  b[0] = (type << 4) | (type === PUBREL ? 2 : 0)
  b[1] = 2
  b.writeUInt16BE(messageId, 2)
  return b
}
