/*
 * The broker's counters: what stats() and $SYS/broker/... report. Plain
 * numbers, bumped in place where each event happens (and, for the clients
 * connected by protocol, taken back when it ends).
 */

export interface Counters {
  /** Messages not queued because a client's outgoing queue was full (limits.maxQueuedMessages). */
  queueDropped: number
  /** Connections closed for sending a packet larger than limits.maxPacketSize. */
  oversizedPackets: number
  /** Connections closed for a protocol error (malformed bytes, bad first packet...). */
  protocolErrors: number
  /** Connections closed for a forbidden topic or filter, or U+0000 or ill-formed UTF-8 in any string (guardTopics). */
  invalidTopics: number
  /** Publishes acknowledged and dropped because the client may not publish there ($SYS/, or the ACL). */
  deniedPublishes: number
  /** Subscriptions refused by the ACL (SUBACK 0x80). */
  deniedSubscriptions: number
  /** CONNECTs refused: bad credentials, or anonymous where it is not allowed. */
  authFailures: number
  /** MQTT packets of every type received. */
  packetsReceived: number
  /** CONNECT packets received. */
  connects: number
  /** PUBLISH packets received from clients, by QoS, and their payload bytes. */
  publishReceived: [number, number, number]
  publishBytesReceived: number
  /** PUBLISH packets sent to clients, by the message's QoS, and their payload bytes. */
  publishSent: [number, number, number]
  publishBytesSent: number
  /** The most clients connected at once. */
  maxConnected: number
  /** Clients connected now, by protocol level: 3 (MQTT 3.1), 4 (3.1.1), 5. */
  connectedByProtocol: { 3: number, 4: number, 5: number }
  /** Deliveries shed to a client that stopped reading (see stall.ts). */
  slowConsumerDropped: number
}

export function createCounters (): Counters {
  return {
    queueDropped: 0,
    oversizedPackets: 0,
    protocolErrors: 0,
    invalidTopics: 0,
    deniedPublishes: 0,
    deniedSubscriptions: 0,
    authFailures: 0,
    packetsReceived: 0,
    connects: 0,
    publishReceived: [0, 0, 0],
    publishBytesReceived: 0,
    publishSent: [0, 0, 0],
    publishBytesSent: 0,
    maxConnected: 0,
    connectedByProtocol: { 3: 0, 4: 0, 5: 0 },
    slowConsumerDropped: 0
  }
}
