import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net from 'node:net'
import tls from 'node:tls'
import { describe, expect, test } from 'vitest'
import WebSocket from 'ws'
import { parseConfig, type WssListenerConfig, type WsListenerConfig } from '../../src/config.js'
import { ConnectionGate } from '../../src/listeners/gate.js'
import type { BoundListener, ListenerContext } from '../../src/listeners/listener.js'
import { loadTlsMaterial } from '../../src/listeners/certs.js'
import { listenWs } from '../../src/listeners/ws.js'
import { listenWss } from '../../src/listeners/wss.js'
import { listenerFor, startBroker, testCerts, urlFor } from '../helpers/broker.js'
import { connect } from '../helpers/client.js'

type WsType = 'ws' | 'wss'

function request (type: WsType, port: number, path: string, method = 'GET'): Promise<{ status: number, headers: http.IncomingHttpHeaders, body: string, ms: number }> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path, method, agent: false, timeout: 5000, ...(type === 'wss' ? { ca: readFileSync(testCerts().ca), servername: 'localhost' } : {}) }
    const req = (type === 'wss' ? https : http).request(options, res => {
      let body = ''
      res.on('data', d => { body += d })
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, ms: Date.now() - started }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer to ${method} ${path} within 5 s`)))
    req.on('error', reject)
    req.end()
  })
}

describe('a plain HTTP request to a WebSocket listener', () => {
  test.each(['ws', 'wss'] as const)('%s answers 426 Upgrade Required at once, on any path, and frees the connection slot', async (type) => {
    const broker = await startBroker({ listeners: [listenerFor(type)], limits: { maxConnections: 1 } })
    const port = broker.listeners[0]!.port
    for (const [method, path] of [['GET', '/'], ['GET', '/mqtt'], ['HEAD', '/mqtt'], ['POST', '/elsewhere?x=1']] as const) {
      const res = await request(type, port, path, method)
      expect(res.status, `${method} ${path}`).toBe(426)
      expect(res.headers.upgrade).toBe('websocket')
      expect(res.headers.connection).toBe('close')
      expect(res.ms).toBeLessThan(2000)
      if (method !== 'HEAD') expect(res.body).toMatch(/WebSocket/)
    }
    // With maxConnections 1, the MQTT client gets in only if every probe let go of its slot.
    await until(() => broker.stats().openConnections === 0, 'the probes to be closed')
    const client = await connect(urlFor(broker, type))
    expect(client.connected).toBe(true)
  })
})

async function listen (type: WsType, gate: ConnectionGate, handshakeTimeoutMs: number): Promise<BoundListener> {
  const config = parseConfig({ listeners: [listenerFor(type)] }).listeners[0] as WsListenerConfig | WssListenerConfig
  // Streams are kept open, as the broker would keep an MQTT connection.
  const ctx: ListenerContext = { gate, accept: () => {}, maxPacketSize: 1024, onTransportError: () => {}, handshakeTimeoutMs }
  return config.type === 'ws' ? listenWs(config, ctx) : listenWss(config, loadTlsMaterial(config, '', () => {}), ctx)
}

async function until (check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

/** Resolves with how long the socket lived; reads (and drops) what it is sent, so that the server's close is seen. */
const closed = (socket: net.Socket): Promise<number> => {
  const started = Date.now()
  socket.resume()
  return new Promise(resolve => socket.once('close', () => resolve(Date.now() - started)))
}

describe('slow and silent HTTP clients are closed, as TCP clients are by the CONNECT timeout', () => {
  const TIMEOUT = 400

  test.each(['ws', 'wss'] as const)('%s: a TCP connection that never speaks is closed and its slot released', async (type) => {
    const gate = new ConnectionGate(1)
    const listener = await listen(type, gate, TIMEOUT)
    try {
      const socket = net.connect(listener.port, '127.0.0.1')
      socket.on('error', () => {})
      const ms = await closed(socket)
      expect(ms).toBeGreaterThanOrEqual(TIMEOUT - 50)
      expect(ms).toBeLessThan(TIMEOUT + 3000)
      await until(() => gate.open === 0, 'the slot to be released')
    } finally {
      gate.destroyAll()
      await listener.close()
    }
  })

  test.each(['ws', 'wss'] as const)('%s: a client that sends its headers a byte at a time is closed', async (type) => {
    const gate = new ConnectionGate(1)
    const listener = await listen(type, gate, TIMEOUT)
    try {
      const socket: net.Socket = type === 'ws'
        ? net.connect(listener.port, '127.0.0.1')
        : tls.connect({ port: listener.port, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(testCerts().ca) })
      socket.on('error', () => {})
      const done = closed(socket)
      await new Promise(resolve => socket.once(type === 'ws' ? 'connect' : 'secureConnect', resolve))
      // Never idle for long, so only a limit on the whole header phase stops it.
      const trickle = setInterval(() => { if (!socket.destroyed) socket.write('x') }, TIMEOUT / 4)
      socket.write('GET /mqtt HTTP/1.1\r\nX-Slow: ')
      const ms = await done
      clearInterval(trickle)
      expect(ms).toBeLessThan(TIMEOUT + 3000)
      await until(() => gate.open === 0, 'the slot to be released')
    } finally {
      gate.destroyAll()
      await listener.close()
    }
  })

  test.each(['ws', 'wss'] as const)('%s: an upgraded connection is not subject to the HTTP timeouts', async (type) => {
    const gate = new ConnectionGate(1)
    const listener = await listen(type, gate, TIMEOUT)
    try {
      const ws = new WebSocket(`${type}://localhost:${listener.port}/mqtt`, 'mqtt', type === 'wss' ? { ca: readFileSync(testCerts().ca) } : {})
      ws.on('error', () => {})
      await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('close', () => reject(new Error('closed before open'))) })
      // Time is what is tested here: the connection outlives the HTTP timeouts by far.
      await new Promise(resolve => setTimeout(resolve, TIMEOUT * 4))
      expect(ws.readyState).toBe(WebSocket.OPEN)
      ws.terminate()
    } finally {
      gate.destroyAll()
      await listener.close()
    }
  })
})
