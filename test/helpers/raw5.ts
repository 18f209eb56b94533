/*
 * A raw MQTT 5 client over mqtt-packet, for what MQTT.js hides: when it
 * acknowledges, how many PUBLISHes are unacknowledged at a time, and the
 * topic and Topic Alias each PUBLISH carries on the wire.
 */
import net from 'node:net'
import mqttPacket, { type IConnackPacket, type IConnectPacket, type IPublishPacket, type Packet } from 'mqtt-packet'
import { onTestFinished } from 'vitest'

const V5 = { protocolVersion: 5 } as const

export interface Raw5 {
  socket: net.Socket
  connack: IConnackPacket
  send(packet: Packet): void
  /** Every packet received after CONNACK, in order. */
  readonly received: Packet[]
  /** The PUBLISHes received, in order. */
  publishes(): IPublishPacket[]
  /** Called with each packet as it arrives (after it is added to `received`). */
  onPacket(listener: (packet: Packet) => void): void
  /** Resolves once `ready()` holds, checked at each packet; rejects after timeoutMs with `what`. */
  until(ready: () => boolean, what: string, timeoutMs?: number): Promise<void>
  subscribe(filter: string, qos: 0 | 1 | 2, options?: { nl?: boolean, rap?: boolean, rh?: number, subscriptionIdentifier?: number }): Promise<void>
  puback(messageId: number): void
  closed(timeoutMs?: number): Promise<void>
}

let nextSubscribeId = 1

export async function raw5 (port: number, clientId: string, connect: Partial<IConnectPacket> = {}): Promise<Raw5> {
  const socket = net.connect(port, '127.0.0.1')
  socket.setNoDelay(true)
  socket.on('error', () => {})
  onTestFinished(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const parser = mqttPacket.parser(V5)
  const received: Packet[] = []
  const listeners: Array<(packet: Packet) => void> = []
  const waiters = new Set<() => void>()
  let connack: IConnackPacket | undefined
  let isClosed = false
  const wake = () => { for (const w of [...waiters]) w() }
  parser.on('packet', (p: Packet) => {
    if (connack === undefined && p.cmd === 'connack') connack = p
    else {
      received.push(p)
      for (const l of listeners) l(p)
    }
    wake()
  })
  socket.on('data', d => parser.parse(d))
  socket.on('close', () => { isClosed = true; wake() })
  const until = (ready: () => boolean, what: string, timeoutMs = 5000) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (ready()) { waiters.delete(check); clearTimeout(timer); resolve() } else if (isClosed) { waiters.delete(check); clearTimeout(timer); reject(new Error(`connection closed waiting for ${what}`)) }
    }
    const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`timed out waiting for ${what}; received ${JSON.stringify(received.map(summary))}`)) }, timeoutMs)
    waiters.add(check)
    check()
  })
  const send = (p: Packet) => { socket.write(mqttPacket.generate(p, V5)) }
  send({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 5, clean: true, clientId, keepalive: 60, ...connect } as IConnectPacket)
  await until(() => connack !== undefined, 'CONNACK')
  const publishes = () => received.filter((p): p is IPublishPacket => p.cmd === 'publish')
  return {
    socket,
    connack: connack!,
    send,
    received,
    publishes,
    onPacket: listener => { listeners.push(listener) },
    until,
    async subscribe (filter, qos, options = {}) {
      const messageId = nextSubscribeId++ % 65535 + 1
      const { subscriptionIdentifier, ...flags } = options
      send({
        cmd: 'subscribe',
        messageId,
        subscriptions: [{ topic: filter, qos, nl: flags.nl ?? false, rap: flags.rap ?? false, rh: flags.rh ?? 0 }],
        ...(subscriptionIdentifier !== undefined ? { properties: { subscriptionIdentifier } } : {})
      })
      await until(() => received.some(p => p.cmd === 'suback' && p.messageId === messageId), `SUBACK for ${filter}`)
    },
    puback: messageId => send({ cmd: 'puback', messageId }),
    closed: (timeoutMs = 5000) => until(() => isClosed, 'the broker to close the connection', timeoutMs)
  }
}

function summary (p: Packet): string {
  if (p.cmd !== 'publish') return p.cmd
  return `publish ${p.topic} ${String(p.payload)} q${p.qos}${p.properties?.topicAlias !== undefined ? ` alias ${p.properties.topicAlias}` : ''}`
}
