function handlePuback (client, packet, done) {
  // MQTT 5.0 flow control: a PUBACK (QoS 1) or PUBCOMP (QoS 2) frees a slot of
  // the client's Receive Maximum, and what waits for one goes. [MQTT-4.9.0-2]
  if (client._outbound !== null) client._outbound.release(packet.messageId)
  const persistence = client.broker.persistence
  const emitAck = (err, origPacket) => {
    client.broker.emit('ack', origPacket, client)
    done(err)
  }
  persistence.outgoingClearMessageId(client, packet)
    .then((packet) => emitAck(null, packet), emitAck)
}

export default handlePuback
