/*
 * MQTT 5 over every transport (issue 12): MQTT.js in v5 mode on tcp, tls, ws
 * and wss, against a real broker on real sockets. Every PUBLISH property a
 * client sets reaches the subscriber, at QoS 0, 1 and 2; a v3.1.1 client and a
 * v5 client exchange messages both ways. "Nothing else arrived" is proven
 * with a barrier message (helpers/barrier.ts).
 */
import { describe, expect, test } from 'vitest'
import type { IClientPublishOptions } from 'mqtt'
import type { Broker } from '../../src/index.js'
import { listenerFor, startBroker, TRANSPORTS, urlFor, type Transport } from '../helpers/broker.js'
import { connect, inbox, type Received } from '../helpers/client.js'
import { barrier } from '../helpers/barrier.js'

const v5 = { protocolVersion: 5 as const }
const v4 = { protocolVersion: 4 as const }

// Not UTF-8, with a zero byte: correlation data is binary.
const CORRELATION = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x7f])
const EXPIRY = 3600

/** Every property a client may set on a PUBLISH, but the topic alias and the subscription identifier (the broker's to set). */
const properties = (qos: number) => ({
  payloadFormatIndicator: true,
  messageExpiryInterval: EXPIRY,
  contentType: 'application/json; charset=utf-8',
  responseTopic: `reply/${qos}`,
  correlationData: CORRELATION,
  // a repeated key: two pairs, in this order [MQTT-3.3.2-18]
  userProperties: { tag: ['first', 'second'], qos: String(qos) }
}) satisfies IClientPublishOptions['properties']

async function brokerOn (type: Transport): Promise<Broker> {
  return startBroker({ listeners: [listenerFor(type)] })
}

const byPayload = (messages: Received[]) => [...messages].sort((a, b) => a.payload.localeCompare(b.payload))

describe.each(TRANSPORTS)('MQTT 5 over %s', (type) => {
  test('connects as v5, subscribes, and every PUBLISH property passes through at QoS 0, 1 and 2', async () => {
    const broker = await brokerOn(type)
    const sub = await connect(urlFor(broker, type), { ...v5, clientId: `v5-sub-${type}` })
    expect(sub.options.protocolVersion).toBe(5)
    const [grant] = await sub.subscribeAsync('props/t', { qos: 2 })
    expect(grant!.qos).toBe(2)
    const pub = await connect(urlFor(broker, type), { ...v5, clientId: `v5-pub-${type}` })
    for (const qos of [0, 1, 2] as const) {
      await pub.publishAsync('props/t', JSON.stringify({ qos }), { qos, properties: properties(qos) })
    }
    const got = byPayload(await inbox(sub).waitFor(3))
    expect(got.map(m => [m.payload, m.qos])).toEqual([['{"qos":0}', 0], ['{"qos":1}', 1], ['{"qos":2}', 2]])
    for (const [qos, m] of got.entries()) {
      const { messageExpiryInterval, ...rest } = m.packet.properties ?? {}
      const sent: Record<string, unknown> = { ...properties(qos) }
      delete sent.messageExpiryInterval
      expect(rest).toEqual(sent)
      expect(Buffer.isBuffer(m.packet.properties?.correlationData)).toBe(true)
      // the time it waited in the broker is taken off, never added [MQTT-3.3.2-6]
      expect(messageExpiryInterval).toBeGreaterThan(EXPIRY - 60)
      expect(messageExpiryInterval).toBeLessThanOrEqual(EXPIRY)
    }
    // nothing else, no copy: the barrier comes after all three
    expect(await barrier(pub, sub, 'props/t')).toHaveLength(3)
  })

  test('a v3.1.1 client and a v5 client exchange messages both ways', async () => {
    const broker = await brokerOn(type)
    const old = await connect(urlFor(broker, type), { ...v4, clientId: `v4-${type}` })
    const neu = await connect(urlFor(broker, type), { ...v5, clientId: `v5-${type}` })
    expect(old.options.protocolVersion).toBe(4)
    await old.subscribeAsync('to/v4', { qos: 2 })
    await neu.subscribeAsync('to/v5', { qos: 2 })

    // v5 -> v3.1.1: the message arrives, its properties do not (3.1.1 has none)
    for (const qos of [0, 1, 2] as const) {
      await neu.publishAsync('to/v4', `from v5 qos ${qos}`, { qos, properties: properties(qos) })
    }
    const toOld = byPayload(await inbox(old).waitFor(3))
    expect(toOld.map(m => [m.payload, m.qos])).toEqual([['from v5 qos 0', 0], ['from v5 qos 1', 1], ['from v5 qos 2', 2]])
    for (const m of toOld) expect(m.packet.properties).toBeUndefined()
    expect(await barrier(neu, old, 'to/v4')).toHaveLength(3)

    // v3.1.1 -> v5: the message arrives, with no properties the v3 client could not have set
    for (const qos of [0, 1, 2] as const) await old.publishAsync('to/v5', `from v4 qos ${qos}`, { qos })
    const toNew = byPayload(await inbox(neu).waitFor(3))
    expect(toNew.map(m => [m.payload, m.qos])).toEqual([['from v4 qos 0', 0], ['from v4 qos 1', 1], ['from v4 qos 2', 2]])
    for (const m of toNew) {
      const props = m.packet.properties ?? {}
      expect(props.userProperties).toBeUndefined()
      expect(props.messageExpiryInterval).toBeUndefined()
      expect(props.contentType).toBeUndefined()
      expect(props.responseTopic).toBeUndefined()
      expect(props.correlationData).toBeUndefined()
      expect(props.payloadFormatIndicator).toBeFalsy()
    }
    expect(await barrier(old, neu, 'to/v5')).toHaveLength(3)
  })
})
