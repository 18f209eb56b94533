import { runSeries, ackProperties, topicLevelCount, lingerOnClose } from '../utils.js'
import write from '../write.js'
import { ReasonCodes, RECEIVE_MAXIMUM_DEFAULT } from '../constants.js'

class PubAck {
  constructor (packet) {
    this.cmd = 'puback'
    this.messageId = packet.messageId
  }
}

class PubRec {
  constructor (packet) {
    this.cmd = 'pubrec'
    this.messageId = packet.messageId
  }
}

const publishActions = [
  authorizePublish,
  enqueuePublish
]
function handlePublish (client, packet, done) {
  // MQTT 5.0 Receive Maximum (§3.2.2.3.3, §4.9): a client sending more QoS 1/2
  // PUBLISHes than the broker's Receive Maximum before they are acknowledged
  // breaks [MQTT-3.3.4-7] and gets a 0x93 (Receive Maximum exceeded)
  // DISCONNECT. Counted on receipt, synchronously: a whole socket read is
  // dispatched at once.
  if (client.version === 5 && packet.qos > 0) {
    if (client._receiveMaximumExceeded) return done()
    if (!reserveInbound(client, packet)) {
      client._receiveMaximumExceeded = true
      const limit = client.broker.receiveMaximum || RECEIVE_MAXIMUM_DEFAULT
      client.broker.emit('clientError', client, new Error('Receive Maximum exceeded: more than ' + limit + ' QoS 1/2 PUBLISH packets unacknowledged'))
      // it is still sending: let it read the DISCONNECT (see lingerOnClose)
      lingerOnClose(client.conn)
      client.disconnect({ reasonCode: ReasonCodes.RECEIVE_MAXIMUM_EXCEEDED }, () => done())
      return
    }
  }
  // MQTT 5.0: resolve an inbound Topic Alias to its topic (and strip the
  // alias so it is not forwarded to subscribers) before topic validation.
  if (client.version === 5 && packet.properties?.topicAlias !== undefined) {
    const err = resolveTopicAlias(client, packet)
    if (err) {
      // Topic Alias protocol violation: surface the detail for telemetry, then
      // tell the client with a 0x94 (Topic Alias invalid) DISCONNECT — an
      // observable reason code on the wire rather than a bare connection drop.
      // The disconnect is authoritative: it closes the connection (detaching the
      // reader), so finishing the batch with done() — not done(err) — is correct;
      // no further packets on this batch will be processed.
      client.broker.emit('clientError', client, err)
      client.disconnect({ reasonCode: ReasonCodes.TOPIC_ALIAS_INVALID }, () => done())
      return
    }
  }
  const topic = packet.topic
  let err
  if (topic.length === 0) {
    err = new Error('empty topic not allowed in PUBLISH')
    return done(err)
  }
  if (topic.indexOf('#') > -1) {
    err = new Error('# is not allowed in PUBLISH')
    return done(err)
  }
  if (topic.indexOf('+') > -1) {
    err = new Error('+ is not allowed in PUBLISH')
    return done(err)
  }
  // [MQTT-3.3.2-14] The MQTT 5.0 Response Topic must be a publish topic name, so
  // it must not contain wildcard characters.
  const responseTopic = packet.properties?.responseTopic
  if (responseTopic !== undefined && (responseTopic.indexOf('#') > -1 || responseTopic.indexOf('+') > -1)) {
    return done(new Error('wildcard is not allowed in Response Topic'))
  }
  // reject deeply nested topics before any ack/persistence side-effect; see
  // lib/utils.js#topicLevelCount. broker.publish guards the will/API paths.
  if (topicLevelCount(topic) > client.broker.maxTopicLevels) {
    err = new Error('topic has too many levels')
    return done(err)
  }
  runSeries(client, publishActions, packet, done)
}

function enqueuePublish (packet, done) {
  const client = this

  // MQTT 5.0: an unauthorized QoS > 0 publish was already answered with a
  // 0x87 (Not authorized) PUBACK/PUBREC in authorizePublish; do not publish it.
  if (packet._notAuthorized) {
    return done()
  }

  switch (packet.qos) {
    case 2:
      // MQTT-4.3.3-2: Check if we already have this packet by messageId
      client.broker.persistence.incomingGetPacket(client, packet)
        .then(() => {
          // Duplicate packet: just send PUBREC, don't publish again
          write(client, new PubRec(packet), done)
        }, () => {
          // New packet (not found in store): bound the inbound QoS 2 receive
          // window before retaining it, so a client that keeps sending fresh
          // message identifiers while withholding PUBREL cannot grow its
          // incoming persistence map toward the 16-bit messageId ceiling.
          //
          // The slot is reserved here, synchronously, and keyed by messageId.
          // Both matter: a whole socket read chunk is dispatched concurrently
          // (see enqueue in lib/client.js), so reserving after the await lets
          // the entire chunk past the check; and keying by messageId means a
          // DUP retransmission of a packet already in flight re-reserves its
          // own slot instead of consuming a second one.
          const inflight = client._inboundInflight
          const limit = client.broker.maxInflightInbound
          if (limit > 0 && !inflight.has(packet.messageId) && inflight.size >= limit) {
            // MQTT 3.1/3.1.1 has no reason code to carry, so drop the connection
            return done(new Error('maxInflightInbound exceeded: ' + limit + ' inbound QoS 2 messages already awaiting PUBREL'))
          }
          inflight.add(packet.messageId)

          // store first, then publish. This ensures if storage fails, the
          // message hasn't been delivered yet, preventing duplicate delivery on
          // retransmission.
          client.broker.persistence.incomingStorePacket(client, packet)
            .then(() => {
              client.broker.publish(packet, client, (err) => {
                if (err) { return done(err) }
                write(client, new PubRec(packet), done)
              })
            }, (err) => {
              // nothing was stored, so the slot must go back
              inflight.delete(packet.messageId)
              done(err)
            })
        })
      break
    case 1:
      write(client, new PubAck(packet), function (err) {
        // the QoS 1 flow ends with the PUBACK: its Receive Maximum slot is free
        releaseInbound(client, packet)
        if (err) { return done(err) }
        client.broker.publish(packet, client, done)
      })
      break
    case 0:
      client.broker.publish(packet, client, done)
      break
    default:
      // nothing to do
  }
}

function authorizePublish (packet, done) {
  const client = this
  // v3/v4 have no reason-code handling here, so pass `done` straight through —
  // no per-message wrapper closure on the broker's busiest path.
  if (client.version !== 5) {
    return client.broker.authorizePublish(client, packet, done)
  }
  client.broker.authorizePublish(client, packet, function (err) {
    if (!err) {
      return done()
    }
    // MQTT 5.0: rather than dropping the connection on an authz failure, keep
    // it up and drop the message. A QoS > 0 publish is answered with a 0x87
    // (Not authorized) PUBACK/PUBREC; a QoS 0 publish has no acknowledgement to
    // carry a reason code, so it is dropped silently. Either way the failure is
    // surfaced on clientError for telemetry (v3/v4 instead take the done(err)
    // fast path above, which closes the connection).
    packet._notAuthorized = true
    client.broker.emit('clientError', client, err)
    if (packet.qos > 0) {
      const ack = packet.qos === 1 ? new PubAck(packet) : new PubRec(packet)
      ack.reasonCode = ReasonCodes.NOT_AUTHORIZED
      // [#823] Reason String, sourced from the authorization error and gated by
      // the client's Request Problem Information.
      const properties = ackProperties(client, err.message)
      if (properties) ack.properties = properties
      write(client, ack, () => {
        // a PUBACK or PUBREC of 0x80 or more ends the flow (§4.9): the
        // Receive Maximum slot is free (QoS 2: nothing was stored)
        releaseInbound(client, packet)
        done()
      })
    } else {
      done()
    }
  })
}

// MQTT 5.0 Receive Maximum, inbound: the QoS 1 and 2 PUBLISHes received and
// not yet acknowledged, by packet identifier. QoS 2 ones are the
// _inboundInflight set (the maxInflightInbound bound, released at PUBREL,
// lib/handlers/pubrel.js); QoS 1 ones are released when the PUBACK is
// written. A retransmission of one in flight takes no second slot. False when
// the client is over the broker's Receive Maximum (65535 when not advertised).
function reserveInbound (client, packet) {
  const qos1 = client._inboundQoS1 ??= new Set()
  const qos2 = client._inboundInflight
  const own = packet.qos === 1 ? qos1 : qos2
  if (own.has(packet.messageId)) return true
  const limit = client.broker.receiveMaximum || RECEIVE_MAXIMUM_DEFAULT
  if (qos1.size + qos2.size >= limit) return false
  own.add(packet.messageId)
  return true
}

function releaseInbound (client, packet) {
  if (packet.qos === 1) client._inboundQoS1?.delete(packet.messageId)
  else if (packet.qos === 2) client._inboundInflight.delete(packet.messageId)
}

// Resolves an MQTT 5.0 inbound Topic Alias. A PUBLISH that carries a non-empty
// topic together with an alias registers (or updates) the mapping; a PUBLISH
// with an empty topic resolves the topic from a previously registered alias.
// The alias is connection-scoped, so it is removed from the packet before the
// message is forwarded to subscribers. [MQTT-3.3.2-7..3.3.2-13]
function resolveTopicAlias (client, packet) {
  const alias = packet.properties.topicAlias
  const max = client.broker.topicAliasMaximum
  if (alias < 1 || alias > max) {
    return new Error(`topic alias ${alias} is out of range (broker topicAliasMaximum is ${max})`)
  }

  if (packet.topic.length > 0) {
    // Only register a topic the later PUBLISH validation will accept — never
    // store a wildcard/invalid topic in the connection's alias map. An invalid
    // topic still falls through to handlePublish's checks, which reject it.
    if (packet.topic.indexOf('#') === -1 && packet.topic.indexOf('+') === -1) {
      client._topicAliases.set(alias, packet.topic)
    }
  } else {
    const topic = client._topicAliases.get(alias)
    if (topic === undefined) {
      return new Error(`unknown topic alias ${alias}`)
    }
    packet.topic = topic
  }

  // Strip the connection-scoped alias before the packet is forwarded. Assign
  // `undefined` rather than `delete`: the properties object is reference-copied
  // into every fanout packet, and `delete` would transition it into dictionary
  // mode, deopting property access for all subscribers.
  packet.properties.topicAlias = undefined
  return null
}

export default handlePublish
