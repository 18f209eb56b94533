/*
 * The rules engine's steps (match, admit, convert, settle, publish) over
 * in-memory fakes of its runner, source, publisher and flow target.
 */
import { afterEach, describe, expect, test, vi } from 'vitest'
import { SwitchyardError } from '../../src/errors.js'
import { crash, fakeEngine, FakeRunner, from, ok, thrown } from '../helpers/rules-fakes.js'

afterEach(() => { vi.useRealTimers() })

const text = (bytes: Uint8Array) => Buffer.from(bytes).toString()

describe('the rules engine, step by step', () => {
  test('match, admit, convert, settle, publish: outputs go out with the rule\'s qos and are routed again', async () => {
    const { engine, runner, publisher, rule } = await fakeEngine({ up: { topics: ['in/+'], qos: 1 }, alert: { topics: ['out/#'] } })
    engine.route(from('c1', 'in/a', '25'))
    expect(runner.pending.map(p => [p.rule, p.msg.topic, text(p.msg.bytes), p.msg.clientId])).toEqual([['up', 'in/a', '25', 'c1']])
    runner.answer(m => ok([{ topic: 'out/a', payload: text(m.bytes) }]))
    // A QoS 1 output waits for the publish before it; then it is routed again, as the original client's message.
    await vi.waitFor(() => expect(runner.pending.map(p => [p.rule, p.msg.topic, p.msg.clientId])).toEqual([['alert', 'out/a', 'c1']]))
    expect(publisher.outputs).toEqual([{ topic: 'out/a', payload: '25', qos: 1, retain: false }])
    expect(rule('up')).toMatchObject({ matched: 1, outputs: 1, failed: 0 })
    expect(rule('alert')).toMatchObject({ matched: 1 })
  })

  test('a rule never sees its own output, and a chain stops at maxHops (loopDropped)', async () => {
    const { engine, runner, rule } = await fakeEngine({ echo: { topics: ['loop/#'] } })
    engine.route(from('c1', 'loop/1'))
    runner.answer(() => ok([{ topic: 'loop/2', payload: 'x' }]))
    await Promise.resolve()
    expect(runner.pending).toHaveLength(0)
    expect(rule('echo')).toMatchObject({ matched: 1, outputs: 1, loopDropped: 1 })
    engine.route(from('c1', 'loop/3', 'x', 0, ['a', 'b', 'c', 'd']))
    expect(rule('echo').loopDropped).toBe(2)
  })

  test('a conversion lost with the rule host counts as lostToHostCrash: not failed, never suspended', async () => {
    const { engine, runner, rule } = await fakeEngine({ r: { topics: ['t'] } })
    for (let i = 0; i < 12; i++) engine.route(from('c1', 't'))
    runner.answer(() => crash)
    expect(rule('r')).toMatchObject({ status: 'running', matched: 12, lostToHostCrash: 12, failed: 0, skipped: 0, lastErrors: [] })
    // The streak was not touched: four failures after twelve crashes do not suspend it.
    for (let i = 0; i < 4; i++) engine.route(from('c1', 't'))
    runner.answer(() => thrown)
    expect(rule('r')).toMatchObject({ status: 'running', failed: 4 })
  })

  test('five failures in a row suspend the rule (skipped meanwhile); it resumes by itself, backoff doubling', async () => {
    vi.useFakeTimers()
    const { engine, runner, publisher, rule } = await fakeEngine({ r: { topics: ['t'] } })
    const fail5 = () => {
      for (let i = 0; i < 5; i++) engine.route(from('c1', 't'))
      runner.answer(() => thrown)
    }
    fail5()
    expect(rule('r')).toMatchObject({ status: 'suspended', failed: 5, lastErrors: expect.arrayContaining([expect.objectContaining({ topic: 't', error: 'Error: boom' })]) })
    expect(publisher.published.at(-1)).toMatchObject({ topic: '$SYS/switchyard/rules/r', retain: true })
    engine.route(from('c1', 't'))
    expect(runner.pending).toHaveLength(0)
    expect(rule('r').skipped).toBe(1)
    vi.advanceTimersByTime(1001)
    expect(rule('r').status).toBe('running')
    fail5()
    expect(new Date(rule('r').suspendedUntil!).getTime() - Date.now()).toBe(2000)
    await engine.close()
  })

  test('one success resets the streak', async () => {
    const { runner, engine, rule } = await fakeEngine({ r: { topics: ['t'] } })
    for (let i = 0; i < 9; i++) engine.route(from('c1', 't'))
    runner.answer(() => thrown, 4)
    runner.answer(() => ok([]), 1)
    runner.answer(() => thrown, 4)
    expect(rule('r')).toMatchObject({ status: 'running', failed: 8, dropped: 1 })
  })

  test('an invalid output fails the whole conversion: nothing of it is published', async () => {
    const { engine, runner, publisher, rule } = await fakeEngine({ r: { topics: ['t'] } })
    engine.route(from('c1', 't'))
    runner.answer(() => ok([{ topic: 'fine', payload: 'a' }, { topic: '$SYS/x', payload: 'b' }]))
    await engine.close()
    expect(publisher.outputs).toEqual([])
    expect(rule('r')).toMatchObject({ failed: 1, outputs: 0, lastErrors: [expect.objectContaining({ error: expect.stringMatching(/^output 1: topic "\$SYS\/x"/) })] })
  })

  test('flow control: a client feeding 2,000 waiting conversions is paused, and resumed at 500', async () => {
    const { engine, runner, flow } = await fakeEngine({ slow: { topics: ['t'] } })
    for (let i = 0; i < 1999; i++) engine.route(from('c1', 't'))
    expect(flow.events).toEqual([])
    engine.route(from('c1', 't'))
    engine.route(from('c2', 't'))
    engine.route(from(null, 't')) // broker.publish(): cannot be paused
    engine.route(from('c3', 't', 'x', 0, ['other'])) // a rule's output: neither
    expect(flow.events).toEqual(['pause c1', 'pause c2'])
    runner.answer(() => ok([]), runner.pending.length - 501)
    expect(flow.events).toHaveLength(2)
    runner.answer(() => ok([]), 1)
    expect(flow.events).toEqual(['pause c1', 'pause c2', 'resume c1', 'resume c2'])
  })

  test('beyond 10,000 waiting, what cannot be paused is skipped', async () => {
    const { engine, runner, rule } = await fakeEngine({ slow: { topics: ['t'] } })
    for (let i = 0; i < 10_005; i++) engine.route(from(null, 't'))
    expect(runner.pending).toHaveLength(10_000)
    expect(rule('slow')).toMatchObject({ matched: 10_005, skipped: 5 })
  })

  test('a removed rule lets its paused clients go, is unloaded, and its status is cleared', async () => {
    const { engine, runner, source, flow, publisher } = await fakeEngine({ slow: { topics: ['t'] } })
    for (let i = 0; i < 2000; i++) engine.route(from('c1', 't'))
    await source.set('slow', null)
    expect(flow.events).toEqual(['pause c1', 'resume c1'])
    expect(runner.unloaded).toEqual(['slow'])
    expect(publisher.published.at(-1)).toEqual({ topic: '$SYS/switchyard/rules/slow', payload: '', qos: 0, retain: true })
    expect(engine.rules()).toEqual([])
  })

  test('a reload that fails keeps the previous version running', async () => {
    const { engine, runner, source, rule } = await fakeEngine({ r: { topics: ['a'] } })
    runner.failLoads.set('r', 'SyntaxError: nope')
    await source.set('r', { topics: ['b'] })
    expect(rule('r')).toMatchObject({ status: 'running', topics: ['a'], error: 'reload failed; the previous version keeps running: SyntaxError: nope' })
    engine.route(from('c1', 'a'))
    expect(runner.pending).toHaveLength(1)
  })

  test('start fails with ERR_RULES_HOST when the runner could not start', async () => {
    const failed = new SwitchyardError('ERR_RULES_HOST', 'the rule host process did not start within 10000 ms')
    const runner = Object.assign(new FakeRunner(), { startError: failed })
    await expect(fakeEngine({ r: { topics: ['a'] } }, { runner })).rejects.toBe(failed)
  })
})
