/*
 * Entry point of the rule host: a child process of the broker that runs
 * every rule in its own isolate. If V8 dies in here (an out-of-memory that
 * escapes the isolate limit, a catastrophic error), only this process dies;
 * the broker counts it, restarts the host and reloads the rules.
 *
 * Each rule has a FIFO queue and runs one message at a time, so its outputs
 * keep the order of its inputs. Different rules run in parallel on
 * isolated-vm's threads; this process's event loop only moves messages.
 */
import { expiryLeft } from '../properties.js'
import type { LoadLimits } from './host-loads.js'
import { IdleRelease, type IsolateIdleMs } from './isolate-pool.js'
import type { ConvertResult, FromHost, RuleMessage, SandboxMessage, ToHost } from './protocol.js'
import { decodeJobs, encodeResults } from './ipc-frames.js'
import { hostStates, RuleSandbox } from './sandbox.js'
import { checkExports, type Limits } from './validate.js'

interface Job { id: number, msg: RuleMessage }
interface Slot {
  name: string
  source: string
  limits: Limits
  sandbox: RuleSandbox | undefined
  /** Set when making its isolate again failed (after a memory error, or once released idle). */
  broken: string | undefined
  /** Releases the isolate once idle (isolate-pool.ts); none when it lives as long as the rule. */
  idle: IdleRelease | undefined
  queue: Job[]
  running: boolean
  /** A replaced sandbox still running its last job. */
  retired: RuleSandbox | undefined
  /** Messages left to convert one at a time, after a memory error in a batch. */
  cautious: number
}

const slots = new Map<string, Slot>()
/**
 * Conversions for a rule that has no slot yet but is being loaded. After a
 * restart the broker sends every load and then the conversions held
 * meanwhile; a load is asynchronous, so without this they would find no rule.
 */
const loading = new Map<string, { loads: number, jobs: Job[] }>()
let outbox: Array<{ id: number, rule: string, ms: number, result: ConvertResult }> = []
let flushQueued = false

const send = (message: FromHost) => { process.send!(message) }

// isolated-vm README: after a catastrophic error "end the process by calling
// process.abort()". The broker restarts us.
const catastrophe = (message: string) => {
  process.stderr.write(`rule host: catastrophic isolated-vm error: ${message}\n`)
  process.abort()
}

async function load (id: number, name: string, source: string, max: Limits): Promise<void> {
  const pending = slots.has(name) ? undefined : loading.get(name) ?? { loads: 0, jobs: [] }
  if (pending) {
    pending.loads++
    loading.set(name, pending)
  }
  const ok = await loadSlot(id, name, source, max)
  if (!pending || loading.get(name) !== pending) return
  pending.loads--
  if (!ok && pending.loads > 0) return // another load of it may still succeed
  loading.delete(name)
  const slot = slots.get(name)
  for (const job of pending.jobs) {
    if (slot) slot.queue.push(job)
    else reply(job.id, name, 0, { kind: 'error', error: `rule is not loaded${ok ? '' : ' (its load failed)'}`, logs: [] })
  }
  if (slot) void pump(slot)
}

async function loadSlot (id: number, name: string, source: string, asked: LoadLimits): Promise<boolean> {
  // The isolate policy travels with the limits (host-loads.ts); the rule's own limits are checked without it.
  const { isolateIdleMs = null, ...max } = asked
  let sandbox: RuleSandbox
  try {
    sandbox = await RuleSandbox.create(name, source, max, catastrophe)
  } catch (err) {
    send({ t: 'loaded', id, ok: false, error: (err as Error).message })
    return false
  }
  const checked = checkExports(sandbox.exports, max)
  if ('problems' in checked) {
    sandbox.dispose()
    send({ t: 'loaded', id, ok: false, error: checked.problems.join('; ') })
    return false
  }
  const { limits } = checked.meta
  if (limits.memoryLimitMb !== max.memoryLimitMb || limits.timeoutMs !== max.timeoutMs) {
    // The heap limit is fixed when an isolate is made: make it again, lower.
    sandbox.dispose()
    try {
      sandbox = await RuleSandbox.create(name, source, limits, catastrophe)
    } catch (err) {
      send({ t: 'loaded', id, ok: false, error: (err as Error).message })
      return false
    }
  }
  // Made to read and check its exports: released now, made again on the first matching message (isolate-pool.ts).
  if (isolateIdleMs !== null) sandbox.dispose()
  const slot = slots.get(name)
  if (slot) {
    if (slot.running) slot.retired = slot.sandbox
    else slot.sandbox?.dispose()
    slot.idle?.cancel()
    Object.assign(slot, { source, limits, sandbox, broken: undefined, idle: releaser(slot, isolateIdleMs) })
  } else {
    const added: Slot = { name, source, limits, sandbox, broken: undefined, idle: undefined, queue: [], running: false, retired: undefined, cautious: 0 }
    added.idle = releaser(added, isolateIdleMs)
    slots.set(name, added)
  }
  send({ t: 'loaded', id, ok: true, meta: checked.meta })
  return true
}

function releaser (slot: Slot, idleMs: IsolateIdleMs): IdleRelease | undefined {
  if (idleMs === null) return undefined
  return new IdleRelease(idleMs, () => {
    if (slot.running || slot.queue.length > 0) return // pump() starts the clock again when it is done
    slot.sandbox?.dispose()
    slot.sandbox = undefined
  })
}

function unload (name: string): void {
  hostStates.drop(name)
  const pending = loading.get(name)
  if (pending) {
    loading.delete(name)
    for (const job of pending.jobs) reply(job.id, name, 0, { kind: 'error', error: 'rule was unloaded', logs: [] })
  }
  const slot = slots.get(name)
  if (!slot) return
  slots.delete(name)
  slot.idle?.cancel()
  for (const job of slot.queue) reply(job.id, name, 0, { kind: 'error', error: 'rule was unloaded', logs: [] })
  slot.queue = []
  if (slot.running) slot.retired = slot.sandbox
  else slot.sandbox?.dispose()
}

const MAX_BATCH = 256

async function pump (slot: Slot): Promise<void> {
  if (slot.running) return
  slot.running = true
  while (slot.queue.length > 0) {
    if (slot.sandbox === undefined || slot.sandbox.disposed) {
      try {
        slot.sandbox = await RuleSandbox.create(slot.name, slot.source, slot.limits, catastrophe)
        slot.broken = undefined
      } catch (err) {
        slot.sandbox = undefined
        slot.broken = `could not make the rule's isolate again (after a memory error, or once released idle): ${(err as Error).message}`
      }
    }
    if (slot.sandbox === undefined) {
      const job = slot.queue.shift()!
      reply(job.id, slot.name, 0, { kind: 'error', error: slot.broken ?? 'rule is not loaded', logs: [] })
      continue
    }
    // After a memory error, go one message at a time until the culprit is
    // found: the rest of a failed batch is converted again in a new isolate.
    const jobs = slot.queue.splice(0, slot.cautious > 0 ? 1 : MAX_BATCH)
    const started = process.hrtime.bigint()
    const results = await slot.sandbox.convertBatch(jobs.map(j => withText(j.msg)))
    // Times are per call, shared evenly by its messages.
    const ms = Number(process.hrtime.bigint() - started) / 1e6 / Math.max(1, results.length)
    results.forEach((result, i) => reply(jobs[i]!.id, slot.name, ms, result))
    if (results.length < jobs.length) {
      // The isolate died of memory mid-batch: what did not finish goes back
      // first, to be converted one at a time in a new isolate.
      slot.queue.unshift(...jobs.slice(results.length))
      slot.cautious = jobs.length - results.length
    } else {
      slot.cautious = Math.max(0, slot.cautious - jobs.length)
    }
    if (slot.retired) { slot.retired.dispose(); slot.retired = undefined }
  }
  slot.running = false
  slot.idle?.used()
}

// msg.payload: the text of the bytes, decoded here rather than in the broker;
// decodeJobs (ipc-frames.ts) reads it from the frame, and the message is used as it is.
function withText (msg: RuleMessage | SandboxMessage): SandboxMessage {
  const text: SandboxMessage = 'payload' in msg ? msg : { ...msg, payload: Buffer.from(msg.bytes.buffer, msg.bytes.byteOffset, msg.bytes.byteLength).toString('utf8') }
  const expiry = text.properties?.messageExpiryInterval
  if (expiry === undefined) return text
  // What is left of the lifetime once the rule's turn comes (a backlog can be long).
  return { ...text, properties: { ...text.properties, messageExpiryInterval: expiryLeft(expiry, text.timestamp, Date.now()) } }
}

function reply (id: number, rule: string, ms: number, result: ConvertResult): void {
  outbox.push({ id, rule, ms, result })
  if (!flushQueued) {
    flushQueued = true
    setImmediate(() => {
      flushQueued = false
      const results = outbox
      outbox = []
      send({ t: 'results', frame: encodeResults(results) })
    })
  }
}

process.on('message', (message: ToHost) => {
  switch (message.t) {
    case 'load':
      hostStates.seed(message.name, message.state)
      void load(message.id, message.name, message.source, message.limits)
      break
    case 'unload':
      unload(message.name)
      break
    case 'convert':
      // Acknowledged before any of it runs: if this process dies, the broker
      // knows which batches reached it (lost) and which did not (sent again).
      // The broker sends at most HOST_WINDOW (conversions.ts) per rule, two
      // of our MAX_BATCH calls, and keeps the rest of a backlog itself.
      send({ t: 'received', seq: message.seq })
      for (const job of decodeJobs(message.frame)) {
        const pending = loading.get(job.rule)
        if (pending) { pending.jobs.push({ id: job.id, msg: job.msg }); continue }
        const slot = slots.get(job.rule)
        if (!slot) { reply(job.id, job.rule, 0, { kind: 'error', error: 'rule is not loaded', logs: [] }); continue }
        slot.queue.push({ id: job.id, msg: job.msg })
        void pump(slot)
      }
      break
  }
})

// The broker went away (or closed us): nothing left to do.
process.on('disconnect', () => process.exit(0))
send({ t: 'ready' })
