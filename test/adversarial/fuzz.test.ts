/*
 * A seeded fuzzer over every MQTT 3.1.1 packet type, against a real broker
 * process on LevelDB. Each case is one raw TCP connection: usually a CONNECT
 * (often with a will), then a few packets of any type, some well-formed and
 * some not, the byte stream sometimes truncated or mutated, written in pieces,
 * and ended gracefully, abruptly or by lingering until the broker closes it.
 *
 * Fails if the broker process dies, if a `#` subscriber (a raw one, keeping
 * the topic bytes the broker sent) receives a topic name MQTT forbids, live or
 * as a retained message, or if RSS grows past a bound.
 *
 * ADVERSARIAL_SEED=<n> reproduces a run; ADVERSARIAL_FUZZ_CASES sets the
 * number of connections (default 3000), ADVERSARIAL_FUZZ_RSS_MIB the bound.
 */
import { describe, expect, onTestFinished, test } from 'vitest'
import { tempDir } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import {
  ackBytes, connectBytes, envInt, forbiddenTopic, FrameReader, frame, mib, parsePublish, publishBytes, report, Rng, rssOf, SEED,
  startBrokerProcess, str, subscribeBytes, tcpConnect, TYPE, u16, unsubscribeBytes, until, metric, type BrokerProcess, type RawPublish
} from './support.js'

const CASES = envInt('ADVERSARIAL_FUZZ_CASES', 3000)
const CONCURRENCY = 24
/** RSS may grow by this much from after warm-up to after the run (LevelDB caches included). */
const RSS_BOUND_MIB = envInt('ADVERSARIAL_FUZZ_RSS_MIB', 100)
const WARMUP = 100

// ---- case generation ----------------------------------------------------------

type Forbidden = 'U+0000' | 'ill-formed UTF-8' | 'wildcard' | 'empty'

const ILL_FORMED: Buffer[] = [
  Buffer.from([0xc3, 0x28]), // lead byte, then no continuation
  Buffer.from([0x80]), // lone continuation byte
  Buffer.from([0xc0, 0xaf]), // overlong '/'
  Buffer.from([0xed, 0xa0, 0x80]), // UTF-16 surrogate U+D800
  Buffer.from([0xf5, 0x80, 0x80, 0x80]), // beyond U+10FFFF
  Buffer.from([0xff]),
  Buffer.from([0xe2, 0x82]) // truncated sequence
]
const GOOD_LEVELS = ['a', 'b', 'temp', 'x y', 'ü', '日本', '🙂', 'data', '']

function goodTopic (rng: Rng): Buffer {
  return Buffer.from(`fz/${rng.int(40)}/${rng.pick(GOOD_LEVELS)}`)
}

function forbiddenTopicName (rng: Rng, kind: Forbidden): Buffer {
  const base = goodTopic(rng)
  const at = rng.int(base.length + 1)
  const splice = (bad: Buffer) => Buffer.concat([base.subarray(0, at), bad, base.subarray(at)])
  switch (kind) {
    case 'U+0000': return splice(Buffer.from([0]))
    case 'ill-formed UTF-8': return splice(rng.pick(ILL_FORMED))
    case 'wildcard': return Buffer.from(rng.pick(['#', '+', 'fz/#', 'fz/+/a', 'fz/a#', 'fz/+', '+/+', 'w/#']))
    case 'empty': return Buffer.alloc(0)
  }
}

function topicName (rng: Rng, pForbidden: number, notes: string[], where: string): Buffer {
  if (!rng.chance(pForbidden)) return goodTopic(rng)
  const kind = rng.weighted<Forbidden>({ 'U+0000': 3, 'ill-formed UTF-8': 4, wildcard: 3, empty: 1 })
  const t = forbiddenTopicName(rng, kind)
  notes.push(`${where} ${kind} ${t.toString('hex')}`)
  return t
}

function topicFilter (rng: Rng): Buffer {
  switch (rng.weighted({ good: 6, hash: 1, bad: 2, forbidden: 2 })) {
    case 'good': return Buffer.from(rng.pick(['fz/#', 'fz/+/a', 'fz/1/#', 'fz/+/+', 'fz/2/temp', '+/+/+']))
    case 'hash': return Buffer.from('#')
    case 'bad': return Buffer.from(rng.pick(['a/#/b', 'a#', '+a', 'fz/#x', '', '#/#']))
    default: return forbiddenTopicName(rng, rng.pick(['U+0000', 'ill-formed UTF-8'] as const))
  }
}

function payload (rng: Rng, id: number, tag: string): Buffer {
  return Buffer.concat([Buffer.from(`case=${id};${tag};`), rng.bytes(rng.int(64))])
}

interface FuzzCase {
  id: number
  chunks: Buffer[]
  /** The first chunk is a CONNECT alone: wait for the CONNACK (or a close) before the rest. */
  waitConnack: boolean
  /** ms to wait after each chunk */
  gaps: number[]
  ending: 'end' | 'destroy' | 'linger'
  lingerMs: number
  /** What was forbidden in it, for the failure message. */
  notes: string[]
}

const PACKETS = {
  publish0: 8, publish1: 8, publish2: 8, retained: 3, puback: 3, pubrec: 3, pubrel: 3, pubcomp: 3,
  subscribe: 5, unsubscribe: 3, pingreq: 3, disconnect: 2, serverOnly: 2, connectAgain: 1, garbage: 2, hugeLength: 1, badLength: 1
}

function genCase (rng: Rng, id: number, clientIds: string[]): FuzzCase {
  const notes: string[] = []
  const packets: Buffer[] = []
  // Half the cases wait for their CONNACK, so that what follows reaches a
  // connected client's handlers; the others write everything at once.
  const waitConnack = rng.chance(0.5)
  if (waitConnack || rng.chance(0.76)) {
    let clientId: string | Buffer
    switch (rng.weighted({ fresh: 12, empty: 2, reuse: 2, long: 1, odd: 1 })) {
      case 'fresh': clientId = `fz-${SEED.toString(16)}-${id}`; break
      case 'empty': clientId = ''; break
      case 'reuse': clientId = clientIds.length > 0 ? rng.pick(clientIds) : `fz-${id}`; break
      case 'long': clientId = 'L'.repeat(rng.between(200, 3000)); break
      default: clientId = forbiddenTopicName(rng, rng.pick(['U+0000', 'ill-formed UTF-8'] as const))
    }
    if (typeof clientId === 'string' && clientId.startsWith('fz-')) clientIds.push(clientId)
    const protocol = rng.weighted({ v4: 17, v3: 1, v5: 1, junk: 1 })
    const will = rng.chance(0.4)
      ? { topic: topicName(rng, 0.45, notes, 'will topic'), payload: payload(rng, id, 'will'), qos: rng.chance(0.05) ? 3 : rng.int(3), retain: rng.chance(0.3) }
      : undefined
    packets.push(connectBytes({
      clientId,
      clean: rng.chance(0.85),
      keepalive: rng.pick([0, 0, 1, 5, 60, 65535]),
      protocolName: protocol === 'v3' ? 'MQIsdp' : protocol === 'junk' ? rng.bytes(rng.int(6)) : 'MQTT',
      protocolLevel: protocol === 'v3' ? 3 : protocol === 'v5' ? 5 : protocol === 'junk' ? rng.int(256) : 4,
      ...(will ? { will } : {}),
      ...(rng.chance(0.1) ? { username: rng.chance(0.5) ? 'user' : rng.bytes(rng.int(8)) } : {}),
      ...(rng.chance(0.1) ? { password: rng.bytes(rng.int(12)) } : {}),
      ...(!waitConnack && rng.chance(0.05) ? { flags: rng.int(256) } : {})
    }))
  }
  const connectPart = waitConnack ? packets.splice(0) : []
  const count = rng.int(9)
  for (let j = 0; j < count; j++) {
    const mid = rng.chance(0.05) ? 0 : rng.between(1, 65535)
    switch (rng.weighted(PACKETS)) {
      case 'publish0': case 'publish1': case 'publish2': case 'retained': {
        const qos = rng.chance(0.03) ? 3 : rng.int(3)
        const retain = rng.chance(0.1)
        packets.push(publishBytes(topicName(rng, 0.3, notes, `publish qos ${qos}${retain ? ' retained' : ''}`), payload(rng, id, `p${j}`), qos, mid, { retain, dup: rng.chance(0.1) }))
        break
      }
      case 'puback': packets.push(ackBytes(TYPE.PUBACK, mid)); break
      case 'pubrec': packets.push(ackBytes(TYPE.PUBREC, mid)); break
      case 'pubrel': packets.push(rng.chance(0.2) ? frame(TYPE.PUBREL, 0, u16(mid)) : ackBytes(TYPE.PUBREL, mid)); break // flags 0: malformed [MQTT-3.6.1-1]
      case 'pubcomp': packets.push(ackBytes(TYPE.PUBCOMP, mid)); break
      case 'subscribe': {
        const filters = Array.from({ length: rng.between(rng.chance(0.05) ? 0 : 1, 3) }, () => [topicFilter(rng), rng.chance(0.05) ? rng.between(3, 255) : rng.int(3)] as [Buffer, number])
        packets.push(rng.chance(0.1) ? frame(TYPE.SUBSCRIBE, 0, Buffer.concat([u16(mid), ...filters.map(([t]) => str(t))])) : subscribeBytes(mid, filters))
        break
      }
      case 'unsubscribe': packets.push(unsubscribeBytes(mid, Array.from({ length: rng.between(0, 2) }, () => topicFilter(rng)))); break
      case 'pingreq': packets.push(frame(TYPE.PINGREQ, 0, Buffer.alloc(0))); break
      case 'disconnect': packets.push(frame(TYPE.DISCONNECT, 0, Buffer.alloc(0))); break
      case 'serverOnly': packets.push(frame(rng.pick([0, TYPE.CONNACK, TYPE.SUBACK, TYPE.UNSUBACK, TYPE.PINGRESP, 15]), rng.int(16), rng.bytes(rng.int(5)))); break
      case 'connectAgain': packets.push(connectBytes({ clientId: `fz-again-${id}` })); break // a second CONNECT [MQTT-3.1.0-2]
      case 'garbage': packets.push(rng.bytes(rng.between(1, 200))); break
      case 'hugeLength': packets.push(Buffer.concat([Buffer.from([0x30, 0xff, 0xff, 0xff, 0x7f]), rng.bytes(rng.int(20))])); break
      case 'badLength': packets.push(Buffer.from([rng.int(256), 0xff, 0xff, 0xff, 0xff, 0x01])); break
    }
  }
  let bytes = Buffer.concat(packets)
  switch (rng.weighted({ none: 75, truncate: 12, flip: 10, insert: 3 })) {
    case 'truncate': bytes = bytes.subarray(0, rng.int(bytes.length + 1)); notes.push('truncated'); break
    case 'flip': {
      bytes = Buffer.from(bytes)
      for (let k = rng.between(1, 4); k > 0 && bytes.length > 0; k--) { const at = rng.int(bytes.length); bytes[at] = bytes[at]! ^ (1 << rng.int(8)) }
      notes.push('bit flips')
      break
    }
    case 'insert': { const at = rng.int(bytes.length + 1); bytes = Buffer.concat([bytes.subarray(0, at), rng.bytes(rng.between(1, 16)), bytes.subarray(at)]); notes.push('inserted bytes'); break }
  }
  // written in 1 to 4 pieces, to cross the parser's buffer boundaries
  const cuts = Array.from({ length: rng.int(4) }, () => rng.int(bytes.length + 1)).sort((a, b) => a - b)
  const chunks: Buffer[] = connectPart.length > 0 ? [Buffer.concat(connectPart)] : []
  let prev = 0
  for (const c of [...cuts, bytes.length]) { if (c > prev) chunks.push(bytes.subarray(prev, c)); prev = c }
  return {
    id,
    chunks,
    waitConnack: connectPart.length > 0,
    gaps: chunks.map(() => rng.chance(0.5) ? 0 : rng.int(15)),
    ending: rng.weighted({ end: 4, destroy: 3, linger: 3 }),
    lingerMs: rng.between(20, 300),
    notes
  }
}

// ---- running it -------------------------------------------------------------------

interface CaseOutcome { closedByBroker: boolean, connack: number | undefined, error: boolean }

async function runCase (port: number, c: FuzzCase): Promise<CaseOutcome> {
  const socket = await tcpConnect(port)
  const reader = new FrameReader()
  let connack: number | undefined
  let closed = false
  let closedByBroker = false
  const onClose: Array<() => void> = []
  socket.on('data', d => {
    try {
      for (const f of reader.push(d)) if (f.type === TYPE.CONNACK && f.body.length >= 2) connack ??= f.body[1]
    } catch { /* the broker's bytes are not what this test is about */ }
  })
  socket.on('end', () => { closedByBroker = true })
  socket.on('close', () => { closed = true; for (const f of onClose.splice(0)) f() })
  // The case's own pacing (gaps between chunks, lingering): time is part of the input, cut short if the broker closes.
  const closedOr = (ms: number) => new Promise<void>(resolve => {
    if (closed) { resolve(); return }
    const t = setTimeout(resolve, ms)
    onClose.push(() => { clearTimeout(t); resolve() })
  })
  try {
    for (let i = 0; i < c.chunks.length && !closed; i++) {
      socket.write(c.chunks[i]!)
      if (i === 0 && c.waitConnack) await until(() => connack !== undefined || closed, 'CONNACK', 2000, 5).catch(() => {})
      else if (c.gaps[i]! > 0) await closedOr(c.gaps[i]!)
    }
    if (c.ending === 'end') { socket.end(); await closedOr(200) } else if (c.ending === 'linger') await closedOr(c.lingerMs)
  } finally {
    socket.destroy()
  }
  return { closedByBroker, connack, error: false }
}

/**
 * A raw `#` subscriber that keeps the topic bytes as sent and acknowledges
 * QoS 1. A well-behaved client: if the broker disconnects it, that is noted
 * (with the broker's reason) and it connects again, at most 20 times, so one
 * poisonous message does not hide what follows.
 */
class RawObserver {
  readonly publishes: RawPublish[] = []
  /** Why the broker dropped it, each time. */
  readonly drops: string[] = []
  #open = false
  #stopped = false
  #socket: import('node:net').Socket | undefined

  /** How many of its disconnect log lines were already taken as reasons. */
  #logged = 0

  /** `reasons` lists the reasons of its "client disconnected" log lines so far. */
  constructor (readonly port: number, readonly clientId: string, readonly reasons: () => unknown[]) {}

  get open (): boolean { return this.#open }

  async start (): Promise<void> {
    const socket = await tcpConnect(this.port)
    this.#socket = socket
    const reader = new FrameReader()
    let subacked = false
    this.#open = true
    socket.on('close', () => {
      this.#open = false
      if (this.#stopped) return
      // The log line may trail the close: wait for it (bounded: a drop without one still counts).
      const seen = this.#logged
      until(() => this.reasons().length > seen, `the log line of ${this.clientId}'s disconnect`, 2000, 5).catch(() => {}).then(() => {
        const all = this.reasons()
        this.#logged = all.length
        this.drops.push(JSON.stringify((all.length > seen ? all.at(-1) : undefined) ?? 'no log line'))
        if (this.drops.length < 20) this.start().catch(() => {})
      })
    })
    socket.on('data', d => {
      for (const f of reader.push(d)) {
        if (f.type === TYPE.SUBACK) subacked = true
        if (f.type !== TYPE.PUBLISH) continue
        const p = parsePublish(f)
        this.publishes.push(p)
        if (p.qos === 1) socket.write(ackBytes(TYPE.PUBACK, p.messageId!))
      }
    })
    socket.write(connectBytes({ clientId: this.clientId, keepalive: 0 }))
    socket.write(subscribeBytes(1, [['#', 1]]))
    await until(() => subacked || !this.#open, `${this.clientId}'s SUBACK`)
  }

  waitFor (check: (p: RawPublish[]) => boolean, what: string, ms: number): Promise<void> {
    return until(() => check(this.publishes), `${what} (the # subscriber was dropped ${this.drops.length} time(s): ${this.drops.slice(-2).join('; ')})`, ms)
  }

  stop (): void { this.#stopped = true; this.#socket?.destroy() }
}

async function rawObserver (port: number, clientId: string, reasons: () => unknown[]): Promise<RawObserver> {
  const o = new RawObserver(port, clientId, reasons)
  onTestFinished(() => o.stop())
  await o.start()
  return o
}

function hexOf (c: FuzzCase): string {
  const hex = Buffer.concat(c.chunks).toString('hex')
  return hex.length > 1200 ? `${hex.slice(0, 1200)}… (${hex.length / 2} bytes)` : hex
}

interface Delivered { why: string, topic: string, retain: boolean, from: string }

const results: {
  cases?: FuzzCase[]
  live?: Delivered[]
  retained?: Delivered[]
  rss?: { baseline: number, peak: number, final: number }
  drops?: string[]
  /** Retained messages stored, and how many a new # subscriber received. */
  replay?: { stored: number, replayed: number }
} = {}

/** The replacement character: what ill-formed UTF-8 becomes when a broker decodes it leniently and encodes it again. */
const REPLACEMENT = Buffer.from('\ufffd')

function describeDelivery (p: RawPublish, cases: FuzzCase[]): Delivered | undefined {
  // No generated topic contains U+FFFD, so one arriving was ill-formed UTF-8 when sent.
  const why = forbiddenTopic(p.topic) ?? (p.topic.includes(REPLACEMENT) ? 'ill-formed UTF-8 (forwarded as U+FFFD)' : undefined)
  if (why === undefined) return undefined
  const m = /^case=(\d+);/.exec(p.payload.toString('latin1'))
  const c = m ? cases[Number(m[1])] : undefined
  return {
    why,
    topic: p.topic.toString('hex'),
    retain: p.retain,
    from: c ? `case ${c.id} (${c.notes.join(', ') || 'mutated'}), bytes sent: ${hexOf(c)}` : 'unknown case'
  }
}

function summary (delivered: Delivered[]): string {
  const byWhy: Record<string, number> = {}
  for (const d of delivered) byWhy[d.why] = (byWhy[d.why] ?? 0) + 1
  return `${delivered.length} message(s) on forbidden topic names ${JSON.stringify(byWhy)} (seed ${SEED}; reproduce with ADVERSARIAL_SEED=${SEED} npm run test:adversarial -- fuzz). ` +
    'First ones (topic hex, then the connection that caused it):\n' +
    delivered.slice(0, 6).map(d => `  - ${d.topic} [${d.why}${d.retain ? ', retained' : ''}] from ${d.from}`).join('\n')
}

describe(`seeded fuzzer over every packet type (seed ${SEED})`, () => {
  test(`${CASES} raw connections against a LevelDB broker process: it survives them and still serves`, { timeout: 300_000 }, async () => {
    const rng = new Rng(SEED, 'fuzz')
    const broker: BrokerProcess = await startBrokerProcess(tempDir(), {
      listeners: [{ type: 'tcp', port: 0 }],
      persistence: { type: 'level', path: 'data' },
      log: { level: 'info' }
    })
    const port = broker.ports.tcp!
    const pid = broker.proc.pid!
    const clientIds: string[] = []
    const cases = Array.from({ length: CASES }, (_, i) => genCase(rng, i, clientIds))
    results.cases = cases
    const observerId = `adv-observer-${SEED}`
    const reasonOf = (id: string) => () => broker.logs.filter(l => l.clientId === id && l.msg === 'client disconnected').map(l => l.reason)
    const observer = await rawObserver(port, observerId, reasonOf(observerId))

    let peak = 0
    let baseline = 0
    const sampler = setInterval(() => { try { peak = Math.max(peak, rssOf(pid)) } catch { /* exited */ } }, 100)
    const outcomes: CaseOutcome[] = []
    const started = Date.now()
    let next = 0
    let died: Error | undefined
    broker.exited.then(code => { died ??= new Error(`the broker process exited (${code}) during the fuzz run; seed ${SEED}`) })
    const inFlight = new Set<number>()
    const worker = async () => {
      while (next < cases.length && died === undefined) {
        const c = cases[next++]!
        if (c.id === WARMUP) { baseline = rssOf(pid); peak = baseline }
        inFlight.add(c.id)
        try {
          outcomes.push(await runCase(port, c))
        } catch (err) {
          outcomes.push({ closedByBroker: true, connack: undefined, error: true })
          // ECONNREFUSED means the broker is gone: say which cases were running
          if ((err as NodeJS.ErrnoException).code === 'ECONNREFUSED') {
            died ??= new Error(`connection refused at case ${c.id}: the broker is gone. Cases in flight: ${[...inFlight].join(', ')}; seed ${SEED}`)
          }
        } finally {
          inFlight.delete(c.id)
        }
      }
    }
    await Promise.all(Array.from({ length: CONCURRENCY }, worker))
    const elapsed = (Date.now() - started) / 1000
    clearInterval(sampler)
    if (died) {
      const last = [...inFlight].map(id => `case ${id}: ${hexOf(cases[id]!)}`).join('\n')
      throw new Error(`${died.message}\n${broker.stderr().slice(-2000)}\n${last}`)
    }
    broker.assertAlive('during the fuzz run')

    // Barrier: once every fuzz connection is gone (and its will published),
    // a message from a well-behaved client reaches the observer after
    // everything the fuzz cases caused.
    let open = -1
    await until(async () => (open = await metric(broker.adminPort, 'switchyard_connections_open')) <= 1, 'every fuzz connection to close', 30_000, 100)
      .catch(err => { throw new Error(`${(err as Error).message}: ${open} connections still open (the observer's included: ${observer.open}); seed ${SEED}`) })
    // Still serving: a well-behaved client gets its own message back.
    const healthy = await connect(`mqtt://127.0.0.1:${port}`, { clientId: `adv-healthy-${SEED}` })
    await healthy.subscribeAsync(`barrier/${SEED}`, { qos: 1 })
    await healthy.publishAsync(`barrier/${SEED}`, 'barrier', { qos: 1 })
    await inbox(healthy).waitFor(1, 10_000)
    const problems: string[] = []
    await observer.waitFor(ps => ps.some(p => p.topic.toString() === `barrier/${SEED}`), 'the barrier message at the # subscriber', 15_000)
      .catch(err => problems.push((err as Error).message))
    broker.assertAlive('after the fuzz run')
    const final = rssOf(pid)
    results.rss = { baseline, peak: Math.max(peak, final), final }
    results.live = observer.publishes.map(p => describeDelivery(p, cases)).filter((d): d is Delivered => d !== undefined)

    // Retained: a new `#` subscriber receives every retained message stored.
    const stored = await metric(broker.adminPort, 'switchyard_retained_messages')
    const late = await rawObserver(port, `adv-late-${SEED}`, reasonOf(`adv-late-${SEED}`))
    let replayComplete = true
    await late.waitFor(ps => ps.filter(p => p.retain).length >= stored, `${stored} retained messages`, 20_000).catch(() => { replayComplete = false })
    results.retained = late.publishes.filter(p => p.retain).map(p => describeDelivery(p, cases)).filter((d): d is Delivered => d !== undefined)
    results.replay = { stored, replayed: late.publishes.filter(p => p.retain).length }

    results.drops = [...observer.drops.map(r => `live # subscriber: ${r}`), ...late.drops.map(r => `new # subscriber, during the retained replay: ${r}`)]
    const connacks: Record<string, number> = {}
    for (const o of outcomes) { const k = o.connack === undefined ? 'none' : String(o.connack); connacks[k] = (connacks[k] ?? 0) + 1 }
    report('fuzz', {
      seed: SEED,
      cases: cases.length,
      bytesSent: cases.reduce((s, c) => s + c.chunks.reduce((t, b) => t + b.length, 0), 0),
      casesWithForbiddenTopics: cases.filter(c => c.notes.some(n => n.includes('topic'))).length,
      seconds: elapsed.toFixed(1),
      casesPerSecond: Math.round(cases.length / elapsed),
      connackByReturnCode: connacks,
      closedByBroker: outcomes.filter(o => o.closedByBroker).length,
      deliveredToObserver: observer.publishes.length,
      forbiddenLive: results.live.length,
      retainedStored: stored,
      retainedReplayed: late.publishes.filter(p => p.retain).length + (replayComplete ? '' : ' (incomplete after 20 s)'),
      forbiddenRetained: results.retained.length,
      subscriberDrops: results.drops.length,
      rssBaselineMiB: mib(baseline),
      rssPeakMiB: mib(results.rss.peak),
      rssFinalMiB: mib(final),
      rssGrowthMiB: mib(final - baseline),
      rssBoundMiB: RSS_BOUND_MIB
    })
    if (problems.length > 0) expect.fail(`${problems.join('\n')}; seed ${SEED}`)
  })

  test('no message on a forbidden topic name (U+0000, ill-formed UTF-8, wildcards, will topics included) reaches a # subscriber', () => {
    expect(results.live, 'the fuzz run did not complete').toBeDefined()
    if (results.live!.length > 0) expect.fail(`[MQTT-1.5.3-1, MQTT-1.5.3-2, MQTT-3.3.2-2] delivered live to a # subscriber: ${summary(results.live!)}`)
  })

  test('no retained message is stored under a forbidden topic name', () => {
    expect(results.retained, 'the fuzz run did not complete').toBeDefined()
    if (results.retained!.length > 0) expect.fail(`replayed as retained to a new # subscriber: ${summary(results.retained!)}`)
    const { stored, replayed } = results.replay!
    if (replayed < stored) expect.fail(`a new # subscriber received ${replayed} of the ${stored} retained messages stored, so the others could not be checked (it was dropped ${results.drops!.filter(d => d.startsWith('new')).length} time(s)); seed ${SEED}`)
  })

  test('a well-behaved # subscriber is never disconnected because of what other clients sent', () => {
    expect(results.drops, 'the fuzz run did not complete').toBeDefined()
    if (results.drops!.length > 0) {
      expect.fail(`the broker dropped a # subscriber ${results.drops!.length} time(s), with these reasons: ${[...new Set(results.drops)].join(' | ')}. ` +
        `A message the broker cannot encode (Aedes then fails the write) costs every subscriber it is sent to; seed ${SEED}`)
    }
  })

  test(`RSS grows by at most ${RSS_BOUND_MIB} MiB over the run`, () => {
    expect(results.rss, 'the fuzz run did not complete').toBeDefined()
    const { baseline, peak, final } = results.rss!
    expect(mib(final - baseline), `RSS went from ${mib(baseline)} MiB (after ${WARMUP} warm-up cases) to ${mib(final)} MiB (peak ${mib(peak)} MiB); seed ${SEED}`).toBeLessThanOrEqual(RSS_BOUND_MIB)
  })
})
