/*
 * A node's counters as its heartbeat carries them (src/cluster/node-counters.ts):
 * compact and capped, read back whole, summed by rule name.
 */
import { describe, expect, test } from 'vitest'
import { decodeCounters, encodeCounters, MAX_RULES, sumCounters, type CounterSources } from '../../src/cluster/node-counters.js'

const zero = { dropped: 0, failed: 0, timeouts: 0, memoryErrors: 0, loopDropped: 0, skipped: 0, lostToHostCrash: 0 }
const source = (rules: CounterSources['rules']): CounterSources => ({ received: [1, 2, 3], sent: [4, 5, 6], qos0Dropped: 7, refused: 8, willsPublished: 9, rules })

describe('node counters', () => {
  test('1,000 busy rules: at most MAX_RULES, the busiest, in under 12 KB; the rest counted as omitted', () => {
    const rules = Array.from({ length: 1000 }, (_, i) => ({ name: `rule-${String(i).padStart(4, '0')}-sensor-convert`, ...zero, matched: 123456 + i, outputs: 123456 + i, dropped: 12, failed: 3 }))
    const raw = encodeCounters(source(rules))
    expect(raw.length).toBeLessThan(12 * 1024)
    const back = decodeCounters(raw)
    expect(Object.keys(back.rules)).toHaveLength(MAX_RULES)
    expect(back.rulesOmitted).toBe(1000 - MAX_RULES)
    expect(back.rules['rule-0999-sensor-convert']).toEqual({ ...zero, matched: 124455, outputs: 124455, dropped: 12, failed: 3 })
    expect(back.rules['rule-0000-sensor-convert']).toBeUndefined()
  })

  test('read back whole; idle rules left out; summed across nodes by rule name', () => {
    const a = decodeCounters(encodeCounters(source([{ name: 'r', ...zero, matched: 2, outputs: 1 }, { name: 'idle', ...zero, matched: 0, outputs: 0 }])))
    expect(a).toEqual({ messagesReceived: [1, 2, 3], messagesSent: [4, 5, 6], refusedWhileRedisAway: { qos0: 7, qos12: 8 }, willsPublished: 9, rules: { r: { ...zero, matched: 2, outputs: 1 } }, rulesOmitted: 0 })
    const b = decodeCounters(encodeCounters(source([{ name: 'r', ...zero, matched: 3, outputs: 3, skipped: 1 }, { name: 's', ...zero, matched: 1, outputs: 0 }])))
    const t = sumCounters([a, b, decodeCounters(undefined), decodeCounters('not json')])
    expect(t.messagesReceived).toEqual([2, 4, 6])
    expect(t.refusedWhileRedisAway).toEqual({ qos0: 14, qos12: 16 })
    expect(t.rules).toEqual({ r: { ...zero, matched: 5, outputs: 4, skipped: 1 }, s: { ...zero, matched: 1, outputs: 0 } })
  })
})
