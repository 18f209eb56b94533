/*
 * MQTT return and reason codes the broker sends or reports, in one place:
 * the MQTT 3.1.1 CONNACK return codes and SUBACK failure, the MQTT 5 reason
 * codes (section 2.4) with their names, and what each refusal of ours is
 * answered with per protocol version. Logs and events show a code by its
 * name: reasonName(0x87) is 'NOT_AUTHORIZED (0x87)'.
 */

/** CONNACK return codes, MQTT 3.1.1 section 3.2.2.3. */
export const ConnackCode = {
  ACCEPTED: 0x00,
  UNACCEPTABLE_PROTOCOL_VERSION: 0x01,
  /** [MQTT-3.1.3-8] [MQTT-3.1.3-9]: a zero-length id without clean session, or an id the server rejects. */
  IDENTIFIER_REJECTED: 0x02,
  SERVER_UNAVAILABLE: 0x03,
  BAD_USERNAME_OR_PASSWORD: 0x04,
  /** Refused credentials, or a refusing authenticate hook (as Mosquitto answers). */
  NOT_AUTHORIZED: 0x05
} as const
export type ConnackCode = typeof ConnackCode[keyof typeof ConnackCode]

/** SUBACK return codes, MQTT 3.1.1 section 3.9.3: the granted QoS, or failure. */
export const SubackCode = {
  FAILURE: 0x80
} as const

/**
 * MQTT 5 reason codes, section 2.4. 0x00 is SUCCESS, NORMAL_DISCONNECTION
 * in a DISCONNECT and GRANTED_QOS_0 in a SUBACK (see reasonName). A code of
 * 0x80 or more is a failure.
 */
export const ReasonCode = {
  SUCCESS: 0x00,
  GRANTED_QOS_1: 0x01,
  GRANTED_QOS_2: 0x02,
  DISCONNECT_WITH_WILL_MESSAGE: 0x04,
  NO_MATCHING_SUBSCRIBERS: 0x10,
  NO_SUBSCRIPTION_EXISTED: 0x11,
  CONTINUE_AUTHENTICATION: 0x18,
  RE_AUTHENTICATE: 0x19,
  UNSPECIFIED_ERROR: 0x80,
  MALFORMED_PACKET: 0x81,
  PROTOCOL_ERROR: 0x82,
  IMPLEMENTATION_SPECIFIC_ERROR: 0x83,
  UNSUPPORTED_PROTOCOL_VERSION: 0x84,
  CLIENT_IDENTIFIER_NOT_VALID: 0x85,
  BAD_USER_NAME_OR_PASSWORD: 0x86,
  NOT_AUTHORIZED: 0x87,
  SERVER_UNAVAILABLE: 0x88,
  SERVER_BUSY: 0x89,
  BANNED: 0x8A,
  SERVER_SHUTTING_DOWN: 0x8B,
  BAD_AUTHENTICATION_METHOD: 0x8C,
  KEEP_ALIVE_TIMEOUT: 0x8D,
  SESSION_TAKEN_OVER: 0x8E,
  TOPIC_FILTER_INVALID: 0x8F,
  TOPIC_NAME_INVALID: 0x90,
  PACKET_IDENTIFIER_IN_USE: 0x91,
  PACKET_IDENTIFIER_NOT_FOUND: 0x92,
  RECEIVE_MAXIMUM_EXCEEDED: 0x93,
  TOPIC_ALIAS_INVALID: 0x94,
  PACKET_TOO_LARGE: 0x95,
  MESSAGE_RATE_TOO_HIGH: 0x96,
  QUOTA_EXCEEDED: 0x97,
  ADMINISTRATIVE_ACTION: 0x98,
  PAYLOAD_FORMAT_INVALID: 0x99,
  RETAIN_NOT_SUPPORTED: 0x9A,
  QOS_NOT_SUPPORTED: 0x9B,
  USE_ANOTHER_SERVER: 0x9C,
  SERVER_MOVED: 0x9D,
  SHARED_SUBSCRIPTIONS_NOT_SUPPORTED: 0x9E,
  CONNECTION_RATE_EXCEEDED: 0x9F,
  MAXIMUM_CONNECT_TIME: 0xA0,
  SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED: 0xA1,
  WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED: 0xA2
} as const
export type ReasonCode = typeof ReasonCode[keyof typeof ReasonCode]

/** The MQTT 5 packets that carry a reason code, as mqtt-packet names them. */
export type ReasonPacket = 'connack' | 'puback' | 'pubrec' | 'pubrel' | 'pubcomp' | 'suback' | 'unsuback' | 'disconnect' | 'auth'

const hex = (code: number) => `0x${code.toString(16).toUpperCase().padStart(2, '0')}`

const reasonNames = new Map<number, string>(Object.entries(ReasonCode).map(([name, code]) => [code, name]))

/**
 * A reason code as logs and events show it: 'NOT_AUTHORIZED (0x87)'. 0x00
 * is named for its packet (NORMAL_DISCONNECTION, GRANTED_QOS_0); a code the
 * spec does not define is 'UNKNOWN (0xNN)'. With a `protocolVersion` below 5,
 * the MQTT 3.1.1 meaning: a CONNACK return code (connackName), or SUBACK
 * 'FAILURE (0x80)'.
 */
export function reasonName (code: number, packet?: ReasonPacket, protocolVersion = 5): string {
  if (protocolVersion < 5 && packet === 'connack') return connackName(code)
  let name = reasonNames.get(code) ?? 'UNKNOWN'
  if (code === 0x00 && packet === 'disconnect') name = 'NORMAL_DISCONNECTION'
  if (code === 0x00 && packet === 'suback') name = 'GRANTED_QOS_0'
  if (code === SubackCode.FAILURE && packet === 'suback' && protocolVersion < 5) name = 'FAILURE'
  return `${name} (${hex(code)})`
}

const connackNames = new Map<number, string>(Object.entries(ConnackCode).map(([name, code]) => [code, name]))

/** An MQTT 3.1.1 CONNACK return code as logs show it: 'NOT_AUTHORIZED (0x05)'. */
export function connackName (code: number): string {
  return `${connackNames.get(code) ?? 'UNKNOWN'} (${hex(code)})`
}

/**
 * What a CONNACK refusal of ours is for a client of `protocolVersion`: the
 * 3.1.1 return code itself, or its MQTT 5 reason code (the mapping of MQTT 5
 * section 3.2.2.2, as Aedes applies it to a return code given to its hooks).
 */
export function connackRefusal (returnCode: Exclude<ConnackCode, 0>, protocolVersion: number): { code: number, name: string } {
  if (protocolVersion !== 5) return { code: returnCode, name: connackName(returnCode) }
  const code = ({
    [ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION]: ReasonCode.UNSUPPORTED_PROTOCOL_VERSION,
    [ConnackCode.IDENTIFIER_REJECTED]: ReasonCode.CLIENT_IDENTIFIER_NOT_VALID,
    [ConnackCode.SERVER_UNAVAILABLE]: ReasonCode.SERVER_UNAVAILABLE,
    [ConnackCode.BAD_USERNAME_OR_PASSWORD]: ReasonCode.BAD_USER_NAME_OR_PASSWORD,
    [ConnackCode.NOT_AUTHORIZED]: ReasonCode.NOT_AUTHORIZED
  } as const)[returnCode]
  return { code, name: reasonName(code, 'connack') }
}

/**
 * How a denied PUBLISH is answered. MQTT 5: PUBACK/PUBREC 0x87 (a QoS 0
 * PUBLISH has no acknowledgement to carry it), as Mosquitto does. MQTT 3.1.1
 * has no negative acknowledgement: acknowledged and dropped (section 3.3.5
 * allows it; closing the connection is the alternative), reasonCode undefined.
 */
export function publishRefusal (protocolVersion: number): number | undefined {
  return protocolVersion === 5 ? ReasonCode.NOT_AUTHORIZED : undefined
}

/** The SUBACK code for a denied subscription: 0x87 in MQTT 5, 0x80 (failure) in 3.1.1 (section 3.9.3). */
export function subscribeRefusal (protocolVersion: number): number {
  return protocolVersion === 5 ? ReasonCode.NOT_AUTHORIZED : SubackCode.FAILURE
}

/** Whether a SUBACK entry is a refusal rather than a granted QoS: 0x80 or more, in either version. */
export function isRefusal (code: number): boolean {
  return code >= 0x80
}
