import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import tls from 'node:tls'
import { describe, expect, test } from 'vitest'
import { parseConfig, type ListenerConfig } from '../../src/config.js'
import { ConnectionGate } from '../../src/listeners/gate.js'
import type { BoundListener, ListenerContext } from '../../src/listeners/listener.js'
import { loadTlsMaterial } from '../../src/listeners/certs.js'
import { listenTcp } from '../../src/listeners/tcp.js'
import { listenTls } from '../../src/listeners/tls.js'
import { listenWs } from '../../src/listeners/ws.js'
import { listenWss } from '../../src/listeners/wss.js'
import { listenerFor, startBroker, testCerts, TRANSPORTS, urlFor, type Transport } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { until } from '../helpers/wait.js'

class RecordingGate extends ConnectionGate {
  readonly admitted: net.Socket[] = []
  override admit (socket: net.Socket): boolean {
    this.admitted.push(socket)
    return super.admit(socket)
  }
}

async function listen (type: Transport, gate: ConnectionGate): Promise<BoundListener> {
  const config = parseConfig({ listeners: [listenerFor(type)] }).listeners[0] as ListenerConfig
  const ctx: ListenerContext = { gate, accept: stream => stream.destroy(), maxPacketSize: 1024, onTransportError: () => {} }
  switch (config.type) {
    case 'tcp': return listenTcp(config, ctx)
    case 'ws': return listenWs(config, ctx)
    case 'tls': return listenTls(config, loadTlsMaterial(config, '', () => {}), ctx)
    case 'wss': return listenWss(config, loadTlsMaterial(config, '', () => {}), ctx)
  }
}

const noDelayOf = (socket: net.Socket): unknown => {
  const symbol = Object.getOwnPropertySymbols(socket).find(s => s.description === 'kSetNoDelay')
  if (!symbol) throw new Error('this Node version does not expose kSetNoDelay; update the test')
  return (socket as unknown as Record<symbol, unknown>)[symbol]
}

describe('Nagle is off on every listener', () => {
  // Aedes never sets noDelay; with Nagle on, ping-pong latency was ~44 ms here.
  test.each(TRANSPORTS)('%s sockets are accepted with noDelay', async (type) => {
    const gate = new RecordingGate(10)
    const listener = await listen(type, gate)
    try {
      const socket = net.connect(listener.port, '127.0.0.1')
      socket.on('error', () => {})
      await new Promise(resolve => socket.once('connect', resolve))
      await until(() => gate.admitted.length > 0, 'the listener to admit the socket')
      expect(gate.admitted).toHaveLength(1)
      expect(noDelayOf(gate.admitted[0]!)).toBe(true)
      socket.destroy()
    } finally {
      gate.destroyAll()
      await listener.close()
    }
  })
})

describe('WebSockets run on a patched ws (CVE-2024-37890)', () => {
  test('websocket-stream resolves ws >= 8.17.1', () => {
    const fromWebsocketStream = createRequire(createRequire(import.meta.url).resolve('websocket-stream'))
    const { version } = JSON.parse(readFileSync(fromWebsocketStream.resolve('ws/package.json'), 'utf8')) as { version: string }
    const [major, minor, patch] = version.split('.').map(Number) as [number, number, number]
    expect(major).toBe(8)
    expect(minor * 1000 + patch).toBeGreaterThanOrEqual(17 * 1000 + 1)
  })

  test('an upgrade request with more headers than maxHeadersCount is refused and the broker keeps serving', async () => {
    const broker = await startBroker({ listeners: [listenerFor('ws')] })
    const port = broker.listeners[0]!.port
    const socket = net.connect(port, '127.0.0.1')
    socket.on('error', () => {})
    await new Promise(resolve => socket.once('connect', resolve))
    // Node keeps the first 2000 headers (maxHeadersCount); the Sec-WebSocket-*
    // ones after them are dropped, which crashed ws < 8.17.1. Short headers
    // keep the request under Node's 16 KB header-size limit.
    const filler = 'x:1\r\n'.repeat(2000)
    socket.write(`GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${filler}` +
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n')
    const response = await new Promise<string>(resolve => {
      let text = ''
      socket.on('data', d => { text += d })
      socket.on('close', () => resolve(text))
    })
    // Node 20 passes the request to ws, which answers 400; Node 22+ refuses it itself with 431.
    expect(response).toMatch(/^HTTP\/1\.1 (400|431) /)
    const client = await connect(urlFor(broker, 'ws'))
    await client.subscribeAsync('t')
    await client.publishAsync('t', 'alive', { qos: 1 })
    expect((await inbox(client).waitFor(1))[0]!.payload).toBe('alive')
  })
})

describe('TLS', () => {
  test('a failed handshake costs that connection only', async () => {
    const broker = await startBroker({ listeners: [listenerFor('tls')] })
    const port = broker.listeners[0]!.port
    // plain MQTT bytes to a TLS port
    const plain = net.connect(port, '127.0.0.1')
    plain.on('error', () => {})
    plain.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51, 0x54, 0x54, 0x04, 0x02, 0x00, 0x3c, 0x00, 0x00]))
    await new Promise(resolve => plain.once('close', resolve))
    // a client that does not trust our CA
    await expect(new Promise((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost' }, () => resolve(s))
      s.on('error', reject)
    })).rejects.toThrow(/self[- ]signed|unable to (get|verify)/i)
    const good = await connect(urlFor(broker, 'tls'))
    expect(good.connected).toBe(true)
  })

  test('the generated certificate is valid for localhost and 127.0.0.1', async () => {
    const broker = await startBroker({ listeners: [listenerFor('tls')] })
    const ca = readFileSync(testCerts().ca)
    for (const host of ['localhost', '127.0.0.1']) {
      const client = await connect(`mqtts://${host}:${broker.listeners[0]!.port}`, { ca, rejectUnauthorized: true })
      expect(client.connected).toBe(true)
    }
  })
})

describe('WebSocket path', () => {
  test.each(['ws', 'wss'] as const)('%s serves MQTT on the configured path only', async (type) => {
    const broker = await startBroker({ listeners: [{ ...listenerFor(type) as { type: typeof type }, path: '/custom' }] })
    const l = broker.listeners[0]!
    expect(l.path).toBe('/custom')
    await expect(connect(`${type}://127.0.0.1:${l.port}/mqtt`, { connectTimeout: 2000 })).rejects.toThrow()
    await expect(connect(`${type}://127.0.0.1:${l.port}/custom`)).resolves.toBeDefined()
  })
})
