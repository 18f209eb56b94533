import { describe, expect, test } from 'vitest'
import { ConfigError, parseConfig } from '../../src/index.js'
import { connackName, connackRefusal, ConnackCode, publishRefusal, reasonName, subscribeRefusal } from '../../src/broker/reason-codes.js'

const problemsOf = (input: unknown): readonly string[] => {
  try {
    parseConfig(input)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected the config to be rejected')
}

describe('config "mqtt"', () => {
  test('defaults: what Mosquitto 2 grants (topic aliases 10, max keepalive 65535), Receive Maximum 1000, no session expiry cap, shared subscriptions on', () => {
    expect(parseConfig({}).mqtt).toEqual({
      maxSessionExpiryInterval: 0,
      topicAliasMaximum: 10,
      receiveMaximum: 1000,
      maxKeepalive: 65535,
      sharedSubscriptions: true
    })
    expect(Object.isFrozen(parseConfig({}).mqtt)).toBe(true)
  })

  test('set keys keep their value; the others their default', () => {
    expect(parseConfig({ mqtt: { maxKeepalive: 60, sharedSubscriptions: false } }).mqtt).toMatchObject({ maxKeepalive: 60, sharedSubscriptions: false, topicAliasMaximum: 10 })
    expect(parseConfig({ mqtt: { maxSessionExpiryInterval: 0xFFFFFFFF, topicAliasMaximum: 0, receiveMaximum: 65535, maxKeepalive: 0 } }).mqtt)
      .toMatchObject({ maxSessionExpiryInterval: 0xFFFFFFFF, topicAliasMaximum: 0, receiveMaximum: 65535, maxKeepalive: 0 })
  })

  test('every bad value is named with its bound, an unknown key with where to look', () => {
    const problems = problemsOf({
      mqtt: { maxSessionExpiryInterval: -1, topicAliasMaximum: 65536, receiveMaximum: 0, maxKeepalive: 1.5, sharedSubscriptions: 'yes', keepaliveLimit: 60 }
    })
    expect(problems).toEqual([
      'mqtt.maxSessionExpiryInterval: must be >= 0; got -1',
      'mqtt.topicAliasMaximum: must be <= 65535; got 65536',
      'mqtt.receiveMaximum: must be >= 1; got 0',
      'mqtt.maxKeepalive: expected int, got 1.5',
      'mqtt.sharedSubscriptions: expected boolean, got "yes"',
      'mqtt.keepaliveLimit: unknown key; remove it or check its spelling in docs/configuration.md'
    ])
    expect(problemsOf({ mqtt: { maxSessionExpiryInterval: 2 ** 32 } })).toEqual(['mqtt.maxSessionExpiryInterval: must be <= 4294967295; got 4294967296'])
  })
})

describe('reason codes by name', () => {
  test('MQTT 5 codes, with 0x00 named for its packet; 3.1.1 CONNACK and SUBACK codes', () => {
    expect(reasonName(0x87)).toBe('NOT_AUTHORIZED (0x87)')
    expect(reasonName(0x8E, 'disconnect')).toBe('SESSION_TAKEN_OVER (0x8E)')
    expect(reasonName(0x00, 'disconnect')).toBe('NORMAL_DISCONNECTION (0x00)')
    expect(reasonName(0x00, 'suback')).toBe('GRANTED_QOS_0 (0x00)')
    expect(reasonName(0x00, 'puback')).toBe('SUCCESS (0x00)')
    expect(reasonName(0x04, 'disconnect')).toBe('DISCONNECT_WITH_WILL_MESSAGE (0x04)')
    expect(reasonName(0x80, 'suback', 4)).toBe('FAILURE (0x80)')
    expect(reasonName(0x80, 'suback', 5)).toBe('UNSPECIFIED_ERROR (0x80)')
    expect(reasonName(0x05, 'connack', 4)).toBe('NOT_AUTHORIZED (0x05)')
    expect(reasonName(0x7F)).toBe('UNKNOWN (0x7F)')
    expect(connackName(0x02)).toBe('IDENTIFIER_REJECTED (0x02)')
  })

  test('each refusal per protocol version', () => {
    expect(connackRefusal(ConnackCode.IDENTIFIER_REJECTED, 4)).toEqual({ code: 0x02, name: 'IDENTIFIER_REJECTED (0x02)' })
    expect(connackRefusal(ConnackCode.IDENTIFIER_REJECTED, 5)).toEqual({ code: 0x85, name: 'CLIENT_IDENTIFIER_NOT_VALID (0x85)' })
    expect(connackRefusal(ConnackCode.NOT_AUTHORIZED, 5)).toEqual({ code: 0x87, name: 'NOT_AUTHORIZED (0x87)' })
    expect([publishRefusal(3), publishRefusal(4), publishRefusal(5)]).toEqual([undefined, undefined, 0x87])
    expect([subscribeRefusal(3), subscribeRefusal(4), subscribeRefusal(5)]).toEqual([0x80, 0x80, 0x87])
  })
})
