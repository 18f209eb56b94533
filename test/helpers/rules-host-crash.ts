/*
 * The rule host killed under load (issue 9, finding 4), as a reusable
 * scenario: one rule copies `in` to `out`, a publisher streams messages, and
 * the rule host is SIGKILLed mid-stream. Used by
 * test/integration/rules-host-crash.test.ts and meant for test/adversarial/.
 *
 * Synchronization is on events and counters only: the kill happens in the
 * handler of the K-th converted message, and the end is when every matched
 * message is accounted for (converted, lost to the crash, or skipped).
 */
import type { MqttClient } from 'mqtt'
import type { Broker } from '../../src/index.js'
import type { RuleStateView } from '../../src/rules/state.js'
import { urlFor } from './broker.js'
import { connect, inbox } from './client.js'
import { rule, until } from './rules.js'

/** A rule that converts each message on `inTopic` to one on `outTopic`, payload unchanged, busy `busyMs` on each (so that work is in flight). */
export function echoRule (inTopic = 'crash/in', outTopic = 'crash/out', busyMs = 0): string {
  const busy = busyMs > 0 ? `const end = Date.now() + ${busyMs}; while (Date.now() < end) {} ` : ''
  return `export const topics = [${JSON.stringify(inTopic)}]; export function convert (m) { ${busy}return { topic: ${JSON.stringify(outTopic)}, payload: m.payload } }`
}

export interface HostCrashOptions {
  /** The rule's name (its file is `<name>.js`), running echoRule(inTopic, outTopic). */
  rule: string
  inTopic?: string
  outTopic?: string
  /** QoS of the publishes and of both subscriptions. */
  qos: 0 | 1
  /** Messages published in all. */
  count: number
  /** Published before the kill; the rest is published at once after it, while the host restarts. */
  beforeKill: number
  /**
   * The host is killed at the first converted message received from this
   * one on at which conversions are in flight, or at the last one of those
   * published before the kill (less than beforeKill).
   */
  killAtOutput: number
  /** Bound on waiting for the end (not an assertion on time). */
  timeoutMs?: number
}

export interface HostCrashFigures {
  sent: number
  /** Conversions not yet settled when the host was killed: an upper bound on what the crash can lose. */
  outstandingAtKill: number
  /** Output messages received by a subscriber. */
  converted: number
  /** Distinct inputs whose conversion was received. */
  convertedDistinct: number
  /** The input messages themselves received by a subscriber (plain delivery). */
  plainDelivered: number
  killedPid: number
  newPid: number | undefined
  /** The rule's state at the end. */
  after: RuleStateView
  /** Whether the rule was ever seen suspended, from the kill to the end. */
  everSuspended: boolean
}

/** Conversions matched and not yet settled, from a rule's counters. */
export function outstanding (r: RuleStateView): number {
  return r.matched - r.skipped - r.outputs - r.dropped - r.failed - r.timeouts - r.memoryErrors - r.lostToHostCrash
}

/** Runs the scenario on `broker`, which must have echoRule(inTopic, outTopic) loaded as `options.rule`. */
export async function runHostCrashScenario (broker: Broker, options: HostCrashOptions): Promise<HostCrashFigures> {
  const { qos, count, beforeKill, killAtOutput } = options
  const inTopic = options.inTopic ?? 'crash/in'
  const outTopic = options.outTopic ?? 'crash/out'
  const timeoutMs = options.timeoutMs ?? 30_000
  if (!(killAtOutput < beforeKill && beforeKill <= count)) throw new Error('need killAtOutput < beforeKill <= count')

  const watcher = await connect(urlFor(broker))
  await watcher.subscribeAsync([outTopic, inTopic], { qos })
  const publisher = await connect(urlFor(broker))
  const box = inbox(watcher)

  let everSuspended = false
  let killedPid = 0
  let outstandingAtKill = 0
  const killed = new Promise<void>(resolve => {
    let outputs = 0
    const onMessage = (topic: string) => {
      if (topic !== outTopic || ++outputs < killAtOutput) return
      // Synchronously with the snapshot, so that nothing settles in between.
      const inFlight = outstanding(rule(broker, options.rule))
      if (inFlight === 0 && outputs < beforeKill) return
      watcher.off('message', onMessage)
      const pid = broker.stats().rulesHostPid
      if (pid === undefined) throw new Error('no rule host to kill')
      outstandingAtKill = inFlight
      killedPid = pid
      process.kill(pid, 'SIGKILL')
      resolve()
    }
    watcher.on('message', onMessage)
  })

  const acks: Array<Promise<unknown>> = []
  const send = (from: number, to: number) => {
    for (let i = from; i < to; i++) {
      if (qos === 0) publisher.publish(inTopic, String(i), { qos })
      else acks.push(publisher.publishAsync(inTopic, String(i), { qos }))
    }
  }
  send(0, beforeKill)
  await killed
  send(beforeKill, count)
  await Promise.all(acks)

  // The end: every message matched, and each one converted, lost or skipped.
  await until(() => {
    const r = rule(broker, options.rule)
    if (r.status === 'suspended') everSuspended = true
    return r.matched === count && outstanding(r) === 0
  }, 'every matched message to be settled', timeoutMs)
  const after = rule(broker, options.rule)
  await until(() => countTopic(watcher, outTopic) >= after.outputs && countTopic(watcher, inTopic) >= count, 'the outputs and plain messages to arrive', timeoutMs)
  const outputs = box.messages.filter(m => m.topic === outTopic)
  return {
    sent: count,
    outstandingAtKill,
    converted: outputs.length,
    convertedDistinct: new Set(outputs.map(m => m.payload)).size,
    plainDelivered: countTopic(watcher, inTopic),
    killedPid,
    newPid: broker.stats().rulesHostPid,
    after,
    everSuspended
  }
}

function countTopic (client: MqttClient, topic: string): number {
  let n = 0
  for (const m of inbox(client).messages) if (m.topic === topic) n++
  return n
}
