/* The rules engine's policies as plain functions and small classes: admit, suspend, flow control, settle. */
import { describe, expect, test } from 'vitest'
import { admit } from '../../src/rules/admit.js'
import { FlowControl, MAX_PENDING_PER_RULE, PAUSE_ABOVE, RESUME_BELOW } from '../../src/rules/flow.js'
import { settle } from '../../src/rules/settle.js'
import { RuleState } from '../../src/rules/state.js'
import { MAX_BACKOFF_MS, recordFailure, recordSuccess, resetSuspension, SUSPEND_AFTER } from '../../src/rules/suspend.js'
import { crash, FakeFlow, ok, thrown } from '../helpers/rules-fakes.js'

const fresh = () => ({ streak: 0, backoffMs: 0, suspendedUntil: 0 })

describe('admit', () => {
  const ctx = { chain: [] as string[], maxHops: 4, backlog: 0, now: 1000 }
  test.each([
    ['a fresh message', {}, 'convert'],
    ['its own output', { chain: ['r'] }, 'loopDropped'],
    ['maxHops reached', { chain: ['a', 'b', 'c', 'd'] }, 'loopDropped'],
    ['one hop short of maxHops', { chain: ['a', 'b', 'c'] }, 'convert'],
    ['a full backlog', { backlog: MAX_PENDING_PER_RULE }, 'skipped']
  ])('%s', (_, over, expected) => {
    expect(admit('r', fresh(), { ...ctx, ...over })).toBe(expected)
  })

  test('a suspended rule skips; once the time has passed it converts', () => {
    const rule = { ...fresh(), suspendedUntil: 2000 }
    expect(admit('r', rule, { ...ctx, now: 1999 })).toBe('skipped')
    expect(admit('r', rule, { ...ctx, now: 2000 })).toBe('convert')
  })
})

describe('the suspend policy', () => {
  test(`${SUSPEND_AFTER} failures in a row suspend for 1 s, then 2 s, 4 s ... at most 60 s`, () => {
    const rule = fresh()
    const suspensions: number[] = []
    let now = 0
    for (let round = 0; round < 9; round++) {
      for (let i = 1; i < SUSPEND_AFTER; i++) expect(recordFailure(rule, now)).toBeUndefined()
      suspensions.push(recordFailure(rule, now)!)
      now = rule.suspendedUntil
    }
    expect(suspensions).toEqual([1000, 2000, 4000, 8000, 16_000, 32_000, MAX_BACKOFF_MS, MAX_BACKOFF_MS, MAX_BACKOFF_MS])
  })

  test('failures while suspended (conversions already in flight) do not extend it', () => {
    const rule = fresh()
    for (let i = 0; i < SUSPEND_AFTER; i++) recordFailure(rule, 0)
    for (let i = 0; i < 2 * SUSPEND_AFTER; i++) expect(recordFailure(rule, 500)).toBeUndefined()
    expect(rule.suspendedUntil).toBe(1000)
  })

  test('a success resets the backoff; a reload resets everything', () => {
    const rule = fresh()
    for (let i = 0; i < SUSPEND_AFTER; i++) recordFailure(rule, 0)
    recordSuccess(rule)
    for (let i = 0; i < SUSPEND_AFTER; i++) recordFailure(rule, 5000)
    expect(rule.suspendedUntil).toBe(6000)
    resetSuspension(rule)
    expect(rule).toEqual(fresh())
  })
})

describe('flow control', () => {
  test('a client held by two rules resumes only when both let go', () => {
    const target = new FakeFlow()
    const flow = new FlowControl(target)
    flow.queued('a', 'c1', PAUSE_ABOVE - 1)
    expect(target.events).toEqual([])
    flow.queued('a', 'c1', PAUSE_ABOVE)
    flow.queued('a', 'c1', PAUSE_ABOVE + 1)
    flow.queued('b', 'c1', PAUSE_ABOVE)
    expect(target.events).toEqual(['pause c1'])
    flow.settled('a', RESUME_BELOW + 1)
    flow.settled('a', RESUME_BELOW)
    expect(target.events).toEqual(['pause c1'])
    flow.settled('b', 0)
    expect(target.events).toEqual(['pause c1', 'resume c1'])
  })

  test('releaseAll resumes every paused client once', () => {
    const target = new FakeFlow()
    const flow = new FlowControl(target)
    flow.queued('a', 'c1', PAUSE_ABOVE)
    flow.queued('b', 'c1', PAUSE_ABOVE)
    flow.queued('b', 'c2', PAUSE_ABOVE)
    flow.releaseAll()
    expect(target.events).toEqual(['pause c1', 'pause c2', 'resume c1', 'resume c2'])
  })

  test('without a target, nothing is held', () => {
    const flow = new FlowControl(undefined)
    flow.queued('a', 'c1', PAUSE_ABOVE)
    expect(() => flow.releaseAll()).not.toThrow()
  })
})

describe('settle', () => {
  test('outputs, nothing, a throw and a crash', () => {
    const rule = new RuleState('r', 'r.js')
    expect(settle(rule, 't', ok([{ topic: 'o', payload: 'p' }]), 1024, 0)).toEqual({ kind: 'ok', outputs: [{ topic: 'o', payload: 'p' }] })
    expect(settle(rule, 't', ok([]), 1024, 0)).toEqual({ kind: 'ok', outputs: [] })
    expect(settle(rule, 't', thrown, 1024, 0)).toEqual({ kind: 'failed', counter: 'failed', error: 'Error: boom', suspendedForMs: undefined })
    expect(settle(rule, 't', crash, 1024, 0)).toEqual({ kind: 'lost' })
    expect(rule.counters).toMatchObject({ dropped: 1, failed: 1, lostToHostCrash: 1 })
    expect(rule.lastErrors).toEqual([{ at: expect.any(String), topic: 't', error: 'Error: boom' }])
    expect(rule.streak).toBe(1)
  })

  test('timeouts and memory errors have their own counters and suspend like failures', () => {
    const rule = new RuleState('r', 'r.js')
    for (let i = 0; i < 4; i++) settle(rule, 't', { kind: i % 2 ? 'timeout' : 'memory', error: 'x', logs: [] }, 1024, 0)
    expect(settle(rule, 't', thrown, 1024, 0)).toMatchObject({ suspendedForMs: 1000 })
    expect(rule.counters).toMatchObject({ timeouts: 2, memoryErrors: 2, failed: 1 })
  })

  test('an output over maxPacketSize fails the conversion', () => {
    const rule = new RuleState('r', 'r.js')
    expect(settle(rule, 't', ok([{ topic: 'o', payload: 'x'.repeat(11) }]), 10, 0)).toMatchObject({ kind: 'failed', counter: 'failed', error: 'output 0: payload of 11 bytes exceeds limits.maxPacketSize 10' })
  })
})
