/*
 * limits.maxConnections under a flood: three times the limit, at once, over
 * TCP, TLS, WS and WSS. Exactly the limit is admitted, every other connection
 * is refused (closed without CONNACK), none hangs; slots freed are reused
 * exactly; and the broker's own counters agree.
 */
import net from 'node:net'
import tls from 'node:tls'
import { describe, expect, test } from 'vitest'
import { tempDir, testCerts } from '../helpers/broker.js'
import { connect } from '../helpers/client.js'
import { connectBytes, FrameReader, metric, report, startBrokerProcess, TYPE, until, wsFrame, wsUpgradeRequest } from './support.js'

const LIMIT = 300
const WS_PATH = '/mqtt'
type Transport = 'tcp' | 'tls' | 'ws' | 'wss'
const MIX: Transport[] = ['tcp', 'tcp', 'tls', 'ws', 'wss']
const TRANSPORTS: Transport[] = ['tcp', 'tls', 'ws', 'wss']

interface Attempt { transport: Transport, result: 'accepted' | 'refused' | 'hung', socket: net.Socket }

/** One connection that sends CONNECT as soon as its transport allows, and reports CONNACK, a close, or neither within 15 s. */
function attempt (transport: Transport, port: number, clientId: string): Promise<Attempt> {
  return new Promise(resolve => {
    const secure = transport === 'tls' || transport === 'wss'
    const web = transport === 'ws' || transport === 'wss'
    const socket: net.Socket = secure
      ? tls.connect({ port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false })
      : net.connect({ port, host: '127.0.0.1' })
    let settled = false
    const done = (result: Attempt['result']) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (result !== 'accepted') socket.destroy()
      resolve({ transport, result, socket })
    }
    const timer = setTimeout(() => done('hung'), 15_000)
    socket.on('error', () => done('refused'))
    socket.on('close', () => done('refused'))
    const connectPacket = connectBytes({ clientId })
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      socket.write(web ? wsUpgradeRequest(WS_PATH, port) : connectPacket)
    })
    const reader = new FrameReader()
    let head = ''
    let upgraded = false
    let rest = Buffer.alloc(0)
    socket.on('data', (d: Buffer) => {
      if (!web) {
        try { if (reader.push(d).some(f => f.type === TYPE.CONNACK && f.body[1] === 0)) done('accepted') } catch { done('refused') }
        return
      }
      if (!upgraded) {
        head += d.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end < 0) return
        if (!head.startsWith('HTTP/1.1 101')) { done('refused'); return }
        upgraded = true
        socket.write(wsFrame(connectPacket))
        rest = Buffer.from(head.slice(end + 4), 'latin1')
      } else rest = Buffer.concat([rest, d])
      // a server frame is unmasked: 0x82, length 4, then CONNACK 20 02 00 00
      if (rest.includes(Buffer.from([0x82, 0x04, 0x20, 0x02, 0x00, 0x00]))) done('accepted')
    })
  })
}

function tally (attempts: Attempt[]): Record<Attempt['result'], number> {
  const t = { accepted: 0, refused: 0, hung: 0 }
  for (const a of attempts) t[a.result]++
  return t
}

describe('limits.maxConnections', () => {
  test(`a flood of ${3 * LIMIT} connections over TCP, TLS, WS and WSS: exactly ${LIMIT} admitted, the rest refused, freed slots reused exactly`, { timeout: 120_000 }, async () => {
    const { cert, key } = testCerts()
    const broker = await startBrokerProcess(tempDir(), {
      listeners: [{ type: 'tcp', port: 0 }, { type: 'tls', port: 0, cert, key }, { type: 'ws', port: 0 }, { type: 'wss', port: 0, cert, key }],
      persistence: { type: 'memory' },
      limits: { maxConnections: LIMIT }
    })
    const flood = async (n: number, tag: string) => {
      const started = Date.now()
      const attempts = await Promise.all(Array.from({ length: n }, (_, i) => {
        const t = MIX[i % MIX.length]!
        return attempt(t, broker.ports[t]!, `${tag}-${i}`)
      }))
      return { attempts, seconds: (Date.now() - started) / 1000 }
    }
    const open = () => metric(broker.adminPort, 'switchyard_connections_open')
    const refusedTotal = () => metric(broker.adminPort, 'switchyard_connections_refused_total')

    // 1. Three times the limit at once.
    const first = await flood(3 * LIMIT, 'flood')
    const t1 = tally(first.attempts)
    const byTransport = Object.fromEntries(TRANSPORTS.map(t => [t, tally(first.attempts.filter(a => a.transport === t)).accepted]))
    report('connection-limit', { phase: 'flood', limit: LIMIT, attempts: 3 * LIMIT, ...t1, acceptedByTransport: byTransport, seconds: first.seconds.toFixed(1), connectionsPerSecond: Math.round(3 * LIMIT / first.seconds) })
    expect(t1, `a flood of ${3 * LIMIT} connections against limits.maxConnections ${LIMIT}`).toEqual({ accepted: LIMIT, refused: 2 * LIMIT, hung: 0 })
    expect(await open()).toBe(LIMIT)
    expect(await refusedTotal()).toBe(2 * LIMIT)
    expect(await metric(broker.adminPort, 'switchyard_clients_connected')).toBe(LIMIT)

    // 2. Free 50 slots; a second flood gets exactly those.
    const freed = 50
    const admitted = first.attempts.filter(a => a.result === 'accepted')
    for (const a of admitted.slice(0, freed)) a.socket.destroy()
    await until(async () => await open() === LIMIT - freed, `the broker to see ${freed} connections close`, 10_000)
    const second = await flood(3 * freed, 'again')
    const t2 = tally(second.attempts)
    report('connection-limit', { phase: 'after freeing slots', freed, attempts: 3 * freed, ...t2, seconds: second.seconds.toFixed(1) })
    expect(t2, `after ${freed} slots were freed`).toEqual({ accepted: freed, refused: 2 * freed, hung: 0 })
    expect(await refusedTotal()).toBe(2 * LIMIT + 2 * freed)

    // 3. Everyone leaves; a well-behaved client is served.
    for (const a of [...admitted, ...second.attempts]) a.socket.destroy()
    await until(async () => await open() === 0, 'every connection to close', 10_000)
    const c = await connect(`mqtt://127.0.0.1:${broker.ports.tcp}`)
    await c.publishAsync('after/flood', 'ok', { qos: 1 })
    broker.assertAlive('after the flood')
  })
})
