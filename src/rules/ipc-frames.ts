/*
 * Binary frames for the conversion batches between the broker and the rule
 * host (issue 16): one Buffer per batch, each way, instead of an array of
 * objects for the IPC channel's structured clone. Node's 'advanced'
 * serialization walks every object of a batch, calls back into JavaScript for
 * each payload's bytes, and the other side rebuilds the objects; a frame is
 * written and read with a few Buffer calls per message, and crosses the
 * channel as one host object (docs/benchmarks.md, "Where the time goes").
 *
 * What every message has travels as fixed fields; what few have (MQTT 5
 * properties, console logs, errors, any field added to the protocol later)
 * travels as a v8.serialize() blob, so a new field needs no change here.
 *
 * A jobs frame:    u32 rule count, each rule (u16 length, UTF-8);
 *                  then per job: f64 id, u32 rule index, u8 flags,
 *                  f64 timestamp, topic (u32 length, UTF-8), payload (u32, bytes),
 *                  [clientId (u32, UTF-8)], [username (u32, UTF-8)], [extra (u32, v8)]
 * A results frame: the same rule table; per result: f64 id, u32 rule index,
 *                  f64 ms, u8 kind, u8 flags, then for 'ok' a u32 output count
 *                  and the outputs, else the error (u32, UTF-8);
 *                  [logs (u32, v8)], [extra (u32, v8)]
 * An output:       u8 flags, topic (u32, UTF-8), payload (u32, bytes), [extra (u32, v8)]
 * Numbers are little-endian. A text payload (flag TEXT) arrives as text:
 * `switchyard rule test` prints text and bytes differently.
 */
import { Reader, Writer } from './ipc-buffers.js'
import type { ConvertResult, RawOutput, RuleMessage, SandboxMessage } from './protocol.js'

export interface FrameJob { id: number, rule: string, msg: RuleMessage }
/** A job as the rule host reads it: with `msg.payload`, the text of the bytes, read from the frame. */
export interface DecodedJob { id: number, rule: string, msg: SandboxMessage }
export interface FrameResult { id: number, rule: string, ms: number, result: ConvertResult }

// Job flags
const QOS_MASK = 0b11
const RETAIN = 1 << 2
const CLIENT_ID = 1 << 3
const USERNAME = 1 << 4
const EXTRA = 1 << 5
// Output flags (QOS_MASK, RETAIN and EXTRA as above)
const HAS_QOS = 1 << 3
const HAS_RETAIN = 1 << 4
const TEXT = 1 << 6
// Result flags
const LOGS = 1 << 0
const RESULT_EXTRA = 1 << 1

const KINDS = ['ok', 'error', 'timeout', 'memory', 'crash'] as const
type Kind = typeof KINDS[number]
const KIND_CODE: Record<Kind, number> = { ok: 0, error: 1, timeout: 2, memory: 3, crash: 4 }

const MSG_KEYS = new Set(['topic', 'bytes', 'qos', 'retain', 'clientId', 'username', 'timestamp'])
const OUTPUT_KEYS = new Set(['topic', 'payload', 'qos', 'retain'])
const RESULT_KEYS = new Set(['kind', 'outputs', 'error', 'logs'])

/** Reused for every frame: the IPC channel copies a frame synchronously, before the next is written. */
const writer = new Writer()

/** Rule names, written once per frame and referred to by index. */
function ruleTable (w: Writer, items: ReadonlyArray<{ rule: string }>): Map<string, number> {
  const index = new Map<string, number>()
  for (const { rule } of items) if (!index.has(rule)) index.set(rule, index.size)
  w.u32(index.size)
  for (const rule of index.keys()) w.str(rule, true)
  return index
}

function readRules (r: Reader): string[] {
  const rules: string[] = []
  for (let n = r.u32(); n > 0; n--) rules.push(r.str(true))
  return rules
}

/** What `value` has beyond `known` keys, or undefined. */
function extraOf (value: object, known: ReadonlySet<string>): Record<string, unknown> | undefined {
  let extra: Record<string, unknown> | undefined
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key]
    if (known.has(key) || v === undefined) continue
    ;(extra ??= {})[key] = v
  }
  return extra
}

/** The frame of `jobs`: valid until the next encode (send it at once). */
export function encodeJobs (jobs: readonly FrameJob[]): Buffer {
  const w = writer.reset()
  const rules = ruleTable(w, jobs)
  for (const { id, rule, msg } of jobs) {
    const extra = extraOf(msg, MSG_KEYS)
    w.f64(id)
    w.u32(rules.get(rule)!)
    w.u8(msg.qos | (msg.retain ? RETAIN : 0) | (msg.clientId !== null ? CLIENT_ID : 0) | (msg.username !== null ? USERNAME : 0) | (extra ? EXTRA : 0))
    w.f64(msg.timestamp)
    w.str(msg.topic)
    w.bytes(msg.bytes)
    if (msg.clientId !== null) w.str(msg.clientId)
    if (msg.username !== null) w.str(msg.username)
    if (extra) w.blob(extra)
  }
  return w.done()
}

export function decodeJobs (frame: Uint8Array): DecodedJob[] {
  const r = new Reader(frame)
  const rules = readRules(r)
  const jobs: DecodedJob[] = []
  while (r.off < r.buf.length) {
    const id = r.f64()
    const rule = rules[r.u32()]!
    const flags = r.u8()
    const timestamp = r.f64()
    const topic = r.str()
    // The text too, once (a third of the host's work per message was
    // making it from a copy of the bytes, and a copy of the message with it).
    const payload = r.text()
    const bytes = r.bytes(true)
    const clientId = flags & CLIENT_ID ? r.str() : null
    const username = flags & USERNAME ? r.str() : null
    const msg: SandboxMessage = { topic, bytes, qos: (flags & QOS_MASK) as 0 | 1 | 2, retain: (flags & RETAIN) !== 0, clientId, username, timestamp, payload }
    if (flags & EXTRA) Object.assign(msg, r.blob())
    jobs.push({ id, rule, msg })
  }
  return jobs
}

/** The frame of `results`: valid until the next encode (send it at once). */
export function encodeResults (results: readonly FrameResult[]): Buffer {
  const w = writer.reset()
  const rules = ruleTable(w, results)
  for (const { id, rule, ms, result } of results) {
    const extra = extraOf(result, RESULT_KEYS)
    const logs = result.logs.length > 0
    w.f64(id)
    w.u32(rules.get(rule)!)
    w.f64(ms)
    w.u8(KIND_CODE[result.kind])
    w.u8((logs ? LOGS : 0) | (extra ? RESULT_EXTRA : 0))
    if (result.kind === 'ok') {
      w.u32(result.outputs.length)
      for (const o of result.outputs) writeOutput(w, o)
    } else {
      w.str(result.error)
    }
    if (logs) w.blob(result.logs)
    if (extra) w.blob(extra)
  }
  return w.done()
}

// A UTF-16 surrogate not part of a pair: UTF-8 would turn it into U+FFFD, a
// valid topic, so an output the broker must refuse [MQTT-1.5.3-1] would pass.
const LONE_SURROGATE = /\p{Surrogate}/u

function writeOutput (w: Writer, o: RawOutput): void {
  let extra = extraOf(o, OUTPUT_KEYS)
  // Such a topic crosses in the v8 blob, which keeps the string as it is, so
  // the broker's topic check (src/topics.ts) sees it and fails the conversion.
  if (LONE_SURROGATE.test(o.topic)) (extra ??= {}).topic = o.topic
  const qos = o.qos === undefined ? 0 : HAS_QOS | o.qos
  const retain = o.retain === undefined ? 0 : HAS_RETAIN | (o.retain ? RETAIN : 0)
  const text = typeof o.payload === 'string'
  w.u8(qos | retain | (extra ? EXTRA : 0) | (text ? TEXT : 0))
  w.str(o.topic)
  if (typeof o.payload === 'string') w.str(o.payload)
  else w.bytes(o.payload)
  if (extra) w.blob(extra)
}

export function decodeResults (frame: Uint8Array): FrameResult[] {
  const r = new Reader(frame)
  const rules = readRules(r)
  const results: FrameResult[] = []
  while (r.off < r.buf.length) {
    const id = r.f64()
    const rule = rules[r.u32()]!
    const ms = r.f64()
    const kind = KINDS[r.u8()]!
    const flags = r.u8()
    let result: ConvertResult
    if (kind === 'ok') {
      const outputs: RawOutput[] = []
      for (let n = r.u32(); n > 0; n--) outputs.push(readOutput(r))
      result = { kind, outputs, logs: [] }
    } else {
      result = { kind, error: r.str(), logs: [] } as ConvertResult
    }
    if (flags & LOGS) result.logs = r.blob() as Array<[string, string]>
    if (flags & RESULT_EXTRA) Object.assign(result, r.blob())
    results.push({ id, rule, ms, result })
  }
  return results
}

/**
 * An output's bytes as a Buffer of their own (pooled when small), which the
 * broker publishes as it is: one copy and one Buffer object, where
 * Buffer.from(subarray) made two. Not a view of the frame: a retained or
 * queued output would keep the whole frame alive.
 */
function bufferOf (r: Reader): Buffer {
  const n = r.u32()
  const bytes = Buffer.allocUnsafe(n)
  r.buf.copy(bytes, 0, r.off, r.off + n)
  r.off += n
  return bytes
}

function readOutput (r: Reader): RawOutput {
  const flags = r.u8()
  const topic = r.str()
  const o: RawOutput = { topic, payload: flags & TEXT ? r.str() : bufferOf(r) }
  if (flags & HAS_QOS) o.qos = (flags & QOS_MASK) as 0 | 1 | 2
  if (flags & HAS_RETAIN) o.retain = (flags & RETAIN) !== 0
  if (flags & EXTRA) Object.assign(o, r.blob())
  return o
}
