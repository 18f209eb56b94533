/*
 * MQTT return codes the broker sends, in one place. MQTT 3.1.1 has a few;
 * MQTT 5 reason codes (section 2.4) will be added here, with the mapping
 * from each internal refusal to its code.
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

const connackNames: Record<number, string> = {
  [ConnackCode.ACCEPTED]: 'accepted',
  [ConnackCode.UNACCEPTABLE_PROTOCOL_VERSION]: 'unacceptable protocol version',
  [ConnackCode.IDENTIFIER_REJECTED]: 'identifier rejected',
  [ConnackCode.SERVER_UNAVAILABLE]: 'server unavailable',
  [ConnackCode.BAD_USERNAME_OR_PASSWORD]: 'bad user name or password',
  [ConnackCode.NOT_AUTHORIZED]: 'not authorized'
}

/** The name of a CONNACK return code, for logs: 'not authorized' for 5. */
export function connackName (code: number): string {
  return connackNames[code] ?? `0x${code.toString(16).padStart(2, '0')}`
}
