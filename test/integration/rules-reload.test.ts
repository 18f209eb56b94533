import { rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import { describe, expect, test } from 'vitest'
import { createBroker } from '../../src/index.js'
import { tempDir, urlFor } from '../helpers/broker.js'
import { retainedBarrier } from '../helpers/barrier.js'
import { connect, inbox } from '../helpers/client.js'
import { rule, startWithRules, until } from '../helpers/rules.js'

const version = (v: string) => `export const topics = ['r/in']; export function convert () { return { topic: 'r/out', payload: '${v}' } }`

describe('hot reload', () => {
  test('adding, changing, breaking and deleting a file takes effect within a second, and no client is dropped', async () => {
    const { broker, dir } = await startWithRules({})
    const app = await connect(urlFor(broker))
    let dropped = false
    app.on('close', () => { dropped = true })
    await app.subscribeAsync('r/out')
    const file = path.join(dir, 'live.js')
    const sendAndExpect = async (payload: string) => {
      const before = inbox(app).messages.length
      await app.publishAsync('r/in', 'x')
      const got = await inbox(app).waitFor(before + 1)
      expect(got.at(-1)!.payload).toBe(payload)
    }

    writeFileSync(file, version('v1'))
    await until(() => broker.rules().some(r => r.name === 'live' && r.status === 'running'), 'the new rule', 1000)
    await sendAndExpect('v1')

    const v1LoadedAt = rule(broker, 'live').loadedAt
    writeFileSync(file, version('v2'))
    await until(() => rule(broker, 'live').loadedAt !== v1LoadedAt, 'the change', 1000)
    await sendAndExpect('v2')

    writeFileSync(file, 'export const topics = [\'r/in\'; // syntax error')
    await until(() => rule(broker, 'live').error !== null, 'the broken file to be reported', 1000)
    expect(rule(broker, 'live')).toMatchObject({ status: 'running', error: expect.stringMatching(/^reload failed; the previous version keeps running: SyntaxError/) })
    await sendAndExpect('v2')

    rmSync(file)
    await until(() => broker.rules().length === 0, 'the deletion', 1000)
    await app.publishAsync('r/in', 'x')
    expect(dropped).toBe(false)
    expect(app.connected).toBe(true)
  })

  test('files starting with . or _ are ignored', async () => {
    const { broker } = await startWithRules({ '_draft.js': version('draft'), '.hidden.js': version('hidden'), 'notes.txt': 'x' })
    expect(broker.rules()).toEqual([])
  })
})

describe('visible without reading logs', () => {
  test('each rule\'s state is retained JSON on $SYS/switchyard/rules/<name>, refreshed as counters move, and cleared on delete', async () => {
    const { broker, dir } = await startWithRules({ 'uplink.js': `export const topics = ['u/+']; export function convert (m) { if (m.payload === 'bad') throw new Error('nope'); return { topic: 'v', payload: m.payload } }` })
    const ops = await connect(urlFor(broker))
    await ops.subscribeAsync('$SYS/switchyard/rules/#')
    const first = JSON.parse((await inbox(ops).waitFor(1))[0]!.payload)
    expect(first).toMatchObject({ name: 'uplink', status: 'running', error: null, topics: ['u/+'], matched: 0, outputs: 0, dropped: 0, failed: 0, timeouts: 0, memoryErrors: 0, loopDropped: 0, p50Ms: null, p99Ms: null, lastErrors: [] })
    expect(inbox(ops).messages[0]!.retain).toBe(true)

    const dev = await connect(urlFor(broker))
    await dev.publishAsync('u/1', 'ok')
    await dev.publishAsync('u/1', 'bad')
    await until(() => inbox(ops).messages.some(m => JSON.parse(m.payload || '{}').failed === 1), 'a refreshed status', 3000)
    const latest = JSON.parse(inbox(ops).messages.at(-1)!.payload)
    expect(latest).toMatchObject({ matched: 2, outputs: 1, failed: 1, lastErrors: [{ topic: 'u/1', error: expect.stringMatching(/^Error: nope/) }] })
    expect(latest.p50Ms).toBeGreaterThan(0)
    expect(latest.p99Ms).toBeGreaterThanOrEqual(latest.p50Ms)

    rmSync(path.join(dir, 'uplink.js'))
    await until(() => inbox(ops).messages.at(-1)!.payload === '', 'the retained status to be cleared', 2000)
    const late = await connect(urlFor(broker))
    // subscribes and waits until the whole retained replay is in
    const replayed = await retainedBarrier(broker, late, '$SYS/switchyard/rules/#', 'barrier/retained')
    expect(replayed).toEqual([])
  })

  test('console.log in a rule goes to the broker log, tagged with the rule, rate-limited', async () => {
    const lines: Array<Record<string, unknown>> = []
    const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(chunk.toString())); done() } })
    const dir = tempDir()
    writeFileSync(path.join(dir, 'chatty.js'), `export const topics = ['c']; export function convert (m) { console.log('seen', m.payload, { n: 1 }); for (let i = 0; i < 30; i++) console.warn('spam', i); return null }`)
    const broker = await createBroker({ listeners: [{ type: 'tcp', port: 0 }], persistence: { type: 'memory' }, rules: { dir } }, { logger: pino({ level: 'info' }, sink) })
    try {
      const dev = await connect(urlFor(broker))
      await dev.publishAsync('c', 'hello')
      await until(() => lines.some(l => l.msg === 'seen hello {"n":1}'), 'the log line')
      const fromRule = lines.filter(l => l.rule === 'chatty' && typeof l.msg === 'string' && (l.msg as string).startsWith('s'))
      expect(fromRule[0]).toMatchObject({ rule: 'chatty', level: 30, msg: 'seen hello {"n":1}' })
      // 20 lines a second per rule, at most (the sandbox itself keeps 100 per call)
      expect(fromRule.length).toBeLessThanOrEqual(20)
    } finally {
      await broker.close()
    }
  })
})
