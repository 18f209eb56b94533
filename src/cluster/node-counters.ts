/*
 * A node's counters as its heartbeat carries them (membership.ts, field
 * `counters` of node:<nodeId>), so that GET /api/cluster shows them per node
 * and summed across the cluster (issue 13: "the admin API sums the counters
 * across nodes, and also shows them per node").
 *
 * Kept small, because it is written at every heartbeat that changed it:
 * - compact JSON with one-letter keys, each rule's counters a positional
 *   array (RULE_COUNTERS' order) with its trailing zeros cut;
 * - rules whose counters are all zero are left out (they add nothing to a sum);
 * - at most MAX_RULES rules, those with the most matched messages; `rulesOmitted`
 *   says how many more had counts. A node with 1,000 busy rules (26-character
 *   names, six-digit counts) writes 9.7 KB per beat instead of 48 KB
 *   (test/unit/node-counters.test.ts bounds it).
 * membership.ts skips the field when it did not change since the last beat.
 */
import type { RuleCounters } from '../rules/state.js'

export const MAX_RULES = 200

/** The order of a rule's counters in the encoded array: append only. */
export const RULE_COUNTERS = ['matched', 'outputs', 'dropped', 'failed', 'timeouts', 'memoryErrors', 'loopDropped', 'skipped', 'lostToHostCrash'] as const satisfies ReadonlyArray<keyof RuleCounters>

export type RuleCounterValues = Record<(typeof RULE_COUNTERS)[number], number>

/** What one node counted since it started; GET /api/cluster `nodes[].counters` and `totals.counters`. */
export interface NodeCounters {
  /** PUBLISH packets received from clients, by QoS [0, 1, 2]. */
  messagesReceived: [number, number, number]
  /** PUBLISH packets sent to clients, by the message's QoS [0, 1, 2]. */
  messagesSent: [number, number, number]
  /** Publishes refused while Redis was away: QoS 0 dropped, QoS 1/2 not acknowledged (cluster-failure.md). */
  refusedWhileRedisAway: { qos0: number, qos12: number }
  /** Dead nodes' wills this node published. */
  willsPublished: number
  /** By rule name: its counters (docs/rules.md). Only rules that counted something; at most MAX_RULES per node. */
  rules: Record<string, RuleCounterValues>
  /** Rules with counts left out of `rules` by the MAX_RULES cap (summed across nodes in totals). */
  rulesOmitted: number
}

export interface CounterSources {
  received: readonly number[]
  sent: readonly number[]
  qos0Dropped: number
  refused: number
  willsPublished: number
  rules: ReadonlyArray<{ name: string } & RuleCounters>
}

export function emptyCounters (): NodeCounters {
  return { messagesReceived: [0, 0, 0], messagesSent: [0, 0, 0], refusedWhileRedisAway: { qos0: 0, qos12: 0 }, willsPublished: 0, rules: {}, rulesOmitted: 0 }
}

/** The heartbeat field's value. */
export function encodeCounters (s: CounterSources, maxRules = MAX_RULES): string {
  const busy: Array<[string, number[]]> = []
  for (const rule of s.rules) {
    const values = RULE_COUNTERS.map(k => rule[k])
    let end = values.length
    while (end > 0 && values[end - 1] === 0) end--
    if (end > 0) busy.push([rule.name, values.slice(0, end)])
  }
  busy.sort((a, b) => (b[1][0] ?? 0) - (a[1][0] ?? 0) || (a[0] < b[0] ? -1 : 1))
  const kept = busy.slice(0, maxRules)
  return JSON.stringify({
    r: s.received.slice(0, 3),
    s: s.sent.slice(0, 3),
    f: [s.qos0Dropped, s.refused],
    w: s.willsPublished,
    u: Object.fromEntries(kept),
    o: busy.length - kept.length
  })
}

/** The field read back; anything unreadable (absent, another version's) counts as zeros. */
export function decodeCounters (raw: string | undefined): NodeCounters {
  const out = emptyCounters()
  if (raw === undefined || raw === '') return out
  let v: { r?: unknown, s?: unknown, f?: unknown, w?: unknown, u?: unknown, o?: unknown }
  try {
    v = JSON.parse(raw) as typeof v
  } catch {
    return out
  }
  const triple = (x: unknown): [number, number, number] => [num((x as unknown[])?.[0]), num((x as unknown[])?.[1]), num((x as unknown[])?.[2])]
  out.messagesReceived = triple(v.r)
  out.messagesSent = triple(v.s)
  out.refusedWhileRedisAway = { qos0: num((v.f as unknown[])?.[0]), qos12: num((v.f as unknown[])?.[1]) }
  out.willsPublished = num(v.w)
  out.rulesOmitted = num(v.o)
  if (v.u !== null && typeof v.u === 'object') {
    for (const [name, values] of Object.entries(v.u as Record<string, unknown>)) {
      if (!Array.isArray(values)) continue
      out.rules[name] = Object.fromEntries(RULE_COUNTERS.map((k, i) => [k, num(values[i])])) as RuleCounterValues
    }
  }
  return out
}

/** The cluster's totals: every field summed, rules by name. */
export function sumCounters (list: readonly NodeCounters[]): NodeCounters {
  const t = emptyCounters()
  for (const c of list) {
    for (let q = 0; q < 3; q++) {
      t.messagesReceived[q]! += c.messagesReceived[q]!
      t.messagesSent[q]! += c.messagesSent[q]!
    }
    t.refusedWhileRedisAway.qos0 += c.refusedWhileRedisAway.qos0
    t.refusedWhileRedisAway.qos12 += c.refusedWhileRedisAway.qos12
    t.willsPublished += c.willsPublished
    t.rulesOmitted += c.rulesOmitted
    for (const [name, values] of Object.entries(c.rules)) {
      const sum = t.rules[name] ??= Object.fromEntries(RULE_COUNTERS.map(k => [k, 0])) as RuleCounterValues
      for (const k of RULE_COUNTERS) sum[k] += values[k]
    }
  }
  t.rules = Object.fromEntries(Object.entries(t.rules).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0))
  return t
}

function num (x: unknown): number {
  return typeof x === 'number' && Number.isFinite(x) ? x : 0
}
