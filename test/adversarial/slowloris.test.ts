/*
 * Slowloris on every transport: connections that send nothing, or send a few
 * bytes every two seconds and never finish, at each stage a connection goes
 * through (TCP accept, TLS handshake, HTTP upgrade, MQTT CONNECT). The broker
 * must close every one of them by its CONNECT timeout (30 s, Aedes's
 * connectTimeout; the listeners apply the same bound to the TLS handshake and
 * the WebSocket upgrade), and keep serving well-behaved clients meanwhile.
 */
import net from 'node:net'
import tls from 'node:tls'
import { describe, expect, test } from 'vitest'
import { tempDir, testCerts } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectBytes, report, startBrokerProcess, tcpConnect, wsFrame, wsUpgrade, wsUpgradeRequest } from './support.js'

const CONNECT_TIMEOUT_MS = 30_000
/** Closed within the CONNECT timeout plus this: timers, a 2-core machine, the check interval of Node's HTTP server. */
const SLACK_MS = 15_000
const PER_VARIANT = 4
const DRIP_EVERY_MS = 2000

type Transport = 'tcp' | 'tls' | 'ws' | 'wss'

/** Opens a connection to the stage named, and returns the socket and, for a drip, the bytes still to send. */
interface Variant { transport: Transport, stage: string, open: (port: number) => Promise<{ socket: net.Socket, drip?: Buffer }> }

/** A CONNECT long enough that a byte every two seconds never completes it within the bound. */
const SLOW_CONNECT = connectBytes({ clientId: 'slowloris-' + 'x'.repeat(60) })

function tlsConnect (port: number): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
    s.once('secureConnect', () => { s.off('error', reject); s.on('error', () => {}); resolve(s) })
    s.once('error', reject)
  })
}

/** The bytes of a real TLS ClientHello, captured from Node's own client by a local TCP server. */
async function clientHello (): Promise<Buffer> {
  const server = net.createServer()
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  const hello = new Promise<Buffer>(resolve => server.once('connection', s => s.once('data', d => { resolve(d); s.destroy() })))
  const client = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
  client.on('error', () => {})
  const bytes = await hello
  client.destroy()
  server.close()
  return bytes
}

const WS_PATH = '/mqtt'

function variants (hello: Buffer): Variant[] {
  const request = (port: number) => Buffer.from(wsUpgradeRequest(WS_PATH, port))
  const upgraded = async (socket: net.Socket, port: number) => { await wsUpgrade(socket, WS_PATH, port); return socket }
  return [
    { transport: 'tcp', stage: 'silent', open: async port => ({ socket: await tcpConnect(port) }) },
    { transport: 'tcp', stage: 'CONNECT dripped', open: async port => ({ socket: await tcpConnect(port), drip: SLOW_CONNECT }) },
    { transport: 'tls', stage: 'silent before the handshake', open: async port => ({ socket: await tcpConnect(port) }) },
    { transport: 'tls', stage: 'ClientHello dripped', open: async port => ({ socket: await tcpConnect(port), drip: hello }) },
    { transport: 'tls', stage: 'silent after the handshake', open: async port => ({ socket: await tlsConnect(port) }) },
    { transport: 'tls', stage: 'CONNECT dripped', open: async port => ({ socket: await tlsConnect(port), drip: SLOW_CONNECT }) },
    { transport: 'ws', stage: 'silent before the HTTP request', open: async port => ({ socket: await tcpConnect(port) }) },
    { transport: 'ws', stage: 'HTTP request dripped', open: async port => ({ socket: await tcpConnect(port), drip: request(port) }) },
    { transport: 'ws', stage: 'silent after the upgrade', open: async port => ({ socket: await upgraded(await tcpConnect(port), port) }) },
    { transport: 'ws', stage: 'CONNECT dripped in WebSocket frames', open: async port => ({ socket: await upgraded(await tcpConnect(port), port), drip: SLOW_CONNECT }) },
    { transport: 'wss', stage: 'silent before the handshake', open: async port => ({ socket: await tcpConnect(port) }) },
    { transport: 'wss', stage: 'ClientHello dripped', open: async port => ({ socket: await tcpConnect(port), drip: hello }) },
    { transport: 'wss', stage: 'silent after the TLS handshake', open: async port => ({ socket: await tlsConnect(port) }) },
    { transport: 'wss', stage: 'HTTP request dripped', open: async port => ({ socket: await tlsConnect(port), drip: request(port) }) },
    { transport: 'wss', stage: 'silent after the upgrade', open: async port => ({ socket: await upgraded(await tlsConnect(port), port) }) },
    { transport: 'wss', stage: 'CONNECT dripped in WebSocket frames', open: async port => ({ socket: await upgraded(await tlsConnect(port), port), drip: SLOW_CONNECT }) }
  ]
}

interface Outcome {
  variant: Variant
  closedAfterMs: number | undefined
  /** WebSocket stages: when the broker sent a close frame, which a slow client need not answer. */
  closeFrameAfterMs: number | undefined
}

/** Opens one slow connection and resolves when the broker closes it, or at the bound. */
async function slow (variant: Variant, port: number): Promise<Outcome> {
  const opened = Date.now()
  const { socket, drip } = await variant.open(port)
  const framed = variant.stage.includes('WebSocket frames')
  const upgradedStage = variant.stage.includes('WebSocket') || variant.stage.includes('upgrade')
  let closeFrameAfterMs: number | undefined
  // Server frames are unmasked: a close frame starts 0x88.
  if (upgradedStage) socket.on('data', (d: Buffer) => { if (d[0] === 0x88) closeFrameAfterMs ??= Date.now() - opened })
  let sent = 0
  let timer: NodeJS.Timeout | undefined
  if (drip) {
    timer = setInterval(() => {
      if (sent >= drip.length || socket.destroyed) return
      // one byte per drip; inside a WebSocket frame of its own once upgraded
      const piece = drip.subarray(sent, sent + 1)
      sent += 1
      socket.write(framed ? wsFrame(piece) : piece)
    }, DRIP_EVERY_MS)
  }
  return new Promise<Outcome>(resolve => {
    const bound = setTimeout(() => { clearInterval(timer); socket.destroy(); resolve({ variant, closedAfterMs: undefined, closeFrameAfterMs }) }, CONNECT_TIMEOUT_MS + SLACK_MS - (Date.now() - opened))
    const closed = () => { clearTimeout(bound); clearInterval(timer); socket.destroy(); resolve({ variant, closedAfterMs: Date.now() - opened, closeFrameAfterMs }) }
    socket.once('end', closed)
    socket.once('close', closed)
    if (socket.destroyed) closed()
  })
}

describe('slowloris', () => {
  test(`connections that stall at any stage, on TCP, TLS, WS and WSS, are closed within ${(CONNECT_TIMEOUT_MS + SLACK_MS) / 1000} s, and others are served meanwhile`, { timeout: 120_000 }, async () => {
    const { cert, key } = testCerts()
    const broker = await startBrokerProcess(tempDir(), {
      listeners: [{ type: 'tcp', port: 0 }, { type: 'tls', port: 0, cert, key }, { type: 'ws', port: 0 }, { type: 'wss', port: 0, cert, key }],
      persistence: { type: 'memory' }
    })
    const hello = await clientHello()
    const all = variants(hello)
    const started = Date.now()
    const pending = all.flatMap(v => Array.from({ length: PER_VARIANT }, () => slow(v, broker.ports[v.transport]!)))

    // While they hold their sockets, a well-behaved client on each transport is served.
    const urls: Record<Transport, string> = {
      tcp: `mqtt://127.0.0.1:${broker.ports.tcp}`,
      tls: `mqtts://127.0.0.1:${broker.ports.tls}`,
      ws: `ws://127.0.0.1:${broker.ports.ws}${WS_PATH}`,
      wss: `wss://127.0.0.1:${broker.ports.wss}${WS_PATH}`
    }
    for (const [transport, url] of Object.entries(urls)) {
      const c = await connect(url)
      await c.subscribeAsync(`served/${transport}`, { qos: 1 })
      await c.publishAsync(`served/${transport}`, 'ok', { qos: 1 })
      expect((await inbox(c).waitFor(1))[0]!.payload).toBe('ok')
      await c.endAsync()
    }

    const outcomes = await Promise.all(pending)
    broker.assertAlive('during slowloris')
    const rows = all.map(v => {
      const mine = outcomes.filter(o => o.variant === v)
      const times = mine.map(o => o.closedAfterMs).filter((t): t is number => t !== undefined)
      const frames = mine.map(o => o.closeFrameAfterMs).filter((t): t is number => t !== undefined)
      const range = (ts: number[]) => ts.length > 0 ? `${(Math.min(...ts) / 1000).toFixed(1)}-${(Math.max(...ts) / 1000).toFixed(1)}` : '-'
      return {
        variant: `${v.transport}: ${v.stage}`,
        closed: times.length,
        open: mine.length - times.length,
        seconds: range(times),
        ...(frames.length > 0 ? { closeFrameSeconds: range(frames) } : {})
      }
    })
    for (const r of rows) report('slowloris', r)
    report('slowloris', { connections: outcomes.length, closedInBound: outcomes.filter(o => o.closedAfterMs !== undefined).length, seconds: ((Date.now() - started) / 1000).toFixed(1) })
    const stillOpen = rows.filter(r => r.open > 0)
    expect(stillOpen.map(r => `${r.variant} (${r.open} of ${PER_VARIANT} still open at ${(CONNECT_TIMEOUT_MS + SLACK_MS) / 1000} s` +
      (r.closeFrameSeconds ? `; the broker sent a WebSocket close frame at ${r.closeFrameSeconds} s, but keeps the socket until the client answers it)` : ')')),
      'slow connections the broker did not close by its CONNECT timeout: each holds a socket (and a limits.maxConnections slot) for as long as the client likes').toEqual([])
  })
})
