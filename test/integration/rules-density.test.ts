/*
 * Issue 16, rule density: a rule's isolate exists only while the rule is in
 * use (src/rules/isolate-pool.ts, docs/rules.md#density-when-a-rule-has-an-isolate). Module-level state
 * shows which isolate a message ran in: a fresh isolate counts from 1.
 */
import { describe, expect, test } from 'vitest'
import { parseConfig } from '../../src/index.js'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const COUNTING = `export const topics = ['c']; let n = 0
  export function convert () { n++; return { topic: 'count', payload: String(n) } }`

describe('isolates made on demand and released when idle', () => {
  test('a loaded rule holds no isolate until a message matches it', async () => {
    // Its top-level code runs when its isolate is made: at load (to check its exports), then again on demand.
    const { broker } = await startWithRules({ 'born.js': `export const topics = ['b']; const born = Date.now()
      export function convert () { return { topic: 'born', payload: String(born) } }` })
    expect(rule(broker, 'born').isolate).toBe('idle')
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('born')
    const sentAt = Date.now()
    await app.publishAsync('b', 'x')
    const [msg] = await inbox(app).waitFor(1)
    expect(Number(msg!.payload)).toBeGreaterThanOrEqual(sentAt)
    expect(rule(broker, 'born').isolate).toBe('running')
  })

  test('an idle rule\'s isolate is released, and the next message makes a fresh one', async () => {
    const { broker } = await startWithRules({ 'count.js': COUNTING }, { config: { rules: { isolateIdleMs: 200 } } })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('count')
    const box = inbox(app)
    await app.publishAsync('c', 'x')
    await box.waitFor(1)
    // The broker's view and the host's timer are two clocks: a message that
    // still found the old isolate (counting 2, 3...) restarts its idle time.
    let last: string
    do {
      await until(() => rule(broker, 'count').isolate === 'idle', 'the rule to be idle')
      await app.publishAsync('c', 'x')
      last = (await box.waitFor(box.messages.length + 1)).at(-1)!.payload
    } while (last !== '1')
    expect(box.messages.at(-1)!.payload).toBe('1')
    expect(rule(broker, 'count')).toMatchObject({ matched: box.messages.length, outputs: box.messages.length, failed: 0, memoryErrors: 0 })
  })

  test('ctx.state outlives a released isolate; module state does not', async () => {
    const { broker } = await startWithRules({
      'both.js': `export const topics = ['c']; let n = 0
        export function convert (msg, ctx) { n++; const s = (ctx.state.get('n') ?? 0) + 1; ctx.state.set('n', s); return { topic: 'count', payload: n + '/' + s } }`
    }, { config: { rules: { isolateIdleMs: 200 } } })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('count')
    const box = inbox(app)
    await app.publishAsync('c', 'x')
    expect((await box.waitFor(1))[0]!.payload).toBe('1/1')
    let last: string
    do {
      await until(() => rule(broker, 'both').isolate === 'idle', 'the rule to be idle')
      await app.publishAsync('c', 'x')
      last = (await box.waitFor(box.messages.length + 1)).at(-1)!.payload
    } while (!last.startsWith('1/'))
    // a fresh isolate (module count 1), with every conversion counted in ctx.state
    expect(last).toBe(`1/${box.messages.length}`)
  })

  test('isolateIdleMs null: the isolate lives as long as the rule, and so does its state', async () => {
    const { broker } = await startWithRules({ 'count.js': COUNTING }, { config: { rules: { isolateIdleMs: null } } })
    expect(rule(broker, 'count').isolate).toBe('running')
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('count')
    for (let i = 0; i < 3; i++) await app.publishAsync('c', 'x')
    expect((await inbox(app).waitFor(3)).map(m => m.payload)).toEqual(['1', '2', '3'])
  })

  test('60 rules, each made on its first message: every one converts', async () => {
    const files = Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`site${i}.js`,
      `export const topics = ['site/${i}/+']
       export function convert (msg) { return { topic: 'out/${i}', payload: msg.payload } }`]))
    const { broker } = await startWithRules(files, { config: { rules: { isolateIdleMs: 0 } } })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('out/#')
    for (let i = 0; i < 60; i++) app.publish(`site/${i}/t`, String(i))
    const got = await inbox(app).waitFor(60, 30_000)
    expect(got.map(m => m.topic).sort()).toEqual(Array.from({ length: 60 }, (_, i) => `out/${i}`).sort())
    expect(got.every(m => m.payload === m.topic.slice(4))).toBe(true)
  })

  test('a rule that exhausts its memory while released and made again is still counted, and recovers', async () => {
    const { broker } = await startWithRules({
      'hog.js': `export const topics = ['hog/+']
        export const limits = { memoryLimitMb: 8 }
        export function convert (msg) {
          if (msg.topic === 'hog/eat') { const a = []; for (;;) a.push(new Array(1e5).fill(1)) }
          return { topic: 'fed', payload: 'ok' }
        }`
    }, { config: { rules: { isolateIdleMs: 0 } } })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('fed')
    await app.publishAsync('hog/eat', 'x')
    await until(() => rule(broker, 'hog').memoryErrors + rule(broker, 'hog').timeouts === 1, 'the memory error to be counted', 20_000)
    await app.publishAsync('hog/ok', 'x')
    expect((await inbox(app).waitFor(1))[0]!.payload).toBe('ok')
  })

  test('rules.isolateIdleMs is checked at the boundary', () => {
    expect(() => parseConfig({ rules: { isolateIdleMs: -1 } })).toThrow(/rules\.isolateIdleMs/)
    expect(parseConfig({}).rules.isolateIdleMs).toBe(300_000)
  })
})
