import net from 'node:net'
import { describe, expect, onTestFinished, test } from 'vitest'
import { Aedes, type AedesOptions, type AedesPublishPacket, type Client } from '../../vendor/aedes/aedes.js'
import type { Packet } from 'mqtt-packet'
import {
  ackAfterStore, clientById, clientParser, connectedClients, disconnectedByPacket, emitterBacklog, isRetainedReplay, markPacket,
  connectWill, onRoutingError, packetMark, patchDeliveries, pauseInput, readNextBatch, replaceEmitterQueues, subscriptionCount, subscriptionFilters, willClientId,
  wrapDeliveries, writeConnack
} from '../../src/broker/internals.js'
import { guardPacketSize, guardTopics, holdable } from '../../src/broker/connection.js'
import { createCounters } from '../../src/broker/counters.js'
import { Fifo } from '../../src/broker/fifo.js'
import { ConnackCode, SubackCode } from '../../src/broker/reason-codes.js'
import { openPersistence } from '../../src/broker/persistence.js'
import { connectPacket, rawConnect, type RawConnection } from '../helpers/raw.js'

/*
 * What src/broker/internals.ts relies on, checked on bare Aedes
 * (docs/aedes-gaps.md). The patches: Each gap is shown unpatched, as Aedes 1.2 has it, and
 * patched: if an upgrade fixes a gap, the unpatched case fails and the patch
 * can go; if it moves a private the patch uses, the patched case fails.
 * The accessors (second describe): each test fails if the private it reads
 * or writes is gone or means something else.
 */

type Store = Awaited<ReturnType<typeof openPersistence>>['store'] & Record<string, (...args: any[]) => Promise<any>>

/** Bare Aedes on a memory store, on a real socket; `patched` applies the internals.ts patches as aedes.ts does. */
async function bare (patched: boolean, opts: Partial<AedesOptions> = {}, store?: Store, onHandle?: (client: Client, socket: net.Socket) => void) {
  const persistence = store ?? (await openPersistence({ type: 'memory' })).store as Store
  const aedes = await Aedes.createBroker({
    persistence: persistence as never,
    ...opts
  })
  const holdPubacks = patched ? ackAfterStore(aedes) : undefined
  const server = net.createServer(socket => {
    const client = aedes.handle(socket)
    holdPubacks?.(client)
    if (patched) patchDeliveries(client, socket)
    onHandle?.(client, socket)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  onTestFinished(async () => {
    server.close()
    await new Promise<void>(resolve => aedes.close(() => resolve()))
    await persistence.destroy()
  })
  const client = async (id: string, clean = true): Promise<RawConnection> => {
    const raw = await rawConnect((server.address() as net.AddressInfo).port)
    raw.send(connectPacket(id, { clean }))
    return raw
  }
  return { aedes, persistence, client, port: (server.address() as net.AddressInfo).port }
}

async function connected (raw: RawConnection): Promise<RawConnection> {
  expect((await raw.next()).cmd).toBe('connack')
  return raw
}

/** A promise with its resolve, for gating a store call. */
function deferred () {
  let resolve!: () => void
  const promise = new Promise<void>(r => { resolve = r })
  return { promise, resolve }
}

describe.each([false, true])('Aedes 1.2 internals, patched: %s', patched => {
  test('finding 1: the QoS 1 PUBACK waits for the offline-queue store (enqueuePublish, Packet brokerCounter, mq.emit)', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    const gate = deferred()
    const entered = deferred()
    const enqueue = store.outgoingEnqueueCombi!.bind(store)
    store.outgoingEnqueueCombi = async (subs: Array<{ clientId: string }>, packet: { topic: string }) => {
      if (packet.topic === 'ack/t') { entered.resolve(); await gate.promise }
      return enqueue(subs, packet)
    }
    let published = 0
    const { client } = await bare(patched, { published: (_p, c, cb) => { if (c) published++; cb(null) } }, store)
    const pub = await connected(await client('pub'))
    pub.send({ cmd: 'publish', topic: 'ack/t', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false })
    await entered.promise
    // PINGRESP is the barrier: it is answered while the store is held
    pub.send({ cmd: 'pingreq' })
    const order: string[] = [(await pub.next()).cmd]
    gate.resolve()
    order.push((await pub.next()).cmd)
    expect(order).toEqual(patched ? ['pingresp', 'puback'] : ['puback', 'pingresp'])
    pub.send({ cmd: 'pingreq' })
    expect((await pub.next()).cmd).toBe('pingresp')
    expect(published).toBe(1)
  })

  test('finding 1: PUBACKs are released in PUBLISH order though a later store finishes first', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    const gate = deferred()
    const entered = deferred()
    const stored: string[] = []
    const enqueue = store.outgoingEnqueueCombi!.bind(store)
    store.outgoingEnqueueCombi = async (subs: Array<{ clientId: string }>, packet: { topic: string }) => {
      if (packet.topic === 'ord/1') { entered.resolve(); await gate.promise }
      stored.push(packet.topic)
      return enqueue(subs, packet)
    }
    const { client } = await bare(patched, {}, store)
    const pub = await connected(await client('ord'))
    pub.send({ cmd: 'publish', topic: 'ord/1', payload: Buffer.from('1'), qos: 1, messageId: 1, retain: false, dup: false })
    await entered.promise
    pub.send({ cmd: 'publish', topic: 'ord/2', payload: Buffer.from('2'), qos: 1, messageId: 2, retain: false, dup: false })
    pub.send({ cmd: 'pingreq' })
    const before: string[] = []
    for (let p = await pub.next(); ; p = await pub.next()) {
      before.push(p.cmd === 'puback' ? `puback ${p.messageId}` : p.cmd)
      if (p.cmd === 'pingresp') break
    }
    // ord/2 is stored while ord/1 is held; its PUBACK waits for ord/1's
    expect(stored).toEqual(['ord/2'])
    expect(before).toEqual(patched ? ['pingresp'] : ['puback 1', 'puback 2', 'pingresp'])
    gate.resolve()
    if (patched) {
      const after = [await pub.next(), await pub.next()].map(p => `${p.cmd} ${(p as { messageId?: number }).messageId}`)
      expect(after).toEqual(['puback 1', 'puback 2'])
    }
    pub.send({ cmd: 'pingreq' })
    expect((await pub.next()).cmd).toBe('pingresp')
  })

  test('finding 1: a failed store closes the connection without the PUBACK (lib/write.js writes through mqtt-packet writeToStream)', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    store.outgoingEnqueueCombi = async () => { throw new Error('disk full') }
    const { client } = await bare(patched, {}, store)
    const pub = await connected(await client('fail'))
    pub.send({ cmd: 'publish', topic: 'fail/t', payload: Buffer.from('x'), qos: 1, messageId: 9, retain: false, dup: false })
    await pub.closed()
    const seen: string[] = []
    for (;;) {
      try { seen.push((await pub.next()).cmd) } catch { break }
    }
    expect(seen).toEqual(patched ? [] : ['puback'])
  })

  test('finding 1: a QoS 1 PUBLISH sent right behind CONNECT, before CONNACK, is acknowledged', async () => {
    const { client } = await bare(patched)
    const pub = await client('pipe')
    pub.send({ cmd: 'publish', topic: 'pipe/t', payload: Buffer.from('x'), qos: 1, messageId: 3, retain: false, dup: false })
    expect((await pub.next()).cmd).toBe('connack')
    const ack = await pub.next()
    expect([ack.cmd, (ack as { messageId?: number }).messageId]).toEqual(['puback', 3])
  })

  test('5a: dedupe() drops a lower brokerCounter (client.duplicates); the patch drops only a repeat', async () => {
    const { aedes, client } = await bare(patched)
    const sub = await connected(await client('dd'))
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dd/#', qos: 0 }] })
    expect((await sub.next()).cmd).toBe('suback')
    const c = (aedes as unknown as { clients: Record<string, { deliver0(p: object, cb: () => void): void }> }).clients.dd!
    for (const counter of [10, 5, 5, 11]) {
      c.deliver0({ cmd: 'publish', topic: 'dd/x', payload: Buffer.from(String(counter)), qos: 0, retain: false, brokerId: aedes.id, brokerCounter: counter }, () => {})
    }
    const got: string[] = []
    while (!got.includes('11')) got.push(((await sub.next()) as Packet & { payload: Buffer }).payload.toString())
    expect(got).toEqual(patched ? ['10', '5', '11'] : ['10', '11'])
  })

  test('5c: connect.js restores subscriptions before CONNACK; the patch holds deliveries until connackSent', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    const { aedes, client } = await bare(patched, {}, store)
    const first = await connected(await client('cc', false))
    first.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'cc/#', qos: 0 }] })
    expect((await first.next()).cmd).toBe('suback')
    first.socket.destroy()
    await first.closed()
    const gate = deferred()
    const entered = deferred()
    const delWill = store.delWill!.bind(store)
    store.delWill = async c => { entered.resolve(); await gate.promise; return delWill(c) }
    const again = await client('cc', false)
    await entered.promise
    // A QoS 0 publish is dispatched synchronously; unpatched, it completes once written.
    // Patched, the delivery is held by then and the publish completes only after CONNACK.
    const done = new Promise(resolve => aedes.publish({ cmd: 'publish', topic: 'cc/x', payload: Buffer.from('m'), qos: 0, retain: false, dup: false }, resolve))
    if (!patched) await done
    gate.resolve()
    const cmds = [(await again.next()).cmd, (await again.next()).cmd]
    expect(cmds).toEqual(patched ? ['connack', 'publish'] : ['publish', 'connack'])
  })

  test('5d: deliverQoS downgrades by subscriptions[topic] only; the patch by every matching filter', async () => {
    const { aedes, client } = await bare(patched)
    const sub = await connected(await client('dg'))
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'dg/#', qos: 1 }] })
    expect((await sub.next()).cmd).toBe('suback')
    const subs = (aedes as unknown as { clients: Record<string, { subscriptions: Record<string, { qos: number }> }> }).clients.dg!.subscriptions
    expect(subs['dg/#']!.qos).toBe(1)
    aedes.publish({ cmd: 'publish', topic: 'dg/x', payload: Buffer.from('m'), qos: 2, retain: false, dup: false }, () => {})
    const p = await sub.next()
    expect(p).toMatchObject({ cmd: 'publish', topic: 'dg/x', qos: patched ? 1 : 2 })
  })
})

/** Resolves once `ready()` holds, checking every few milliseconds (server-side state has no event to wait on). */
async function until (ready: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

const publishPacket = (topic: string, qos: 0 | 1 | 2 = 0, extra: object = {}) =>
  ({ cmd: 'publish', topic, payload: Buffer.from('m'), qos, retain: false, dup: false, ...extra }) as AedesPublishPacket

describe('Aedes 1.2 privates read by the accessors in internals.ts', () => {
  test('connectedClients and clientById: aedes.clients holds the registered clients by id', async () => {
    const { aedes, client } = await bare(false)
    const a = await connected(await client('ca'))
    await connected(await client('cb'))
    expect(connectedClients(aedes).map(c => c.id).sort()).toEqual(['ca', 'cb'])
    expect(clientById(aedes, 'ca')?.id).toBe('ca')
    expect(clientById(aedes, 'constructor')).toBeUndefined()
    const gone = new Promise(resolve => aedes.once('clientDisconnect', resolve))
    a.send({ cmd: 'disconnect' })
    await gone
    expect(connectedClients(aedes).map(c => c.id)).toEqual(['cb'])
  })

  test('subscriptionFilters and subscriptionCount: client.subscriptions is keyed by filter', async () => {
    const { aedes, client } = await bare(false)
    const sub = await connected(await client('sf'))
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'sf/#', qos: 1 }, { topic: 'x/+', qos: 0 }] })
    expect((await sub.next()).cmd).toBe('suback')
    const c = clientById(aedes, 'sf')!
    expect(subscriptionFilters(c).sort()).toEqual(['sf/#', 'x/+'])
    expect(subscriptionCount(c)).toBe(2)
    sub.send({ cmd: 'unsubscribe', messageId: 2, unsubscriptions: ['x/+'] })
    expect((await sub.next()).cmd).toBe('unsuback')
    expect(subscriptionFilters(c)).toEqual(['sf/#'])
  })

  test('disconnectedByPacket: client._disconnected is set by DISCONNECT only', async () => {
    const { aedes, client } = await bare(false)
    const seen: Record<string, boolean> = {}
    aedes.on('clientDisconnect', c => { seen[c.id] = disconnectedByPacket(c) })
    const polite = await connected(await client('polite'))
    const rude = await connected(await client('rude'))
    polite.send({ cmd: 'disconnect' })
    rude.socket.destroy()
    await until(() => Object.keys(seen).length === 2, 'both disconnects')
    expect(seen).toEqual({ polite: true, rude: false })
  })

  test('pauseInput: client.pause() leaves what arrives unread', async () => {
    const { aedes, client } = await bare(false)
    const raw = await connected(await client('pi'))
    // connect.js's emptyQueue calls client.resume() just after CONNACK: a ping first, so it is done
    raw.send({ cmd: 'pingreq' })
    expect((await raw.next()).cmd).toBe('pingresp')
    const c = clientById(aedes, 'pi')!
    pauseInput(c)
    raw.send({ cmd: 'pingreq' })
    await until(() => c.conn.readableLength > 0, 'the PINGREQ in the server socket')
    await new Promise(resolve => setImmediate(resolve))
    expect(c.conn.readableLength).toBe(2)
  })

  test('readNextBatch: client._nextBatch reads what a held read() left behind', async () => {
    const held = new WeakSet<object>()
    const { aedes, client } = await bare(false, {}, undefined, (_client, socket) => holdable(socket, held))
    const raw = await connected(await client('nb'))
    const c = clientById(aedes, 'nb')!
    held.add(c.conn)
    raw.send({ cmd: 'pingreq' })
    await until(() => c.conn.readableLength > 0, 'the PINGREQ in the server socket')
    held.delete(c.conn)
    readNextBatch(c)
    expect((await raw.next()).cmd).toBe('pingresp')
  })

  test('wrapDeliveries: deliver0 and deliverQoS are what a subscription captures when it is made', async () => {
    const { aedes, client } = await bare(false)
    const seen: number[] = []
    const wrap = (deliver: (p: { qos: 0 | 1 | 2 }, cb: () => void) => void) => (p: { qos: 0 | 1 | 2 }, cb: () => void) => { seen.push(p.qos); deliver(p as never, cb) }
    const early = await connected(await client('early'))
    wrapDeliveries(clientById(aedes, 'early')!, wrap as never)
    early.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wd/0', qos: 0 }, { topic: 'wd/1', qos: 1 }] })
    expect((await early.next()).cmd).toBe('suback')
    const late = await connected(await client('late'))
    late.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'wd/0', qos: 0 }, { topic: 'wd/1', qos: 1 }] })
    expect((await late.next()).cmd).toBe('suback')
    wrapDeliveries(clientById(aedes, 'late')!, wrap as never)
    aedes.publish(publishPacket('wd/0', 0), () => {})
    aedes.publish(publishPacket('wd/1', 1), () => {})
    for (const raw of [early, late]) {
      expect((await raw.next()).cmd).toBe('publish')
      expect((await raw.next()).cmd).toBe('publish')
    }
    // the wrapper installed before SUBSCRIBE saw both; the one installed after, none
    expect(seen.sort()).toEqual([0, 1])
  })

  test('emitterBacklog and replaceEmitterQueues: mq.length, mq.current and mq._messageQueue/_messageCallbacks', async () => {
    const { aedes } = await bare(false, { concurrency: 1 })
    let pushes = 0
    replaceEmitterQueues(aedes, () => {
      const fifo = new Fifo<unknown>()
      const push = fifo.push.bind(fifo)
      fifo.push = item => { pushes++; return push(item) }
      return fifo
    })
    const release: Array<() => void> = []
    const got: string[] = []
    await new Promise<void>(resolve => aedes.subscribe('eb/#', (p, cb) => { got.push(p.topic); release.push(cb) }, resolve))
    expect(emitterBacklog(aedes)).toBe(0)
    aedes.publish(publishPacket('eb/1'), () => {})
    aedes.publish(publishPacket('eb/2'), () => {})
    await until(() => release.length === 1 && emitterBacklog(aedes) === 2, 'one message in dispatch, one queued')
    expect(pushes).toBe(2) // the message and its callback, into the replaced queues
    release.shift()!()
    await until(() => release.length === 1 && got.length === 2, 'the queued message')
    release.shift()!()
    await until(() => emitterBacklog(aedes) === 0, 'an idle emitter')
    expect(got).toEqual(['eb/1', 'eb/2'])
  })

  test('writeConnack: a CONNACK written from preConnect reaches the client before the close', async () => {
    const { client } = await bare(false, {
      preConnect: (c, _packet, cb) => writeConnack(c, ConnackCode.IDENTIFIER_REJECTED, () => cb(new Error('rejected'), false))
    })
    const raw = await client('wc')
    expect(await raw.next()).toMatchObject({ cmd: 'connack', returnCode: 2, sessionPresent: false })
    await raw.closed()
  })

  test('markPacket: the published hook receives the very packet given to aedes.publish', async () => {
    const marks: unknown[] = []
    const { aedes, client } = await bare(false, { published: (p, _c, cb) => { if (p.topic.startsWith('mk/')) marks.push(packetMark(p)); cb(null) } })
    const pub = await connected(await client('mk'))
    const packet = publishPacket('mk/api')
    markPacket(packet, 'api')
    await new Promise(resolve => aedes.publish(packet, resolve))
    pub.send({ cmd: 'publish', topic: 'mk/client', payload: Buffer.from('x'), qos: 1, messageId: 1, retain: false, dup: false })
    expect((await pub.next()).cmd).toBe('puback')
    expect(marks).toEqual(['api', undefined])
  })

  test('willClientId: a will Aedes publishes for a dead broker\'s client keeps clientId, with no client', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    const seen: Array<{ clientId: string | undefined, client: unknown }> = []
    await bare(false, {
      heartbeatInterval: 25,
      published: (p, c, cb) => { if (p.topic === 'will/gone') seen.push({ clientId: willClientId(p), client: c ?? null }); cb(null) }
    }, store)
    await store.putWill({ id: 'gone' }, { topic: 'will/gone', payload: Buffer.from('bye'), qos: 0, retain: false })
    // as if stored by a broker that is no longer heard from
    ;(await store.getWill({ id: 'gone' }) as { brokerId: string }).brokerId = 'dead-broker'
    await until(() => seen.length > 0, 'the will')
    expect(seen[0]).toEqual({ clientId: 'gone', client: null })
  })

  test('isRetainedReplay: a retained replay has brokerId null, a live retained message keeps it', async () => {
    const replays: boolean[] = []
    const { aedes, client } = await bare(false, { authorizeForward: (_c, p) => { replays.push(isRetainedReplay(p)); return p } })
    await new Promise(resolve => aedes.publish(publishPacket('rr/t', 0, { retain: true }), resolve))
    const sub = await connected(await client('rr'))
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'rr/t', qos: 0 }] })
    const first = [(await sub.next()).cmd, (await sub.next()).cmd].sort()
    expect(first).toEqual(['publish', 'suback'])
    aedes.publish(publishPacket('rr/t', 0, { retain: true }), () => {})
    expect((await sub.next()).cmd).toBe('publish')
    expect(replays).toEqual([true, false])
  })

  test('SubackCode.FAILURE: Aedes reports a denied subscription with qos 0x80 in its subscribe event', async () => {
    const { aedes, client } = await bare(false, { authorizeSubscribe: (_c, sub, cb) => cb(null, sub.topic === 'no' ? null : sub) })
    const events = new Promise<Array<{ topic: string, qos: number }>>(resolve => aedes.once('subscribe', subs => resolve(subs)))
    const sub = await connected(await client('sa'))
    sub.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'no', qos: 1 }, { topic: 'yes', qos: 1 }] })
    expect(await sub.next()).toMatchObject({ cmd: 'suback', granted: [SubackCode.FAILURE, 1] })
    expect((await events).map(s => [s.topic, s.qos])).toEqual([['no', SubackCode.FAILURE], ['yes', 1]])
  })

  test('clientParser: client._parser is the mqtt-packet Parser whose privates the guards wrap', async () => {
    const counters = createCounters()
    const problems: string[] = []
    const { client } = await bare(false, {}, undefined, c => {
      guardTopics(clientParser(c), problem => problems.push(problem))
      guardPacketSize(clientParser(c), 64, counters, size => problems.push(`size ${size}`))
    })
    const big = await connected(await client('gp'))
    expect(counters.packetsReceived).toBe(1) // the CONNECT, counted in _parseLength
    big.send({ cmd: 'publish', topic: 'gp/t', payload: Buffer.alloc(100), qos: 0, retain: false, dup: false })
    await big.closed()
    const bad = await connected(await client('gt'))
    bad.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'a#', qos: 0 }] })
    await bad.closed()
    expect(problems).toEqual(['size 108', expect.stringContaining('SUBSCRIBE: filter "a#"')])
  })

  test('onRoutingError: Aedes emits "error" when the store fails while routing, and the QoS 1 publish is not acknowledged', async () => {
    const store = (await openPersistence({ type: 'memory' })).store as Store
    store.subscriptionsByTopic = async () => { throw new Error('store down') }
    const errors: string[] = []
    const { aedes, client } = await bare(true, {}, store)
    onRoutingError(aedes, err => errors.push(err.message))
    const pub = await connected(await client('re'))
    pub.send({ cmd: 'publish', topic: 're/t', payload: Buffer.from('x'), qos: 1, messageId: 7, retain: false, dup: false })
    // The barrier: a PINGRESP comes back, and no PUBACK before it.
    pub.send({ cmd: 'pingreq' })
    expect((await pub.next()).cmd).toBe('pingresp')
    expect(errors).toEqual(['store down'])
  })

  test('connectWill: client._will holds the CONNECT\'s will when authenticate runs', async () => {
    const seen: Array<ReturnType<typeof connectWill>> = []
    const { port } = await bare(false, { authenticate: (c, _u, _p, cb) => { seen.push(connectWill(c)); cb(null, true) } })
    const plain = await rawConnect(port)
    plain.send(connectPacket('cw-none'))
    expect((await plain.next()).cmd).toBe('connack')
    const withWill = await rawConnect(port)
    withWill.send(connectPacket('cw-will', { will: { topic: 'w/t', payload: Buffer.from('bye'), qos: 1, retain: true } }))
    expect((await withWill.next()).cmd).toBe('connack')
    expect(seen[0]).toBeUndefined()
    expect(seen[1]).toMatchObject({ topic: 'w/t', qos: 1, retain: true })
    expect(seen[1]!.payload.toString()).toBe('bye')
  })
})
