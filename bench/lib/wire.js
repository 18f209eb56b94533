// Just enough MQTT 3.1.1 for a load generator that is not the bottleneck:
// packets are pre-encoded once with mqtt-packet, then stamped in place.
import mqttPacket from 'mqtt-packet'

export const PAYLOAD_BYTES = 64

export function connectPacket (clientId, { clean = true, keepalive = 0 } = {}) {
  return mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive })
}

export function subscribePacket (topic, qos, messageId = 1) {
  return mqttPacket.generate({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] })
}

/** A PUBLISH template: where to write the message id and the payload stamp. */
export function publishTemplate (topic, qos, payload) {
  const body = payload ?? Buffer.alloc(PAYLOAD_BYTES, 0x20)
  const bytes = mqttPacket.generate({ cmd: 'publish', topic, payload: body, qos, retain: false, dup: false, messageId: qos > 0 ? 1 : undefined })
  const payloadOffset = bytes.length - body.length
  return { bytes, payloadOffset, messageIdOffset: qos > 0 ? payloadOffset - 2 : -1 }
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
