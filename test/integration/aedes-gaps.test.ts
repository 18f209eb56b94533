import net from 'node:net'
import path from 'node:path'
import { describe, expect, test } from 'vitest'
import { onTestFinished } from 'vitest'
import { createBrokerCore } from '../../src/broker/aedes.js'
import { Bus } from '../../src/bus.js'
import { openPersistence, wrapPersistence } from '../../src/broker/persistence.js'
import { Authenticator } from '../../src/auth/authenticator.js'
import { parseConfig } from '../../src/config.js'
import { createLogger } from '../../src/log.js'
import { startBroker, tempDir, urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { connectPacket, rawConnect } from '../helpers/raw.js'

/* Issue 9 findings 5a, 5c, 5d: gaps in Aedes's delivery path (docs/aedes-gaps.md). */

describe('5a: a QoS 0 stream does not make a client lose QoS 1 messages (aedes #955, LevelDB)', () => {
  test('a persistent session receiving a QoS 0 and a QoS 1 stream at once gets every acknowledged QoS 1 message', async () => {
    const broker = await startBroker({ persistence: { type: 'level', path: path.join(tempDir(), 'data') }, limits: { maxQueuedMessages: 0 } })
    const sub = await connect(urlFor(broker), { clientId: 'mix-sub', clean: false })
    await sub.subscribeAsync('mix/#', { qos: 1 })
    const fast = await connect(urlFor(broker))
    const reliable = await connect(urlFor(broker))
    const n = 3000
    // The QoS 0 stream runs for as long as the QoS 1 one, so that it keeps overtaking it.
    let sending = true
    let fastSent = 0
    const qos0 = (async () => {
      while (sending) {
        for (let i = 0; i < 5; i++) fast.publish('mix/fast', `f${fastSent++}`, { qos: 0 })
        await new Promise(resolve => setImmediate(resolve))
      }
    })()
    await Promise.all(Array.from({ length: n }, (_, i) => reliable.publishAsync('mix/reliable', `r${i}`, { qos: 1 })))
    sending = false
    await qos0
    // Barrier: sent after every PUBACK, so after every QoS 1 message was stored and emitted.
    await reliable.publishAsync('mix/barrier', 'end', { qos: 1 })
    const box = inbox(sub)
    await new Promise<void>((resolve, reject) => {
      const check = () => box.messages.some(m => m.topic === 'mix/barrier') ? resolve() : setTimeout(check, 20)
      check()
      setTimeout(() => reject(new Error('barrier never arrived')), 15_000)
    })
    const got = new Set(box.messages.filter(m => m.topic === 'mix/reliable').map(m => m.payload))
    const lost = Array.from({ length: n }, (_, i) => `r${i}`).filter(p => !got.has(p))
    console.log(`5a: ${lost.length} of ${n} acknowledged QoS 1 messages lost alongside ${fastSent} QoS 0`)
    expect(lost).toEqual([])
  })
})

/** A broker core on a memory store whose delWill (a step of CONNECT after the session's subscriptions are restored) waits while `gate` is armed. */
async function slowStoreBroker () {
  const opened = await openPersistence({ type: 'memory' })
  const gate: { armed?: { entered: () => void, release: Promise<void> } } = {}
  const p = opened.store
  const delWill = p.delWill.bind(p)
  p.delWill = async client => {
    const armed = gate.armed
    if (armed !== undefined && client.id === 'slow-sub') {
      gate.armed = undefined
      armed.entered()
      await armed.release
    }
    return delWill(client)
  }
  const cfg = parseConfig({ log: { level: 'silent' } })
  const logger = createLogger(cfg.log)
  const { persistence } = await wrapPersistence(opened, { maxQueuedMessages: cfg.limits.maxQueuedMessages, onQueueDrop: () => {} })
  const core = await createBrokerCore({ limits: cfg.limits, persistence, auth: await Authenticator.load(cfg.auth), logger, bus: new Bus(logger) })
  const server = net.createServer(socket => core.handle(socket, `${socket.remoteAddress}:${socket.remotePort}`))
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => { server.close(); await core.close() })
  /** Arms the gate for the next CONNECT of slow-sub; resolves `entered` when it is held there, and lets it go on with `open()`. */
  const arm = () => {
    let open!: () => void
    const release = new Promise<void>(resolve => { open = resolve })
    const entered = new Promise<void>(resolve => { gate.armed = { entered: resolve, release } })
    return { entered, open }
  }
  return { port: (server.address() as net.AddressInfo).port, arm }
}

describe('5c: no PUBLISH before CONNACK [MQTT-3.2.0-1]', () => {
  test('reconnects of a persistent session under traffic, with a slow store, see CONNACK first and then what was published meanwhile', async () => {
    const { port, arm } = await slowStoreBroker()
    const first = await rawConnect(port)
    first.send(connectPacket('slow-sub', { clean: false }))
    expect((await first.next()).cmd).toBe('connack')
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cc/#', qos: 0 }] })
    expect((await first.next()).cmd).toBe('suback')
    first.socket.destroy()
    const url = `mqtt://127.0.0.1:${port}`
    const witness = await connect(url)
    await witness.subscribeAsync('cc/#', { qos: 0 })
    const pub = await connect(url)
    let before = 0
    for (let round = 0; round < 8; round++) {
      const gate = arm()
      const raw = await rawConnect(port)
      raw.send(connectPacket('slow-sub', { clean: false }))
      // Held in delWill: its subscription is restored, CONNACK not yet written.
      await gate.entered
      const seen = inbox(witness).messages.length
      for (let i = 0; i < 5; i++) pub.publish('cc/t', `${round}-${i}`, { qos: 0 })
      // The witness got them, so the same dispatch has called slow-sub's delivery too.
      await inbox(witness).waitFor(seen + 5)
      gate.open()
      const packets = [await raw.next()]
      while (packets.filter(p => p.cmd === 'publish').length < 5) packets.push(await raw.next())
      if (packets[0]!.cmd !== 'connack') before++
      expect(packets.map(p => p.cmd)).toEqual(['connack', 'publish', 'publish', 'publish', 'publish', 'publish'])
      raw.socket.destroy()
      await raw.closed()
    }
    expect(before).toBe(0)
  })
})

describe('5d: QoS downgrade for wildcard subscriptions [MQTT-3.8.4-6]', () => {
  test('a QoS 1 subscriber to dg/# receives a QoS 2 message at QoS 1, live and retained', async () => {
    const broker = await startBroker()
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('dg/kept', 'retained', { qos: 2, retain: true })
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync('dg/#', { qos: 1 })
    await pub.publishAsync('dg/live', 'live', { qos: 2 })
    const got = await inbox(sub).waitFor(2)
    expect(got.map(m => [m.topic, m.qos]).sort()).toEqual([['dg/kept', 1], ['dg/live', 1]])
  })

  test('overlapping subscriptions: one copy, at the highest QoS granted among them [MQTT-3.3.5-1]', async () => {
    const broker = await startBroker()
    const sub = await connect(urlFor(broker))
    await sub.subscribeAsync({ 'ov/#': { qos: 0 }, 'ov/+': { qos: 1 } })
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('ov/a', 'one', { qos: 2 })
    await pub.publishAsync('ov/a/b', 'two', { qos: 2 }) // only ov/# matches
    await pub.publishAsync('ov/barrier', 'end', { qos: 1 })
    const got = await inbox(sub).waitFor(3)
    expect(got.map(m => [m.payload, m.qos])).toEqual([['one', 1], ['two', 0], ['end', 1]])
  })
})
