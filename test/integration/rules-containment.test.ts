import { describe, expect, test } from 'vitest'
import { urlFor } from '../helpers/broker.js'
import { connect, inbox } from '../helpers/client.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const GOOD = `export const topics = ['work/+']; export function convert (m) { return { topic: 'done/' + m.topic.split('/')[1], payload: m.payload } }`

describe('a broken or hostile rule is contained', () => {
  test('throwing, looping, memory-bomb and escaping rules fail alone while a good rule converts every message', async () => {
    const { broker } = await startWithRules({
      'good.js': GOOD,
      'thrower.js': `export const topics = ['work/+']; export function convert (m) { throw new Error('bad input ' + m.payload) }`,
      'looper.js': `export const topics = ['work/+']; export const limits = { timeoutMs: 50 }; export function convert () { for (;;) {} }`,
      'bomb.js': `export const topics = ['work/+']; export function convert () { const a = []; for (;;) a.push(new Array(1e5).fill(Math.random())) }`,
      'requirer.js': `export const topics = ['work/+']; export function convert () { return { topic: 'x', payload: String(require('fs').readFileSync('/etc/passwd')) } }`,
      'processor.js': `export const topics = ['work/+']; export function convert () { process.exit(1) }`,
      'escaper.js': `export const topics = ['work/+']
        export function convert () {
          const F = (() => {}).constructor.constructor
          const g = F('return this')()
          return { topic: 'escape/report', payload: { process: typeof g.process, require: typeof g.require, globalProcess: F('try { return typeof process } catch (e) { return "threw" }')(), setTimeout: typeof setTimeout, fetch: typeof fetch, WebAssembly: typeof WebAssembly } }
        }`
    }, {
      // A generous broker timeout, so that the bomb always meets its memory
      // limit first: with a tight one, which counter a runaway allocation
      // lands in is a race (docs/aedes-gaps.md#memory-limit-or-timeout-a-race). The looper lowers its own.
      config: { rules: { timeoutMs: 1000 } }
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('done/+')
    await app.subscribeAsync('escape/report')
    const dev = await connect(urlFor(broker))
    for (let i = 0; i < 4; i++) await dev.publishAsync(`work/${i}`, String(i), { qos: 1 })

    const done = (await inbox(app).waitFor(8, 10_000))
    expect(done.filter(m => m.topic.startsWith('done/')).map(m => m.payload)).toEqual(['0', '1', '2', '3'])
    expect(JSON.parse(done.find(m => m.topic === 'escape/report')!.payload)).toEqual({
      process: 'undefined', require: 'undefined', globalProcess: 'undefined', setTimeout: 'undefined', fetch: 'undefined', WebAssembly: 'undefined'
    })
    await until(() => ['thrower', 'looper', 'bomb', 'requirer', 'processor'].every(n => {
      const r = rule(broker, n)
      return r.failed + r.timeouts + r.memoryErrors === 4
    }), 'every hostile rule to fail 4 times', 10_000)
    expect(rule(broker, 'thrower')).toMatchObject({ failed: 4, lastErrors: expect.arrayContaining([expect.objectContaining({ topic: 'work/3', error: expect.stringMatching(/^Error: bad input 3/) })]) })
    expect(rule(broker, 'looper')).toMatchObject({ timeouts: 4, failed: 0 })
    expect(rule(broker, 'bomb')).toMatchObject({ memoryErrors: 4 })
    expect(rule(broker, 'requirer').lastErrors[0]!.error).toMatch(/ReferenceError: require is not defined/)
    expect(rule(broker, 'processor').lastErrors[0]!.error).toMatch(/ReferenceError: process is not defined/)
    expect(rule(broker, 'good')).toMatchObject({ status: 'running', matched: 4, outputs: 4, failed: 0 })
  })

  test('a rule file that imports a module does not load, and says why', async () => {
    const { broker } = await startWithRules({ 'importer.js': `import fs from 'node:fs'; export const topics = ['#']; export function convert () {}` })
    expect(rule(broker, 'importer')).toMatchObject({ status: 'failed', error: expect.stringMatching(/cannot import anything \(found: 'node:fs'\)/) })
  })

  test('if the rule host process dies, the broker keeps serving and the rules come back', async () => {
    const { broker } = await startWithRules({ 'good.js': GOOD })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('done/+')
    await app.subscribeAsync('plain/topic')
    await app.publishAsync('work/1', 'before')
    await inbox(app).waitFor(1)
    const pid = broker.stats().rulesHostPid!
    // What a V8 out-of-memory abort outside the isolate limit looks like from here.
    process.kill(pid, 'SIGKILL')
    await app.publishAsync('plain/topic', 'broker still serves')
    expect((await inbox(app).waitFor(2))[1]!.payload).toBe('broker still serves')
    await until(() => broker.stats().rulesHostPid !== undefined && broker.stats().rulesHostPid !== pid, 'a new rule host')
    await until(() => { void app.publishAsync('work/2', 'after'); return inbox(app).messages.some(m => m.payload === 'after') }, 'the rule to convert again')
    expect(rule(broker, 'good').status).toBe('running')
  })

  test('a rule failing continuously is suspended, then resumes by itself', async () => {
    const { broker } = await startWithRules({
      'flaky.js': `export const topics = ['flaky']; export function convert (m) { if (m.payload === 'bad') throw new Error('bad'); return { topic: 'flaky/ok', payload: m.payload } }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('flaky/ok')
    for (let i = 0; i < 5; i++) await app.publishAsync('flaky', 'bad')
    await until(() => rule(broker, 'flaky').status === 'suspended', 'suspension')
    expect(rule(broker, 'flaky').suspendedUntil).not.toBeNull()
    await app.publishAsync('flaky', 'skipped while suspended')
    await until(() => rule(broker, 'flaky').skipped === 1, 'the skip')
    await until(() => rule(broker, 'flaky').status === 'running', 'resumption', 3000)
    await app.publishAsync('flaky', 'good again')
    expect((await inbox(app).waitFor(1))[0]!.payload).toBe('good again')
  })

  test('a rule can lower its own limits, never raise them', async () => {
    const { broker } = await startWithRules({
      'strict.js': `export const topics = ['s']; export const limits = { timeoutMs: 20 }; export function convert () { for (;;) {} }`,
      'greedy.js': `export const topics = ['s']; export const limits = { memoryLimitMb: 1024 }; export function convert () {}`
    })
    expect(rule(broker, 'strict').limits).toEqual({ timeoutMs: 20, memoryLimitMb: 32 })
    expect(rule(broker, 'greedy')).toMatchObject({ status: 'failed', error: expect.stringMatching(/limits.memoryLimitMb 1024 is above the broker's rules.memoryLimitMb 32/) })
    const pub = await connect(urlFor(broker))
    await pub.publishAsync('s', 'x')
    await until(() => rule(broker, 'strict').timeouts === 1, 'the timeout')
    expect(rule(broker, 'strict').lastErrors[0]!.error).toBe('exceeded timeoutMs 20')
  })
})

describe('not on the broker\'s critical path', () => {
  test('a rule busy for 90 ms per message does not stall unrelated clients', async () => {
    const { broker } = await startWithRules({
      'slow.js': `export const topics = ['slow/in']; export function convert (m) { const end = Date.now() + 90; while (Date.now() < end) {} return { topic: 'slow/out', payload: m.payload } }`
    })
    const watcher = await connect(urlFor(broker))
    await watcher.subscribeAsync('slow/out')
    await watcher.subscribeAsync('fast/x')
    const dev = await connect(urlFor(broker))
    for (let i = 0; i < 5; i++) dev.publish('slow/in', String(i))
    await until(() => rule(broker, 'slow').matched === 5, 'the slow rule to have its work')
    const other = await connect(urlFor(broker))
    await other.publishAsync('fast/x', 'unrelated')
    const got = await inbox(watcher).waitFor(6, 10_000)
    // Order, not time: the unrelated message overtakes the slow rule's backlog.
    const fast = got.findIndex(m => m.topic === 'fast/x')
    expect(fast).toBeLessThan(2)
    expect(got.filter(m => m.topic === 'slow/out').map(m => m.payload)).toEqual(['0', '1', '2', '3', '4'])
  })

  test('a client flooding a slow rule is slowed down (flow control), not dropped, and resumes', async () => {
    const { broker } = await startWithRules({
      'slowish.js': `export const topics = ['flood/in']; export function convert (m) { const end = Date.now() + 1; while (Date.now() < end) {} return { topic: 'flood/out', payload: m.payload } }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('flood/out')
    const flooder = await connect(urlFor(broker))
    const n = 3000 // above the 2,000-conversion mark where the publisher is paused
    for (let i = 0; i < n; i++) flooder.publish('flood/in', String(i))
    const got = await inbox(app).waitFor(n, 20_000)
    expect(got.map(m => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i))
    expect(rule(broker, 'slowish')).toMatchObject({ matched: n, outputs: n, skipped: 0 })
    // and the paused client was resumed: it still publishes
    await flooder.publishAsync('flood/in', 'after', { qos: 1 })
    await until(() => inbox(app).messages.some(m => m.payload === 'after'), 'the resumed client')
  })

  test('outputs keep the order of their inputs under load', async () => {
    const { broker } = await startWithRules({
      'seq.js': `export const topics = ['seq/in']; export const qos = 1; export function convert (m) { return { topic: 'seq/out', payload: m.payload } }`
    })
    const app = await connect(urlFor(broker))
    await app.subscribeAsync('seq/out', { qos: 1 })
    const dev = await connect(urlFor(broker))
    const n = 2000
    await Promise.all(Array.from({ length: n }, (_, i) => dev.publishAsync('seq/in', String(i), { qos: 1 })))
    const got = await inbox(app).waitFor(n, 20_000)
    expect(got.map(m => Number(m.payload))).toEqual(Array.from({ length: n }, (_, i) => i))
  })
})
