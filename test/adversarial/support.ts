/*
 * Shared pieces of the adversarial suite (npm run test:adversarial): the seed,
 * a broker process, RSS, the admin metrics, and a byte-level MQTT 3.1.1
 * encoder and frame reader. The encoder takes strings as raw bytes, so a test
 * can send what no client library will encode (U+0000, ill-formed UTF-8,
 * wildcards where they are forbidden); the reader keeps topic bytes raw, so a
 * test sees exactly what the broker sent.
 */
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { startCli, type CliProcess } from '../helpers/cli.js'

// ---- the seed ---------------------------------------------------------------

/**
 * ADVERSARIAL_SEED=<n> reproduces a run; without it a seed is drawn and
 * printed. Each test derives its own stream from it and its name, so running
 * one file alone reproduces that file's run.
 */
export const SEED: number = (() => {
  const env = process.env.ADVERSARIAL_SEED
  if (env !== undefined && env !== '') {
    const n = Number(env)
    if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`ADVERSARIAL_SEED must be an integer in 0..4294967295, got ${JSON.stringify(env)}`)
    return n
  }
  return Math.floor(Math.random() * 0x100000000)
})()

export function envInt (name: string, fallback: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return fallback
  const n = Number(v)
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got ${JSON.stringify(v)}`)
  return n
}

/** A small, fast, seedable PRNG (sfc32), seeded from SEED and a label. */
export class Rng {
  #a: number; #b: number; #c: number; #d: number
  constructor (seed: number, label = '') {
    // FNV-1a of the label, mixed into the seed
    let h = 0x811c9dc5
    for (const ch of label) { h ^= ch.charCodeAt(0); h = Math.imul(h, 0x01000193) >>> 0 }
    this.#a = seed >>> 0; this.#b = h; this.#c = 0x9e3779b9; this.#d = (seed ^ h ^ 0xdeadbeef) >>> 0
    for (let i = 0; i < 16; i++) this.u32()
  }

  u32 (): number {
    const t = (this.#a + this.#b + this.#d) >>> 0
    this.#d = (this.#d + 1) >>> 0
    this.#a = this.#b ^ (this.#b >>> 9)
    this.#b = (this.#c + (this.#c << 3)) >>> 0
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0
    this.#c = (this.#c + t) >>> 0
    return t
  }

  /** An integer in [0, n). */
  int (n: number): number { return Math.floor(this.u32() / 0x100000000 * n) }
  /** An integer in [lo, hi]. */
  between (lo: number, hi: number): number { return lo + this.int(hi - lo + 1) }
  chance (p: number): boolean { return this.u32() / 0x100000000 < p }
  pick<T> (items: readonly T[]): T { return items[this.int(items.length)]! }
  bytes (n: number): Buffer { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = this.int(256); return b }
  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string> (weights: Record<K, number>): K {
    const entries = Object.entries(weights) as Array<[K, number]>
    let r = this.u32() / 0x100000000 * entries.reduce((s, [, w]) => s + w, 0)
    for (const [k, w] of entries) { r -= w; if (r < 0) return k }
    return entries[entries.length - 1]![0]
  }
}

// ---- figures ----------------------------------------------------------------

/** One line of figures, prefixed so it can be grepped out of CI logs. */
export function report (test: string, figures: Record<string, unknown>): void {
  const parts = Object.entries(figures).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
  console.log(`[adversarial] ${test}: ${parts.join(' ')}`)
}

export const mib = (bytes: number) => Math.round(bytes / 1048576 * 10) / 10

/** Resident set size of a process, from /proc (Linux). */
export function rssOf (pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status)
  if (!m) throw new Error(`no VmRSS for pid ${pid}`)
  return Number(m[1]) * 1024
}

// ---- a broker process -------------------------------------------------------

export interface BrokerProcess extends CliProcess {
  /** The admin listener's port: /metrics, /api/clients. */
  adminPort: number
  /** Throws, with the exit status and the end of stderr, if the process is gone. */
  assertAlive(context: string): void
}

/** `switchyard start` in `dir` with an admin listener on port 0; waits for the admin port too. */
export async function startBrokerProcess (dir: string, config: Record<string, unknown>): Promise<BrokerProcess> {
  const cli = await startCli(dir, { ...config, admin: { port: 0 } })
  const deadline = Date.now() + 10_000
  while (cli.ports.admin === undefined) {
    if (Date.now() > deadline) throw new Error('the admin listener did not report its port')
    await new Promise(resolve => setTimeout(resolve, 10))
  }
  return {
    ...cli,
    adminPort: cli.ports.admin,
    assertAlive (context) {
      const { exitCode, signalCode } = cli.proc
      if (exitCode !== null || signalCode !== null) {
        throw new Error(`the broker process died ${context}: exit ${exitCode ?? signalCode}; stderr tail: ${cli.stderr().slice(-2000) || '(empty)'}; ` +
          `last log lines: ${JSON.stringify(cli.logs.slice(-5))}`)
      }
    }
  }
}

/** The admin /metrics values, by full sample name ('name{labels}' or 'name'). */
export async function metrics (adminPort: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/metrics`)
  const text = await res.text()
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const i = line.lastIndexOf(' ')
    out.set(line.slice(0, i), Number(line.slice(i + 1)))
  }
  return out
}

export async function metric (adminPort: number, name: string): Promise<number> {
  const v = (await metrics(adminPort)).get(name)
  if (v === undefined) throw new Error(`no metric ${name}`)
  return v
}

/** Polls `check` until true; a bound, not a timing assertion. */
export async function until (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, everyMs = 25): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, everyMs))
  }
}

// ---- MQTT 3.1.1 bytes --------------------------------------------------------

export const TYPE = { CONNECT: 1, CONNACK: 2, PUBLISH: 3, PUBACK: 4, PUBREC: 5, PUBREL: 6, PUBCOMP: 7, SUBSCRIBE: 8, SUBACK: 9, UNSUBSCRIBE: 10, UNSUBACK: 11, PINGREQ: 12, PINGRESP: 13, DISCONNECT: 14 } as const

export function varint (n: number): Buffer {
  const out: number[] = []
  do { let b = n % 128; n = Math.floor(n / 128); if (n > 0) b |= 0x80; out.push(b) } while (n > 0)
  return Buffer.from(out)
}

/** A 2-byte length and the bytes as given: no encoding, no validation. */
export function str (s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s
  const len = Buffer.alloc(2)
  len.writeUInt16BE(b.length & 0xffff)
  return Buffer.concat([len, b])
}

export const u16 = (n: number) => { const b = Buffer.alloc(2); b.writeUInt16BE(n & 0xffff); return b }

/** One packet: first byte (type << 4 | flags), remaining length, body. */
export function frame (type: number, flags: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(type << 4) | (flags & 0x0f)]), varint(body.length), body])
}

export interface ConnectFields {
  clientId: string | Buffer
  clean?: boolean
  keepalive?: number
  protocolName?: string | Buffer
  protocolLevel?: number
  will?: { topic: string | Buffer, payload: Buffer, qos: number, retain: boolean }
  username?: string | Buffer
  password?: Buffer
  /** Raw flags byte, overriding the computed one. */
  flags?: number
}

export function connectBytes (f: ConnectFields): Buffer {
  let flags = 0
  if (f.clean ?? true) flags |= 0x02
  if (f.will) flags |= 0x04 | ((f.will.qos & 3) << 3) | (f.will.retain ? 0x20 : 0)
  if (f.password !== undefined) flags |= 0x40
  if (f.username !== undefined) flags |= 0x80
  const parts = [str(f.protocolName ?? 'MQTT'), Buffer.from([f.protocolLevel ?? 4, f.flags ?? flags]), u16(f.keepalive ?? 0), str(f.clientId)]
  if (f.will) parts.push(str(f.will.topic), str(f.will.payload))
  if (f.username !== undefined) parts.push(str(f.username))
  if (f.password !== undefined) parts.push(str(f.password))
  return frame(TYPE.CONNECT, 0, Buffer.concat(parts))
}

export function publishBytes (topic: string | Buffer, payload: Buffer | string, qos: number, messageId = 1, opts: { retain?: boolean, dup?: boolean } = {}): Buffer {
  const flags = (opts.dup ? 0x08 : 0) | ((qos & 3) << 1) | (opts.retain ? 1 : 0)
  const parts = [str(topic)]
  if (qos > 0) parts.push(u16(messageId))
  parts.push(Buffer.from(payload))
  return frame(TYPE.PUBLISH, flags, Buffer.concat(parts))
}

export function subscribeBytes (messageId: number, filters: Array<[string | Buffer, number]>): Buffer {
  return frame(TYPE.SUBSCRIBE, 0x02, Buffer.concat([u16(messageId), ...filters.flatMap(([t, q]) => [str(t), Buffer.from([q])])]))
}

export function unsubscribeBytes (messageId: number, filters: Array<string | Buffer>): Buffer {
  return frame(TYPE.UNSUBSCRIBE, 0x02, Buffer.concat([u16(messageId), ...filters.map(t => str(t))]))
}

/** PUBACK, PUBREC, PUBREL (flags 0x02), PUBCOMP. */
export function ackBytes (type: number, messageId: number): Buffer {
  return frame(type, type === TYPE.PUBREL ? 0x02 : 0, u16(messageId))
}

export interface Frame { type: number, flags: number, body: Buffer }

export interface RawPublish { topic: Buffer, payload: Buffer, qos: number, retain: boolean, dup: boolean, messageId: number | undefined }

export function parsePublish (f: Frame): RawPublish {
  const len = f.body.readUInt16BE(0)
  const topic = f.body.subarray(2, 2 + len)
  const qos = (f.flags >> 1) & 3
  let at = 2 + len
  let messageId: number | undefined
  if (qos > 0) { messageId = f.body.readUInt16BE(at); at += 2 }
  return { topic: Buffer.from(topic), payload: Buffer.from(f.body.subarray(at)), qos, retain: (f.flags & 1) === 1, dup: (f.flags & 8) === 8, messageId }
}

/** Splits a byte stream into MQTT frames; throws on a malformed remaining length. */
export class FrameReader {
  #buf: Buffer = Buffer.alloc(0)
  push (chunk: Buffer): Frame[] {
    this.#buf = this.#buf.length === 0 ? chunk : Buffer.concat([this.#buf, chunk])
    const out: Frame[] = []
    for (;;) {
      if (this.#buf.length < 2) break
      let len = 0; let mult = 1; let i = 1
      for (;; i++) {
        if (i >= this.#buf.length) return out
        if (i > 4) throw new Error('malformed remaining length from the broker')
        const b = this.#buf[i]!
        len += (b & 0x7f) * mult
        mult *= 128
        if ((b & 0x80) === 0) break
      }
      const start = i + 1
      if (this.#buf.length < start + len) break
      const first = this.#buf[0]!
      out.push({ type: first >> 4, flags: first & 0x0f, body: this.#buf.subarray(start, start + len) })
      this.#buf = this.#buf.subarray(start + len)
    }
    return out
  }
}

// ---- forbidden topic names --------------------------------------------------

const strictUtf8 = new TextDecoder('utf-8', { fatal: true })

/**
 * Why a topic name a broker sends is forbidden, or undefined when it is not:
 * ill-formed UTF-8, surrogates included [MQTT-1.5.3-1]; U+0000 [MQTT-1.5.3-2];
 * a wildcard [MQTT-3.3.2-2]; empty [MQTT-4.7.3-1].
 */
export function forbiddenTopic (topic: Buffer): string | undefined {
  if (topic.length === 0) return 'empty'
  let text: string
  try { text = strictUtf8.decode(topic) } catch { return 'ill-formed UTF-8' }
  if (text.includes('\u0000')) return 'U+0000'
  if (text.includes('#') || text.includes('+')) return 'wildcard'
  return undefined
}

// ---- raw sockets -------------------------------------------------------------

/** A plain TCP connection to 127.0.0.1, resolved when connected. */
export function tcpConnect (port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true })
    s.once('connect', () => { s.off('error', reject); s.on('error', () => {}); resolve(s) })
    s.once('error', reject)
  })
}

/** A masked client WebSocket frame (binary, FIN) carrying `data` [RFC 6455 5.2]. */
export function wsFrame (data: Buffer, mask: Buffer = Buffer.from([0x12, 0x34, 0x56, 0x78])): Buffer {
  let header: Buffer
  if (data.length < 126) header = Buffer.from([0x82, 0x80 | data.length])
  else if (data.length < 65536) { header = Buffer.from([0x82, 0x80 | 126, 0, 0]); header.writeUInt16BE(data.length, 2) } else throw new Error('frame too large for this helper')
  const masked = Buffer.from(data)
  for (let i = 0; i < masked.length; i++) masked[i] = masked[i]! ^ mask[i % 4]!
  return Buffer.concat([header, mask, masked])
}

export function wsUpgradeRequest (path: string, port: number): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n'
}

/** Writes the upgrade request on `socket` and resolves once the 101 response is in; rejects on anything else. */
export function wsUpgrade (socket: net.Socket, path: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let head = ''
    const onData = (d: Buffer) => {
      head += d.toString('latin1')
      const end = head.indexOf('\r\n\r\n')
      if (end < 0) return
      socket.off('data', onData)
      if (!head.startsWith('HTTP/1.1 101')) { reject(new Error(`WebSocket upgrade refused: ${head.slice(0, end)}`)); return }
      // anything after the response head is WebSocket data: hand it back
      const rest = Buffer.from(head.slice(end + 4), 'latin1')
      if (rest.length > 0) socket.unshift(rest)
      resolve()
    }
    socket.on('data', onData)
    socket.once('close', () => reject(new Error('closed during the WebSocket upgrade')))
    socket.write(wsUpgradeRequest(path, port))
  })
}
