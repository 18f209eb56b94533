/*
 * The rule host SIGKILLed under load (issue 9, finding 4): a host crash is
 * not the rule's fault. The rule is not suspended, input that arrives while
 * the host restarts is held (within flow control) and converted when it is
 * back, and only the conversions in flight at the kill are lost, and counted:
 * at most HOST_WINDOW, what the broker lets the host hold for a rule, however
 * long the backlog.
 */
import { describe, expect, test } from 'vitest'
import { HOST_WINDOW } from '../../src/rules/conversions.js'
import { startWithRules } from '../helpers/rules.js'
import { echoRule, runHostCrashScenario, type HostCrashOptions } from '../helpers/rules-host-crash.js'

type Case = Omit<HostCrashOptions, 'rule'> & { busyMs?: number }
const cases: Array<[string, Case]> = [
  ['2,000 QoS 0 messages', { qos: 0, count: 2000, beforeKill: 1000, killAtOutput: 200 }],
  ['2,000 QoS 1 messages', { qos: 1, count: 2000, beforeKill: 1000, killAtOutput: 200 }],
  // A rule busy 1 ms a message: hundreds of conversions are in the host when it dies.
  ['2,000 QoS 1 messages, a slower rule', { qos: 1, count: 2000, beforeKill: 1000, killAtOutput: 200, busyMs: 1 }],
  // 4,500 arrive during the restart: past the 2,000 where the publisher is paused
  ['6,000 QoS 0 messages, the publisher paused while the host restarts', { qos: 0, count: 6000, beforeKill: 1500, killAtOutput: 300 }],
  // A rule busy 1 ms a message with 1,500 waiting at the kill: without the window the host would hold them all.
  ['3,000 QoS 0 messages, a slower rule with a long backlog', { qos: 0, count: 3000, beforeKill: 2000, killAtOutput: 100, busyMs: 1 }]
]

describe('the rule host killed mid-stream', () => {
  test.each(cases)('%s: the rule is not suspended, and only what was in flight is lost', async (_, { busyMs, ...scenario }) => {
    // A generous timeout: on a loaded machine a batch of the slower rule
    // could otherwise meet it, which is not what this test is about.
    const { broker } = await startWithRules({ 'echo.js': echoRule('crash/in', 'crash/out', busyMs) }, { config: { rules: { timeoutMs: 10_000 } } })
    const f = await runHostCrashScenario(broker, { rule: 'echo', ...scenario })
    console.log(`rule host killed (${scenario.qos === 0 ? 'QoS 0' : 'QoS 1'}${busyMs === undefined ? '' : `, ${busyMs} ms a message`}): sent ${f.sent}, converted ${f.converted}, lost to the crash ${f.after.lostToHostCrash} ` +
      `(window ${HOST_WINDOW}; in flight at the kill, here or in the host: ${f.outstandingAtKill}), skipped ${f.after.skipped}, failed ${f.after.failed}, timeouts ${f.after.timeouts}, plain delivered ${f.plainDelivered}, suspended ${f.everSuspended}`)

    expect(f.newPid).not.toBe(f.killedPid)
    expect(f.everSuspended).toBe(false)
    expect(f.after).toMatchObject({ status: 'running', matched: f.sent, skipped: 0, failed: 0, timeouts: 0, suspendedUntil: null })
    // Every message not in flight at the kill is converted, once.
    expect(f.converted + f.after.lostToHostCrash).toBe(f.sent)
    expect(f.convertedDistinct).toBe(f.converted)
    expect(f.after.outputs).toBe(f.converted)
    expect(f.after.lostToHostCrash).toBeLessThanOrEqual(f.outstandingAtKill)
    // However long the backlog, the host held at most the window of it.
    expect(f.after.lostToHostCrash).toBeLessThanOrEqual(HOST_WINDOW)
    // Plain delivery lost nothing.
    expect(f.plainDelivered).toBe(f.sent)
    // With a slower rule, work was in the host when it died: lost, and counted.
    if (busyMs !== undefined) expect(f.after.lostToHostCrash).toBeGreaterThan(0)
  })
})
