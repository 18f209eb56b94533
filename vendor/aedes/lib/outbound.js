import mqtt from 'mqtt-packet'
import { writePacket } from './write.js'
import { packetWireSize } from './utils.js'
import { RECEIVE_MAXIMUM_DEFAULT } from './constants.js'

// MQTT 5.0: what the client's CONNECT asks of the PUBLISHes the broker sends
// it. write() hands every PUBLISH to a v5 client here (a v3/v4 client pays one
// version test); the state is per Network Connection, created at the first
// PUBLISH from the values the CONNECT left on the client.
//
// - Receive Maximum [MQTT-3.3.4-7] [MQTT-4.9.0-2]: at most that many QoS 1/2
//   PUBLISHes unacknowledged. The others wait, in order, and go as a PUBACK,
//   a PUBCOMP or a PUBREC >= 0x80 frees a slot (release(), from the
//   handlers). QoS 0 is not held (4.9 allows either). A waiting delivery is
//   reported written at once, so that a client that acknowledges slowly
//   holds no mqemitter slot. With the broker option outboundQueueLimit, a
//   delivery that would make more than that many unacknowledged or waiting
//   is dropped, and the broker emits 'deliveryDropped' (client, packet,
//   'queue-full').
// - Maximum Packet Size [MQTT-3.1.2-24] [MQTT-3.1.2-25]: a PUBLISH larger
//   than the client accepts is not sent; it is treated as delivered (a QoS
//   1/2 one leaves the session's outgoing store and takes no slot), and the
//   broker emits 'deliveryDropped' (client, packet, 'packet-too-large').
// - Topic Alias Maximum [MQTT-3.1.2-26] [MQTT-3.3.2-11]: the broker assigns
//   aliases to the first topicAliasMaximum distinct topics it sends on the
//   connection, never reassigned: the first PUBLISH of such a topic carries
//   the topic and its alias, the next ones an empty topic and the alias.
//   Applied at the moment of writing (not of queueing), so the wire order is
//   the order the aliases were set up in.
export class Outbound {
  constructor (client) {
    this.client = client
    const receiveMaximum = client.receiveMaximum
    // 65535 (the default) cannot bind: there are no more packet identifiers
    this.receiveMaximum = receiveMaximum > 0 && receiveMaximum < RECEIVE_MAXIMUM_DEFAULT ? receiveMaximum : 0
    // packet ids of the QoS 1/2 PUBLISHes sent and not yet acknowledged
    this.inflight = this.receiveMaximum > 0 ? new Set() : null
    // deliveries waiting for a slot: a FIFO, packets from index `head` on
    this.queue = []
    this.head = 0
    // outboundQueueLimit (broker option, 0 or absent: none): at most this many
    // QoS 1/2 deliveries unacknowledged or waiting; the ones beyond are dropped
    const limit = client.broker.opts?.outboundQueueLimit
    this.limit = Number.isInteger(limit) && limit > 0 ? limit : 0
    this.maximumPacketSize = client.maximumPacketSize > 0 ? client.maximumPacketSize : 0
    const aliasMaximum = client.topicAliasMaximum > 0 ? Math.min(client.topicAliasMaximum, 65535) : 0
    this.aliasMaximum = aliasMaximum
    // topic -> alias, and for each alias the properties object to send when
    // the message has none of its own (shared, frozen: no allocation per PUBLISH)
    this.aliases = aliasMaximum > 0 ? new Map() : null
    this.aliasProperties = aliasMaximum > 0 ? [] : null
  }

  send (packet, done) {
    if (this.inflight !== null && packet.qos > 0 &&
        (this.inflight.size >= this.receiveMaximum || this.head < this.queue.length)) {
      const client = this.client
      if (this.limit > 0 && this.queue.length - this.head + this.inflight.size >= this.limit) {
        // Not sent now nor later on this connection; a persistent session
        // keeps it in its outgoing store, for the next one.
        client.broker.emit('deliveryDropped', client, packet, 'queue-full')
      } else {
        this.queue.push(packet)
      }
      setImmediate(done, null, client)
      return
    }
    this.emit(packet, done)
  }

  /** A PUBACK, PUBCOMP or failed PUBREC for `messageId`: free its slot and send what waits. */
  release (messageId) {
    if (this.inflight === null || !this.inflight.delete(messageId)) return
    const client = this.client
    while (this.head < this.queue.length && this.inflight.size < this.receiveMaximum) {
      if (client.closed || !(client.connecting || client.connected)) {
        this.queue = []
        this.head = 0
        return
      }
      const packet = this.queue[this.head]
      this.queue[this.head++] = undefined
      this.emit(packet, reportError)
    }
    if (this.head === this.queue.length) {
      this.queue = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head)
      this.head = 0
    }
  }

  emit (packet, done) {
    // what goes on the wire: the packet itself, or a view of it with the alias
    let wire = packet
    let newAlias
    if (this.aliases !== null) {
      let alias = this.aliases.get(packet.topic)
      if (alias === undefined && this.aliases.size < this.aliasMaximum) alias = newAlias = this.aliases.size + 1
      if (alias !== undefined) wire = this.aliased(packet, newAlias === undefined ? '' : packet.topic, alias)
    }
    if (this.maximumPacketSize > 0 && wireSize(wire) > this.maximumPacketSize) {
      // a new alias may be what tips it over the limit: then without one
      if (newAlias === undefined || wireSize(packet) > this.maximumPacketSize) {
        this.drop(packet, done)
        return
      }
      wire = packet
      newAlias = undefined
    }
    if (newAlias !== undefined) this.aliases.set(packet.topic, newAlias)
    if (this.inflight !== null && packet.qos > 0) this.inflight.add(packet.messageId)
    writePacket(this.client, wire, done)
  }

  // A view of the PUBLISH with `topic` and the alias: the packet itself is
  // never changed, as it may be what a persistence keeps, or shared.
  aliased (packet, topic, alias) {
    const properties = packet.properties
    return {
      cmd: 'publish',
      topic,
      payload: packet.payload,
      qos: packet.qos,
      retain: packet.retain,
      dup: packet.dup,
      messageId: packet.messageId,
      properties: properties === undefined ? this.propertiesFor(alias) : { ...properties, topicAlias: alias }
    }
  }

  propertiesFor (alias) {
    let properties = this.aliasProperties[alias]
    if (properties === undefined) {
      properties = this.aliasProperties[alias] = Object.freeze({ topicAlias: alias })
    }
    return properties
  }

  // [MQTT-3.1.2-25]: discard it, and behave as if it had been sent and acknowledged
  drop (packet, done) {
    const client = this.client
    client.broker.emit('deliveryDropped', client, packet, 'packet-too-large')
    if (packet.qos > 0 && !client.clean && packet.messageId !== undefined) {
      client.broker.persistence.outgoingClearMessageId(client, packet)
        .then(noop, noop)
    }
    setImmediate(done, null, client)
  }
}

const V5 = { protocolVersion: 5 }

// The size of the PUBLISH on the wire; computed without encoding when there
// are no properties (1 byte of property length), else by encoding it.
function wireSize (packet) {
  if (packet.properties === undefined) {
    const payload = packet.payload
    const payloadLength = typeof payload === 'string' ? Buffer.byteLength(payload) : (payload ? payload.length : 0)
    return packetWireSize(2 + Buffer.byteLength(packet.topic) + (packet.qos > 0 ? 2 : 0) + 1 + payloadLength)
  }
  return mqtt.generate(packet, V5).length
}

function reportError (err, client) {
  // a delivery that waited: nobody waits for its callback
  if (err && !client.closed) client.emit('error', err)
}

function noop () {}
