import net from 'node:net'
import mqttPacket, { type Packet } from 'mqtt-packet'
import { onTestFinished } from 'vitest'

/** A raw TCP connection speaking hand-made MQTT bytes, for what a well-behaved client library will not send. */
export interface RawConnection {
  socket: net.Socket
  send(packet: Packet | Buffer): void
  /** Resolves with the next parsed packet from the broker. */
  next(timeoutMs?: number): Promise<Packet>
  /** Resolves when the broker closes the connection; rejects after timeoutMs. */
  closed(timeoutMs?: number): Promise<void>
}

export async function rawConnect (port: number): Promise<RawConnection> {
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  onTestFinished(() => { socket.destroy() })
  await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject) })
  const parser = mqttPacket.parser()
  const packets: Packet[] = []
  const waiters: Array<() => void> = []
  parser.on('packet', p => { packets.push(p); for (const w of waiters.splice(0)) w() })
  socket.on('data', d => parser.parse(d))
  let isClosed = false
  socket.on('close', () => { isClosed = true; for (const w of waiters.splice(0)) w() })
  const wait = (ready: () => boolean, what: string, timeoutMs: number) => new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs)
    const check = () => { if (ready()) { clearTimeout(timer); resolve() } else waiters.push(check) }
    check()
  })
  return {
    socket,
    send: p => { socket.write(Buffer.isBuffer(p) ? p : mqttPacket.generate(p)) },
    next: async (timeoutMs = 5000) => {
      await wait(() => packets.length > 0 || isClosed, 'a packet', timeoutMs)
      const p = packets.shift()
      if (!p) throw new Error('connection closed before a packet arrived')
      return p
    },
    closed: (timeoutMs = 5000) => wait(() => isClosed, 'the broker to close the connection', timeoutMs)
  }
}

export function connectPacket (clientId: string, extra: Partial<mqttPacket.IConnectPacket> = {}): mqttPacket.IConnectPacket {
  return { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId, keepalive: 60, ...extra }
}
